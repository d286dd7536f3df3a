"""Phonons by finite displacements (phonopy) with any ASE calculator.

Band structure along ASE's standard path of the cell, total DOS on a Gamma-centred
mesh, and imaginary modes flagged beyond a tolerance (looser near Gamma, where the
acoustic branches carry finite-displacement noise).
"""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from phonopy import Phonopy
from phonopy.structure.atoms import PhonopyAtoms
from pydantic import BaseModel, Field


class ImaginaryMode(BaseModel):
    q_scaled: list[float]
    q_label: str = ""
    frequency_thz: float
    near_gamma: bool


class PhononResult(BaseModel):
    label: str
    supercell: list[int]
    n_displacements: int
    band_x: list[float] = Field(description="Linear k-axis of ASE's band path.")
    band_special_x: list[float]
    band_special_labels: list[str]
    band_frequencies_thz: list[list[float]] = Field(description="[q][branch]")
    dos_frequencies_thz: list[float]
    dos: list[float]
    min_frequency_thz: float
    n_imaginary_qpoints: int = Field(description="q-points (path and mesh) with a mode "
                                     "below tolerance.")
    imaginary_modes: list[ImaginaryMode] = Field(
        description="The worst of them (at most 20), most negative first.")

    @property
    def dynamically_stable(self) -> bool:
        return self.n_imaginary_qpoints == 0


def _to_phonopy(atoms: Atoms) -> PhonopyAtoms:
    return PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array,
                        scaled_positions=atoms.get_scaled_positions())


def _to_ase(cell: PhonopyAtoms) -> Atoms:
    return Atoms(cell.symbols, cell=cell.cell, scaled_positions=cell.scaled_positions, pbc=True)


def force_constants(atoms: Atoms, calc: Calculator, supercell: int | np.ndarray,
                    displacement: float) -> Phonopy:
    """Phonopy object with symmetrized force constants from finite displacements of
    ``atoms`` (the primitive cell: q-points are in its basis) evaluated with ``calc``, in
    the supercell N x N x N or given by phonopy's supercell matrix (columns)."""
    matrix = np.eye(3, dtype=int) * supercell if np.isscalar(supercell) else supercell
    with warnings.catch_warnings():  # a small non-diagonal cell has fewer point operations
        warnings.filterwarnings("ignore", "Point group symmetries of supercell")
        phonon = Phonopy(_to_phonopy(atoms), supercell_matrix=matrix, primitive_matrix="P")
    phonon.generate_displacements(distance=displacement)
    forces = []
    for displaced in phonon.supercells_with_displacements:
        cell = _to_ase(displaced)
        cell.calc = calc
        forces.append(cell.get_forces().copy())
    phonon.forces = np.array(forces)
    phonon.produce_force_constants()
    phonon.symmetrize_force_constants()
    return phonon


def compute_phonons(atoms: Atoms, calc: Calculator, supercell: int = 4,
                    displacement: float = 0.01, mesh: int = 12, band_points: int = 150,
                    tolerance_thz: float = 0.05, gamma_tolerance_thz: float = 0.3,
                    gamma_radius: float = 0.1) -> PhononResult:
    """Harmonic phonons of ``atoms`` (taken as the primitive cell) with ``calc``."""
    phonon = force_constants(atoms, calc, supercell, displacement)

    path = atoms.cell.bandpath(npoints=band_points)
    band_x, special_x, special_labels = path.get_linear_kpoint_axis()
    phonon.run_band_structure([path.kpts])
    band = np.asarray(phonon.band_structure.frequencies[0])

    phonon.run_mesh([mesh] * 3, is_gamma_center=True)
    mesh_q = np.asarray(phonon.mesh.qpoints)
    mesh_freq = np.asarray(phonon.mesh.frequencies)
    phonon.run_total_dos()
    dos = phonon.total_dos

    label_at = {tuple(np.round(k, 6)): name for name, k in path.special_points.items()}
    recip = atoms.cell.reciprocal()
    imaginary = []
    for q_points, freqs in ((path.kpts, band), (mesh_q, mesh_freq)):
        for q, f in zip(q_points, freqs, strict=True):
            q_wrapped = q - np.round(q)
            near_gamma = bool(np.linalg.norm(q_wrapped @ recip) < gamma_radius)
            limit = gamma_tolerance_thz if near_gamma else tolerance_thz
            if f.min() < -limit:
                imaginary.append(ImaginaryMode(
                    q_scaled=[float(v) for v in q], frequency_thz=float(f.min()),
                    q_label=label_at.get(tuple(np.round(q, 6)), ""), near_gamma=near_gamma))
    return PhononResult(
        label=atoms.info.get("label", atoms.get_chemical_formula()),
        supercell=[supercell] * 3,
        n_displacements=len(phonon.supercells_with_displacements),
        band_x=[float(x) for x in band_x],
        band_special_x=[float(x) for x in special_x],
        band_special_labels=list(special_labels),
        band_frequencies_thz=band.round(5).tolist(),
        dos_frequencies_thz=np.asarray(dos.frequency_points).round(5).tolist(),
        dos=np.asarray(dos.dos).round(6).tolist(),
        min_frequency_thz=float(min(band.min(), mesh_freq.min())),
        n_imaginary_qpoints=len(imaginary),
        imaginary_modes=sorted(imaginary, key=lambda m: m.frequency_thz)[:20],
    )
