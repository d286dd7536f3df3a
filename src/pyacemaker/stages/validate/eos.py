"""Equation of state: energy-volume scan, Birch-Murnaghan fit and smoothness checks.

A narrow scan around the relaxed volume is fitted with ASE's EquationOfState
(Birch-Murnaghan); a wide scan checks what a fit cannot see: spurious extra minima of
E(V) and a pressure that does not fall monotonically as the volume grows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.eos import EquationOfState
from pydantic import BaseModel, Field


class EOSFit(BaseModel):
    v0_per_atom: float = Field(description="A^3/atom")
    e0_per_atom: float = Field(description="eV/atom")
    b0_gpa: float
    rms_residual_mev_per_atom: float


class EOSResult(BaseModel):
    label: str
    fit: EOSFit
    volumes_per_atom: list[float] = Field(description="wide scan, A^3/atom")
    energies_per_atom: list[float] = Field(description="wide scan, eV/atom")
    pressures_gpa: list[float] = Field(description="wide scan, -trace(stress)/3")
    n_local_minima: int = Field(description="Local minima of E(V) in the wide scan.")
    pressure_monotonic: bool = Field(description="Pressure strictly falls as V grows.")
    reference: EOSFit | None = Field(None, description="Same fit on reference energies.")
    reference_source: str = ""
    reference_volumes_per_atom: list[float] = Field(default_factory=list)
    reference_energies_per_atom: list[float] = Field(default_factory=list)

    @property
    def smooth(self) -> bool:
        return self.n_local_minima == 1 and self.pressure_monotonic


def scaled_copies(atoms: Atoms, volume_factors: Sequence[float]) -> list[Atoms]:
    copies = []
    for factor in volume_factors:
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell.array * factor ** (1 / 3), scale_atoms=True)
        copies.append(scaled)
    return copies


def fit_birch_murnaghan(volumes_per_atom: Sequence[float],
                        energies_per_atom: Sequence[float]) -> EOSFit:
    volumes = np.asarray(volumes_per_atom, float)
    energies = np.asarray(energies_per_atom, float)
    eos = EquationOfState(volumes, energies, eos="birchmurnaghan")
    v0, e0, b0 = eos.fit()
    residual = energies - eos.func(volumes, *eos.eos_parameters)
    return EOSFit(v0_per_atom=float(v0), e0_per_atom=float(e0), b0_gpa=float(b0 / units.GPa),
                  rms_residual_mev_per_atom=float(np.sqrt(np.mean(residual ** 2)) * 1000))


def _energies_pressures(structures: list[Atoms], calc: Calculator) -> tuple[np.ndarray, ...]:
    energies, pressures = [], []
    for atoms in structures:
        atoms.calc = calc
        energies.append(atoms.get_potential_energy() / len(atoms))
        pressures.append(-np.trace(atoms.get_stress(voigt=False)) / 3 / units.GPa)
    return np.array(energies), np.array(pressures)


def count_local_minima(energies: Sequence[float]) -> int:
    e = np.asarray(energies)
    interior = (e[1:-1] < e[:-2]) & (e[1:-1] < e[2:])
    return int(interior.sum())


def compute_eos(atoms: Atoms, calc: Calculator, fit_range: float = 0.06, fit_points: int = 9,
                scan: tuple[float, float] = (0.75, 1.35), scan_points: int = 31,
                reference_calc: Calculator | None = None) -> EOSResult:
    """EOS of the relaxed crystal ``atoms``; ``reference_calc`` (e.g. the oracle) is fitted
    on the same volumes for comparison."""
    n = len(atoms)
    fit_factors = np.linspace(1 - fit_range, 1 + fit_range, fit_points)
    fit_structures = scaled_copies(atoms, fit_factors)
    volumes = np.array([s.get_volume() / n for s in fit_structures])
    energies, _ = _energies_pressures(fit_structures, calc)
    fit = fit_birch_murnaghan(volumes, energies)

    scan_structures = scaled_copies(atoms, np.linspace(scan[0], scan[1], scan_points))
    scan_energies, scan_pressures = _energies_pressures(scan_structures, calc)
    result = EOSResult(
        label=atoms.info.get("label", atoms.get_chemical_formula()), fit=fit,
        volumes_per_atom=[s.get_volume() / n for s in scan_structures],
        energies_per_atom=scan_energies.tolist(), pressures_gpa=scan_pressures.tolist(),
        n_local_minima=count_local_minima(scan_energies),
        pressure_monotonic=bool(np.all(np.diff(scan_pressures) < 0)),
    )
    if reference_calc is not None:
        ref_structures = scaled_copies(atoms, fit_factors)
        ref_energies, _ = _energies_pressures(ref_structures, reference_calc)
        result.reference = fit_birch_murnaghan(volumes, ref_energies)
        result.reference_source = type(reference_calc).__name__
        result.reference_volumes_per_atom = volumes.tolist()
        result.reference_energies_per_atom = ref_energies.tolist()
    return result


def reference_eos_from_labels(atoms: Atoms, labelled: Sequence[Atoms],
                              tolerance: float = 1e-3) -> tuple[list[float], list[float]]:
    """(volumes, energies) per atom of labelled structures that are isotropically scaled
    copies of ``atoms`` (same species order, same fractional positions, proportional cell):
    the DFT points of an EOS, when the campaign computed some."""
    volumes, energies = [], []
    cell0 = atoms.cell.array / atoms.get_volume() ** (1 / 3)
    for candidate in labelled:
        if len(candidate) != len(atoms) or candidate.calc is None:
            continue
        if not np.array_equal(candidate.numbers, atoms.numbers):
            continue
        cell = candidate.cell.array / candidate.get_volume() ** (1 / 3)
        if np.abs(cell - cell0).max() > tolerance:
            continue
        delta = candidate.get_scaled_positions() - atoms.get_scaled_positions()
        if np.abs(delta - np.round(delta)).max() > tolerance:
            continue
        volumes.append(candidate.get_volume() / len(candidate))
        energies.append(candidate.get_potential_energy() / len(candidate))
    order = np.argsort(volumes)
    return [volumes[i] for i in order], [energies[i] for i in order]
