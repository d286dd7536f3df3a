"""The knobs of one pw.x run, their physics-based defaults per element, and the k-point mesh."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from ase import Atoms

from pyacemaker.config import DFTSettings
from pyacemaker.stages.oracle.pseudo import PseudoChoice

# Wave-function cutoff (Ry) that converges forces to ~10 meV/A with the pseudopotentials this
# project resolves (pslibrary / Debian), and the starting moment (Bohr magneton) that makes an
# element spin-polarized when oracle.qe.spin is "auto" (0: no spin).
ELEMENT_DEFAULTS: dict[str, tuple[float, float]] = {
    "H": (60, 0), "B": (45, 0), "C": (45, 0), "N": (55, 0), "O": (55, 0), "F": (55, 0),
    "Na": (40, 0), "Mg": (35, 0), "Al": (30, 0), "Si": (30, 0), "P": (35, 0), "S": (35, 0),
    "Ti": (40, 0), "V": (40, 0), "Cr": (45, 2.0), "Mn": (50, 3.0), "Fe": (45, 2.5),
    "Co": (45, 1.7), "Ni": (45, 0.7), "Cu": (45, 0), "Zn": (40, 0), "Ge": (35, 0),
    "Zr": (35, 0), "Nb": (35, 0), "Mo": (35, 0), "Pd": (40, 0), "Ag": (40, 0), "I": (35, 0),
    "W": (35, 0), "Pt": (35, 0), "Au": (40, 0),
}
UNKNOWN_ELEMENT_ECUTWFC = 50.0


@dataclass(frozen=True)
class RunParameters:
    """Everything healing may change between two runs of the same structure."""

    ecutwfc: float
    ecutrho: float
    kpts: tuple[int, int, int]
    smearing: str
    degauss: float
    mixing_beta: float
    conv_thr: float
    electron_maxstep: int
    spin: bool
    mixing_mode: str = "plain"
    diagonalization: str = "david"
    startingpot: str = "atomic"
    restart: bool = False
    ranks: int = 1
    max_seconds: float = 3600.0

    def summary(self) -> dict[str, Any]:
        record = asdict(self)
        record["kpts"] = list(self.kpts)
        return record


VACUUM_GAP_A = 5.0  # a gap this wide along a cell vector is vacuum: no dispersion there


def vacuum_gap(atoms: Atoms, axis: int) -> float:
    """Widest empty stretch (A) between atomic planes along cell vector ``axis``, measured
    perpendicular to the other two vectors, periodic images included."""
    if len(atoms) == 0:
        return 0.0
    fractions = np.sort(atoms.get_scaled_positions(wrap=True)[:, axis])
    gaps = np.diff(np.concatenate([fractions, [fractions[0] + 1.0]]))
    normal = atoms.cell.reciprocal()[axis]
    spacing = 1.0 / float(np.linalg.norm(normal))  # distance between the lattice planes
    return float(gaps.max()) * spacing


def kpoint_grid(atoms: Atoms, kspacing: float) -> tuple[int, int, int]:
    """Monkhorst-Pack divisions with at most ``kspacing`` (2*pi/A, VASP's KSPACING convention)
    between points; 1 along non-periodic directions and along a vacuum gap of more than
    ``VACUUM_GAP_A`` (a slab or a molecule in a box has no dispersion there)."""
    reciprocal = atoms.cell.reciprocal() * 2 * math.pi
    grid = []
    for axis in range(3):
        if not atoms.pbc[axis] or vacuum_gap(atoms, axis) > VACUUM_GAP_A:
            grid.append(1)
            continue
        length = float(np.linalg.norm(reciprocal[axis]))
        grid.append(max(1, math.ceil(length / kspacing - 1e-9)))
    return grid[0], grid[1], grid[2]


def default_parameters(atoms: Atoms, settings: DFTSettings,
                       pseudos: dict[str, PseudoChoice], ranks: int = 1) -> RunParameters:
    symbols = sorted(set(atoms.get_chemical_symbols()))
    ecutwfc = settings.ecutwfc or max(
        ELEMENT_DEFAULTS.get(s, (UNKNOWN_ELEMENT_ECUTWFC, 0))[0] for s in symbols)
    all_norm_conserving = all(pseudos[s].norm_conserving for s in symbols)
    ecutrho = settings.ecutrho or ecutwfc * (4 if all_norm_conserving else 8)
    if settings.spin == "auto":
        spin = any(starting_moment(s, settings) != 0 for s in symbols) or bool(
            np.any(atoms.get_initial_magnetic_moments()))
    else:
        spin = settings.spin == "on"
    return RunParameters(
        ecutwfc=float(ecutwfc), ecutrho=float(ecutrho),
        kpts=kpoint_grid(atoms, settings.kspacing),
        smearing=settings.smearing, degauss=settings.degauss,
        mixing_beta=settings.mixing_beta,
        conv_thr=settings.conv_thr_per_atom * len(atoms),
        electron_maxstep=settings.electron_maxstep, spin=spin, ranks=max(1, ranks),
        # pw.x stops itself cleanly (restartable) before the hard time-out kills it
        max_seconds=max(1.0, 0.85 * settings.timeout_s - 5.0),
    )


def starting_moment(symbol: str, settings: DFTSettings) -> float:
    if symbol in settings.magnetic_moments:
        return settings.magnetic_moments[symbol]
    return ELEMENT_DEFAULTS.get(symbol, (0, 0.0))[1]


def starting_moments(atoms: Atoms, settings: DFTSettings) -> np.ndarray:
    """Initial moments (Bohr magneton): the structure's own when it has any, else the table's."""
    own = atoms.get_initial_magnetic_moments()
    if np.any(own):
        return np.asarray(own, dtype=float)
    return np.array([starting_moment(s, settings) for s in atoms.get_chemical_symbols()])
