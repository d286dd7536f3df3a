"""DFT labelling as a scheduler job array (``resources.dft.submission: array``).

The decision logic (wait / resubmit / give up) is tested on its own; the rest runs for real
on the single-node SLURM of the suite with real pw.x: 4 Si2 structures, one of them with
overlapping atoms (quarantined by the oracle with its reason, not resubmitted), one element
cancelled with ``scancel`` while pending (an element that died without an outcome: the only
one resubmitted), and the driver stopped while the array runs and started again (it finds
the array by the job id recorded in the batch folder and waits for it)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ase import Atoms
from ase.build import bulk
from hpc_support import slurm_cluster_up

from pyacemaker.config import CampaignConfig, SiteConfig, load_site
from pyacemaker.datastore import DataStore
from pyacemaker.execution import Engine, launch_for
from pyacemaker.execution.array_plan import ArrayStep, next_array_step
from pyacemaker.execution.job_array import BATCH_FOLDER, ArrayBatch, array_answers
from pyacemaker.execution.labelling import label_batch
from pyacemaker.stages.oracle.base import make_oracle

REPO = Path(__file__).resolve().parents[2]
FAST_QE = {"kspacing": 0.8, "ecutwfc": 20, "ecutrho": 160}


# ----------------------------------------------------------------------- decision logic


def test_a_running_array_is_waited_for_never_submitted_again() -> None:
    step = next_array_step([0, 1, 2, 3], answered=[0], submissions={0: 1, 1: 1, 2: 1, 3: 1},
                           running_job="77", max_submissions=3)
    assert step == ArrayStep("wait", job_id="77")


def test_only_elements_without_an_outcome_are_resubmitted() -> None:
    # element 1 is quarantined (an outcome), 3 died without one: only 3 goes again
    step = next_array_step([0, 1, 2, 3], answered=[0, 1, 2], submissions={i: 1 for i in range(4)},
                           running_job=None, max_submissions=2)
    assert step == ArrayStep("submit", indices=(3,))


def test_an_element_lost_too_often_is_given_up_the_rest_resubmitted() -> None:
    step = next_array_step([0, 1, 2], answered=[], submissions={0: 2, 1: 1}, running_job=None,
                           max_submissions=2)
    assert step == ArrayStep("submit", indices=(1, 2), lost=(0,))
    assert next_array_step([0, 1], answered=[1], submissions={0: 2, 1: 2}, running_job=None,
                           max_submissions=2) == ArrayStep("done", lost=(0,))


def test_a_batch_with_every_answer_is_done_even_while_its_array_is_listed() -> None:
    assert next_array_step([0, 1], answered=[0, 1], submissions={0: 1, 1: 1},
                           running_job="9", max_submissions=1) == ArrayStep("done")
    # a new batch: everything is submitted once
    assert next_array_step([0, 1], answered=[], submissions={}, running_job=None,
                           max_submissions=1) == ArrayStep("submit", indices=(0, 1))


def test_array_submission_is_refused_where_it_cannot_work() -> None:
    with pytest.raises(ValueError, match=r"resources.train.submission: 'array' is for dft"):
        SiteConfig(scheduler="slurm", resources={"train": {"submission": "array"}})
    with pytest.raises(ValueError, match=r"resources.dft.submission: 'array' needs a batch"):
        SiteConfig(scheduler="local", resources={"dft": {"submission": "array"}})


# ----------------------------------------------------------------------- real SLURM


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[str]:
    yield from slurm_cluster_up()


def _si2(seed: int) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.03, seed=seed)
    atoms.info["provenance"] = "random"
    return atoms


class DriverStopped(Exception):
    """Raised from the progress callback: the driver 'dies' while its array runs."""


def squeue(job_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i %T"], capture_output=True,
                          text=True).stdout


@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_qe_batch_as_a_job_array_resumed_and_resubmitted(slurm_cluster: str,
                                                         tmp_path: Path) -> None:
    site = load_site(REPO / "site_configs" / "test-slurm.yaml")
    site.resources["dft"] = site.resources["dft"].model_copy(update={
        "submission": "array", "array_throttle": 2, "array_resubmits": 1})
    oracle = make_oracle(CampaignConfig(elements=["Si"], oracle={"qe": FAST_QE}),
                         site.programs)
    overlapping = _si2(2)
    overlapping.positions[1] = overlapping.positions[0] + [0.05, 0, 0]
    store = DataStore(tmp_path / "lake.db")
    ids = store.add_many([_si2(1), overlapping, _si2(3), _si2(4)])
    label_dir = tmp_path / "iter_000" / "label"

    # driver 1 submits the array and is stopped while it runs, after an element that had
    # not started yet was cancelled (it ends without an outcome file)
    seen: dict[str, str] = {}

    def stop_driver(note: str) -> None:
        job_id = note.split()[1]
        seen["squeue"] = squeue(job_id)
        subprocess.run(["scancel", f"{job_id}_3"], check=True)
        raise DriverStopped(note)

    items = [(row_id, store.get_atoms(row_id)) for row_id in ids]
    for item in items:
        item[1].info.pop("status", None)
    with pytest.raises(DriverStopped, match=r"array \d+ running"):
        for _ in array_answers(site, items, oracle, label_dir, launch_for(site, "dft", "qe"),
                               note=stop_driver):
            pass
    batch = ArrayBatch(label_dir / BATCH_FOLDER)
    first = batch.arrays()[0]
    assert first["indices"] == [0, 1, 2, 3]
    job_id = str(first["job_id"])
    assert f"{job_id}_" in seen["squeue"], seen  # the array, with its elements, in squeue
    script = (batch.folder / "array_0.sh").read_text()
    assert "#SBATCH --array=0-3%2" in script and "#SBATCH --job-name=pyace-dft-" in script

    # driver 2 (a restart): waits for the recorded array, then resubmits element 3 only
    notes: list[str] = []
    with Engine(site, tmp_path / "run") as engine:
        counts = label_batch(engine, store, ids, oracle, label_dir,
                             progress=lambda done, total, note="": notes.append(
                                 f"{done}/{total} {note}"))
    assert counts == {"converged": 3, "quarantined": 1, "skipped": 0}
    arrays = batch.arrays()
    assert [a["indices"] for a in arrays] == [[0, 1, 2, 3], [3]], arrays
    assert any(n.endswith(f"array {job_id} running") for n in notes), notes  # driver 1's
    assert any(f"array {arrays[1]['job_id']} running" in n for n in notes), notes

    bad = store.get_atoms(ids[1])
    assert bad.info["status"] == "quarantined"
    assert "unphysical" in bad.info["reason"] and "apart" in bad.info["reason"]
    energies = [store.get_atoms(i).get_potential_energy() for i in (ids[0], ids[2], ids[3])]
    assert all(-300 < e < -200 for e in energies), energies  # Si2 with this pseudo: ~ -250 eV
    assert len(set(round(e, 6) for e in energies)) == 3  # three different structures
    outcomes = (label_dir / str(ids[3]) / "outcomes.jsonl").read_text().splitlines()
    assert len(outcomes) == 1 and json.loads(outcomes[0])["status"] == "converged"


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_torque_array_through_the_qsub_wrapper(slurm_cluster: str, tmp_path: Path) -> None:
    """The Torque path (#PBS -t 0-N%T, qsub/qstat of Debian's slurm-wlm-torque wrappers) with
    EMT elements: 2 labelled, the overlapping one quarantined with its reason."""
    site = SiteConfig(
        name="test-torque-array", scheduler="pbs", pbs_flavor="torque", queue="debug",
        scheduler_poll_s=1, resources={"dft": {"submission": "array", "array_throttle": 2,
                                               "walltime": "00:05:00"}})
    oracle = make_oracle(CampaignConfig(elements=["Cu"], oracle={"kind": "emt"}))
    cu = [bulk("Cu", "fcc", a=3.6, cubic=True) for _ in range(3)]
    cu[0].rattle(0.05, seed=1)
    cu[1].positions[1] = cu[1].positions[0] + [0.05, 0, 0]
    store = DataStore(tmp_path / "lake.db")
    ids = store.add_many(cu)
    label_dir = tmp_path / "iter_000" / "label"
    with Engine(site, tmp_path / "run") as engine:
        counts = label_batch(engine, store, ids, oracle, label_dir)
    assert counts == {"converged": 2, "quarantined": 1, "skipped": 0}
    script = (label_dir / BATCH_FOLDER / "array_0.sh").read_text()
    assert "#PBS -t 0-2%2" in script and "#PBS -l nodes=1:ppn=1" in script
    assert "#PBS -q debug" in script
    assert "unphysical" in store.get_atoms(ids[1]).info["reason"]
    assert len(ArrayBatch(label_dir / BATCH_FOLDER).arrays()) == 1
    assert list((label_dir / BATCH_FOLDER).glob("array_0.sh.o*"))  # output kept in the batch


def test_driver_settings_and_submit_refuse_what_cannot_work(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    from pyacemaker.cli import main

    with pytest.raises(ValueError, match=r"driver.handover_margin_s \(600 s\) must be shorter "
                                         r"than driver.walltime \(00:05:00\)"):
        SiteConfig(scheduler="slurm", driver={"walltime": "00:05:00"})
    with pytest.raises(ValueError, match=r"'driver.queue' is a PBS field"):
        SiteConfig(scheduler="slurm", driver={"queue": "short"})
    config = tmp_path / "c.yaml"
    config.write_text("elements: [Cu]\noracle: {kind: emt}\n")
    assert main(["submit", str(config), "--site", "local", "--workdir",
                 str(tmp_path / "w")]) == 2
    assert "scheduler is 'local': a detached driver needs a batch scheduler" in \
        capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # nothing written
