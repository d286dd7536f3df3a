"""When two kMC states are the same: up to permutations of like atoms and translations.

A vacancy that hopped is the crystal it left, shifted by the hop vector with atoms
relabelled; a row of atoms that slid one spacing is the reactant with atoms relabelled
and no shift at all. :func:`find_mapping` recognises both; the first is a real
transition into an *equivalent* state (its process table can be reused after the same
mapping), the second is no transition (:func:`same_sites`).

Fixed atoms (ASE ``FixAtoms``) only map onto fixed atoms, so a slab's frozen layers
keep the mapping honest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from pyacemaker.stages.periodic import minimum_image

STATE_TOLERANCE = 0.2  # A, largest atom mismatch of two structures that are one state
SAME_SITES_SHIFT = 0.5  # A, a rigid shift below this is drift, not a move to other sites


@dataclass(frozen=True)
class StateMapping:
    """``other[permutation[i]] = reference[i] + translation`` (minimum image)."""

    permutation: np.ndarray
    translation: np.ndarray
    mismatch: float  # A, largest remaining atom distance

    def apply(self, atoms: Atoms, template: Atoms) -> Atoms:
        """``atoms`` (labelled like the reference) in the other structure's frame.

        The result has ``template``'s cell, numbers and constraints; atom
        ``permutation[i]`` sits at ``atoms[i] + translation`` (modulo the cell).
        """
        moved = template.copy()
        moved.calc = None
        positions = np.empty_like(atoms.positions)
        positions[self.permutation] = atoms.positions + self.translation
        # each atom at the periodic image nearest its place in the template; fixed atoms
        # cannot have moved, so they keep the template's positions exactly
        positions = template.positions + minimum_image(positions - template.positions,
                                                       template)
        fixed = fixed_mask(template)
        positions[fixed] = template.positions[fixed]
        moved.positions = positions
        return moved


def fixed_mask(atoms: Atoms) -> np.ndarray:
    """True for the atoms an ASE ``FixAtoms`` constraint holds."""
    mask = np.zeros(len(atoms), dtype=bool)
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            mask[constraint.get_indices()] = True
    return mask


def species_with_fixed(atoms: Atoms) -> np.ndarray:
    """Atomic number, made distinct for fixed atoms (they map only onto fixed atoms)."""
    return atoms.numbers + 1000 * fixed_mask(atoms)


def find_mapping(reference: Atoms, other: Atoms, tolerance: float = STATE_TOLERANCE,
                 max_shift: float | None = None) -> StateMapping | None:
    """The permutation and translation that put ``reference`` onto ``other``, or None.

    Candidate translations take one atom of the rarest species onto each like atom of
    ``other``, nearest first (only those within ``max_shift`` + ``tolerance`` of it,
    when given).
    """
    if len(reference) != len(other) or not np.allclose(reference.cell, other.cell, atol=1e-6):
        return None
    kinds_ref, kinds_other = species_with_fixed(reference), species_with_fixed(other)
    if sorted(kinds_ref) != sorted(kinds_other):
        return None
    if len(reference) == 0:
        return StateMapping(np.zeros(0, dtype=int), np.zeros(3), 0.0)
    values, counts = np.unique(kinds_ref, return_counts=True)
    rarest = values[np.argmin(counts)]
    anchor = int(np.flatnonzero(kinds_ref == rarest)[0])
    partners = np.flatnonzero(kinds_other == rarest)
    shifts = minimum_image(other.positions[partners] - reference.positions[anchor], reference)
    order = np.argsort(np.linalg.norm(shifts, axis=1))  # the unshifted match first
    for k in order:
        if max_shift is not None and np.linalg.norm(shifts[k]) > max_shift + tolerance:
            break
        mapping = match_with_shift(reference, other, kinds_ref, shifts[k], tolerance)
        if mapping is not None and (max_shift is None
                                    or np.linalg.norm(mapping.translation) < max_shift):
            return mapping
    return None


def match_with_shift(reference: Atoms, other: Atoms, kinds_ref: np.ndarray,
                     shift: np.ndarray, tolerance: float) -> StateMapping | None:
    """Each reference atom, shifted, onto the nearest like atom of ``other``; None when one
    has no partner within ``tolerance`` or two share one. A few atoms are tried first:
    most wrong shifts fail there."""
    kinds_other = species_with_fixed(other)
    probe = np.arange(min(len(reference), 4))
    for atoms_tried in (probe, np.arange(len(reference))):
        diff = minimum_image(other.positions[None, :, :]
                             - (reference.positions[atoms_tried, None, :] + shift), reference)
        distances = np.linalg.norm(diff, axis=2)
        distances[kinds_ref[atoms_tried, None] != kinds_other[None, :]] = np.inf
        nearest = np.argmin(distances, axis=1)
        rows = np.arange(len(atoms_tried))
        if (distances[rows, nearest] > tolerance).any():
            return None
    permutation = nearest
    if len(np.unique(permutation)) != len(permutation):
        return None
    offsets = diff[rows, nearest]
    translation = shift + offsets.mean(axis=0)
    mismatch = float(np.linalg.norm(offsets - offsets.mean(axis=0), axis=1).max())
    return StateMapping(permutation, translation, mismatch)


def same_state(a: Atoms, b: Atoms, tolerance: float = STATE_TOLERANCE) -> bool:
    """One state up to relabelling like atoms and a translation."""
    return find_mapping(a, b, tolerance) is not None


def same_sites(a: Atoms, b: Atoms, tolerance: float = STATE_TOLERANCE) -> bool:
    """The same atomic sites, maybe with atoms relabelled: nothing happened.

    Only a small rigid shift (drift of a cell with no fixed atom) is allowed; a shift
    by a hop vector means the defect moved, which is a transition.
    """
    return find_mapping(a, b, tolerance, max_shift=SAME_SITES_SHIFT) is not None
