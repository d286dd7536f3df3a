"""Never deploy a regression: the campaign's potential is the best fit so far.

Every new fit and the current potential are scored on the same fixed validation set
(``stages/validation_set.py``): score = E spread / E target + F RMSE / F target (the gate's
targets, ``validation.*_rmse_*``), lower is better. The E spread is the standard deviation
of the per-atom energy errors: a constant offset changes no force, stress, phonon or
elastic constant, and warm and full fits differ by such offsets. A new fit is deployed
unless its score is more than ``validation.regression_tolerance`` (25 %) above the current
potential's; otherwise it is kept in the state's list of potentials, marked not deployed,
with the reason. On fewer than ``validation.min_validation_structures`` structures nothing
is judged and the newest fit is used. Measured on the kMC integration campaign: a 5 %
rule on the plain RMSE over 3 structures kept the potential of iteration 0 for three
iterations, halting at the same kMC state; the refit this guards against (Si demo) was
13x worse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyacemaker.stages.validate.errors import ErrorResult
from pyacemaker.state import PotentialRecord
from pyacemaker.validation_settings import ValidationSettings

SCORE_KEYS = ("validation_energy_spread_mev_per_atom", "validation_force_rmse_ev_per_a",
              "validation_score", "validation_structures")


@dataclass(frozen=True)
class FitScore:
    """A fit's errors on the validation set, as the choice compares them."""

    energy_spread_mev_per_atom: float
    force_rmse_ev_per_a: float
    structures: int

    @classmethod
    def of(cls, errors: ErrorResult) -> FitScore:
        parity = errors.parity
        spread = float(np.std(np.subtract(parity.energy_pred_per_atom,
                                          parity.energy_ref_per_atom))) * 1000
        return cls(spread, errors.overall.force_rmse_ev_per_a, errors.overall.n_structures)

    def value(self, settings: ValidationSettings) -> float:
        return (self.energy_spread_mev_per_atom / settings.energy_rmse_mev_per_atom
                + self.force_rmse_ev_per_a / settings.force_rmse_ev_per_a)

    def metrics(self, settings: ValidationSettings) -> dict[str, float]:
        """The numbers a record keeps in its metrics."""
        return dict(zip(SCORE_KEYS, (self.energy_spread_mev_per_atom, self.force_rmse_ev_per_a,
                                     self.value(settings), float(self.structures)),
                        strict=True))


@dataclass(frozen=True)
class Choice:
    deploy: bool
    reason: str


def choose_potential(current: PotentialRecord | None, current_score: FitScore | None,
                     new: PotentialRecord, new_score: FitScore | None,
                     settings: ValidationSettings) -> Choice:
    """Whether ``new`` replaces ``current`` (both scored on the same validation set)."""
    if current is None:
        return Choice(True, "first potential")
    if new_score is None or current_score is None:
        return Choice(True, "no validation set yet: the newest fit is used")
    if new_score.structures < settings.min_validation_structures:
        return Choice(True, f"validation set of {new_score.structures} structures, fewer "
                      f"than {settings.min_validation_structures}: not judged, the newest fit "
                      "is used")
    before, after = current_score.value(settings), new_score.value(settings)
    shown = (f"validation score {after:.3g} vs {before:.3g} of iteration {current.iteration}"
             f" (E spread {new_score.energy_spread_mev_per_atom:.2f} vs "
             f"{current_score.energy_spread_mev_per_atom:.2f} meV/atom, F "
             f"{new_score.force_rmse_ev_per_a:.3f} vs {current_score.force_rmse_ev_per_a:.3f}"
             f" eV/A on {new_score.structures} structures)")
    if after > before * (1 + settings.regression_tolerance):
        return Choice(False, f"worse than the current potential: {shown}")
    return Choice(True, shown)
