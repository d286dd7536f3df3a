"""The contract between the exploration policy, the engines and the driver."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ase import Atoms

Engine = Literal["ase", "lammps", "kmc"]


@dataclass
class ExplorationTask:
    """One exploration run the policy asks for."""

    name: str
    engine: Engine
    temperature: float = 300.0
    temperature_end: float | None = None  # a ramp when set
    pressure_gpa: float | None = None  # None: NVT; a value: NPT
    steps: int = 1000
    timestep_fs: float = 1.0
    seed: int = 0
    structure_index: int = 0  # which start structure of the pool
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExplorationResult:
    task: ExplorationTask
    halted: bool
    halt_step: int | None
    steps_done: int
    gamma_history: list[tuple[int, float]]  # (step, max gamma over atoms)
    frames: list[Atoms] = field(default_factory=list)
    message: str = ""
    # (step, potential energy in eV of the engine's model) at every gamma check; MD fills it
    energy_history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def max_gamma(self) -> float:
        return max((g for _, g in self.gamma_history), default=0.0)

    def summary(self) -> dict[str, Any]:
        """The record of this run in an iteration's ``explore/summary.json``."""
        return {"task": asdict(self.task), "halted": self.halted, "halt_step": self.halt_step,
                "steps_done": self.steps_done, "max_gamma": self.max_gamma,
                "n_frames": len(self.frames), "message": self.message}
