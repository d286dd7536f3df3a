"""Pieces every factory shares: monitoring, worker environment, the Config itself."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from parsl.config import Config
from parsl.executors.base import ParslExecutor
from parsl.monitoring.monitoring import MonitoringHub

from pyacemaker.config import SiteConfig

MONITORING_DB = "monitoring.db"


def monitoring_hub(site: SiteConfig, run_dir: Path) -> MonitoringHub | None:
    if not site.monitoring.enabled:
        return None
    interval = site.monitoring.resource_monitoring_interval
    return MonitoringHub(
        logging_endpoint=f"sqlite:///{(run_dir / MONITORING_DB).resolve()}",
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


def assemble(site: SiteConfig, run_dir: Path, executors: Sequence[ParslExecutor]) -> Config:
    return Config(
        executors=list(executors),
        run_dir=str(run_dir / "runinfo"),
        monitoring=monitoring_hub(site, run_dir),
        retries=1,  # infrastructure failures only; DFT healing happens inside the oracle
        strategy_period=0.5,
        max_idletime=60.0,
        initialize_logging=True,
    )
