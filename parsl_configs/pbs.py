"""A PBS cluster: PBS Pro (select/ncpus) or Torque (nodes=N:ppn=M), one HTEX per stage class."""

from __future__ import annotations

from pathlib import Path

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import MpiRunLauncher, SingleNodeLauncher
from parsl.providers import PBSProProvider, TorqueProvider

from parsl_configs.common import assemble, worker_init
from pyacemaker.config import STAGE_CLASSES, SiteConfig


def make_config(site: SiteConfig, run_dir: Path) -> Config:
    executors = []
    for stage in STAGE_CLASSES:
        res = site.resources[stage]
        cores_per_node = res.cores_per_task * res.max_parallel_tasks
        launcher = SingleNodeLauncher() if res.nodes == 1 else MpiRunLauncher()
        common = dict(
            account=site.account,
            queue=site.queue,
            scheduler_options=site.scheduler_options,
            worker_init=worker_init(site),
            nodes_per_block=res.nodes,
            init_blocks=0,
            min_blocks=0,
            max_blocks=res.max_blocks,
            walltime=res.walltime,
            launcher=launcher,
        )
        if site.pbs_flavor == "torque":
            provider = TorqueProvider(**common)
        else:
            provider = PBSProProvider(cpus_per_node=cores_per_node, **common)
        executors.append(HighThroughputExecutor(
            label=stage,
            address=site.htex_address,
            max_workers_per_node=res.max_parallel_tasks,
            cores_per_worker=res.cores_per_task,
            provider=provider,
        ))
    return assemble(site, run_dir, executors)
