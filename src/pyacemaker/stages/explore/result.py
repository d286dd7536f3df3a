"""The contract between the exploration policy, the engines and the driver.

:class:`ExplorationTask` is what the policy asks an engine to run (every field typed; an
engine reads the ones it needs). :class:`ExplorationRecord` is the one schema of an
iteration's ``explore/summary.json``: the driver writes it with :func:`write_records`, and
the policy and the report read it back with :func:`read_records`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ase import Atoms

Engine = Literal["ase", "lammps", "kmc"]


@dataclass
class ExplorationTask:
    """One exploration run the policy asks for.

    ``steps`` is the run's length in the engine's steps (MD steps, kMC steps);
    ``temperature`` its temperature (for kMC: of the harmonic-TST rates)."""

    name: str
    engine: Engine
    temperature: float = 300.0
    temperature_end: float | None = None  # a ramp when set
    pressure_gpa: float | None = None  # None: NVT; a value: NPT
    steps: int = 1000
    timestep_fs: float = 1.0
    seed: int = 0
    structure_index: int = 0  # which start structure of the pool
    iteration: int = 0  # the campaign iteration that asked for it
    walkers: int = 1  # how many tasks of the same condition run in this iteration
    reason: str = ""  # why the policy asked for it, for the log
    n_atoms: int = 0  # MD: grow the start cell to about this many atoms (0: as it is)
    epicentres: tuple[int, ...] | None = None  # kMC: atoms to search from (None: chosen)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ExplorationTask:
        """Back from its JSON form; also reads the ``options`` dict of campaigns written
        before the fields were typed (``max_steps`` there is kMC's ``steps``)."""
        values = dict(record)
        legacy = values.pop("options", None) or {}
        known = {f.name for f in fields(cls)}
        for key, value in legacy.items():
            key = "steps" if key == "max_steps" else key
            if key in known:
                values[key] = value
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"exploration task record has unknown fields {unknown}")
        if values.get("epicentres") is not None:
            values["epicentres"] = tuple(int(i) for i in values["epicentres"])
        return cls(**values)


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

    def record(self) -> ExplorationRecord:
        return ExplorationRecord(task=self.task, halted=self.halted, halt_step=self.halt_step,
                                 steps_done=self.steps_done, max_gamma=self.max_gamma,
                                 n_frames=len(self.frames), message=self.message)


@dataclass(frozen=True)
class ExplorationRecord:
    """One finished exploration task as an iteration's ``explore/summary.json`` keeps it."""

    task: ExplorationTask
    halted: bool
    halt_step: int | None
    steps_done: int
    max_gamma: float = 0.0
    n_frames: int = 0
    message: str = ""

    @property
    def iteration(self) -> int:
        return self.task.iteration

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ExplorationRecord:
        try:
            task = ExplorationTask.from_dict(record["task"])
            if "iteration" in record and not task.iteration:
                task.iteration = int(record["iteration"])
            return cls(task=task, halted=bool(record["halted"]),
                       halt_step=record.get("halt_step"), steps_done=int(record["steps_done"]),
                       max_gamma=float(record.get("max_gamma", 0.0)),
                       n_frames=int(record.get("n_frames", 0)),
                       message=str(record.get("message", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"exploration record lacks or mangles {exc}: {record!r}") from exc


def write_records(path: Path, records: list[ExplorationRecord]) -> None:
    Path(path).write_text(json.dumps([r.to_dict() for r in records], indent=1))


def read_records(path: Path) -> list[ExplorationRecord]:
    """The records of one ``summary.json`` (none when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete it to rerun the "
                         "exploration of that iteration") from exc
    try:
        return [ExplorationRecord.from_dict(item) for item in raw]
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
