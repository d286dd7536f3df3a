"""A workstation: every stage class runs on this machine.

``threads`` (default) runs apps in threads of the driver: every heavy step is an external
program, so threads cost nothing and start instantly. ``htex`` gives each stage class its
own process pool, as on a cluster; a pool starts when its stage class gets its first task
(starting all four at once costs ~4 Python start-ups on a 2-core machine).
"""

from __future__ import annotations

from pathlib import Path

from parsl.config import Config
from parsl.executors import HighThroughputExecutor, ThreadPoolExecutor
from parsl.providers import LocalProvider

from parsl_configs.common import assemble, worker_init
from pyacemaker.config import STAGE_CLASSES, SiteConfig


def make_config(site: SiteConfig, run_dir: Path) -> Config:
    executors = []
    for stage in STAGE_CLASSES:
        res = site.resources[stage]
        if site.local_executor == "threads":
            executors.append(ThreadPoolExecutor(label=stage, max_threads=res.max_parallel_tasks))
            continue
        executors.append(HighThroughputExecutor(
            label=stage,
            address="127.0.0.1",
            max_workers_per_node=res.max_parallel_tasks,
            cores_per_worker=res.cores_per_task,
            provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=1,
                                   worker_init=worker_init(site)),
        ))
    return assemble(site, run_dir, executors)
