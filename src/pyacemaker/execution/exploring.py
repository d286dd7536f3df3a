"""Many MD explorations at once, as Parsl apps on the site's ``md`` executor.

Each task runs :func:`pyacemaker.stages.explore.md.run_exploration` in its own folder
``<workdir>/<task.name>`` with the site's MPI launch for LAMMPS. Outcomes are yielded the
moment each run finishes, so the caller can store frames before the slowest run ends; a
failed run becomes an outcome carrying its error and never loses the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from pyacemaker.config import CampaignConfig
from pyacemaker.execution.engine import Engine, launch_for
from pyacemaker.programs import Launch
from pyacemaker.stages.explore.md import run_exploration
from pyacemaker.stages.explore.result import ExplorationResult, ExplorationTask
from pyacemaker.state import PotentialRecord

CONTAINER_LMP = "lmp"


@dataclass
class ExplorationOutcome:
    task: ExplorationTask
    result: ExplorationResult | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


@dataclass(frozen=True)
class ExplorationJob:
    """Everything one worker needs (picklable)."""

    task: ExplorationTask
    start: Atoms
    workdir: str


def explore_one(job: ExplorationJob, potential: PotentialRecord, gamma_lower: float,
                gamma_upper: float, gamma_every: int, launch: Launch | None,
                lmp: str | None, timeout_s: float | None,
                max_frames: int) -> ExplorationResult:
    """The Parsl app body: one exploration in its folder."""
    return run_exploration(job.task, job.start, potential, gamma_lower, gamma_upper,
                           Path(job.workdir), gamma_every=gamma_every, launch=launch, lmp=lmp,
                           timeout_s=timeout_s, max_frames=max_frames)


def explore_many(engine: Engine, tasks: Sequence[ExplorationTask], pool: Sequence[Atoms],
                 potential: PotentialRecord, config: CampaignConfig,
                 workdir: Path) -> Iterator[ExplorationOutcome]:
    """Run ``tasks`` on the ``md`` executor; task k starts from
    ``pool[task.structure_index % len(pool)]``. Yields outcomes as runs finish."""
    if not pool:
        raise ValueError("explore_many: the start-structure pool is empty")
    workdir = Path(workdir).resolve()
    jobs = [ExplorationJob(task, pool[task.structure_index % len(pool)],
                           str(workdir / task.name)) for task in tasks]
    needs_lammps = any(task.engine == "lammps" for task in tasks)
    launch = launch_for(engine.site, "md", "lammps-ace") if needs_lammps else None
    lmp = engine.site.programs.lmp
    if lmp is None and launch is not None and launch.container_runtime != "none":
        lmp = CONTAINER_LMP  # the image's LAMMPS has ML-PACE built in; no host plugin
    settings = config.exploration
    al = config.active_learning
    for job, future in engine.map(
            "md", explore_one, jobs, potential=potential, gamma_lower=al.gamma_lower,
            gamma_upper=al.gamma_upper, gamma_every=settings.gamma_every, launch=launch,
            lmp=lmp, timeout_s=settings.timeout_s,
            max_frames=settings.max_frames_per_run):
        try:
            yield ExplorationOutcome(job.task, future.result())
        except Exception as exc:  # one failed run must not lose the others
            yield ExplorationOutcome(job.task, None, f"{type(exc).__name__}: {exc}")
