"""Parsl apps on a real SLURM (a single-node cluster on localhost, brought up for the session
by scripts/slurm_cluster.sh): both block launchers, a DFT batch as one block, and a block
cancelled with scancel mid-task whose task is rerun on a new block."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hpc_support import (
    job_environment,
    label_si2,
    slurm_cluster_up,
    squeue_ids,
    submit_scripts,
    write_si2_input,
)

from pyacemaker.config import SiteConfig, load_site
from pyacemaker.execution import Engine, launch_for
from pyacemaker.execution.monitoring import summarize_monitoring

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    yield from slurm_cluster_up()


@pytest.fixture
def site() -> SiteConfig:
    return load_site(REPO / "site_configs" / "test-slurm.yaml")


def test_apps_run_in_slurm_jobs_with_srun_and_single_node_launchers(
        slurm_cluster: str, site: SiteConfig, tmp_path: Path) -> None:
    assert site.resources["light"].block_launcher == "srun"
    assert site.resources["md"].block_launcher == "single_node"
    with Engine(site, tmp_path / "run") as engine:
        srun_future = engine.submit("light", job_environment)  # both blocks start together
        single_node_future = engine.submit("md", job_environment)
        via_srun = srun_future.result(timeout=300)
        via_single_node = single_node_future.result(timeout=300)
    # each executor got its own batch job
    assert via_srun["SLURM_JOB_ID"] != via_single_node["SLURM_JOB_ID"]
    # SrunLauncher puts the worker pool in a job step; SingleNodeLauncher runs it in the
    # batch script itself (no step id)
    assert "SLURM_STEP_ID" in via_srun
    assert "SLURM_STEP_ID" not in via_single_node
    scripts = submit_scripts(tmp_path / "run")
    assert any("srun --ntasks" in s for s in scripts)
    assert all("#SBATCH --partition=debug" in s for s in scripts)
    assert all("#SBATCH --time=10" in s for s in scripts)


@pytest.mark.slow
def test_dft_batch_runs_in_one_block(slurm_cluster: str, site: SiteConfig,
                                     tmp_path: Path) -> None:
    lattice = [5.25, 5.35, 5.45, 5.55]
    folders = []
    for i, a in enumerate(lattice):
        folders.append(tmp_path / f"si_{i}")
        write_si2_input(folders[-1], a=a)
    launch = launch_for(site, "dft")
    with Engine(site, tmp_path / "run") as engine:
        futures = [engine.submit("dft", label_si2, str(f), launch) for f in folders]
        labels = [f.result(timeout=400) for f in futures]
    jobs = {label.slurm_job_id for label in labels}
    assert len(jobs) == 1 and None not in jobs, f"expected one batch job, got {jobs}"
    # the labels are real pw.x results: the same as a native run, and physically ordered
    native_folder = tmp_path / "native"
    write_si2_input(native_folder, a=lattice[2])
    native = label_si2(str(native_folder))
    assert labels[2].energy == pytest.approx(native.energy, abs=1e-6)
    energies = [label.energy for label in labels]
    assert len(set(energies)) == 4
    assert all(abs(e - native.energy) < 1.0 for e in energies)  # +-0.1 A of strain: < 1 eV
    # one script, two workers (max_parallel_tasks) in the block
    scripts = submit_scripts(tmp_path / "run")
    assert len(scripts) == 1


@pytest.mark.slow
def test_cancelled_block_is_detected_and_task_rerun_on_new_block(
        slurm_cluster: str, site: SiteConfig, tmp_path: Path) -> None:
    folder = tmp_path / "si_cancel"
    write_si2_input(folder, kpts=6, ecutwfc=30.0, displacement=0.05)  # a few seconds of pw.x
    marker = tmp_path / "attempts.txt"
    launch = launch_for(site, "dft")
    site.monitoring.enabled = True  # the monitoring db must tell the same story
    with Engine(site, tmp_path / "run") as engine:
        future = engine.submit("dft", label_si2, str(folder), launch, 600, str(marker))
        deadline = time.monotonic() + 300
        while not marker.exists() or not marker.read_text().strip():
            assert time.monotonic() < deadline, "the task never started"
            assert not future.done(), f"task ended before it was cancelled: {future}"
            time.sleep(0.1)
        first_job = marker.read_text().split()[0]
        assert not future.done()
        subprocess.run(["scancel", first_job], check=True)
        label = future.result(timeout=400)
    attempts = marker.read_text().split()
    assert attempts[0] == first_job and len(attempts) == 2, attempts
    assert label.slurm_job_id == attempts[1] != first_job
    assert first_job not in squeue_ids()
    assert abs(label.forces[1][0]) > 1e-3  # the displaced atom feels a force
    dft = {e.executor: e for e in summarize_monitoring(tmp_path / "run/monitoring.db").executors
           }["dft"]
    assert (dft.tasks, dft.tries, dft.retried, dft.failed) == (1, 2, 1, 0)
    assert dft.blocks == 2 and set(attempts) <= set(dft.job_ids)
