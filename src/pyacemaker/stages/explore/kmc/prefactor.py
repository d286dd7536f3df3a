"""Harmonic transition-state theory prefactors (Vineyard) from Hessian eigenvalues.

    nu = prod_i nu_i(minimum) / prod_j nu_j(saddle),

over the 3N normal modes of the free atoms at the minimum and the 3N - 1 real modes at
the saddle (its one negative-curvature mode left out). A cell with no fixed atom has
three zero modes (rigid translations; six for a cluster: rotations too); they carry no
vibration and are left out of both products. Local Hessians (only the atoms near the
jump, the rest frozen) converge slowly with the region: for the EMT Cu vacancy hop in a
31-atom cell eOn's default region (9 atoms) gives 2.1e12/s, 21 atoms 5.9e12/s, all
atoms 4.65e12/s. So all free atoms are used; the cost is 6N force calls per Hessian.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms, units

from pyacemaker.stages.explore.kmc.identity import fixed_mask

# sqrt(eV / (A^2 amu)) in rad/s: mass-weighted Hessian eigenvalues -> angular frequency^2
ANGULAR_FREQUENCY_UNIT = math.sqrt(units._e / (units._amu * 1e-20))
ZERO_MODE_FRACTION = 0.05  # a "zero" mode must be this much softer than the softest real one


class PrefactorError(ValueError):
    """The Hessians do not describe a minimum and a first-order saddle."""


def rigid_body_modes(atoms: Atoms) -> int:
    """Zero modes of the free atoms: none with a fixed atom, 3 in a periodic or slab
    cell, 6 for a cluster (no periodic axis)."""
    if fixed_mask(atoms).any():
        return 0
    return 3 if atoms.pbc.any() else 6


def _real_modes(eigenvalues: np.ndarray, zero_modes: int, where: str) -> np.ndarray:
    values = np.asarray(eigenvalues, dtype=float)
    by_size = np.argsort(np.abs(values))
    zeros, rest = values[by_size[:zero_modes]], values[by_size[zero_modes:]]
    if zero_modes and rest.size:
        softest = np.min(np.abs(rest))
        if np.max(np.abs(zeros)) > ZERO_MODE_FRACTION * softest:
            raise PrefactorError(f"{where}: expected {zero_modes} zero modes, the softest "
                                 f"modes are {np.sort(np.abs(values))[:zero_modes + 1]}")
    return rest


def vineyard_prefactor(minimum: np.ndarray, saddle: np.ndarray, zero_modes: int) -> float:
    """Prefactor (1/s) from mass-weighted Hessian eigenvalues (eV/A^2/amu)."""
    at_minimum = _real_modes(minimum, zero_modes, "minimum")
    at_saddle = _real_modes(saddle, zero_modes, "saddle")
    if (at_minimum <= 0).any():
        raise PrefactorError(f"minimum: {(at_minimum <= 0).sum()} negative modes")
    negative = int((at_saddle < 0).sum())
    if negative != 1:
        raise PrefactorError(f"saddle: {negative} negative modes, a first-order saddle has 1")
    log_ratio = 0.5 * (np.log(at_minimum).sum() - np.log(at_saddle[at_saddle > 0]).sum())
    return math.exp(log_ratio) * ANGULAR_FREQUENCY_UNIT / (2 * math.pi)
