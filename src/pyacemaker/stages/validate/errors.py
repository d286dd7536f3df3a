"""Errors of a potential on labelled structures: RMSE/MAE, parity data, per provenance."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from pydantic import BaseModel, Field


class ErrorMetrics(BaseModel):
    n_structures: int
    n_with_stress: int
    energy_rmse_mev_per_atom: float
    energy_mae_mev_per_atom: float
    force_rmse_ev_per_a: float
    force_mae_ev_per_a: float
    stress_rmse_gpa: float | None = None
    stress_mae_gpa: float | None = None


class ParityData(BaseModel):
    """Reference vs predicted values, for parity plots (forces subsampled to a cap)."""

    energy_ref_per_atom: list[float]
    energy_pred_per_atom: list[float]
    provenance: list[str]
    force_ref: list[float]
    force_pred: list[float]


class ErrorResult(BaseModel):
    set_name: str = Field(description="What the structures are, e.g. 'held-out test set'.")
    overall: ErrorMetrics
    per_provenance: dict[str, ErrorMetrics]
    parity: ParityData


def _metrics(energy_err: list[float], force_err: list[np.ndarray],
             stress_err: list[np.ndarray]) -> ErrorMetrics:
    e = np.asarray(energy_err) * 1000
    f = np.concatenate([x.ravel() for x in force_err]) if force_err else np.zeros(1)
    metrics = ErrorMetrics(
        n_structures=len(energy_err), n_with_stress=len(stress_err),
        energy_rmse_mev_per_atom=float(np.sqrt(np.mean(e ** 2))),
        energy_mae_mev_per_atom=float(np.mean(np.abs(e))),
        force_rmse_ev_per_a=float(np.sqrt(np.mean(f ** 2))),
        force_mae_ev_per_a=float(np.mean(np.abs(f))),
    )
    if stress_err:
        s = np.concatenate(stress_err) / units.GPa
        metrics.stress_rmse_gpa = float(np.sqrt(np.mean(s ** 2)))
        metrics.stress_mae_gpa = float(np.mean(np.abs(s)))
    return metrics


def _reference_stress(atoms: Atoms) -> np.ndarray | None:
    try:
        return atoms.get_stress(voigt=True)
    except (PropertyNotImplementedError, RuntimeError):
        return None


def compute_errors(structures: Sequence[Atoms], calc: Calculator, set_name: str,
                   reference_energies: dict[str, float] | None = None,
                   max_parity_forces: int = 20000, seed: int = 0) -> ErrorResult:
    """Compare the labels carried by ``structures`` (SinglePointCalculator) with ``calc``.

    ``reference_energies`` (eV per element) are subtracted from the labels first, when the
    potential was fitted to energies relative to them (pacemaker's energy_corrected)."""
    reference_energies = reference_energies or {}
    labelled = [a for a in structures if a.calc is not None]
    if not labelled:
        raise ValueError(f"{set_name}: no labelled structures to compute errors on")
    groups: dict[str, list[int]] = defaultdict(list)
    energy_err, force_err, stress_err = [], [], []
    stress_index: list[int] = []
    e_ref, e_pred, f_ref, f_pred, provenance = [], [], [], [], []
    for index, reference in enumerate(labelled):
        n = len(reference)
        shift = sum(reference_energies.get(s, 0.0) for s in reference.get_chemical_symbols())
        ref_energy = (reference.get_potential_energy() - shift) / n
        ref_forces = reference.get_forces()
        ref_stress = _reference_stress(reference) if reference.pbc.all() else None
        probe = reference.copy()
        probe.calc = calc
        pred_energy = probe.get_potential_energy() / n
        pred_forces = probe.get_forces()
        energy_err.append(pred_energy - ref_energy)
        force_err.append(pred_forces - ref_forces)
        if ref_stress is not None:
            stress_err.append(probe.get_stress(voigt=True) - ref_stress)
            stress_index.append(index)
        label = str(reference.info.get("provenance", "unknown"))
        groups[label].append(index)
        e_ref.append(ref_energy)
        e_pred.append(pred_energy)
        f_ref.append(ref_forces.ravel())
        f_pred.append(pred_forces.ravel())
        provenance.append(label)
    per_provenance = {}
    for label, indices in sorted(groups.items()):
        stress_of = [stress_err[stress_index.index(i)] for i in indices if i in stress_index]
        per_provenance[label] = _metrics([energy_err[i] for i in indices],
                                         [force_err[i] for i in indices], stress_of)
    forces_ref, forces_pred = np.concatenate(f_ref), np.concatenate(f_pred)
    if len(forces_ref) > max_parity_forces:
        keep = np.random.default_rng(seed).choice(len(forces_ref), max_parity_forces,
                                                  replace=False)
        forces_ref, forces_pred = forces_ref[keep], forces_pred[keep]
    return ErrorResult(
        set_name=set_name, overall=_metrics(energy_err, force_err, stress_err),
        per_provenance=per_provenance,
        parity=ParityData(energy_ref_per_atom=e_ref, energy_pred_per_atom=e_pred,
                          provenance=provenance, force_ref=forces_ref.tolist(),
                          force_pred=forces_pred.tolist()),
    )
