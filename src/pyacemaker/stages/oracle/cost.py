"""What a batch of DFT labels will cost, said before it runs.

One structure's cost in relative units: irreducible k-points (spglib, with time reversal)
x plane waves (volume x ecutwfc^1.5) x atoms^2 (bands^2: the orthogonalisation that
dominates plane-wave DFT as cells grow). With earlier labels of the campaign the units are
turned into seconds: a start-up time per run plus a time per unit, fitted to their pw.x
wall times (healing attempts included). The estimate is printed before every labelling stage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import spglib
from ase import Atoms, units

from pyacemaker.stages.oracle.parameters import kpoint_grid


def irreducible_kpoints(atoms: Atoms, grid: tuple[int, int, int]) -> int:
    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    mapping, _ = spglib.get_ir_reciprocal_mesh(grid, cell, is_shift=[0, 0, 0])
    return int(len(np.unique(mapping)))


def plane_waves(atoms: Atoms, ecutwfc_ry: float) -> float:
    """Plane waves per k-point: V k_max^3 / (6 pi^2), k_max = sqrt(ecutwfc) in 1/bohr."""
    volume_bohr3 = atoms.get_volume() / units.Bohr ** 3
    return volume_bohr3 * ecutwfc_ry ** 1.5 / (6 * math.pi ** 2)


def cost_units(atoms: Atoms, kspacing: float, ecutwfc_ry: float) -> float:
    k = irreducible_kpoints(atoms, kpoint_grid(atoms, kspacing))
    return k * plane_waves(atoms, ecutwfc_ry) * len(atoms) ** 2 / 1e6


@dataclass(frozen=True)
class CostEstimate:
    structures: int
    atoms: int
    largest: int  # atoms of the largest structure
    kpoints_max: int
    units: float
    seconds: float | None  # None: no earlier label to calibrate with

    def describe(self) -> str:
        time = ("no earlier label to calibrate a time" if self.seconds is None
                else f"about {_duration(self.seconds)} of pw.x in all")
        return (f"{self.structures} structures, {self.atoms} atoms (largest {self.largest}), "
                f"up to {self.kpoints_max} irreducible k-points: {time}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def calibration(timed: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(seconds per run, seconds per unit) from (units, seconds) of earlier labels: a
    non-negative least-squares line when the labels span sizes (pw.x's start-up is seconds,
    which makes a 2-atom cell's seconds per unit ten times an 8-atom cell's), else the
    median ratio."""
    units = np.array([u for u, _ in timed])
    seconds = np.array([t for _, t in timed])
    if len(timed) >= 3 and units.max() > 2 * units.min():
        from scipy.optimize import nnls

        (startup, rate), _ = nnls(np.column_stack([np.ones_like(units), units]), seconds)
        if rate > 0:
            return float(startup), float(rate)
    return 0.0, float(np.median(seconds / units))


def estimate(structures: Sequence[Atoms], kspacing: float, ecutwfc_ry: float,
             done: Sequence[tuple[Atoms, float]] = ()) -> CostEstimate:
    """The batch ``structures``; ``done``: (structure, pw.x seconds) of earlier labels."""
    per = [cost_units(a, kspacing, ecutwfc_ry) for a in structures]
    timed = [(cost_units(a, kspacing, ecutwfc_ry), seconds) for a, seconds in done
             if seconds > 0]
    seconds = None
    if timed and structures:
        startup, rate = calibration(timed)
        seconds = startup * len(per) + rate * sum(per)
    return CostEstimate(
        structures=len(structures), atoms=sum(len(a) for a in structures),
        largest=max((len(a) for a in structures), default=0),
        kpoints_max=max((irreducible_kpoints(a, kpoint_grid(a, kspacing))
                         for a in structures), default=0),
        units=float(sum(per)), seconds=seconds)
