"""The adaptive kMC loop: process tables per state, kMC steps, clock, halt on extrapolation.

The loop is the same for both engines; a *searcher* does the relaxations and saddle
searches (in process on pyeonclient, or as eonclient jobs). Each state's processes are
found by displacement-based saddle searches around epicentres (under-coordinated atoms
and, with ACE, atoms whose gamma is above the lower threshold; never fixed atoms), each
new one completed with its symmetry-equivalent copies, until the confidence or the
search budget is reached. A state equal to a known one up to relabelled atoms and a
translation (the vacancy one hop further) reuses that table, mapped onto it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from ase import Atoms
from ase.io import write
from ase.neighborlist import NeighborList

from pyacemaker.config import KMCConfig
from pyacemaker.stages.explore.kmc.identity import StateMapping, find_mapping, fixed_mask
from pyacemaker.stages.explore.kmc.processes import Process, ProcessTable
from pyacemaker.stages.explore.kmc.symmetry import equivalent_copies, symmetry_operations
from pyacemaker.stages.explore.kmc.rates import kmc_step
from pyacemaker.stages.explore.kmc.search import KMCHalt, SearchOutcome
from pyacemaker.stages.explore.kmc.watchdog import GammaWatchdog
from pyacemaker.stages.explore.result import ExplorationResult, ExplorationTask

MAX_FRAMES = 20


class Searcher(Protocol):
    def relax(self, atoms: Atoms) -> tuple[Atoms, float]: ...

    def search(self, reactant: Atoms, energy: float,
               displacement: np.ndarray) -> SearchOutcome: ...

    def rate(self, barrier: float, prefactor: float) -> float: ...


@dataclass
class KMCStepRecord:
    step: int
    time_s: float  # simulated time after this step
    dt_s: float
    barrier: float
    rate: float
    total_rate: float
    processes: int
    searches: int
    confidence: float
    energy_before: float
    energy_after: float
    table: int = 0  # index of the process table the step used


@dataclass
class KMCRun:
    """Everything one kMC task produced; ``result`` is the exploration contract."""

    result: ExplorationResult
    steps: list[KMCStepRecord] = field(default_factory=list)
    tables: list[ProcessTable] = field(default_factory=list)
    states: list[Atoms] = field(default_factory=list)
    simulated_time_s: float = 0.0


def coordination_numbers(atoms: Atoms, scale: float = 1.2) -> np.ndarray:
    """Neighbours within ``scale`` x the shortest interatomic distance."""
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    cutoff = scale * float(distances.min())
    nl = NeighborList([cutoff / 2] * len(atoms), skin=0.0, self_interaction=False,
                      bothways=True)
    nl.update(atoms)
    return np.array([len(nl.get_neighbors(i)[0]) for i in range(len(atoms))])


def epicentres(atoms: Atoms, gamma: np.ndarray | None, gamma_lower: float,
               override: Sequence[int] | None = None) -> list[int]:
    """Atoms around which searches start: given ones, else uncertain + under-coordinated;
    never a fixed atom (a search from a frozen atom cannot move it)."""
    fixed = fixed_mask(atoms)
    if override:
        bad = [i for i in override if not 0 <= i < len(atoms)]
        if bad:
            raise ValueError(f"task field 'epicentres': atom indices {bad} out of range "
                             f"for {len(atoms)} atoms")
        frozen = [i for i in override if fixed[i]]
        if frozen:
            raise ValueError(f"task field 'epicentres': atoms {frozen} are fixed (FixAtoms)")
        return list(override)
    chosen: set[int] = set()
    if gamma is not None:
        chosen |= {int(i) for i in np.flatnonzero(gamma > gamma_lower)}
    coordination = coordination_numbers(atoms)
    free_coordination = coordination[~fixed] if (~fixed).any() else coordination
    chosen |= {int(i) for i in np.flatnonzero(coordination < free_coordination.max())}
    chosen -= {int(i) for i in np.flatnonzero(fixed)}
    return sorted(chosen) or [int(i) for i in np.flatnonzero(~fixed)]


def initial_displacement(atoms: Atoms, centre: int, settings: KMCConfig,
                         rng: np.random.Generator) -> np.ndarray:
    """Gaussian kick of the epicentre and its free neighbours; without net translation
    when no atom is fixed (fixed atoms are never moved)."""
    distances = atoms.get_distances(centre, range(len(atoms)), mic=True)
    fixed = fixed_mask(atoms)
    kicked = np.flatnonzero((distances <= settings.displace_radius) & ~fixed)
    displacement = np.zeros((len(atoms), 3))
    displacement[kicked] = rng.normal(0.0, settings.displacement, (len(kicked), 3))
    if not fixed.any():
        # A net translation in the kick sends the dimer drifting along the zero modes.
        displacement -= displacement.mean(axis=0)
    return displacement


class AKMC:
    """One kMC task: states, tables, steps; stops at max steps, dead end, or a halt."""

    def __init__(self, task: ExplorationTask, searcher: Searcher, settings: KMCConfig,
                 workdir: Path, watchdog: GammaWatchdog | None,
                 notes: Sequence[str] = ()):
        self.task = task
        self.notes = list(notes)  # said in the log, e.g. how a slab was embedded
        self.searcher = searcher
        self.settings = settings
        self.workdir = workdir
        self.watchdog = watchdog
        self.rng = np.random.default_rng(task.seed)
        self.tables: list[ProcessTable] = []
        self.frames: list[Atoms] = []
        self.gamma_history: list[tuple[int, float]] = []
        self._step_gamma = 0.0

    # ------------------------------------------------------------------ gamma bookkeeping
    def _segment(self) -> None:
        if self.watchdog is None:
            return
        self.watchdog.reset_segment()

    def _end_segment(self) -> None:
        if self.watchdog is None or not self.watchdog.has_gamma:
            return
        self._step_gamma = max(self._step_gamma, self.watchdog.segment_max_gamma)
        frame = self.watchdog.segment_frame
        if frame is not None:
            self.frames.append(self._label(frame, "kmc_frame"))
            self.frames.sort(key=lambda f: -f.info["gamma_max"])
            del self.frames[MAX_FRAMES:]

    def _close_step(self, step: int) -> None:
        if self.watchdog is not None and self.watchdog.has_gamma:
            self.gamma_history.append((step, self._step_gamma))
        self._step_gamma = 0.0

    def _label(self, frame: Atoms, provenance: str) -> Atoms:
        frame = frame.copy()
        frame.info.update(provenance=provenance, source_task=self.task.name,
                          iteration=self.task.iteration)
        return frame

    def _state_gamma(self) -> np.ndarray | None:
        if self.watchdog is None or not self.watchdog.has_gamma:
            return None
        return self.watchdog.results.get("gamma")

    # ------------------------------------------------------------------ the loop
    def known_table(self, state: Atoms) -> tuple[int, StateMapping] | None:
        """The table of a state equivalent to ``state``, with the mapping onto it."""
        for index, table in enumerate(self.tables):
            mapping = find_mapping(table.reactant, state)
            if mapping is not None:
                return index, mapping
        return None

    def table_for(self, state: Atoms, energy: float) -> tuple[int, StateMapping]:
        known = self.known_table(state)
        if known is not None:
            return known
        table = ProcessTable(reactant=state.copy(), energy=energy)
        self.tables.append(table)
        operations = (symmetry_operations(state, self.settings.symmetry_tolerance)
                      if self.settings.symmetry else [])
        table.symmetry_operations = max(len(operations), 1)
        centres = epicentres(state, self._state_gamma(), self.settings.gamma_lower,
                             self.task.epicentres)
        while table.searches < self.settings.searches_per_state:
            centre = int(self.rng.choice(centres))
            displacement = initial_displacement(state, centre, self.settings, self.rng)
            table.searches += 1
            self._segment()
            try:
                outcome = self.searcher.search(state, energy, displacement)
            finally:
                self._end_segment()
            if not outcome.good:
                table.discard(outcome.status)
                continue
            assert outcome.barrier is not None and outcome.prefactor is not None
            assert outcome.saddle is not None and outcome.product is not None
            process = Process(barrier=outcome.barrier, prefactor=outcome.prefactor,
                              rate=self.searcher.rate(outcome.barrier, outcome.prefactor),
                              saddle=outcome.saddle, product=outcome.product,
                              product_energy=float(outcome.product_energy or 0.0),
                              epicentre=centre)
            copies = (equivalent_copies(state, process.saddle, process.product, operations)
                      if operations and table.known(process) is None else None)
            table.add(process, copies)
            if table.good_searches >= 2 and table.confidence() >= self.settings.confidence:
                break
        return len(self.tables) - 1, _identity(state)  # the table's reactant is state

    def run(self, start: Atoms) -> KMCRun:
        steps: list[KMCStepRecord] = []
        states: list[Atoms] = []
        clock = 0.0
        step = 0
        halted, message, halt_frames = False, "", []
        energies: list[tuple[int, float]] = []
        max_steps = self.task.steps
        try:
            self._segment()
            state, energy = self.searcher.relax(start)
            self._end_segment()
            states.append(state)
            energies.append((0, energy))
            for step in range(1, max_steps + 1):
                index, mapping = self.table_for(state, energy)
                table = self.tables[index]
                table.visits += 1
                if not table.processes:
                    message = (f"no process found from state {len(states) - 1} in "
                               f"{table.searches} searches")
                    self._close_step(step)
                    step -= 1
                    break
                chosen, dt = kmc_step(table.rates(), self.rng)
                process = table.processes[chosen]
                clock += dt
                steps.append(KMCStepRecord(
                    step=step, time_s=clock, dt_s=dt, barrier=process.barrier,
                    rate=process.rate, total_rate=table.total_rate(),
                    processes=len(table.processes), searches=table.searches,
                    confidence=table.confidence(), energy_before=energy,
                    energy_after=process.product_energy, table=index))
                state = mapping.apply(process.product, template=state)
                energy = process.product_energy
                states.append(state)
                energies.append((step, energy))
                self._close_step(step)
            else:
                step = max_steps
            steps_done = len(steps)
        except KMCHalt as halt:
            self._close_step(step)
            halt_gamma = float(halt.frame.info["gamma_max"])
            if self.gamma_history and self.gamma_history[-1][0] == step:
                self.gamma_history[-1] = (step, max(self.gamma_history[-1][1], halt_gamma))
            else:
                self.gamma_history.append((step, halt_gamma))
            halted = True
            message = str(halt)
            halt_frame = self._label(halt.frame, "kmc_halt")
            halt_frame.info["kmc_step"] = step
            halt_frame.info["kmc_stage"] = halt.where
            halt_frames = [halt_frame]
            steps_done = len(steps)
        if not message:
            message = f"{len(steps)} kMC steps, simulated time {clock:.3e} s"
        message = "; ".join([*self.notes, message])
        result = ExplorationResult(
            task=self.task, halted=halted, halt_step=step if halted else None,
            steps_done=steps_done, gamma_history=self.gamma_history,
            frames=halt_frames + self.frames, message=message, energy_history=energies)
        run = KMCRun(result=result, steps=steps, tables=self.tables, states=states,
                     simulated_time_s=clock)
        self._write_log(run)
        return run

    def _write_log(self, run: KMCRun) -> None:
        log = {
            "task": self.task.name, "halted": run.result.halted,
            "halt_step": run.result.halt_step, "message": run.result.message,
            "simulated_time_s": run.simulated_time_s,
            "steps": [asdict(s) for s in run.steps],
            "notes": self.notes,
            "residence_time": residence_time_check(run.steps),
            "tables": [t.summary() for t in run.tables],
            "gamma_history": run.result.gamma_history,
        }
        (self.workdir / "kmc_log.json").write_text(json.dumps(log, indent=1, default=_json))
        if run.states:
            write(self.workdir / "states.extxyz", run.states)
        if run.result.frames:
            write(self.workdir / "frames.extxyz", run.result.frames)


def residence_time_check(steps: Sequence[KMCStepRecord]) -> dict[str, float | int]:
    """Mean drawn residence time against the mean of 1/R (its expectation): their ratio
    should be 1 within about 1/sqrt(steps)."""
    if not steps:
        return {"steps": 0}
    drawn = float(np.mean([s.dt_s for s in steps]))
    expected = float(np.mean([1.0 / s.total_rate for s in steps]))
    return {"steps": len(steps), "mean_dt_s": drawn, "mean_expected_dt_s": expected,
            "ratio": drawn / expected, "expected_spread": 1.0 / math.sqrt(len(steps))}


def _identity(atoms: Atoms) -> StateMapping:
    return StateMapping(np.arange(len(atoms)), np.zeros(3), 0.0)


def _json(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value)}")
