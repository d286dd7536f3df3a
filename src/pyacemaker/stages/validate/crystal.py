"""The crystals a potential is validated on: choosing them and relaxing them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.constraints import FixSymmetry
from ase.data import atomic_numbers, reference_states
from ase.filters import FrechetCellFilter
from ase.io import read
from ase.optimize import BFGS

from pyacemaker.config import ConfigError

CalculatorFactory = Callable[[], Calculator]


class ValidationInputError(ConfigError):
    """A validation input (structure file, element, potential file) cannot be used."""


def default_crystals(elements: Sequence[str]) -> list[Atoms]:
    """ASE's reference crystal (fcc, bcc, hcp, diamond ...) of each element, primitive cell."""
    crystals = []
    for element in elements:
        state = reference_states[atomic_numbers[element]]
        if state is None or state.get("symmetry") not in {"fcc", "bcc", "hcp", "diamond", "sc"}:
            raise ValidationInputError(
                f"element {element!r} has no simple reference crystal in ASE; list a crystal "
                "file under validation.structures")
        atoms = bulk(element)
        atoms.info["label"] = f"{element} {state['symmetry']}"
        crystals.append(atoms)
    return crystals


def load_crystals(paths: Sequence[Path]) -> list[Atoms]:
    crystals = []
    for path in paths:
        try:
            atoms = read(path)
        except Exception as exc:  # ASE raises many kinds for unreadable files
            raise ValidationInputError(f"{path}: cannot read a crystal structure: {exc}") from exc
        if not atoms.pbc.all():
            raise ValidationInputError(f"{path}: validation needs a periodic crystal (pbc=True)")
        atoms.info["label"] = Path(path).stem
        crystals.append(atoms)
    return crystals


def relax_crystal(atoms: Atoms, calc: Calculator, fmax: float = 1e-3,
                  steps: int = 300) -> Atoms:
    """Relax positions and cell keeping the space group (a bcc start stays bcc even where
    the potential would rather shear it: that instability is for phonons to report)."""
    relaxed = atoms.copy()
    relaxed.info.update(atoms.info)
    relaxed.set_constraint(FixSymmetry(relaxed))
    relaxed.calc = calc
    optimizer = BFGS(FrechetCellFilter(relaxed), logfile=None)
    optimizer.run(fmax=fmax, steps=steps)
    relaxed.calc = None
    relaxed.set_constraint()
    if not np.isfinite(relaxed.positions).all() or relaxed.get_volume() <= 0:
        raise ValidationInputError(f"{atoms.info.get('label', atoms.get_chemical_formula())}: "
                                   "relaxation with the potential diverged")
    return relaxed


def validation_crystals(structures: Sequence[Path], elements: Sequence[str]) -> list[Atoms]:
    """The configured crystal files (``validation.structures``), else each element's
    reference crystal."""
    return load_crystals(structures) if structures else default_crystals(elements)
