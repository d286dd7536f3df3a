"""The DFT cost estimate printed before a labelling batch (pure arithmetic and spglib)."""

from __future__ import annotations

import pytest
from ase.build import bulk

from pyacemaker.stages.oracle.cost import cost_units, estimate, irreducible_kpoints


def test_symmetry_reduces_the_k_points_and_a_rattle_loses_it() -> None:
    si = bulk("Si", "diamond", a=5.43)
    assert irreducible_kpoints(si, (4, 4, 4)) == 8  # the textbook 4x4x4 fcc mesh
    rattled = si.copy()
    rattled.rattle(0.05, seed=1)
    assert irreducible_kpoints(rattled, (4, 4, 4)) == 36  # time reversal only: (64 + 8) / 2


def test_cost_grows_with_atoms_k_points_and_cutoff() -> None:
    si = bulk("Si", "diamond", a=5.43)
    cubic = bulk("Si", "diamond", a=5.43, cubic=True)
    cubic.rattle(0.05, seed=2)
    assert cost_units(cubic, 0.3, 30) > 4 * cost_units(si, 0.3, 30)
    assert cost_units(si, 0.3, 40) == pytest.approx(cost_units(si, 0.3, 30) * (40 / 30) ** 1.5)


def test_earlier_labels_calibrate_seconds() -> None:
    si = bulk("Si", "diamond", a=5.43)
    uncalibrated = estimate([si, si], 0.3, 30)
    assert uncalibrated.seconds is None and "no earlier label" in uncalibrated.describe()
    calibrated = estimate([si, si], 0.3, 30, done=[(si, 2.0), (si, 2.0)])
    assert calibrated.seconds == pytest.approx(4.0)
    assert calibrated.structures == 2 and calibrated.atoms == 4 and calibrated.largest == 2
    assert "about 4 s of pw.x in all" in calibrated.describe()


def test_a_slab_gets_one_k_point_along_its_vacuum() -> None:
    from ase.build import fcc111

    from pyacemaker.stages.oracle.parameters import kpoint_grid, vacuum_gap

    slab = fcc111("Cu", size=(2, 2, 4), vacuum=5.0, periodic=True)
    assert vacuum_gap(slab, 2) == pytest.approx(10.0, abs=0.1)
    grid = kpoint_grid(slab, 0.3)
    assert grid[2] == 1 and grid[0] > 1 and grid[1] > 1
    bulk_cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    assert all(n > 1 for n in kpoint_grid(bulk_cell, 0.3))  # no vacuum: full mesh


def test_the_calibration_separates_pw_x_start_up_from_the_work() -> None:
    """Measured in the demo: 2-atom cells ~3 s, 8-atom rattled cells ~100-150 s; a median
    ratio made the 8-atom batch 45 min instead of ~10."""
    si = bulk("Si", "diamond", a=5.43)
    big = bulk("Si", "diamond", a=5.43, cubic=True)
    big.rattle(0.05, seed=2)
    small_units, big_units = cost_units(si, 0.3, 30), cost_units(big, 0.3, 30)
    rate = 100.0 / big_units
    done = [(si, 2.5 + rate * small_units)] * 12 + [(big, 2.5 + rate * big_units)] * 2
    batch = estimate([big] * 4, 0.3, 30, done=done)
    assert batch.seconds == pytest.approx(4 * 102.5, rel=0.02)
