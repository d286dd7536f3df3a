"""A SLURM cluster: one HTEX per stage class, each with its own SlurmProvider.

Multi-node blocks use SrunLauncher (one worker pool per node); single-node blocks use
SingleNodeLauncher. Programs inside a task are started by srun/mpirun per the site's
``mpi_launcher`` (see pyacemaker.programs.Launch).
"""

from __future__ import annotations

from pathlib import Path

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SingleNodeLauncher, SrunLauncher
from parsl.providers import SlurmProvider

from parsl_configs.common import assemble, worker_init
from pyacemaker.config import STAGE_CLASSES, SiteConfig


def make_config(site: SiteConfig, run_dir: Path) -> Config:
    executors = []
    for stage in STAGE_CLASSES:
        res = site.resources[stage]
        launcher = SrunLauncher() if res.block_launcher == "srun" else SingleNodeLauncher()
        cores_per_node = res.cores_per_task * res.max_parallel_tasks
        provider = SlurmProvider(
            partition=site.partition,
            account=site.account,
            nodes_per_block=res.nodes,
            cores_per_node=cores_per_node,
            init_blocks=0,
            min_blocks=0,
            max_blocks=res.max_blocks,
            walltime=res.walltime,
            scheduler_options=site.scheduler_options,
            worker_init=worker_init(site),
            exclusive=False,
            launcher=launcher,
        )
        executors.append(HighThroughputExecutor(
            label=stage,
            address=site.htex_address,
            max_workers_per_node=res.max_parallel_tasks,
            cores_per_worker=res.cores_per_task,
            provider=provider,
        ))
    return assemble(site, run_dir, executors)
