"""MD start cells: the start structure in its conventional cell, strains kept, then grown."""

from __future__ import annotations

import numpy as np
from ase.build import bulk

from pyacemaker.stages.explore.md import sized_start
from pyacemaker.stages.oracle.parameters import kpoint_grid
from pyacemaker.stages.validate.elastic import standard_cell, voigt_strained


def test_a_primitive_start_becomes_its_cubic_cell_with_its_strain() -> None:
    primitive = standard_cell(bulk("Si", a=5.43))
    sheared = voigt_strained(primitive, 3, -0.03)
    stretched = voigt_strained(primitive, 0, 0.02)
    for start in (primitive, sheared, stretched):
        cell = sized_start(start, 8)
        assert len(cell) == 8
        assert np.isclose(cell.get_volume() / 8, start.get_volume() / 2)
        assert kpoint_grid(cell, 0.3) == (4, 4, 4)  # (2, 2, 1) primitive cells: (4, 4, 7)
    assert np.allclose(sized_start(primitive, 8).cell.angles(), 90)
    assert np.isclose(sized_start(stretched, 8).cell.lengths().max(), 5.43 * 1.02)
    assert len(sized_start(primitive, 64)) == 64
    rattled = bulk("Si", cubic=True)
    rattled.rattle(0.1, seed=3)  # no symmetry left: grown as it is
    assert len(sized_start(rattled, 16)) == 16 and sized_start(rattled, 8) is rattled
