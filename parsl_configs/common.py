"""Pieces every factory shares: worker environment, block launcher, the HTEX of a stage
class, monitoring and the Config itself."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.executors.base import ParslExecutor
from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost
from parsl.launchers import SingleNodeLauncher, SrunLauncher
from parsl.launchers.base import Launcher
from parsl.monitoring.monitoring import MonitoringHub
from parsl.providers.base import ExecutionProvider

from pyacemaker.config import SiteConfig, StageClass, StageResources

MONITORING_DB = "monitoring.db"


def monitoring_db_path(run_dir: Path) -> Path:
    """Where a run's Parsl monitoring database lives: next to the campaign's files."""
    return (Path(run_dir) / MONITORING_DB).resolve()


def monitoring_hub(site: SiteConfig, run_dir: Path) -> MonitoringHub | None:
    if not site.monitoring.enabled:
        return None
    interval = site.monitoring.resource_monitoring_interval
    return MonitoringHub(
        logging_endpoint=f"sqlite:///{monitoring_db_path(run_dir)}",
        workflow_name=site.name,
        resource_monitoring_enabled=interval > 0,
        resource_monitoring_interval=interval or 30,
    )


def worker_init(site: SiteConfig) -> str:
    """Shell lines run before a worker pool starts: the site's lines, then our venv on PATH
    (HTEX starts process_worker_pool.py from PATH)."""
    venv_bin = str(Path(sys.executable).parent)
    lines = list(site.environment)
    lines.append(f'export PATH="{venv_bin}:$PATH"')
    lines.append("export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
    lines.append(f'export PYTHONPATH="{os.pathsep.join(p for p in sys.path if p)}"')
    return "\n".join(lines)


class SitePolling:
    """Mixin for a Parsl provider: poll the scheduler every ``poll_s`` seconds (Parsl's
    cluster providers hard-code 60 s). A block that ended is only replaced after a poll has
    seen it end, so this bounds how long a cancelled job's tasks wait for a new block."""

    poll_s: float = 60.0

    @property
    def status_polling_interval(self) -> float:
        return self.poll_s


def block_launcher(res: StageResources) -> Launcher:
    """How a batch job starts its worker pools: one pool per node through srun, or one pool
    on the job's first node (SingleNodeLauncher; programs then reach the other nodes of a
    multi-node block with their own srun/mpirun)."""
    return SrunLauncher() if res.block_launcher == "srun" else SingleNodeLauncher()


def htex(site: SiteConfig, stage: StageClass,
         provider: ExecutionProvider) -> HighThroughputExecutor:
    """The executor of one stage class: ``max_parallel_tasks`` workers per node."""
    res = site.resources[stage]
    return HighThroughputExecutor(
        label=stage,
        address=site.htex_address,
        max_workers_per_node=res.max_parallel_tasks,
        cores_per_worker=res.cores_per_task,
        heartbeat_period=site.heartbeat_period_s,
        heartbeat_threshold=site.heartbeat_threshold_s,
        provider=provider,
    )


INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (ManagerLost, WorkerLost)
NO_RETRY = 1_000_000.0


def retry_infrastructure_only(exception: BaseException, task_record: Any) -> float:
    """Parsl retry_handler: a lost worker pool or worker (cancelled or timed-out job, dead
    node) costs 1 retry; an exception raised by the app itself is final, since rerunning
    the same inputs gives the same failure (DFT healing changes the inputs, in the oracle)."""
    return 1.0 if isinstance(exception, INFRASTRUCTURE_ERRORS) else NO_RETRY


def assemble(site: SiteConfig, run_dir: Path, executors: Sequence[ParslExecutor]) -> Config:
    return Config(
        executors=list(executors),
        run_dir=str(run_dir / "runinfo"),
        monitoring=monitoring_hub(site, run_dir),
        retries=site.infrastructure_retries,
        retry_handler=retry_infrastructure_only,
        strategy_period=0.5,
        max_idletime=60.0,
        initialize_logging=True,
    )
