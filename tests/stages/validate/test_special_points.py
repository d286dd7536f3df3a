"""Special-point phonons from the smallest commensurate cells are the large supercell's."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pyacemaker.stages.validate.phonons import force_constants
from pyacemaker.stages.validate.special_points import (
    commensurate_cell,
    commensurate_special_points,
    special_point_frequencies,
)


@pytest.mark.parametrize("crystal", [bulk("Cu", "fcc", a=3.6),
                                     bulk("Cu", "hcp", a=2.55, c=4.16)],
                         ids=["fcc", "hcp"])
def test_small_cells_give_the_frequencies_of_a_4x4x4_supercell(crystal) -> None:
    names, small = special_point_frequencies(crystal, EMT(), 2, 0.01)
    large = force_constants(crystal, EMT(), 4, 0.01)
    points = crystal.cell.bandpath().special_points
    assert names[-1] == "G" and len(names) >= 3
    for name, frequencies in zip(names, small, strict=True):
        large.run_qpoints([points[name]])
        expected = np.sort(large.qpoints.frequencies[0])
        assert np.abs(np.array(frequencies) - expected).max() < 5e-3, name
        if name != "G" or len(crystal) > 1:  # a real phonon, not zeros on both sides
            assert max(expected) > 2.0, name


def test_the_cells_are_the_smallest_commensurate_ones() -> None:
    si = bulk("Si")
    points = commensurate_special_points(si, 2)
    assert list(points) == ["L", "X", "G"]  # W (1/4) and K (3/8) need larger cells
    for name, q in points.items():
        matrix = commensurate_cell(si, q)
        assert np.allclose(matrix @ q, np.round(matrix @ q))
        assert round(abs(np.linalg.det(matrix))) == (1 if name == "G" else 2)
    assert "W" in commensurate_special_points(si, 4)
