"""One kMC task in a fresh child process.

The in-process eOn client redirects the process's stdout/stderr file descriptors while it
works and is native code that can crash; on a thread-pool executor neither may reach the
driver (its terminal output vanished into eon_client.log before this)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ase import Atoms

from pyacemaker.config import KMCConfig
from pyacemaker.programs import Launch
from pyacemaker.stages.explore.result import ExplorationResult, ExplorationTask
from pyacemaker.state import PotentialRecord


def run_kmc_in_child(task: ExplorationTask, start: Atoms, potential: PotentialRecord,
                     settings: KMCConfig, workdir: Path,
                     eon_launch: Launch | None = None) -> ExplorationResult:
    from pyacemaker.stages.explore.kmc import run_kmc

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(run_kmc, task, start, potential, settings, Path(workdir), None,
                             eon_launch)
        try:
            return future.result()
        except BrokenProcessPool as exc:
            raise RuntimeError(
                f"kMC task {task.name}: its process died without a result (a native crash "
                f"or a kill); the eOn client's output is in {Path(workdir) / 'eon_client.log'}"
            ) from exc
