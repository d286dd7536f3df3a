"""Symmetry-equivalent copies of a process, from the reactant's space-group operations.

A search that finds one of the twelve equivalent hops of a vacancy in fcc has found all
twelve: each operation of the reactant (spglib, on the cell with fixed atoms as their
own species) maps the reactant onto itself with atoms relabelled, and maps the saddle
and product of a process onto the saddle and product of an equivalent process with the
same barrier and prefactor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import spglib
from ase import Atoms

from pyacemaker.stages.explore.kmc.identity import match_with_shift, species_with_fixed
from pyacemaker.stages.explore.kmc.processes import same_structure
from pyacemaker.stages.periodic import minimum_image


@dataclass(frozen=True)
class Operation:
    """Reactant atom ``i`` goes to the site of atom ``permutation[i]``; displacements
    from the reactant turn with ``rotation`` (Cartesian)."""

    rotation: np.ndarray
    permutation: np.ndarray


def identity_operation(atoms: Atoms) -> Operation:
    return Operation(np.eye(3), np.arange(len(atoms)))


def symmetry_operations(reactant: Atoms, tolerance: float) -> list[Operation]:
    """The space-group operations of ``reactant`` as atom permutations (identity first)."""
    if len(reactant) == 0 or not reactant.pbc.all():
        return [identity_operation(reactant)]
    kinds = species_with_fixed(reactant)
    cell = np.array(reactant.cell)
    data = spglib.get_symmetry((cell, reactant.get_scaled_positions(wrap=True), kinds),
                               symprec=tolerance)
    if data is None:
        return [identity_operation(reactant)]
    to_cartesian = cell.T
    from_cartesian = np.linalg.inv(cell.T)
    fractional = reactant.get_scaled_positions(wrap=False)
    operations = [identity_operation(reactant)]
    seen = {tuple(operations[0].permutation)}
    for rotation, translation in zip(data["rotations"], data["translations"], strict=True):
        image = reactant.copy()
        image.positions = (fractional @ rotation.T + translation) @ cell
        mapping = match_with_shift(image, reactant, kinds, np.zeros(3),
                                   2 * tolerance + 0.01)
        if mapping is None:
            continue
        key = tuple(mapping.permutation)
        if key in seen:
            continue
        seen.add(key)
        operations.append(Operation(to_cartesian @ rotation @ from_cartesian,
                                    mapping.permutation))
    return operations


def transformed(structure: Atoms, reactant: Atoms, operation: Operation) -> Atoms:
    """``structure`` (labelled like ``reactant``) moved by ``operation``."""
    displacement = minimum_image(structure.positions - reactant.positions, reactant)
    image = structure.copy()
    image.calc = None
    positions = np.empty_like(structure.positions)
    positions[operation.permutation] = (reactant.positions[operation.permutation]
                                        + displacement @ operation.rotation.T)
    image.positions = positions
    return image


def equivalent_copies(reactant: Atoms, saddle: Atoms, product: Atoms,
                      operations: list[Operation]) -> list[tuple[Atoms, Atoms]]:
    """The distinct (saddle, product) pairs the operations make, the given one first."""
    copies: list[tuple[Atoms, Atoms]] = [(saddle, product)]
    for operation in operations[1:]:
        new_saddle = transformed(saddle, reactant, operation)
        new_product = transformed(product, reactant, operation)
        if any(same_structure(s, new_saddle) and same_structure(p, new_product)
               for s, p in copies):
            continue
        copies.append((new_saddle, new_product))
    return copies
