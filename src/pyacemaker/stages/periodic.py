"""Minimum-image differences, vectorised (shared by de-duplication and kMC state identity)."""

from __future__ import annotations

import numpy as np
from ase import Atoms


def minimum_image(diff: np.ndarray, atoms: Atoms) -> np.ndarray:
    """Cartesian differences (..., 3) reduced to the nearest periodic image of ``atoms``' cell.

    Rounding fractional coordinates is exact for any difference shorter than half the
    cell's smallest height, skewed cells included. Every caller compares vectors far
    shorter than that (state tolerances, hop lengths, duplicate tolerances); a longer
    vector may come out as another image, never as a shorter one than its own minimum,
    so a "closer than tolerance" test on the result is exact. Vectorised over all atom
    pairs (ase's find_mic works per vector list).
    """
    if not atoms.pbc.any():
        return diff
    cell = np.array(atoms.cell)
    fractional = diff.reshape(-1, 3) @ np.linalg.inv(cell)
    periodic = atoms.pbc
    fractional[:, periodic] -= np.round(fractional[:, periodic])
    return (fractional @ cell).reshape(diff.shape)
