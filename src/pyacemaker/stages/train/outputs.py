"""What a pacemaker fit leaves in its folder: file names, the failure it can end with, and
the metrics of the fitted potential on pacemaker's own train/test split."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

POTENTIAL_YAML = "output_potential.yaml"
POTENTIAL_YACE = "output_potential.yace"
ACTIVE_SET = "output_potential.asi"
META_FILE = "potential_meta.json"
RECORD_FILE = "potential_record.json"


class FitFailed(RuntimeError):
    """A pacemaker fit did not produce a usable potential.

    ``reason`` is a short classification (``timed out``, ``killed by signal 9``,
    ``out of memory``, ``NaN loss`` ...), ``log_tail`` the last lines of pacemaker's log.
    """

    def __init__(self, reason: str, workdir: Path, log_tail: str):
        self.reason = reason
        self.workdir = Path(workdir)
        self.log_tail = log_tail
        super().__init__(
            f"pacemaker fit failed ({reason}) in {workdir}\n--- last lines of the log ---\n"
            f"{log_tail}"
        )

    def __reduce__(self) -> tuple[type[FitFailed], tuple[str, Path, str]]:
        return (FitFailed, (self.reason, self.workdir, self.log_tail))


def log_tail(workdir: Path, lines: int = 30) -> str:
    for name in ("log.txt", "stderr_pacemaker.txt", "stdout_pacemaker.txt"):
        path = workdir / name
        if path.is_file() and path.stat().st_size:
            text = path.read_text(errors="replace").strip().splitlines()
            return "\n".join(text[-lines:])
    return "(no log written)"


def fit_metrics(workdir: Path) -> dict[str, float]:
    """RMSEs of the fitted potential on pacemaker's own train/test split.

    pacemaker saves the split it used (``fitting_data_info`` / ``test_data_info``); the
    final potential is evaluated on them with pyace (pacemaker's ``--no-predict`` skips its
    slow plotting). Headline keys use the test set when there is one, else the train set.
    """
    import pandas as pd
    from pyace import PyACECalculator

    workdir = Path(workdir)
    calc = PyACECalculator(str(workdir / POTENTIAL_YAML))
    metrics: dict[str, float] = {}
    for split, name in (("train", "fitting_data_info.pckl.gzip"),
                        ("test", "test_data_info.pckl.gzip")):
        path = workdir / name
        if not path.is_file():
            continue
        frame = pd.read_pickle(path, compression="gzip")
        if frame.empty:
            continue
        energy_errors, force_errors = [], []
        for atoms, energy, forces in zip(frame["ase_atoms"], frame["energy_corrected"],
                                         frame["forces"], strict=True):
            work = atoms.copy()
            work.calc = calc
            energy_errors.append((work.get_potential_energy() - energy) / len(work))
            force_errors.append(work.get_forces() - np.asarray(forces))
        with np.errstate(over="ignore", invalid="ignore"):
            metrics[f"{split}_energy_rmse_mev_per_atom"] = float(
                1000 * np.sqrt(np.mean(np.square(energy_errors))))
            metrics[f"{split}_force_rmse_ev_per_a"] = float(
                np.sqrt(np.mean(np.square(np.concatenate(force_errors)))))
        metrics[f"{split}_size"] = float(len(frame))
    split = "test" if "test_energy_rmse_mev_per_atom" in metrics else "train"
    if f"{split}_energy_rmse_mev_per_atom" not in metrics:
        raise FitFailed("pacemaker saved no fitting data split", workdir, log_tail(workdir))
    metrics["energy_rmse_mev_per_atom"] = metrics[f"{split}_energy_rmse_mev_per_atom"]
    metrics["force_rmse_ev_per_a"] = metrics[f"{split}_force_rmse_ev_per_a"]
    metrics["metrics_from_test_set"] = 1.0 if split == "test" else 0.0
    metrics["n_functions"] = float(count_functions(workdir / POTENTIAL_YAML))
    initial = initial_train_rmse(workdir)
    if initial is not None:
        metrics["initial_train_energy_rmse_mev_per_atom"] = initial
    metrics.update(optimizer_steps(workdir))
    for key in ("energy_rmse_mev_per_atom", "force_rmse_ev_per_a"):
        if not math.isfinite(metrics[key]):
            raise FitFailed(f"non-finite (NaN/inf) loss: {key} is {metrics[key]}", workdir,
                            log_tail(workdir))
    return metrics


def optimizer_steps(workdir: Path) -> dict[str, float]:
    """``fit_steps`` (the last BFGS iteration pacemaker logged: 99 for ``maxiter`` 100)
    and ``stopped_on_plateau`` (1 when the loss plateau test ended the fit before its
    cap), from pacemaker's log."""
    path = workdir / "log.txt"
    if not path.is_file():
        return {}
    return steps_in_log(path.read_text(errors="replace"))


def steps_in_log(text: str) -> dict[str, float]:
    """:func:`optimizer_steps` of a log.txt's text."""
    steps = [int(n) for n in re.findall(r"Iteration\s+#(\d+)\s+\(", text)]
    return {"fit_steps": float(max(steps, default=0)),
            "stopped_on_plateau": 1.0 if "EARLY STOPPING" in text else 0.0}


def metrics_column(workdir: Path, column: str, step: int) -> float | None:
    """One column of pacemaker's metrics.txt (a header, then one line per logged step) at
    ``step`` (0: before the first optimizer step, -1: the last one), or None."""
    path = workdir / "metrics.txt"
    if not path.is_file():
        return None
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2 or column not in lines[0]:
        return None
    header, row = lines[0], lines[1:][step]
    if len(row) != len(header):
        return None
    try:
        return float(row[header.index(column)])
    except ValueError:
        return None


def initial_train_rmse(workdir: Path) -> float | None:
    """Train energy RMSE (meV/atom) before the first optimizer step, from metrics.txt.

    Shows what a warm start saves: it starts near the previous fit's error.
    """
    rmse = metrics_column(workdir, "rmse_epa", 0)
    return None if rmse is None else 1000 * rmse


def count_functions(potential_yaml: Path) -> int:
    from pyace import BBasisConfiguration

    return int(BBasisConfiguration(str(potential_yaml)).total_number_of_functions)
