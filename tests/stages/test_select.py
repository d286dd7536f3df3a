"""D-optimal selection against a real active set, random selection, de-duplication."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ace_fixtures import FittedPotential
from ase import Atoms
from ase.build import bulk, fcc111

from pyacemaker.stages.select import deduplicate, select_d_optimal, select_random


def fitting_structures(fitted: FittedPotential) -> list[Atoms]:
    """The structures the active set was built from (pacemaker's train split)."""
    frame = pd.read_pickle(Path(fitted.yaml).parent / "fitting_data_info.pckl.gzip",
                           compression="gzip")
    return [atoms.copy() for atoms in frame["ase_atoms"]]


def new_configurations() -> list[Atoms]:
    slab = fcc111("Cu", (2, 2, 3), vacuum=5.0, a=3.6)  # surface: never seen in bulk data
    compressed = bulk("Cu", "fcc", a=3.6 * 0.9, cubic=True)
    hot = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    hot.rattle(stdev=0.25, seed=5)
    return [slab, compressed, hot]


@pytest.mark.slow
def test_d_optimal_picks_new_configurations_first(cu_ace_potential: FittedPotential) -> None:
    near_duplicates = []
    for k, atoms in enumerate(fitting_structures(cu_ace_potential)[10:25]):
        atoms.calc = None
        atoms.rattle(stdev=0.003, seed=k)
        near_duplicates.append(atoms)
    new = new_configurations()
    pool = near_duplicates[:7] + new[:1] + near_duplicates[7:] + new[1:]
    new_indices = {7, len(pool) - 2, len(pool) - 1}

    chosen = select_d_optimal(pool, cu_ace_potential.yaml, cu_ace_potential.asi, n=3)
    assert set(chosen) == new_indices

    # capped: asking for one gives one of the new configurations
    first = select_d_optimal(pool, cu_ace_potential.yaml, cu_ace_potential.asi, n=1)
    assert len(first) == 1 and first[0] in new_indices
    # a pool with nothing new selects nothing rather than padding with redundant data
    redundant = [a.copy() for a in fitting_structures(cu_ace_potential)[:10]]
    assert select_d_optimal(redundant, cu_ace_potential.yaml, cu_ace_potential.asi, n=5) == []


@pytest.mark.slow
def test_d_optimal_takes_one_of_two_identical_new_structures(
        cu_ace_potential: FittedPotential) -> None:
    slab, compressed, _ = new_configurations()
    pool = [slab, slab.copy(), compressed]
    chosen = select_d_optimal(pool, cu_ace_potential.yaml, cu_ace_potential.asi, n=2)
    assert len(chosen) == 2 and 2 in chosen and (0 in chosen) != (1 in chosen)


def test_d_optimal_bad_inputs_name_the_file(tmp_path: Path) -> None:
    atoms = bulk("Cu", "fcc", a=3.6)
    with pytest.raises(ValueError, match="not found: .*missing.yaml"):
        select_d_optimal([atoms], tmp_path / "missing.yaml", tmp_path / "missing.asi", n=1)
    assert select_d_optimal([], tmp_path / "missing.yaml", tmp_path / "missing.asi", n=1) == []


@pytest.mark.slow
def test_d_optimal_rejects_foreign_elements_and_corrupt_active_set(
        cu_ace_potential: FittedPotential, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"candidate 0: element\(s\) \['Ni'\]"):
        select_d_optimal([bulk("Ni", "fcc", a=3.5)], cu_ace_potential.yaml,
                         cu_ace_potential.asi, n=1)
    corrupt = tmp_path / "corrupt.asi"
    corrupt.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="corrupt.asi: not a readable active set"):
        select_d_optimal([bulk("Cu", "fcc", a=3.6)], cu_ace_potential.yaml, corrupt, n=1)


def test_select_random_is_seeded_distinct_and_capped() -> None:
    pool = [bulk("Cu", "fcc", a=3.5 + 0.01 * k) for k in range(10)]
    first = select_random(pool, 4, seed=1)
    assert first == select_random(pool, 4, seed=1)
    assert len(set(first)) == 4 and all(0 <= i < 10 for i in first)
    assert sorted(select_random(pool, 50, seed=2)) == list(range(10))
    assert select_random(pool, 0, seed=2) == []


def test_deduplicate_against_existing_and_within_candidates() -> None:
    base = bulk("Cu", "fcc", a=3.6, cubic=True)
    existing = [base]
    permuted = base[[3, 1, 2, 0]]  # same structure, other atom order
    shifted = base.copy()
    shifted.positions += 0.002  # below tolerance: a copy
    wrapped = base.copy()
    wrapped.positions[0] += base.cell[0]  # same atom in the next image
    moved = base.copy()
    moved.positions[1, 0] += 0.2  # a genuinely different structure
    moved_again = moved.copy()
    strained = base.copy()
    strained.set_cell(base.cell * 1.02, scale_atoms=True)
    kept = deduplicate([permuted, shifted, wrapped, moved, moved_again, strained], existing)
    assert kept == [moved, strained]
    assert np.allclose(kept[0].positions, moved.positions)
    assert deduplicate([moved], []) == [moved]


def test_deduplicate_in_a_skewed_cell_matches_pairwise_minimum_image() -> None:
    """The stacked copy test agrees with ASE's find_mic, pair by pair, in a skewed cell
    with atoms wrapped into other images."""
    from ase.geometry import find_mic

    rng = np.random.default_rng(0)
    base = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    base.set_cell(base.cell.array + rng.normal(0, 0.3, (3, 3)), scale_atoms=True)
    existing = []
    for i in range(40):
        atoms = base.copy()
        atoms.rattle(0.004 * (i % 5), seed=i)
        existing.append(atoms)
    candidates = []
    for i in range(60):
        atoms = existing[rng.integers(len(existing))].copy()
        atoms.positions += rng.normal(0, 0.004, atoms.positions.shape)
        atoms.positions[rng.integers(len(atoms))] += base.cell[rng.integers(3)]
        candidates.append(atoms)

    def close(a: Atoms, b: Atoms) -> bool:
        if not np.allclose(a.cell.array, b.cell.array, atol=0.01):
            return False
        delta, _ = find_mic(a.positions - b.positions, a.cell, a.pbc)
        return bool(np.all(np.linalg.norm(delta, axis=1) < 0.01))

    expected: list[Atoms] = []
    for atoms in candidates:
        if not any(close(atoms, other) for other in existing + expected):
            expected.append(atoms)
    kept = deduplicate(candidates, existing)
    assert 0 < len(kept) < len(candidates)  # some copies, some new ones
    assert [id(a) for a in kept] == [id(a) for a in expected]
