"""A fit that scipy's BFGS ends on "precision loss" is continued, not taken as finished.

The real case: ten EMT Cu cells, most without forces, 15 functions: pacemaker's BFGS gives
up with status 2 after ~100 of 250 steps at a train loss ~1.7e-8; continued from its
result it runs to the cap and halves the loss.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from ace_fixtures import cu_training_structures, tiny_training_settings
from ase.calculators.emt import EMT

from pyacemaker.stages.train import fit_potential, free_atom_energies, write_training_set
from pyacemaker.stages.train.outputs import POTENTIAL_YAML
from pyacemaker.stages.train.restart import (FitEnd, _continuation_input, read_fit_end,
                                             should_continue)

CAP = 250


def test_a_fit_ended_on_precision_loss_is_continued_to_a_lower_loss(tmp_path: Path) -> None:
    references = free_atom_energies(EMT(), ["Cu"])
    dataset = write_training_set(cu_training_structures()[:10], tmp_path / "cu.pckl.gzip",
                                 references)
    record = fit_potential(dataset, ["Cu"],
                           tiny_training_settings(max_iterations=CAP, test_fraction=0.0),
                           tmp_path / "fit", reference_energies=references)
    fit = tmp_path / "fit"
    first = read_fit_end(fit)
    assert first.precision_loss and not first.plateau and first.steps < CAP - 50, first
    continued = read_fit_end(fit / "continue_1")
    assert first.final_loss is not None and continued.final_loss is not None
    assert continued.final_loss < first.final_loss  # BFGS had not converged
    assert record.metrics["fit_restarts"] >= 1
    assert record.metrics["final_train_loss"] < first.final_loss
    assert first.steps < record.metrics["fit_steps_total"] <= CAP + 2 * record.metrics[
        "fit_restarts"]
    last = fit / f"continue_{int(record.metrics['fit_restarts'])}"
    best = min((fit / f"continue_{k}" for k in range(1, int(record.metrics["fit_restarts"]) + 1)),
               key=lambda folder: read_fit_end(folder).final_loss or float("inf"))
    assert (fit / POTENTIAL_YAML).read_bytes() == (best / POTENTIAL_YAML).read_bytes()
    assert last.is_dir()
    inputs = yaml.safe_load((fit / "continue_1" / "input.yaml").read_text())
    assert inputs["data"]["filename"] == "../train.pckl.gzip"
    assert inputs["fit"]["maxiter"] == CAP - first.steps - 1


def test_only_a_bfgs_give_up_with_steps_left_is_continued() -> None:
    gave_up = FitEnd(steps=100, precision_loss=True, plateau=False, final_loss=1e-3)
    assert should_continue(gave_up, steps_left=150, previous_steps=None)
    assert not should_continue(gave_up, steps_left=5, previous_steps=None)  # at the cap
    assert not should_continue(gave_up, steps_left=150, previous_steps=3)  # stuck for good
    assert should_continue(gave_up, steps_left=150, previous_steps=40)
    plateau = FitEnd(steps=100, precision_loss=False, plateau=True, final_loss=1e-3)
    assert not should_continue(plateau, steps_left=150, previous_steps=None)
    capped = FitEnd(steps=249, precision_loss=False, plateau=False, final_loss=1e-3)
    assert not should_continue(capped, steps_left=150, previous_steps=None)


def test_the_continuation_reads_the_parents_data_and_keeps_its_core() -> None:
    config = {"data": {"filename": "fit_train.pckl.gzip", "test_filename": "test.pckl.gzip"},
              "fit": {"maxiter": 1500, "repulsion": "auto", "optimizer": "BFGS"}}
    new = _continuation_input(config, 700)
    assert new["data"] == {"filename": "../fit_train.pckl.gzip",
                           "test_filename": "../test.pckl.gzip"}
    assert new["fit"] == {"maxiter": 700, "optimizer": "BFGS"}
    assert config["fit"]["maxiter"] == 1500  # the parent's input is not changed
