"""A SLURM cluster: one HTEX per stage class, each with its own SlurmProvider.

A block is one batch job running ``max_parallel_tasks`` workers per node: a batch of DFT
labels submitted together runs in one job (the Parsl equivalent of a job array). Worker pools
start with SrunLauncher (one per node) or SingleNodeLauncher (``block_launcher``); programs
inside a task are started by srun/mpirun per the site's ``mpi_launcher``
(see pyacemaker.programs.Launch). A block cancelled or killed by the scheduler is noticed after
``heartbeat_threshold_s`` and its tasks are rerun on a new block (Config.retries).
"""

from __future__ import annotations

from pathlib import Path

from parsl.config import Config
from parsl.providers import SlurmProvider

from parsl_configs.common import SitePolling, assemble, block_launcher, htex, worker_init
from pyacemaker.config import STAGE_CLASSES, SiteConfig, StageClass


class SiteSlurmProvider(SitePolling, SlurmProvider):
    """SlurmProvider polling squeue/sacct at the site's ``scheduler_poll_s``."""


def slurm_provider(site: SiteConfig, stage: StageClass) -> SlurmProvider:
    res = site.resources[stage]
    provider = SiteSlurmProvider(
        partition=site.partition,
        account=site.account,
        nodes_per_block=res.nodes,
        cores_per_node=res.cores_per_task * res.max_parallel_tasks,
        init_blocks=0,
        min_blocks=0,
        max_blocks=res.max_blocks,
        walltime=res.walltime,
        scheduler_options=site.scheduler_options,
        worker_init=worker_init(site),
        exclusive=False,
        launcher=block_launcher(res),
    )
    provider.poll_s = site.scheduler_poll_s
    return provider


def make_config(site: SiteConfig, run_dir: Path) -> Config:
    executors = [htex(site, stage, slurm_provider(site, stage)) for stage in STAGE_CLASSES]
    return assemble(site, run_dir, executors)
