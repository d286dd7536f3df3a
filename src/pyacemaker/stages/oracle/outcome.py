"""Reading a pw.x 6.7 run and saying what happened.

Never trusts "JOB DONE" nor the exit status alone: exit 2 means either an unconverged SCF or
the max_seconds limit, exit 0 can hide an unconverged SCF (scf_must_converge=.false.) or
absurd numbers (overlapping atoms). The class is decided from the text, the exit status, the
last estimated SCF accuracy against conv_thr, and sanity checks on the numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from ase.units import Bohr, Ry

from pyacemaker.programs import ProgramResult

OutcomeClass = Literal["converged", "scf_not_converged", "walltime", "crashed", "bad_input",
                       "unphysical"]
RECOVERABLE: frozenset[str] = frozenset({"scf_not_converged", "walltime", "crashed"})

_FLOAT = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eEdD][-+]?\d+)?"
_TOTAL_ENERGY = re.compile(rf"^!\s+total energy\s+=\s+({_FLOAT})\s+Ry", re.MULTILINE)
_SCF_ACCURACY = re.compile(rf"estimated scf accuracy\s+<\s+({_FLOAT})\s+Ry")
_CONVERGED = re.compile(r"convergence has been achieved in\s+(\d+)\s+iterations")
_NOT_CONVERGED = re.compile(r"convergence NOT achieved after\s+(\d+)\s+iterations")
_ITERATION = re.compile(r"^\s+iteration #\s*(\d+)", re.MULTILINE)
_FORCE_LINE = re.compile(
    rf"^\s+atom\s+(\d+)\s+type\s+\d+\s+force =\s+({_FLOAT})\s+({_FLOAT})\s+({_FLOAT})",
    re.MULTILINE)
_MAGN_LINE = re.compile(rf"^\s+atom:\s+(\d+)\s+charge:\s+{_FLOAT}\s+magn:\s+({_FLOAT})",
                        re.MULTILINE)
_TOTAL_MAGN = re.compile(rf"total magnetization\s+=\s+({_FLOAT})\s+Bohr")
_PSEUDO_READ = re.compile(r"PseudoPot\. #\s*\d+ for \S+ read from file:\s*\n\s*(\S+)")
_ERROR = re.compile(r"Error in routine\s+(\S+)\s+\(([-\d]+)\):\s*\n\s*(.+)")
_DIAGONALIZATION_ROUTINES = ("cdiaghg", "rdiaghg", "cegterg", "regterg", "c_bands",
                             "h_psi", "ppcg", "paro", "s_psi")


def _float(text: str) -> float:
    return float(text.replace("d", "e").replace("D", "e"))


@dataclass
class PwOutput:
    """Everything the oracle needs from one pw.x output (eV, eV/A, eV/A^3, Bohr magnetons)."""

    natoms: int
    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None  # ASE Voigt order and sign
    magmoms: np.ndarray | None = None
    total_magnetization: float | None = None
    scf_accuracy_ry: float | None = None
    scf_accuracy_history: list[float] = field(default_factory=list)
    scf_iterations: int = 0
    converged_text: bool = False
    not_converged_text: bool = False
    cpu_time_exceeded: bool = False
    errors: list[tuple[str, str]] = field(default_factory=list)  # (routine, message)
    pseudo_files: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, natoms: int) -> PwOutput:
        out = cls(natoms=natoms)
        energies = _TOTAL_ENERGY.findall(text)
        if energies:
            out.energy = _float(energies[-1]) * Ry
        accuracies = _SCF_ACCURACY.findall(text)
        out.scf_accuracy_history = [_float(a) for a in accuracies]
        if accuracies:
            out.scf_accuracy_ry = out.scf_accuracy_history[-1]
        iterations = _ITERATION.findall(text)
        out.scf_iterations = int(iterations[-1]) if iterations else 0
        out.converged_text = bool(_CONVERGED.search(text))
        out.not_converged_text = bool(_NOT_CONVERGED.search(text))
        out.cpu_time_exceeded = "Maximum CPU time exceeded" in text
        out.errors = [(m.group(1), m.group(3).strip()) for m in _ERROR.finditer(text)]
        out.pseudo_files = _PSEUDO_READ.findall(text)
        out.forces = cls._last_block(_FORCE_LINE, text, natoms, Ry / Bohr)
        magn = cls._last_block(_MAGN_LINE, text, natoms, 1.0, columns=1)
        out.magmoms = None if magn is None else magn[:, 0]
        totals = _TOTAL_MAGN.findall(text)
        if totals:
            out.total_magnetization = _float(totals[-1])
        out.stress = cls._stress(text)
        return out

    @staticmethod
    def _last_block(pattern: re.Pattern[str], text: str, natoms: int, scale: float,
                    columns: int = 3) -> np.ndarray | None:
        rows: dict[int, list[float]] = {}
        matches = list(pattern.finditer(text))
        if len(matches) < natoms:
            return None
        for match in matches[-natoms:]:
            values = [_float(match.group(k)) for k in range(2, 2 + columns)]
            rows[int(match.group(1))] = values
        if sorted(rows) != list(range(1, natoms + 1)):
            return None
        return np.array([rows[i] for i in range(1, natoms + 1)]) * scale

    @staticmethod
    def _stress(text: str) -> np.ndarray | None:
        index = text.rfind("total   stress")
        if index < 0:
            return None
        lines = text[index:].splitlines()[1:4]
        try:
            tensor = np.array([[_float(v) for v in line.split()[:3]] for line in lines])
        except ValueError:
            return None
        if tensor.shape != (3, 3):
            return None
        voigt = np.array([tensor[0, 0], tensor[1, 1], tensor[2, 2],
                          tensor[1, 2], tensor[0, 2], tensor[0, 1]])
        return -voigt * Ry / Bohr**3


@dataclass
class Classification:
    outcome: OutcomeClass
    detail: str
    converging: bool = False  # an unconverged SCF that was still steadily improving

    @property
    def recoverable(self) -> bool:
        return self.outcome in RECOVERABLE


def classify(result: ProgramResult, out: PwOutput, conv_thr: float,
             max_force: float) -> Classification:
    """The outcome class of one pw.x run, from its text first and its exit status second."""
    for routine, message in out.errors:
        if routine.startswith("read") or routine in ("iosys", "card_parser", "cell_base_init"):
            return Classification("bad_input", f"pw.x error in {routine}: {message}")
        if routine in _DIAGONALIZATION_ROUTINES:
            return Classification("scf_not_converged",
                                  f"diagonalization failed in {routine}: {message}")
    if result.timed_out:
        return Classification("walltime", f"killed after the {result.duration_s:.0f} s limit")
    if out.cpu_time_exceeded:
        return Classification("walltime", "pw.x stopped at max_seconds (Maximum CPU time "
                                          "exceeded)")
    if result.signal is not None:
        return Classification("crashed", f"killed by signal {result.signal} "
                                         f"(exit status {result.returncode})")
    if out.not_converged_text:
        converging = steadily_converging(out.scf_accuracy_history)
        return Classification("scf_not_converged",
                              f"convergence NOT achieved after {out.scf_iterations} iterations "
                              f"(last estimated scf accuracy {out.scf_accuracy_ry} Ry"
                              f"{', still improving' if converging else ''})", converging)
    if out.errors:
        routine, message = out.errors[0]
        return Classification("crashed", f"pw.x error in {routine}: {message}")
    if result.returncode != 0:
        return Classification("crashed", f"exit status {result.returncode} without a known "
                                          "pw.x message (MPI abort or crash)")
    if out.energy is None or out.forces is None:
        return Classification("crashed", "exit 0 but no total energy or forces in the output")
    if not out.converged_text or out.scf_accuracy_ry is None or out.scf_accuracy_ry > conv_thr:
        return Classification("scf_not_converged",
                              f"exit 0 but SCF accuracy {out.scf_accuracy_ry} Ry is above "
                              f"conv_thr {conv_thr:g} Ry (scf_must_converge trap)")
    return sanity_check(out, max_force)


def steadily_converging(history: list[float]) -> bool:
    """True when the SCF error fell by 100x overall and kept falling over the last steps:
    the run was merely cut short, so continuing it is the cure."""
    if len(history) < 2 or min(history) <= 0:
        return False
    tail = history[-3:]
    falling = all(b < a for a, b in zip(tail, tail[1:]))
    return falling and history[-1] < history[0] / 100


def sanity_check(out: PwOutput, max_force: float) -> Classification:
    """Reject numbers no physical structure gives (NaN, huge forces, positive cohesive blow-up)."""
    assert out.energy is not None and out.forces is not None
    if not np.isfinite(out.energy) or not np.all(np.isfinite(out.forces)):
        return Classification("unphysical", "non-finite energy or forces")
    largest = float(np.abs(out.forces).max()) if out.forces.size else 0.0
    if largest > max_force:
        return Classification("unphysical", f"largest force component {largest:.1f} eV/A exceeds "
                                            f"max_force={max_force} eV/A")
    if out.stress is not None and not np.all(np.isfinite(out.stress)):
        return Classification("unphysical", "non-finite stress")
    return Classification("converged", f"converged in {out.scf_iterations} iterations")
