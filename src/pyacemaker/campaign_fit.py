"""The driver's fit step: plan the refit, export the training set, fit on the ``train``
executor, fall back to a full fit when a warm start degraded, and deploy only a fit that
is not worse on the validation set (``execution/scoring.py``).

It decides nothing about the loop (``decision.py`` does) and computes no science itself;
it is the part of the driver that wires the training stages together.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyacemaker.state import PotentialRecord

if TYPE_CHECKING:
    from ase import Atoms

    from pyacemaker.campaign import Campaign

log = logging.getLogger("pyacemaker.campaign")


def reference_energies(campaign: Campaign, labelled: list[Atoms]) -> dict[str, float]:
    """Per-element reference energies, fixed at the first fit so that every refit uses
    the same referencing (stages.train.reference_energies)."""
    from pyacemaker.stages.train import reference_energies as compute

    state, config = campaign.state, campaign.config
    if not state.reference_energies:
        state.reference_energies = compute(config.oracle.kind, config.elements, labelled)
    return state.reference_energies


def baseline(campaign: Campaign, labelled: list[Atoms]) -> Any:
    from pyacemaker.stages.train import resolve_baseline

    return resolve_baseline(campaign.config.training.baseline, campaign.config.elements,
                            labelled)


def fit_iteration(campaign: Campaign) -> str:
    """Fit the current iteration's potential; returns the stage's one-line message."""
    from pyacemaker.campaign import DATASTORE_FILE
    from pyacemaker.execution import launch_for
    from pyacemaker.execution.scoring import judge_new_fit
    from pyacemaker.stages.train import (
        export_training_set,
        fit_potential,
        plan_refit,
        warm_fit_degraded,
    )
    from pyacemaker.stages.validation_set import VALIDATION, assign_splits

    state, config, store = campaign.state, campaign.config, campaign.datastore
    settings = config.training
    if config.validation.validation_fraction > 0:  # the campaign's own held-out set
        settings = settings.model_copy(update={"test_fraction": 0.0})  # scores every fit
    current = state.potential
    plan = plan_refit(state.iteration, current, settings, state.last_full_refit)
    folder = campaign._iter_dir("fit")
    labelled = store.atoms(status="labelled")  # read once for the references and the core
    refs = reference_energies(campaign, labelled)
    assign_splits(store, state.iteration, config.validation.validation_fraction, config.seed)
    dataset = export_training_set(store, folder / "dataset.pckl.gzip", refs,
                                  baseline(campaign, labelled),
                                  settings.weighting.ground_state_factor)
    n_structures = (store.count(status="labelled")
                    - store.count(status="labelled", split=VALIDATION))
    log.info("   fitting on %d structures (%s: %s)", n_structures, plan.mode, plan.reason)

    def fit(workdir: Path, initial: Path | None, iterations: int) -> PotentialRecord:
        return campaign.engine.submit(
            "train", fit_potential, dataset, config.elements, settings, workdir,
            iteration=state.iteration, initial_potential=initial,
            launch=launch_for(campaign.site, "train", "pacemaker"), reference_energies=refs,
            max_iterations=iterations, executable=campaign.site.programs.pacemaker,
            seed=config.seed).result()

    mode = plan.mode
    record = fit(folder, plan.initial_potential, plan.max_iterations)
    if mode == "warm" and current is not None:
        degraded = warm_fit_degraded(current, record)
        if degraded:
            log.info("   %s: full refit instead", degraded)
            mode = "full"
            record = fit(campaign._iter_dir("fit_full"), None, settings.max_iterations)
    record = judge_new_fit(campaign.engine, current, record, config.validation,
                           campaign.workdir, campaign.workdir / DATASTORE_FILE)
    if record.deployed:
        state.potential = record
    state.potentials.append(record)
    if mode == "full":
        state.last_full_refit = state.iteration
    m = record.metrics
    split = "test split" if m.get("metrics_from_test_set") else "training set"
    return (f"{mode} fit on {n_structures} structures: "
            f"E RMSE {m.get('energy_rmse_mev_per_atom', float('nan')):.2f} meV/atom, "
            f"F RMSE {m.get('force_rmse_ev_per_a', float('nan')):.3f} eV/A ({split})"
            + ("" if record.deployed else f"; NOT deployed ({record.choice})"))
