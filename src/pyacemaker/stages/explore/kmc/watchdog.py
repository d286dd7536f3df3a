"""The gamma watchdog: an ASE calculator wrapper that checks extrapolation on every call.

Every energy/force request of the saddle searches and minimizations goes through
:class:`GammaWatchdog`. With an ACE potential and its active set, the wrapped
``PyACECalculator`` reports the per-atom extrapolation grade ``gamma``; a call whose
max gamma exceeds the upper threshold records the configuration (:attr:`halt_frame`)
and raises :class:`ExtrapolationHalt`. eOn's C++ code does not always let a Python
exception through (some paths carry on with the last values), so once tripped the
watchdog answers every further call with a flat, very high energy that ends any
search or minimization at once, and callers check :attr:`GammaWatchdog.halt_frame`
after each native call. Without gamma (EMT, any non-ACE calculator) it only counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from pyacemaker.state import PotentialRecord


TRIPPED_ENERGY = 1.0e6  # eV, answered after a halt so the C++ search stops at once


class ExtrapolationHalt(RuntimeError):
    """A force call met max gamma above the upper threshold."""


class GammaWatchdog(Calculator):
    """Wraps ``inner``; reads per-atom gamma from ``gamma_source.results['gamma']``."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, inner: Calculator, gamma_source: Calculator | None,
                 gamma_lower: float, gamma_upper: float):
        super().__init__()
        self.inner = inner
        self.gamma_source = gamma_source
        self.gamma_lower = gamma_lower
        self.gamma_upper = gamma_upper
        self.calls = 0
        self.halt_frame: Atoms | None = None
        self.armed = True
        self.reset_segment()

    @property
    def has_gamma(self) -> bool:
        return self.gamma_source is not None

    def reset_segment(self) -> None:
        """Start a new segment (one search).

        Tracks the segment's max gamma and its most uncertain configuration between the
        lower and the upper threshold (a candidate next to the halt, if it halts).
        """
        self.segment_max_gamma = 0.0
        self.segment_frame: Atoms | None = None

    def calculate(self, atoms: Atoms | None = None, properties: Any = None,
                  system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None
        if self.halt_frame is not None:
            self.results = {"energy": TRIPPED_ENERGY, "free_energy": TRIPPED_ENERGY,
                            "forces": np.zeros((len(self.atoms), 3))}
            return
        work = self.atoms.copy()
        work.calc = self.inner
        energy = work.get_potential_energy()
        forces = work.get_forces()
        self.calls += 1
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if self.gamma_source is None:
            return
        gamma = np.asarray(self.gamma_source.results["gamma"], dtype=float)
        self.results["gamma"] = gamma
        gamma_max = float(gamma.max())
        if (self.gamma_lower < gamma_max <= self.gamma_upper
                and gamma_max > (self.segment_frame.info["gamma_max"]
                                 if self.segment_frame is not None else 0.0)):
            self.segment_frame = _frame(self.atoms, gamma)  # most uncertain, not halting
        self.segment_max_gamma = max(self.segment_max_gamma, gamma_max)
        if self.armed and gamma_max > self.gamma_upper:
            self.halt_frame = _frame(self.atoms, gamma)
            raise ExtrapolationHalt(
                f"max gamma {gamma_max:.2f} > gamma_upper {self.gamma_upper} "
                f"(force call {self.calls})"
            )


def _frame(atoms: Atoms, gamma: np.ndarray) -> Atoms:
    frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell,
                  pbc=atoms.pbc)
    frame.arrays["gamma"] = gamma.copy()
    frame.info["gamma_max"] = float(gamma.max())
    return frame


def resolve_potential_file(path: str | None, what: str, base: Path | None = None) -> Path:
    """A potential file of a record as an existing absolute path, or a clear error."""
    if not path:
        raise FileNotFoundError(f"potential record has no {what} file")
    candidate = Path(path)
    if not candidate.is_absolute() and base is not None:
        candidate = base / candidate
    if not candidate.is_file():
        raise FileNotFoundError(f"potential {what} file not found: {candidate}")
    return candidate.resolve()


def ace_watchdog(record: PotentialRecord, gamma_lower: float, gamma_upper: float,
                 base: Path | None = None) -> GammaWatchdog:
    """ACE calculator with its active set (gamma on every call) behind a watchdog.

    The B-basis ``.yaml`` and the ``.asi`` active set are required: without the active set
    there is no gamma and the watchdog could not halt. An explicit delta-learning baseline
    or reference energies in the record are added like the trainer's total-energy
    calculator does, so barriers are those of the deployed potential.
    """
    from pyace import PyACECalculator

    yaml_path = resolve_potential_file(record.yaml, "B-basis yaml", base)
    asi_path = resolve_potential_file(record.asi, "active set (.asi)", base)
    ace = PyACECalculator(str(yaml_path))
    ace.set_active_set(str(asi_path))
    inner: Calculator = ace
    baseline = record.baseline
    references = record.reference_energies
    if baseline or references:
        from ase.calculators.mixing import SumCalculator

        from pyacemaker.stages.baseline import ReferenceEnergyCalculator, baseline_from_dict

        parts: list[Calculator] = [ace]
        if baseline:
            parts.append(baseline_from_dict(baseline).calculator())
        if references:
            parts.append(ReferenceEnergyCalculator(references))
        inner = SumCalculator(parts)
    return GammaWatchdog(inner, ace, gamma_lower, gamma_upper)
