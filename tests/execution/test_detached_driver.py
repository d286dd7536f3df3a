"""The detached driver on the suite's real single-node SLURM: ``pyacemaker submit`` runs the
tiny EMT campaign (tests/tiny_campaign.py) as a chain of driver jobs that hand over to each
other (``driver.time_budget_s`` forces a hand-over at the first stage boundary after 20 s;
each successor is a real ``sbatch --dependency=afterany:<previous>``, or ``qsub -W
depend=afterany:<previous>`` through the Torque wrappers), and the campaign ends with the
same labels as the attached run of the same config (count and fingerprints)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hpc_support import slurm_cluster_up
from tiny_campaign import finished_campaign, run_cli, write_config

from pyacemaker.datastore import DataStore
from pyacemaker.execution.driver_job import read_chain
from pyacemaker.state import load_state

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(420)]


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    yield from slurm_cluster_up()


def detached_site(path: Path, flavor: str = "slurm") -> Path:
    """test-slurm.yaml with a driver section; ``torque``: the same site as a Torque site
    (qsub/qstat/qdel of Debian's slurm-wlm-torque wrappers, queue 'debug')."""
    site = yaml.safe_load((REPO / "site_configs" / "test-slurm.yaml").read_text())
    site["name"] = f"test-{flavor}-detached"
    site["driver"] = {"walltime": "00:05:00", "handover_margin_s": 30, "time_budget_s": 20}
    if flavor == "torque":
        site.update(scheduler="pbs", pbs_flavor="torque", queue=site.pop("partition"))
        site["driver"]["queue"] = "debug"
    else:
        site["driver"]["partition"] = "debug"
    path.write_text(yaml.safe_dump(site))
    return path


class DependencyWatcher(threading.Thread):
    """Polls squeue every 0.3 s for driver jobs pending on their dependency, meanwhile the
    test does other work (a successor waits only seconds, between its sbatch and the end of
    the job before it: a poll once a second from the test's own loop missed it in CI)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen_pending: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            queue = subprocess.run(["squeue", "-h", "-o", "%i %j %T %r"],
                                   capture_output=True, text=True).stdout
            self.seen_pending |= {line.split()[0] for line in queue.splitlines()
                                  if "pyace-driver" in line and "Dependency" in line}
            self.done.wait(0.3)


def labels(folder: Path) -> list[str]:
    store = DataStore(folder / "data.db")
    return sorted(row.fingerprint for row in store.rows(status="labelled"))


@pytest.mark.parametrize("flavor", ["slurm", "torque"])
def test_detached_campaign_hands_over_and_labels_as_attached(
        slurm_cluster: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
        flavor: str) -> None:
    config = write_config(tmp_path / "cu-tiny.yaml")
    workdir = tmp_path / "detached"
    site = detached_site(tmp_path / "site.yaml", flavor)
    watcher = DependencyWatcher()
    watcher.start()
    submitted = run_cli("submit", config, "--site", site, "--workdir", workdir, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "driver job" in submitted.stdout and "submitted" in submitted.stdout

    attached = finished_campaign(tmp_path_factory)  # meanwhile (built once per session)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = load_state(workdir) if (workdir / "state.json").exists() else None
        if state is not None and state.finished:
            chain = read_chain(workdir)
            if chain and "end" in chain["jobs"][-1]:
                break
        time.sleep(1)
    else:
        watcher.done.set()
        pytest.fail(f"the detached campaign did not finish in 300 s:\n"
                    f"{run_cli('status', '--workdir', workdir).stdout}")

    watcher.done.set()
    chain = read_chain(workdir)
    assert chain is not None
    jobs = chain["jobs"]
    assert len(jobs) >= 2, jobs
    for before, after in zip(jobs, jobs[1:]):
        assert before["end"] == f"handed over to {after['job_id']}"
        assert after["after"] == before["job_id"]  # sbatch --dependency=afterany:<before>
    successors = {job["job_id"].split(".")[0] for job in jobs[1:]}
    assert watcher.seen_pending & successors, "no successor was seen pending on its dependency"
    assert "max_dft_calls" in jobs[-1]["end"] or "budget" in jobs[-1]["end"], jobs[-1]
    assert all(job["host"] for job in jobs)
    status = run_cli("status", "--workdir", workdir)
    assert f"detached driver: {len(jobs)} job(s)" in status.stdout
    assert f"job {jobs[0]['job_id']}: ended" in status.stdout

    assert labels(workdir) == labels(attached)  # same count, same structures
    assert len(labels(workdir)) == 16
    log = (workdir / "campaign.log").read_text()
    assert log.count("driver job time is up (SIGUSR1)") == len(jobs) - 1


def test_walltime_hand_over_mid_array_then_cancel(slurm_cluster: str, tmp_path: Path) -> None:
    """DFT as a job array inside a detached campaign (EMT elements, one at a time). The
    driver's walltime (1 min) minus its margin (40 s) runs out while it waits for the array:
    it hands over mid-stage, the successor finds the running array by its recorded id and
    waits for it (no second array). ``pyacemaker cancel`` then stops the successor the
    graceful way (state saved, no further successor) and cancels the array: nothing of the
    campaign is left in squeue."""
    site_file = detached_site(tmp_path / "site.yaml")
    site = yaml.safe_load(site_file.read_text())
    site["driver"] = {"partition": "debug", "walltime": "00:01:00", "handover_margin_s": 40}
    site["resources"]["dft"].update(submission="array", array_throttle=1)
    site_file.write_text(yaml.safe_dump(site))
    workdir = tmp_path / "w"
    submitted = run_cli("submit", write_config(tmp_path / "cu-tiny.yaml"), "--site", site_file,
                        "--workdir", workdir, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "#SBATCH --time=00:01:00" in (workdir / "driver" / "driver_0.sh").read_text()

    def successor_running() -> bool:
        chain = read_chain(workdir) or {"jobs": []}
        return len(chain["jobs"]) >= 2 and "started" in chain["jobs"][1]

    deadline = time.monotonic() + 150
    while not successor_running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert successor_running(), run_cli("status", "--workdir", workdir).stdout
    arrays_file = workdir / "iter_000" / "label" / "array" / "arrays.json"
    array_id = str(yaml.safe_load(arrays_file.read_text())[0]["job_id"])
    chain = read_chain(workdir)
    assert chain is not None
    first, second = chain["jobs"][:2]
    assert first["end"] == f"handed over to {second['job_id']}"
    assert second["after"] == first["job_id"]
    log = (workdir / "campaign.log").read_text()
    assert "driver job time is up (SIGUSR1)" in log

    cancelled = run_cli("cancel", "--workdir", workdir)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert "sent SIGTERM" in cancelled.stdout
    queue = subprocess.run(["squeue", "-h", "-o", "%i %o"], capture_output=True,
                           text=True).stdout
    assert str(workdir) not in queue, queue
    assert len(yaml.safe_load(arrays_file.read_text())) == 1  # waited for, not resubmitted
    chain = read_chain(workdir)
    assert chain is not None and chain["cancelled"] and len(chain["jobs"]) == 2, chain
    assert chain["jobs"][1]["end"].startswith("stopped: SIGTERM"), chain
    state = load_state(workdir)
    assert state is not None and not state.finished
    status = run_cli("status", "--workdir", workdir).stdout
    assert "chain cancelled" in status and array_id in arrays_file.read_text()
