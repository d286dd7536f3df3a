"""Many explorations at once, as Parsl apps on the site's ``md`` executor.

Each task runs in its own folder ``<workdir>/<task.name>`` through its engine's ``run``
(:mod:`pyacemaker.stages.explore.engines`); this module only adds what the site decides:
the MPI launch and container of LAMMPS, the site's LAMMPS or plugin, the eonclient launch.
Outcomes are yielded the moment each run finishes, so the caller can store frames before
the slowest run ends; a failed run becomes an outcome carrying its error and never loses
the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from pyacemaker.config import CampaignConfig, SiteConfig
from pyacemaker.execution.engine import Engine, launch_for
from pyacemaker.stages.explore.engines import RunContext, engine_for
from pyacemaker.stages.explore.result import ExplorationResult, ExplorationTask
from pyacemaker.state import PotentialRecord

CONTAINER_LMP = "lmp"
log = logging.getLogger(__name__)


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
    """Everything one worker needs besides the shared context (picklable)."""

    task: ExplorationTask
    start: Atoms
    workdir: str


def explore_one(job: ExplorationJob, context: RunContext) -> ExplorationResult:
    """The Parsl app body: one exploration in its folder, by its engine."""
    return engine_for(job.task.engine).run(job.task, job.start, Path(job.workdir), context)


def lammps_available(site: SiteConfig, engine_setting: str) -> bool:
    """Whether LAMMPS with ML-PACE is here for the policy; never a silent fall-back to ASE
    MD: ``engine: lammps`` without it is an error, ``auto`` says so in the log."""
    from pyacemaker.stages.explore.lammps import find_pace_plugin, pace_plugin_candidates

    programs = site.programs
    if programs.lmp is not None or site.container.runtime != "none":
        return True
    if find_pace_plugin(configured=programs.pace_plugin) is not None:
        return True
    searched = "; ".join(f"{where}: {path}" for where, path in
                         pace_plugin_candidates(programs.pace_plugin))
    if engine_setting == "lammps":
        raise FileNotFoundError(
            f"exploration.engine is 'lammps' but the ML-PACE plugin is not found ({searched}): "
            "run 'make setup' (or 'make lammps-pace'), or set programs.pace_plugin or "
            "programs.lmp in the site YAML")
    log.warning("   the LAMMPS ML-PACE plugin is not found (%s): MD runs in ASE, which is "
                "slower; 'make lammps-pace' builds the plugin", searched)
    return False


def run_context(engine: Engine, tasks: Sequence[ExplorationTask], potential: PotentialRecord,
                config: CampaignConfig) -> RunContext:
    """The site's programs and launches for these tasks, and the campaign's thresholds."""
    site = engine.site
    needs_lammps = any(task.engine == "lammps" for task in tasks)
    md_launch = launch_for(site, "md", "lammps-ace") if needs_lammps else None
    lmp = site.programs.lmp
    if lmp is None and md_launch is not None and md_launch.container_runtime != "none":
        lmp = CONTAINER_LMP  # the image's LAMMPS has ML-PACE built in; no host plugin
    settings = config.exploration
    uses_eonclient = settings.kmc.engine == "eonclient" and any(
        task.engine == "kmc" for task in tasks)
    eon_launch = launch_for(site, "md", "eon").with_ranks(1) if uses_eonclient else None
    al = config.active_learning
    return RunContext(potential=potential, gamma_lower=al.gamma_lower,
                      gamma_upper=al.gamma_upper, gamma_every=settings.gamma_every,
                      timeout_s=settings.timeout_s, max_frames=settings.max_frames_per_run,
                      kmc=settings.kmc, md_launch=md_launch, lmp=lmp,
                      pace_plugin=site.programs.pace_plugin, eon_launch=eon_launch)


def explore_many(engine: Engine, tasks: Sequence[ExplorationTask],
                 starts: Mapping[str, Sequence[Atoms]], potential: PotentialRecord,
                 config: CampaignConfig, workdir: Path) -> Iterator[ExplorationOutcome]:
    """Run ``tasks`` on the ``md`` executor; a task starts from
    ``starts[task.engine][task.structure_index % len(...)]``. Yields outcomes as runs
    finish."""
    workdir = Path(workdir).resolve()
    jobs = [ExplorationJob(task, _start(task, starts), str(workdir / task.name))
            for task in tasks]
    context = run_context(engine, tasks, potential, config)
    for job, future in engine.map("md", explore_one, jobs, context=context):
        try:
            yield ExplorationOutcome(job.task, future.result())
        except Exception as exc:  # one failed run must not lose the others
            yield ExplorationOutcome(job.task, None, f"{type(exc).__name__}: {exc}")


def _start(task: ExplorationTask, starts: Mapping[str, Sequence[Atoms]]) -> Atoms:
    pool = starts.get(task.engine, ())
    if not pool:
        raise ValueError(f"explore_many: no start structures for engine {task.engine!r} "
                         f"(task {task.name})")
    return pool[task.structure_index % len(pool)]
