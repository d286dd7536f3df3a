"""Continue a pacemaker fit that scipy's BFGS ended early on "precision loss".

BFGS stops with status 2 ("Desired error not necessarily achieved due to precision loss")
when its line search fails, which on our data happens long before the loss plateau or the
iteration cap (Si demo refits: 92-267 of 300/1500 steps, docs/training.md). Such a fit is
under-converged, not finished. A fresh BFGS from the result (new inverse-Hessian estimate)
usually goes on lowering the loss, so the fit is continued in a sub-folder
``continue_K/`` for the steps left, and its potential replaces the parent's
``output_potential.yaml`` only when its train loss is lower. All runs of one fit share its
``timeout_s``: a continuation gets what the runs before it left.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pyacemaker.stages.train.outputs import (
    POTENTIAL_YAML,
    FitFailed,
    metrics_column,
    steps_in_log,
)

log = logging.getLogger(__name__)

PRECISION_LOSS = re.compile(r"Optimization result\(success=False, status=2,")
# a continuation that gives up within this many steps is BFGS stuck for good, not a hiccup
STUCK_STEPS = 10


@dataclass(frozen=True)
class FitEnd:
    """How one pacemaker run ended, read from its log.txt."""

    steps: int
    precision_loss: bool
    plateau: bool
    final_loss: float | None


def read_fit_end(folder: Path) -> FitEnd:
    path = folder / "log.txt"
    text = path.read_text(errors="replace") if path.is_file() else ""
    steps = steps_in_log(text)
    return FitEnd(steps=int(steps["fit_steps"]),
                  precision_loss=bool(PRECISION_LOSS.search(text)),
                  plateau=bool(steps["stopped_on_plateau"]),
                  final_loss=metrics_column(folder, "loss", -1))


def should_continue(end: FitEnd, steps_left: int, previous_steps: int | None) -> bool:
    """Continue when BFGS gave up (not the plateau test, not the cap), steps are left,
    and the last continuation was not itself stuck within STUCK_STEPS."""
    if not end.precision_loss or end.plateau or steps_left < STUCK_STEPS:
        return False
    return previous_steps is None or previous_steps >= STUCK_STEPS


def continue_fit(workdir: Path, config: dict[str, Any], max_iterations: int,
                 restarts: int, run: Callable[[list[str], Path], float]) -> dict[str, float]:
    """Continue the fit in ``workdir`` up to ``restarts`` times; return its metrics.

    ``config`` is the parent's input.yaml; ``run(argv, folder)`` runs pacemaker and
    returns its wall time (raises FitFailed on failure or when the fit's time is used up:
    a failed continuation leaves the parent's potential as it was). The parent's
    output_potential.yaml ends as the best of the runs by train loss. Returns
    ``fit_restarts`` (continuations run), ``fit_steps_total``,
    ``continuation_time_s`` and ``final_train_loss``.
    """
    end = read_fit_end(workdir)
    total = end.steps + 1
    best_loss = end.final_loss
    done, previous, seconds = 0, None, 0.0
    while done < restarts and should_continue(end, max_iterations - total, previous):
        done += 1
        folder = workdir / f"continue_{done}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        shutil.copyfile(workdir / POTENTIAL_YAML, folder / "initial_potential.yaml")
        (folder / "input.yaml").write_text(yaml.safe_dump(
            _continuation_input(config, max_iterations - total), sort_keys=False))
        try:
            seconds += run(["input.yaml", "-o", POTENTIAL_YAML, "--no-predict", "-p",
                            "initial_potential.yaml"], folder)
        except FitFailed as failure:
            log.warning("continuing the fit in %s failed (%s): keeping the fit before it",
                        folder, failure.reason)
            break
        end = read_fit_end(folder)
        previous = end.steps + 1
        total += previous
        improved = (end.final_loss is not None
                    and (best_loss is None or end.final_loss < best_loss))
        if not improved:
            break
        best_loss = end.final_loss
        shutil.copyfile(folder / POTENTIAL_YAML, workdir / POTENTIAL_YAML)
    if done:
        log.info("fit in %s continued %d time(s) after BFGS precision loss: %d steps in all, "
                 "train loss %s", workdir, done, total, best_loss)
    metrics = {"fit_restarts": float(done), "fit_steps_total": float(total),
               "continuation_time_s": seconds}
    if best_loss is not None:
        metrics["final_train_loss"] = best_loss
    return metrics


def _continuation_input(config: dict[str, Any], steps: int) -> dict[str, Any]:
    """The parent's input with data paths one folder up and the steps left."""
    new = yaml.safe_load(yaml.safe_dump(config))
    data = new["data"]
    for key in ("filename", "test_filename"):
        if key in data:
            data[key] = str(Path("..") / data[key])
    new["fit"]["maxiter"] = int(steps)
    new["fit"].pop("repulsion", None)  # the core placed by the first run is in the potential
    return new

