"""Phonons of the potential against a reference (the oracle: DFT, or EMT) at the special
q-points commensurate with a small supercell, each in its smallest commensurate cell
(``special_points.py``), with the same cells and displacements for both.

The reference runs once per symmetry-distinct displacement of each cell (Si: 4 pw.x runs
of at most 4 atoms for G, X and L), off unless ``validation.reference_phonons``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from pydantic import BaseModel, Field

from pyacemaker.programs import Launch
from pyacemaker.stages.validate.special_points import special_point_frequencies

MIN_COMPARED_THZ = 1.0


class OracleCalculator(Calculator):
    """An ASE calculator over an oracle's ``label`` (one task folder per call); a
    quarantined label raises, naming the folder and the oracle's reason."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, oracle: Any, workdir: Path, launch: Launch | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.oracle = oracle
        self.workdir = Path(workdir)
        self.launch = launch
        self.calls = 0

    def calculate(self, atoms: Atoms | None = None, properties: Any = None,
                  system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        folder = self.workdir / f"call_{self.calls:03d}"
        outcome = self.oracle.label(self.atoms, folder, self.launch)
        if not outcome.converged:
            raise RuntimeError(f"oracle {self.oracle.name} gave no label in {folder}: "
                               f"{outcome.reason}")
        results = outcome.atoms.calc.results
        self.results = {"energy": float(results["energy"]),
                        "forces": np.asarray(results["forces"])}
        if results.get("stress") is not None:
            self.results["stress"] = np.asarray(results["stress"])


class PhononComparison(BaseModel):
    label: str
    reference: str
    supercell: list[int]
    q_labels: list[str]
    frequencies_thz: list[list[float]] = Field(description="[q][branch], the potential")
    reference_frequencies_thz: list[list[float]]
    max_relative_difference: float = Field(
        description="max |f - f_ref| / f_ref over the branches above 1 THz")
    worst_q: str


def compare_phonons(atoms: Atoms, calc: Calculator, reference: Calculator, supercell: int = 2,
                    displacement: float = 0.01, reference_name: str = "") -> PhononComparison:
    """Frequencies of ``calc`` and ``reference`` at the special points of ``atoms``."""
    names, ours = special_point_frequencies(atoms, calc, supercell, displacement)
    _, ref = special_point_frequencies(atoms, reference, supercell, displacement)
    return compare_frequencies(atoms.info.get("label", atoms.get_chemical_formula()),
                               reference_name or type(reference).__name__, supercell, names,
                               ours, ref)


def compare_frequencies(label: str, reference: str, supercell: int, names: list[str],
                        ours: list[list[float]], ref: list[list[float]]) -> PhononComparison:
    """Branch-by-branch (sorted) comparison at each special point, of the branches whose
    reference frequency is above ``MIN_COMPARED_THZ`` (the acoustic ones at Gamma are
    zero up to finite-displacement noise)."""
    worst, worst_q = 0.0, ""
    for name, f, f_ref in zip(names, ours, ref, strict=True):
        f, f_ref = np.sort(f), np.sort(f_ref)
        compared = f_ref > MIN_COMPARED_THZ
        if not compared.any():
            continue
        rel = float(np.max(np.abs(f - f_ref)[compared] / f_ref[compared]))
        if rel >= worst:
            worst, worst_q = rel, name
    return PhononComparison(
        label=label, reference=reference, supercell=[supercell] * 3, q_labels=names,
        frequencies_thz=[np.round(f, 4).tolist() for f in ours],
        reference_frequencies_thz=[np.round(f, 4).tolist() for f in ref],
        max_relative_difference=worst, worst_q=worst_q)
