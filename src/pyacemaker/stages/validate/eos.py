"""Equation of state: energy-volume scan, Birch-Murnaghan fit and smoothness checks.

A narrow scan around the relaxed volume is fitted with ASE's EquationOfState
(Birch-Murnaghan); a wide scan checks what a fit cannot see: spurious extra minima of
E(V) and a pressure that does not fall monotonically as the volume grows.
"""

from __future__ import annotations

import warnings
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
    fit: EOSFit | None = Field(description="None when Birch-Murnaghan cannot be fitted.")
    fit_error: str = ""
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ASE warns when V0 falls outside: we raise below
        v0, e0, b0 = eos.fit()
    if not (np.isfinite([v0, e0, b0]).all() and volumes.min() <= v0 <= volumes.max()):
        raise ValueError(f"no minimum inside the sampled volumes {volumes.min():.3f}-"
                         f"{volumes.max():.3f} A^3/atom (fitted V0 = {v0:.3f})")
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


def fit_eos(atoms: Atoms, calc: Calculator, fit_range: float = 0.06,
            fit_points: int = 9) -> tuple[EOSFit, list[float], list[float]]:
    """Birch-Murnaghan fit of ``calc`` around the volume of ``atoms`` (e.g. a reference
    calculator on its own relaxed crystal): (fit, volumes, energies) per atom."""
    structures = scaled_copies(atoms, np.linspace(1 - fit_range, 1 + fit_range, fit_points))
    volumes = [s.get_volume() / len(s) for s in structures]
    energies, _ = _energies_pressures(structures, calc)
    return fit_birch_murnaghan(volumes, energies), volumes, energies.tolist()


def compute_eos(atoms: Atoms, calc: Calculator, fit_range: float = 0.06, fit_points: int = 9,
                scan: tuple[float, float] = (0.75, 1.35), scan_points: int = 31) -> EOSResult:
    """EOS of the relaxed crystal ``atoms``: a fit near its volume and a wide scan."""
    n = len(atoms)
    fit_factors = np.linspace(1 - fit_range, 1 + fit_range, fit_points)
    fit_structures = scaled_copies(atoms, fit_factors)
    volumes = np.array([s.get_volume() / n for s in fit_structures])
    energies, _ = _energies_pressures(fit_structures, calc)
    fit, fit_error = None, ""
    try:
        fit = fit_birch_murnaghan(volumes, energies)
    except (RuntimeError, ValueError) as exc:  # scipy's curve_fit gives up: keep the scan
        fit_error = str(exc)

    scan_structures = scaled_copies(atoms, np.linspace(scan[0], scan[1], scan_points))
    scan_energies, scan_pressures = _energies_pressures(scan_structures, calc)
    result = EOSResult(
        label=atoms.info.get("label", atoms.get_chemical_formula()), fit=fit,
        fit_error=fit_error,
        volumes_per_atom=[s.get_volume() / n for s in scan_structures],
        energies_per_atom=scan_energies.tolist(), pressures_gpa=scan_pressures.tolist(),
        n_local_minima=count_local_minima(scan_energies),
        pressure_monotonic=bool(np.all(np.diff(scan_pressures) < 0)),
    )
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
