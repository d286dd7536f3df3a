"""Settings of the loop itself: when exploration frames become candidates, the budgets
(``active_learning``) and when the campaign may stop (``stopping``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from pyacemaker.config_base import StrictModel, check_gamma_order


class ActiveLearningSettings(StrictModel):
    gamma_lower: float = Field(2.0, gt=0, description="Frames above are candidates.")
    gamma_upper: float = Field(5.0, gt=0, description="Exploration halts above this.")
    initial_structures: int = Field(
        55, gt=0, description="Cold-start DFT budget (the property cells of one element's "
        "ground state are 53 for Si, 55 with its two surface slabs: docs/training.md).")
    cold_start_surfaces: bool = Field(
        True, description="Low-index surface slabs in the cold start. Slabs with vacuum are "
        "its costliest DFT (a 16-atom Si slab at 30 Ry: ~12 min of pw.x on one core); off "
        "when the potential is for bulk only.")
    max_candidates_per_iteration: int = Field(20, gt=0)
    max_iterations: int = Field(10, gt=0)
    max_dft_calls: int = Field(1000, gt=0)
    max_wall_time_h: float = Field(48.0, gt=0)

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> ActiveLearningSettings:
        check_gamma_order(self.gamma_lower, self.gamma_upper)
        return self


MOVED_TO_VALIDATION = ("energy_rmse_mev_per_atom", "force_rmse_ev_per_a")


class StoppingSettings(StrictModel):
    """When the loop may stop. The error targets are not here: there is one set of them,
    ``validation.*_rmse_*``, judged on held-out data by the gate, and the stop rule needs
    the gate's GO."""

    require_no_halts: bool = Field(True, description="Stop only when no exploration halts.")

    @model_validator(mode="before")
    @classmethod
    def _error_targets_moved(cls, values: Any) -> Any:
        moved = [key for key in MOVED_TO_VALIDATION if isinstance(values, dict) and key in values]
        if moved:
            raise ValueError(
                "; ".join(f"stopping.{key} is now validation.{key}" for key in moved)
                + " (one set of error targets: the gate judges them on held-out data and "
                "the campaign converges only on its GO)")
        return values
