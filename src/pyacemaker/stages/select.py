"""Which candidates deserve DFT: D-optimal (MaxVol) selection, random baseline, de-duplication.

D-optimality: every atom has a B-projection vector; the potential's active set (``.asi``,
the inverse of the active-set matrix A) holds the most "voluminous" set of such vectors
seen in training. An atom's extrapolation grade gamma = max |b A^-1| is the factor by
which swapping it into A multiplies det(A) (the volume). Greedy sequential D-optimal
design: take the candidate with the largest gamma, add its atoms to the active set
(pyace's MaxVol), recompute every gamma against the grown set, repeat. Near-duplicates of
training data (gamma <= tolerance) are never taken, and a second copy of a new structure
loses its gamma as soon as the first one is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from pyacemaker.datastore import structure_fingerprint
from pyacemaker.stages.periodic import minimum_image


def select_d_optimal(candidates: Sequence[Atoms], potential_yaml: Path, active_set: Path,
                     n: int, gamma_tolerance: float = 1.01) -> list[int]:
    """Indices (into ``candidates``) of at most ``n`` structures extending the active set.

    Ordered best first. Fewer than ``n`` (possibly none) are returned when fewer
    candidates bring anything new (max gamma above ``gamma_tolerance``): the selection
    never pads with redundant structures.
    """
    if n <= 0 or not candidates:
        return []
    basis, active_inverse = _load_potential(Path(potential_yaml), Path(active_set))
    projections, owners = _projections(basis, candidates)
    active = {st: np.linalg.pinv(inv) for st, inv in active_inverse.items()}
    selected: list[int] = []
    while len(selected) < n:
        scores = candidate_gammas(projections, owners, active_inverse, len(candidates))
        scores[selected] = 0.0
        best = int(np.argmax(scores))
        if scores[best] <= gamma_tolerance:
            break
        selected.append(best)
        active = _grow_active_set(active, projections, owners, best, gamma_tolerance)
        active_inverse = {st: np.linalg.pinv(a) for st, a in active.items()}
    return selected


def candidate_gammas(projections: dict[int, np.ndarray], owners: dict[int, np.ndarray],
                     active_inverse: dict[int, np.ndarray], n_candidates: int) -> np.ndarray:
    """Max extrapolation grade over each candidate's atoms."""
    scores = np.zeros(n_candidates)
    for st, proj in projections.items():
        if len(proj) == 0:
            continue
        gamma = np.abs(proj @ active_inverse[st]).max(axis=1)
        np.maximum.at(scores, owners[st].astype(int), gamma)
    return scores


def _load_potential(potential_yaml: Path, active_set: Path) -> tuple[Any, dict[int, np.ndarray]]:
    for path, what in ((potential_yaml, "potential (B-basis .yaml)"), (active_set, "active set")):
        if not path.is_file():
            raise ValueError(f"{what} not found: {path}")
    from pyace import BBasisConfiguration
    from pyace.activelearning import load_active_inverse_set

    try:
        basis = BBasisConfiguration(str(potential_yaml))
    except RuntimeError as exc:
        raise ValueError(f"{potential_yaml}: not a readable ACE B-basis yaml: {exc}") from exc
    try:
        active_inverse = load_active_inverse_set(str(active_set))
    except Exception as exc:  # noqa: BLE001 - any read problem means a bad file
        raise ValueError(f"{active_set}: not a readable active set (.asi): {exc}") from exc
    return basis, active_inverse


def _projections(basis: Any, candidates: Sequence[Atoms]) -> tuple[dict[int, np.ndarray],
                                                                  dict[int, np.ndarray]]:
    from pyace.activelearning import compute_B_projections

    elements = {b.block_name for b in basis.funcspecs_blocks if " " not in b.block_name}
    for index, atoms in enumerate(candidates):
        unknown = set(atoms.get_chemical_symbols()) - elements
        if unknown:
            raise ValueError(f"candidate {index}: element(s) {sorted(unknown)} not in the "
                             f"potential ({sorted(elements)})")
    structures = [_evaluable(atoms) for atoms in candidates]
    projections, owners = compute_B_projections(basis, structures,
                                                return_structure_ind_dict=True)
    return projections, owners


def _grow_active_set(active: dict[int, np.ndarray], projections: dict[int, np.ndarray],
                     owners: dict[int, np.ndarray], chosen: int,
                     tolerance: float) -> dict[int, np.ndarray]:
    """MaxVol over the current active set plus the atoms of candidate ``chosen``."""
    from pyace.activelearning import compute_active_set

    new_rows = {st: proj[owners[st] == chosen] for st, proj in projections.items()}
    grown = dict(active)
    for st, rows in new_rows.items():
        if len(rows) == 0:
            continue
        grown[st] = compute_active_set({st: rows.copy()}, tol=tolerance,
                                       extra_A0_projections_dict={st: active[st].copy()})[st]
    return grown


def select_random(candidates: Sequence[Atoms], n: int, seed: int) -> list[int]:
    """``n`` distinct random indices (all of them, shuffled, when there are fewer)."""
    rng = np.random.default_rng(seed)
    count = min(max(n, 0), len(candidates))
    return [int(i) for i in rng.choice(len(candidates), size=count, replace=False)]


def deduplicate(candidates: Sequence[Atoms], existing: Sequence[Atoms],
                tolerance: float = 0.01) -> list[Atoms]:
    """Candidates that are not copies of ``existing`` structures nor of earlier candidates.

    A copy has the same fingerprint (species, cell, wrapped positions to 1e-3 A, any atom
    order), or the same species in the same order and cell with every atom within
    ``tolerance`` A (minimum image) of its counterpart.
    """
    seen_fingerprints = {structure_fingerprint(atoms) for atoms in existing}
    by_species: dict[bytes, _SameSpecies] = {}
    for atoms in existing:
        by_species.setdefault(_species_key(atoms), _SameSpecies()).add(atoms)
    kept: list[Atoms] = []
    for atoms in candidates:
        fingerprint = structure_fingerprint(atoms)
        if fingerprint in seen_fingerprints:
            continue
        same_species = by_species.setdefault(_species_key(atoms), _SameSpecies())
        if same_species.has_copy_of(atoms, tolerance):
            continue
        seen_fingerprints.add(fingerprint)
        same_species.add(atoms)
        kept.append(atoms)
    return kept


class _SameSpecies:
    """Structures with one species sequence, kept in arrays so a copy test is one array
    operation over all of them (a campaign compares each candidate with every label)."""

    def __init__(self) -> None:
        self._count = 0
        self._cells = np.empty((0, 3, 3))
        self._positions: np.ndarray | None = None

    def add(self, atoms: Atoms) -> None:
        if self._positions is None:
            self._positions = np.empty((0, len(atoms), 3))
        if self._count == len(self._cells):  # grow by doubling: adding stays O(1) amortised
            size = max(8, 2 * self._count)
            self._cells = np.resize(self._cells, (size, 3, 3))
            self._positions = np.resize(self._positions, (size, len(atoms), 3))
        self._cells[self._count] = atoms.cell.array
        self._positions[self._count] = atoms.positions
        self._count += 1

    def has_copy_of(self, atoms: Atoms, tolerance: float) -> bool:
        if self._positions is None or self._count == 0:
            return False
        cells = self._cells[:self._count]
        # np.allclose(cell, other, atol=tolerance) for all of them at once
        same_cell = np.all(np.abs(atoms.cell.array - cells) <= tolerance + 1e-5 * np.abs(cells),
                           axis=(1, 2))
        if not same_cell.any():
            return False
        delta = minimum_image(atoms.positions - self._positions[:self._count][same_cell], atoms)
        return bool(np.any(np.all(np.linalg.norm(delta, axis=2) < tolerance, axis=1)))


def _evaluable(atoms: Atoms) -> Atoms:
    """pyace takes fully periodic or non-periodic cells: a slab with a cell becomes periodic
    (its vacuum keeps the images apart)."""
    copy = atoms.copy()
    copy.calc = None
    if copy.pbc.any() and not copy.pbc.all():
        if copy.cell.rank < 3:
            raise ValueError(f"{copy.get_chemical_formula()}: partly periodic without a 3D cell")
        copy.pbc = True
    return copy


def _species_key(atoms: Atoms) -> bytes:
    return atoms.get_atomic_numbers().astype(np.int64).tobytes() + atoms.pbc.tobytes()
