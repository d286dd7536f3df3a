"""Processes found from one state, de-duplication, and the search confidence."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from ase import Atoms
from ase.geometry import find_mic

from pyacemaker.stages.explore.kmc.identity import fixed_mask


def max_displacement(a: Atoms, b: Atoms) -> float:
    """Largest atom displacement between two structures with the same atom order (A, MIC).

    A rigid translation of a periodic cell with no fixed atom is the same state: the
    mean displacement is removed first.
    """
    if len(a) != len(b) or (a.numbers != b.numbers).any():
        return float("inf")
    diff = b.positions - a.positions
    if a.pbc.any():
        diff, _ = find_mic(diff, a.cell, a.pbc)
        if a.pbc.all() and not fixed_mask(a).any():
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
    orbit: int = 0  # processes of one orbit are symmetry-equivalent copies
    multiplicity: int = 1  # size of the orbit

    def summary(self) -> dict[str, float | int]:
        return {"barrier": self.barrier, "prefactor": self.prefactor, "rate": self.rate,
                "product_energy": self.product_energy, "epicentre": self.epicentre,
                "count": self.count, "orbit": self.orbit, "multiplicity": self.multiplicity}


@dataclass
class ProcessTable:
    """The processes of one state; equal saddles and products count as one process.

    A process found by a search joins with its symmetry-equivalent copies as one orbit;
    the search statistics (confidence) count orbits, since a search that lands on any
    copy has found the orbit.
    """

    reactant: Atoms
    energy: float
    processes: list[Process] = field(default_factory=list)
    searches: int = 0
    good_searches: int = 0
    tolerance: float = 0.2
    barrier_tolerance: float = 0.01
    failures: dict[str, int] = field(default_factory=dict)  # discarded searches by reason
    orbit_hits: list[int] = field(default_factory=list)  # successful searches per orbit
    symmetry_operations: int = 1  # of the reactant, identity included
    visits: int = 0  # kMC steps taken from this state or an equivalent one

    def orbits(self) -> list[dict[str, float | int]]:
        """One row per orbit: barrier, prefactor, rate of one copy, copies, searches."""
        rows = []
        for orbit, hits in enumerate(self.orbit_hits):
            first = next(p for p in self.processes if p.orbit == orbit)
            rows.append({"barrier": first.barrier, "prefactor": first.prefactor,
                         "rate": first.rate, "multiplicity": first.multiplicity,
                         "searches": hits, "product_energy": first.product_energy})
        return rows

    def summary(self) -> dict[str, object]:
        return {"energy": self.energy, "searches": self.searches,
                "good_searches": self.good_searches, "confidence": self.confidence(),
                "discarded": self.failures, "symmetry_operations": self.symmetry_operations,
                "visits": self.visits, "total_rate": self.total_rate(),
                "orbits": self.orbits(),
                "processes": [p.summary() for p in self.processes]}

    def discard(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def known(self, process: Process) -> Process | None:
        for known in self.processes:
            if (abs(known.barrier - process.barrier) < self.barrier_tolerance
                    and same_structure(known.saddle, process.saddle, self.tolerance)
                    and same_structure(known.product, process.product, self.tolerance)):
                return known
        return None

    def add(self, process: Process,
            copies: list[tuple[Atoms, Atoms]] | None = None) -> bool:
        """Record a successful search's process (and its symmetry-equivalent
        ``(saddle, product)`` copies, the process's own first); True when it is new."""
        self.good_searches += 1
        known = self.known(process)
        if known is not None:
            known.count += 1
            self.orbit_hits[known.orbit] += 1
            return False
        orbit = len(self.orbit_hits)
        self.orbit_hits.append(1)
        copies = copies or [(process.saddle, process.product)]
        for k, (saddle, product) in enumerate(copies):
            self.processes.append(replace(process, saddle=saddle, product=product,
                                          count=1 if k == 0 else 0, orbit=orbit,
                                          multiplicity=len(copies)))
        return True

    def confidence(self) -> float:
        """Good-Turing estimate that the next search finds a known orbit of processes.

        1 - N1/N with N1 the orbits found by exactly one search and N the successful
        searches: the probability mass of not yet seen processes is estimated by the
        singletons.
        """
        if self.good_searches == 0:
            return 0.0
        singletons = sum(1 for hits in self.orbit_hits if hits == 1)
        return 1.0 - singletons / self.good_searches

    def rates(self) -> list[float]:
        return [p.rate for p in self.processes]

    def total_rate(self) -> float:
        return float(sum(self.rates()))
