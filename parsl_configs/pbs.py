"""A PBS cluster: PBS Pro (``select=N:ncpus=M``) or Torque (``nodes=N:ppn=M``), one HTEX per
stage class.

Queue and account go into the submit script as ``#PBS -q`` / ``#PBS -A`` lines (not only on
the qsub command line), so a script kept in runinfo/ can be read and resubmitted by hand.
Multi-node blocks start their worker pools with mpirun (MpiRunLauncher); single-node blocks
with SingleNodeLauncher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parsl.config import Config
from parsl.launchers import MpiRunLauncher, SingleNodeLauncher
from parsl.providers import PBSProProvider, TorqueProvider
from parsl.providers.cluster_provider import ClusterProvider

from parsl_configs.common import SitePolling, assemble, htex, worker_init
from pyacemaker.config import STAGE_CLASSES, SiteConfig, StageClass


class SiteTorqueProvider(SitePolling, TorqueProvider):
    """TorqueProvider polling qstat at the site's ``scheduler_poll_s``, asking for the cores
    the block's workers use: Parsl's template writes ``ppn=<tasks_per_node>``, which is 1 for
    HTEX (one worker pool per node), so a block would get one core for all its workers."""

    def __init__(self, *, cores_per_node: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.template_string = self.template_string.replace(
            "ppn=${tasks_per_node}", f"ppn={cores_per_node}")


class SitePBSProProvider(SitePolling, PBSProProvider):
    """PBSProProvider polling qstat at the site's ``scheduler_poll_s``."""


def pbs_directives(site: SiteConfig) -> str:
    """The site's queue/account as #PBS lines, then its verbatim scheduler_options."""
    lines = []
    if site.queue:
        lines.append(f"#PBS -q {site.queue}")
    if site.account:
        lines.append(f"#PBS -A {site.account}")
    if site.scheduler_options:
        lines.append(site.scheduler_options)
    return "\n".join(lines)


def pbs_provider(site: SiteConfig, stage: StageClass) -> ClusterProvider:
    res = site.resources[stage]
    cores_per_node = res.cores_per_task * res.max_parallel_tasks
    common: dict[str, Any] = dict(
        scheduler_options=pbs_directives(site),
        worker_init=worker_init(site),
        nodes_per_block=res.nodes,
        init_blocks=0,
        min_blocks=0,
        max_blocks=res.max_blocks,
        walltime=res.walltime,
        launcher=SingleNodeLauncher() if res.nodes == 1 else MpiRunLauncher(),
    )
    provider: SiteTorqueProvider | SitePBSProProvider
    if site.pbs_flavor == "torque":
        provider = SiteTorqueProvider(cores_per_node=cores_per_node, **common)
    else:
        provider = SitePBSProProvider(cpus_per_node=cores_per_node, **common)
    provider.poll_s = site.scheduler_poll_s
    return provider


def make_config(site: SiteConfig, run_dir: Path) -> Config:
    executors = [htex(site, stage, pbs_provider(site, stage)) for stage in STAGE_CLASSES]
    return assemble(site, run_dir, executors)
