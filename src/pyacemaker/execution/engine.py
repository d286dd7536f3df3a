"""Submit stage functions to the site's Parsl executors."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, as_completed
from pathlib import Path
from typing import Any, TypeVar

import parsl
from parsl.dataflow.dflow import DataFlowKernel

from parsl_configs import factory_for
from pyacemaker.config import SiteConfig, StageClass, Tool
from pyacemaker.execution.monitoring import MonitoringDBError, write_monitoring_summary
from pyacemaker.programs import Launch, ProgramResult, run_program

log = logging.getLogger(__name__)
T = TypeVar("T")

TOOL_OF_STAGE: dict[StageClass, Tool] = {
    "dft": "qe", "train": "pacemaker", "md": "lammps-ace", "light": "pacemaker",
    "teacher": "teacher",
}


def launch_for(site: SiteConfig, stage: StageClass, tool: Tool | None = None) -> Launch:
    """MPI ranks and container image a program of ``stage`` runs with on this site."""
    res = site.resources[stage]
    container = site.container
    tool = tool or TOOL_OF_STAGE[stage]
    image = container.images.get(tool) if container.runtime != "none" else None
    if container.runtime != "none" and image is None:
        raise ValueError(
            f"site {site.name!r}: container.runtime is {container.runtime!r} but "
            f"container.images has no entry for {tool!r}"
        )
    return Launch(
        mpi_launcher=res.mpi_launcher,
        mpi_ranks=res.mpi_ranks,
        container_runtime=container.runtime,
        image=image,
        binds=tuple(container.binds),
        mpirun=site.programs.mpirun.get(tool, "mpirun"),
    )


class Engine:
    """A loaded Parsl DataFlowKernel for one campaign run; use as a context manager."""

    def __init__(self, site: SiteConfig, run_dir: Path):
        self.site = site
        self.run_dir = Path(run_dir).resolve()
        self._dfk: DataFlowKernel | None = None
        self._apps: dict[tuple[Callable[..., Any], str], Callable[..., Future[Any]]] = {}

    def __enter__(self) -> Engine:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = factory_for(self.site.scheduler)(self.site, self.run_dir)
        self._dfk = parsl.load(config)
        log.info("Parsl loaded for site %s (%s), run dir %s", self.site.name,
                 self.site.scheduler, self.run_dir)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._dfk is not None:
            if isinstance(exc_info[1], KeyboardInterrupt):
                # Stopping on a signal: the cleanup would run every queued thread task and
                # wait for the running ones (their programs were stopped, Python work cannot
                # be). Drop the queue and do not wait; the driver exits without them.
                from functools import partial

                from parsl.executors import ThreadPoolExecutor

                for executor in self._dfk.executors.values():
                    if isinstance(executor, ThreadPoolExecutor):
                        executor.executor.shutdown(wait=False, cancel_futures=True)
                        executor.shutdown = partial(  # type: ignore[method-assign]
                            executor.shutdown, block=False)
            self._dfk.cleanup()
            parsl.clear()
            self._dfk = None
            if self.site.monitoring.enabled:
                self._summarize_monitoring()

    def _summarize_monitoring(self) -> None:
        """After the run (the db is complete and closed): monitoring_summary.json for the
        report. A broken db must not fail a finished run: warn and go on."""
        try:
            summary = write_monitoring_summary(self.run_dir)
        except (MonitoringDBError, OSError, sqlite3.Error) as exc:
            log.warning("monitoring summary not written: %s", exc)
            return
        if summary is not None:
            log.info("monitoring summary: %s", summary)

    def submit(self, stage: StageClass, func: Callable[..., T], *args: Any,
               **kwargs: Any) -> Future[T]:
        """Run ``func(*args, **kwargs)`` as a Parsl app on the ``stage`` executor."""
        if self._dfk is None:
            raise RuntimeError("Engine.submit outside 'with Engine(...)'")
        key = (func, stage)
        if key not in self._apps:
            self._apps[key] = parsl.python_app(func, executors=[stage])
        return self._apps[key](*args, **kwargs)

    def run_program(self, stage: StageClass, argv: list[str], workdir: Path,
                    timeout_s: float | None = None, tool: Tool | None = None,
                    check: bool = True, **kwargs: Any) -> Future[ProgramResult]:
        """An external program as a Parsl app, with this site's MPI/container launch."""
        launch = launch_for(self.site, stage, tool)
        return self.submit(stage, run_program, argv, str(workdir), timeout_s, launch,
                           check=check, **kwargs)

    def map(self, stage: StageClass, func: Callable[..., T],
            items: Iterable[Any], **kwargs: Any) -> Iterator[tuple[Any, Future[T]]]:
        """Submit ``func(item, **kwargs)`` for every item; yield (item, future) as each
        finishes, so results can be stored the moment they arrive."""
        futures = {self.submit(stage, func, item, **kwargs): item for item in items}
        for future in as_completed(futures):
            yield futures[future], future
