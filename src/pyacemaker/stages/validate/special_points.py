"""Phonon frequencies at the special q-points, each from its smallest commensurate cell.

The dynamical matrix at a q-point commensurate with a supercell is given exactly by that
supercell's force constants (the images it folds in all carry the phase 1), so the
frequencies at X or L of an fcc crystal need no 2x2x2 supercell: the smallest cell with
q . a_s integer for its three vectors has as many primitive cells as q's denominator
(2 for X and L: 4 atoms of Si instead of 16). With DFT that is the difference between
minutes and an hour of pw.x for a displaced cell (it has lost its symmetry: k-points).

The special points compared are those of ASE's band path commensurate with an
``N x N x N`` supercell (``validation.phonon_reference_supercell``; N=2 gives G, X and L
of an fcc lattice, not W or K, whose denominators are 4 and 8), Gamma last.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from math import lcm

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from pyacemaker.stages.validate.phonons import force_constants


def denominator(q: np.ndarray) -> int:
    """The smallest d with d * q integer (q in reduced coordinates)."""
    return lcm(*(Fraction(float(x)).limit_denominator(96).denominator for x in q))


def _hermite_normal_forms(index: int):
    """Lower-triangular Hermite normal forms of determinant ``index``: every sublattice
    of that index of the integer lattice, once."""
    for a in range(1, index + 1):
        if index % a:
            continue
        for c in range(1, index // a + 1):
            if (index // a) % c:
                continue
            f = index // (a * c)
            for b, d, e in itertools.product(range(a), range(a), range(c)):
                yield np.array([[a, 0, 0], [b, c, 0], [d, e, f]])


def commensurate_cell(primitive: Atoms, q: np.ndarray) -> np.ndarray:
    """Integer matrix H (rows: supercell vectors in units of the primitive ones) of the
    smallest supercell commensurate with ``q`` (H q integer), the most compact of those
    (largest shortest vector, then smallest longest), in its Minkowski-reduced basis."""
    from ase.geometry import minkowski_reduce

    q = np.asarray(q, dtype=float)
    index = denominator(q)
    best, best_score = None, None
    for matrix in _hermite_normal_forms(index):
        if not np.allclose(matrix @ q, np.round(matrix @ q), atol=1e-6):
            continue
        # the same lattice in its most compact basis: a skewed one gets a needlessly dense
        # k-mesh from kspacing (seen: 865 k-points for Si's 4-atom X cell)
        _, operation = minkowski_reduce(matrix @ primitive.cell.array)
        reduced = operation @ matrix
        if np.linalg.det(reduced) < 0:
            reduced = -reduced
        lengths = np.linalg.norm(reduced @ primitive.cell.array, axis=1)
        score = (-round(float(lengths.min()), 6), round(float(lengths.max()), 6))
        if best_score is None or score < best_score:
            best, best_score = reduced, score
    assert best is not None, f"no commensurate cell of index {index} for q={q}"
    return best


def frequencies_at(primitive: Atoms, calc: Calculator, q: np.ndarray,
                   displacement: float) -> list[float]:
    """Sorted frequencies (THz) at ``q`` from finite displacements in the smallest
    commensurate supercell of ``primitive``, evaluated with ``calc``."""
    matrix = commensurate_cell(primitive, q)
    # phonopy's supercell matrix M: supercell columns = primitive columns @ M
    phonon = force_constants(primitive, calc, matrix.T, displacement)
    phonon.run_qpoints([np.asarray(q)])
    return np.round(np.sort(phonon.qpoints.frequencies[0]), 4).tolist()


def commensurate_special_points(primitive: Atoms, supercell: int) -> dict[str, np.ndarray]:
    """ASE's special points of ``primitive``'s lattice with ``supercell * q`` integer,
    sorted by name, Gamma last."""
    special = primitive.cell.bandpath().special_points
    names = [n for n in sorted(special) if n != "G" and supercell % denominator(special[n]) == 0]
    return {name: np.asarray(special[name]) for name in [*names, "G"]}


def special_point_frequencies(atoms: Atoms, calc: Calculator, supercell: int,
                              displacement: float) -> tuple[list[str], list[list[float]]]:
    """(names, sorted frequencies in THz) at the special points of ``atoms`` (taken as
    the primitive cell) commensurate with a ``supercell``^3 supercell."""
    points = commensurate_special_points(atoms, supercell)
    return list(points), [frequencies_at(atoms, calc, q, displacement)
                          for q in points.values()]
