"""Processes found from one state, de-duplication, and the search confidence."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.geometry import find_mic


def max_displacement(a: Atoms, b: Atoms) -> float:
    """Largest atom displacement between two structures with the same atom order (A, MIC).

    A rigid translation of a periodic cell is the same state: the mean displacement is
    removed first.
    """
    if len(a) != len(b) or (a.numbers != b.numbers).any():
        return float("inf")
    diff = b.positions - a.positions
    if a.pbc.any():
        diff, _ = find_mic(diff, a.cell, a.pbc)
        if a.pbc.all():
            diff -= diff.mean(axis=0)
    return float(np.linalg.norm(diff, axis=1).max(initial=0.0))


def same_structure(a: Atoms, b: Atoms, tolerance: float = 0.2) -> bool:
    return max_displacement(a, b) < tolerance


@dataclass
class Process:
    """reactant -> saddle -> product, found by one saddle search."""

    barrier: float  # eV, E_saddle - E_reactant
    prefactor: float  # 1/s
    rate: float  # 1/s at the task's temperature
    saddle: Atoms
    product: Atoms
    product_energy: float
    epicentre: int
    count: int = 1  # how many searches found it

    def summary(self) -> dict[str, float | int]:
        return {"barrier": self.barrier, "prefactor": self.prefactor, "rate": self.rate,
                "product_energy": self.product_energy, "epicentre": self.epicentre,
                "count": self.count}


@dataclass
class ProcessTable:
    """The processes of one state; equal saddles and products count as one process."""

    reactant: Atoms
    energy: float
    processes: list[Process] = field(default_factory=list)
    searches: int = 0
    good_searches: int = 0
    tolerance: float = 0.2
    barrier_tolerance: float = 0.01
    failures: dict[str, int] = field(default_factory=dict)  # discarded searches by reason

    def discard(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def add(self, process: Process) -> bool:
        """Record a successful search's process; True when it is new."""
        self.good_searches += 1
        for known in self.processes:
            if (abs(known.barrier - process.barrier) < self.barrier_tolerance
                    and same_structure(known.saddle, process.saddle, self.tolerance)
                    and same_structure(known.product, process.product, self.tolerance)):
                known.count += 1
                return False
        self.processes.append(process)
        return True

    def confidence(self) -> float:
        """Good-Turing estimate that the next search finds a known process.

        1 - N1/N with N1 the processes seen exactly once and N the successful searches:
        the probability mass of not yet seen processes is estimated by the singletons.
        """
        if self.good_searches == 0:
            return 0.0
        singletons = sum(1 for p in self.processes if p.count == 1)
        return 1.0 - singletons / self.good_searches

    def rates(self) -> list[float]:
        return [p.rate for p in self.processes]

    def total_rate(self) -> float:
        return float(sum(self.rates()))
