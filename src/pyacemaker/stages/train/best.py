"""Never deploy a regression: the campaign's potential is the best fit so far.

Every new fit and the current potential are scored on the same fixed validation set
(``stages/validation_set.py``): score = E RMSE / E target + F RMSE / F target (the gate's
targets, ``validation.*_rmse_*``), lower is better. A new fit is deployed unless its score
is more than ``validation.regression_tolerance`` (25 %) above the current potential's;
otherwise it is kept in the state's list of potentials, marked not deployed, with the
reason. The tolerance is loose on purpose: a fit that learned a new region (a kMC halt)
may lose a little on the old structures, which dominate the set, and a 5 % rule kept a
kMC campaign halting at the same state for three iterations; the refit it exists for
was 13x worse.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyacemaker.stages.validate.errors import ErrorMetrics
from pyacemaker.state import PotentialRecord
from pyacemaker.validation_settings import ValidationSettings

SCORE_KEYS = ("validation_energy_rmse_mev_per_atom", "validation_force_rmse_ev_per_a",
              "validation_score", "validation_structures")


def validation_score(errors: ErrorMetrics, settings: ValidationSettings) -> float:
    return (errors.energy_rmse_mev_per_atom / settings.energy_rmse_mev_per_atom
            + errors.force_rmse_ev_per_a / settings.force_rmse_ev_per_a)


def score_metrics(errors: ErrorMetrics, settings: ValidationSettings) -> dict[str, float]:
    """The validation-set numbers a record keeps in its metrics."""
    return dict(zip(SCORE_KEYS, (errors.energy_rmse_mev_per_atom, errors.force_rmse_ev_per_a,
                                 validation_score(errors, settings),
                                 float(errors.n_structures)), strict=True))


@dataclass(frozen=True)
class Choice:
    deploy: bool
    reason: str


def choose_potential(current: PotentialRecord | None, current_errors: ErrorMetrics | None,
                     new: PotentialRecord, new_errors: ErrorMetrics | None,
                     settings: ValidationSettings) -> Choice:
    """Whether ``new`` replaces ``current`` (both scored on the same validation set)."""
    if current is None:
        return Choice(True, "first potential")
    if new_errors is None or current_errors is None:
        return Choice(True, "no validation set yet: the newest fit is used")
    before = validation_score(current_errors, settings)
    after = validation_score(new_errors, settings)
    shown = (f"validation score {after:.3g} vs {before:.3g} of iteration {current.iteration}"
             f" (E {new_errors.energy_rmse_mev_per_atom:.2f} vs "
             f"{current_errors.energy_rmse_mev_per_atom:.2f} meV/atom, F "
             f"{new_errors.force_rmse_ev_per_a:.3f} vs {current_errors.force_rmse_ev_per_a:.3f}"
             f" eV/A on {new_errors.n_structures} structures)")
    if after > before * (1 + settings.regression_tolerance):
        return Choice(False, f"worse than the current potential: {shown}")
    return Choice(True, shown)
