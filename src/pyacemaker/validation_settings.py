"""The quality gate's section of a campaign YAML (``validation:``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from pyacemaker.config_base import StrictModel


class ValidationSettings(StrictModel):
    """Quality gate of a fitted potential (Go/No-Go): thresholds and what to compute."""

    validate_every_iteration: bool = Field(True, description="Run the gate after each fit.")
    structures: list[Path] = Field(
        default_factory=list,
        description="Crystals to validate on (files ASE reads); default: ASE's reference "
        "crystal of each element (ase.build.bulk).",
    )
    relax: bool = Field(True, description="Relax cell and positions with the potential first.")
    relax_fmax: float = Field(1e-3, gt=0, description="eV/A, relaxation force criterion.")
    phonon_supercell: int = Field(4, gt=0, description="Phonopy supercell = N x N x N primitive.")
    phonon_displacement: float = Field(0.01, gt=0, description="A, finite displacement.")
    phonon_mesh: int = Field(12, gt=0, description="Gamma-centred q-mesh N x N x N for DOS.")
    imaginary_tolerance_thz: float = Field(
        0.05, ge=0, description="A mode below -tolerance (THz) away from Gamma is imaginary.")
    imaginary_tolerance_gamma_thz: float = Field(
        0.3, ge=0, description="Looser tolerance near Gamma (|q| < gamma_radius), where "
        "finite-displacement noise on acoustic modes is expected.")
    gamma_radius: float = Field(0.1, gt=0, description="1/A (ASE reciprocal units, no 2 pi).")
    reference_phonons: bool = Field(
        False, description="Also compute the oracle's phonons at the special q-points (DFT "
        "with qe: one small cell per point and distinct displacement; Si: 4 runs of <= 4 "
        "atoms) and compare the potential's with them.")
    phonon_reference_supercell: int = Field(
        2, gt=0, description="Compare at the special points commensurate with an N x N x N "
        "supercell (2: G, X, L of fcc lattices), each computed in its smallest "
        "commensurate cell.")
    phonon_rel_tol: float = Field(
        0.05, gt=0, description="Frequencies above 1 THz vs the oracle's (relative).")
    elastic_max_strain: float = Field(0.01, gt=0, lt=0.1)
    elastic_strain_points: int = Field(4, ge=2, description="Strains per component (+/-).")
    elastic_rel_tol: float = Field(0.10, gt=0, description="Cij and moduli vs reference.")
    b0_rel_tol: float = Field(0.10, gt=0, description="EOS bulk modulus vs reference.")
    v0_rel_tol: float = Field(0.03, gt=0, description="EOS equilibrium volume vs reference.")
    e0_tol_mev_per_atom: float = Field(
        30.0, gt=0, description="EOS minimum energy vs DFT labels (when they exist).")
    eos_fit_volume_range: float = Field(0.06, gt=0, lt=0.5, description="+/- V0 fraction.")
    eos_scan_volumes: tuple[float, float] = Field(
        (0.75, 1.35), description="V/V0 range scanned for spurious minima and pressure "
        "monotonicity.")
    eos_points: int = Field(31, ge=7)
    validation_fraction: float = Field(
        0.15, ge=0, lt=1, description="Of each iteration's labelled structures, the share "
        "held out of every fit as the campaign's fixed validation set (0: none; the gate "
        "then uses each fit's own test split).")
    min_validation_structures: int = Field(
        5, ge=1, description="Fewer validation structures: the error targets are not judged "
        "(a NO-GO says so).")
    regression_tolerance: float = Field(
        0.25, ge=0, description="A new fit whose validation-set error score is more than "
        "this fraction above the current potential's is not deployed (a fit that learned "
        "a new region may lose a little on the old ones; a broken refit is far worse).")
    energy_rmse_mev_per_atom: float = Field(10.0, gt=0, description="Held-out set target.")
    force_rmse_ev_per_a: float = Field(0.2, gt=0, description="Held-out set target.")
    stress_rmse_gpa: float = Field(1.0, gt=0, description="Held-out set target (if stresses).")
    reference_moduli_gpa: dict[str, float] = Field(
        default_factory=dict,
        description="Known values to compare with, e.g. {C11: 176, C12: 125, C44: 82, B: 142}; "
        "with the EMT oracle, EMT's own values are computed instead.")

    @field_validator("eos_scan_volumes")
    @classmethod
    def _ordered_scan(cls, scan: tuple[float, float]) -> tuple[float, float]:
        low, high = scan
        if not 0 < low < 1 < high:
            raise ValueError(f"need 0 < low < 1 < high (V/V0), got {scan}")
        return scan

    @field_validator("reference_moduli_gpa")
    @classmethod
    def _known_moduli(cls, moduli: dict[str, float]) -> dict[str, float]:
        allowed = {f"C{i}{j}" for i in range(1, 7) for j in range(i, 7)} | {"B", "G", "B0"}
        unknown = sorted(set(moduli) - allowed)
        if unknown:
            raise ValueError(f"unknown modulus name(s) {unknown}; use Cij (i<=j), B, G or B0")
        return moduli
