"""Many explorations at once, as Parsl apps on the site's ``md`` executor.

Each task runs in its own folder ``<workdir>/<task.name>``: MD tasks through
:func:`pyacemaker.stages.explore.md.run_exploration` with the site's MPI launch for
LAMMPS, kMC tasks (``engine="kmc"``) through :func:`pyacemaker.stages.explore.kmc.run_kmc`. Outcomes are yielded the
moment each run finishes, so the caller can store frames before the slowest run ends; a
failed run becomes an outcome carrying its error and never loses the others.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from pyacemaker.config import CampaignConfig, KMCConfig
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
                max_frames: int, kmc: KMCConfig | None = None,
                pace_plugin: str | None = None,
                eon_launch: Launch | None = None) -> ExplorationResult:
    """The Parsl app body: one exploration in its folder."""
    if job.task.engine == "kmc":
        if kmc is None:
            raise ValueError(f"kMC task {job.task.name!r} without kMC settings")
        return run_kmc_isolated(job, potential, kmc, eon_launch)
    return run_exploration(job.task, job.start, potential, gamma_lower, gamma_upper,
                           Path(job.workdir), gamma_every=gamma_every, launch=launch, lmp=lmp,
                           timeout_s=timeout_s, max_frames=max_frames,
                           pace_plugin=pace_plugin)


def run_kmc_isolated(job: ExplorationJob, potential: PotentialRecord,
                     kmc: KMCConfig, eon_launch: Launch | None = None) -> ExplorationResult:
    """One kMC task in a fresh child process. The in-process eOn client redirects the
    process's stdout/stderr file descriptors while it works and is native code that can
    crash; on a thread-pool executor neither may reach the driver (its terminal output
    vanished into eon_client.log before this)."""
    from pyacemaker.stages.explore.kmc import run_kmc

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(run_kmc, job.task, job.start, potential, kmc, Path(job.workdir),
                             None, eon_launch)
        try:
            return future.result()
        except BrokenProcessPool as exc:
            raise RuntimeError(
                f"kMC task {job.task.name}: its process died without a result (a native "
                f"crash or a kill); the eOn client's output is in "
                f"{Path(job.workdir) / 'eon_client.log'}") from exc


def explore_many(engine: Engine, tasks: Sequence[ExplorationTask], pool: Sequence[Atoms],
                 potential: PotentialRecord, config: CampaignConfig,
                 workdir: Path, kmc_pool: Sequence[Atoms] = ()) -> Iterator[ExplorationOutcome]:
    """Run ``tasks`` on the ``md`` executor; an MD task starts from
    ``pool[task.structure_index % len(pool)]``, a kMC task from ``kmc_pool`` likewise.
    Yields outcomes as runs finish."""
    workdir = Path(workdir).resolve()
    jobs = [ExplorationJob(task, _start(task, pool, kmc_pool), str(workdir / task.name))
            for task in tasks]
    needs_lammps = any(task.engine == "lammps" for task in tasks)
    launch = launch_for(engine.site, "md", "lammps-ace") if needs_lammps else None
    lmp = engine.site.programs.lmp
    if lmp is None and launch is not None and launch.container_runtime != "none":
        lmp = CONTAINER_LMP  # the image's LAMMPS has ML-PACE built in; no host plugin
    settings = config.exploration
    uses_eonclient = settings.kmc.engine == "eonclient" and any(
        task.engine == "kmc" for task in tasks)
    eon_launch = launch_for(engine.site, "md", "eon").with_ranks(1) if uses_eonclient else None
    al = config.active_learning
    for job, future in engine.map(
            "md", explore_one, jobs, potential=potential, gamma_lower=al.gamma_lower,
            gamma_upper=al.gamma_upper, gamma_every=settings.gamma_every, launch=launch,
            lmp=lmp, timeout_s=settings.timeout_s,
            max_frames=settings.max_frames_per_run, kmc=settings.kmc,
            pace_plugin=engine.site.programs.pace_plugin, eon_launch=eon_launch):
        try:
            yield ExplorationOutcome(job.task, future.result())
        except Exception as exc:  # one failed run must not lose the others
            yield ExplorationOutcome(job.task, None, f"{type(exc).__name__}: {exc}")


def _start(task: ExplorationTask, pool: Sequence[Atoms], kmc_pool: Sequence[Atoms]) -> Atoms:
    starts, name = (kmc_pool, "kMC start") if task.engine == "kmc" else (pool, "start-structure")
    if not starts:
        raise ValueError(f"explore_many: the {name} pool is empty (task {task.name})")
    return starts[task.structure_index % len(starts)]
