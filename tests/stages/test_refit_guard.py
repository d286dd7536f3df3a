"""The guard that replaces a degraded warm-start fit by a full refit."""

from __future__ import annotations

from pyacemaker.stages.train import warm_fit_degraded
from pyacemaker.state import PotentialRecord


def record(train_e: float | None) -> PotentialRecord:
    metrics = {} if train_e is None else {"train_energy_rmse_mev_per_atom": train_e}
    return PotentialRecord(iteration=1, yaml="p.yaml", metrics=metrics)


def test_warm_fit_that_lost_energy_accuracy_is_flagged() -> None:
    reason = warm_fit_degraded(record(7.1), record(145.9))
    assert reason is not None and "7.1 to 145.9" in reason


def test_comparable_warm_fit_is_kept() -> None:
    assert warm_fit_degraded(record(7.0), record(12.0)) is None  # within 2x + 2 meV
    assert warm_fit_degraded(record(0.5), record(2.9)) is None  # the slack covers tiny values
    assert warm_fit_degraded(record(None), record(50.0)) is None  # nothing to compare
