"""Refit policy across active-learning iterations (a pure function)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pyacemaker.config import TrainingSettings
from pyacemaker.state import PotentialRecord


@dataclass(frozen=True)
class RefitPlan:
    mode: Literal["full", "warm"]
    max_iterations: int
    initial_potential: Path | None
    reason: str


def plan_refit(iteration: int, previous: PotentialRecord | None, settings: TrainingSettings,
               last_full_refit: int | None) -> RefitPlan:
    """Warm start from the previous potential, or a full refit from scratch.

    Full when there is no previous potential, when ``full_refit_every`` iterations have
    passed since the last full fit, or when the previous potential file is gone.
    """
    full = settings.max_iterations
    if previous is None:
        return RefitPlan("full", full, None, "no previous potential")
    previous_yaml = Path(previous.yaml)
    if not previous_yaml.is_file():
        return RefitPlan("full", full, None, f"previous potential {previous_yaml} is missing")
    since = iteration - (last_full_refit if last_full_refit is not None else previous.iteration)
    if since >= settings.full_refit_every:
        return RefitPlan("full", full, None,
                         f"{since} iterations since the last full refit "
                         f"(full_refit_every={settings.full_refit_every})")
    return RefitPlan("warm", settings.warm_start_iterations, previous_yaml,
                     f"warm start from iteration {previous.iteration}")


def warm_fit_degraded(previous: PotentialRecord, warm: PotentialRecord,
                      factor: float = 2.0, slack_mev: float = 2.0) -> str | None:
    """Why a warm-started fit must be replaced by a full refit, or None when it is fine.

    A short warm start on data with large new force errors can trade energy accuracy for
    forces (BFGS's first steps): its training energy RMSE then ends far above the previous
    potential's. Seen on EMT Cu and QE Si campaigns (7 -> 146 meV/atom in 50 iterations).
    On EMT Cu the main cause was the previous potential's ZBL core sitting above the new
    data's closest pairs; fit_potential now moves it (set_core_radii), this stays a guard.
    """
    key = "train_energy_rmse_mev_per_atom"
    before = previous.metrics.get(key)
    after = warm.metrics.get(key)
    if before is None or after is None:
        return None
    if after > factor * before + slack_mev:
        return (f"warm start degraded the training energy RMSE from {before:.1f} to "
                f"{after:.1f} meV/atom")
    return None
