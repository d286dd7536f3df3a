"""PBS through Debian's slurm-wlm-torque wrappers (qsub/qstat/qdel over the local SLURM).

Torque: end to end, a real pw.x label through TorqueProvider. PBS Pro: the generated submit
script is checked line by line (select/ncpus, walltime, queue, account) and the app runs;
the wrapper's qstat does not understand PBS Pro's ``qstat -x -f -F json``, so block status
stays unknown there (see docs/cluster.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hpc_support import (
    job_environment,
    label_si2,
    slurm_cluster_up,
    submit_scripts,
    write_si2_input,
)

from pyacemaker.config import SiteConfig, StageResources, load_site
from pyacemaker.execution import Engine, launch_for

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    yield from slurm_cluster_up()


def pbs_test_site(flavor: str) -> SiteConfig:
    """A PBS site pointed at the wrapper: the local cluster's 'debug' partition as queue."""
    small = StageResources(max_parallel_tasks=2, walltime="00:10:00")
    return SiteConfig(
        name=f"test-{flavor}", scheduler="pbs", pbs_flavor=flavor, queue="debug",
        account="pyace", htex_address="127.0.0.1", scheduler_poll_s=2,
        heartbeat_period_s=2, heartbeat_threshold_s=8,
        resources={"dft": small, "light": StageResources(walltime="00:05:00")},
        programs={"mpirun": {"qe": "/usr/bin/mpirun"}},
    )


@pytest.mark.slow
def test_torque_end_to_end_real_pw(slurm_cluster: str, tmp_path: Path) -> None:
    site = pbs_test_site("torque")
    folder = tmp_path / "si"
    write_si2_input(folder, a=5.40)
    with Engine(site, tmp_path / "run") as engine:
        label = engine.submit("dft", label_si2, str(folder), launch_for(site, "dft")).result(
            timeout=400)
        env = engine.submit("light", job_environment).result(timeout=300)
    assert label.slurm_job_id and env["SLURM_JOB_ID"] != label.slurm_job_id  # two qsub'ed jobs
    native = tmp_path / "native"
    write_si2_input(native, a=5.40)
    assert label.energy == pytest.approx(label_si2(str(native)).energy, abs=1e-6)
    scripts = {re.search(r"#PBS -N \S*?\.(dft|light)\.block", s)[1]: s
               for s in submit_scripts(tmp_path / "run")}
    assert "#PBS -l nodes=1:ppn=2" in scripts["dft"]  # 2 workers x 1 core, not Parsl's ppn=1
    assert "#PBS -l walltime=00:10:00" in scripts["dft"]
    assert "#PBS -l nodes=1:ppn=1" in scripts["light"]
    assert "#PBS -l walltime=00:05:00" in scripts["light"]
    for script in scripts.values():
        assert "#PBS -q debug" in script and "#PBS -A pyace" in script


def test_pbspro_submit_script_and_run(slurm_cluster: str, tmp_path: Path) -> None:
    site = pbs_test_site("pbspro")
    with Engine(site, tmp_path / "run") as engine:
        env = engine.submit("dft", job_environment).result(timeout=300)
    assert env["SLURM_JOB_ID"]  # it ran inside a batch job submitted by qsub
    (script,) = submit_scripts(tmp_path / "run")
    lines = script.splitlines()
    assert "#PBS -l select=1:ncpus=2" in lines
    assert "#PBS -l walltime=00:10:00" in lines
    assert "#PBS -q debug" in lines and "#PBS -A pyace" in lines
    assert lines[0] == "#!/bin/bash"
    assert any(line.startswith("export PATH=") for line in lines)  # worker_init


def test_cluster_and_pbs_site_files_load() -> None:
    pbs = load_site(REPO / "site_configs" / "pbs.yaml")
    assert pbs.scheduler == "pbs" and pbs.queue and pbs.pbs_flavor in ("pbspro", "torque")
    cluster = load_site(REPO / "site_configs" / "cluster.yaml")
    assert cluster.scheduler == "slurm" and cluster.partition
    assert cluster.container.runtime == "apptainer"
    assert set(cluster.container.images) == {"qe", "lammps-ace", "pacemaker", "eon", "teacher"}
