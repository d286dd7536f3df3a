"""Batch labelling through Parsl: results land in the data lake as they arrive, bad
structures are quarantined with a reason, a configuration error spares the rest, a kill
loses only the runs in flight."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ase import Atoms
from ase.build import bulk

from pyacemaker.config import CampaignConfig, SiteConfig, StageResources
from pyacemaker.datastore import DataStore
from pyacemaker.execution import Engine
from pyacemaker.execution.labelling import label_batch
from pyacemaker.stages.oracle.base import OracleConfigError, make_oracle
from pyacemaker.stages.oracle.pseudo import DEBIAN_PSEUDO_DIR

FAST = {"kspacing": 0.8, "ecutwfc": 25, "ecutrho": 200}


def _site(kind: str, parallel: int = 2) -> SiteConfig:
    site = SiteConfig(local_executor=kind)
    site.resources["dft"] = StageResources(mpi_ranks=1, max_parallel_tasks=parallel)
    site.programs.mpirun = {"qe": "/usr/bin/mpirun"}
    return site


def _si2(seed: int) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.04, seed=seed)
    atoms.info["provenance"] = "random"
    return atoms


@pytest.mark.slow
def test_qe_batch_stores_labels_quarantines_and_config_errors(tmp_path: Path) -> None:
    ge_file = tmp_path / "Ge.pbe-kjpaw.UPF"
    shutil.copy(DEBIAN_PSEUDO_DIR / "Ge.pbe-kjpaw.UPF", ge_file)
    config = CampaignConfig(elements=["Si", "Ge"], oracle={"qe": {
        **FAST, "pseudopotentials": {"Ge": ge_file}}})
    oracle = make_oracle(config)
    ge_file.unlink()  # the configured Ge pseudopotential vanishes after start-up

    overlapping = _si2(5)
    overlapping.positions[1] = overlapping.positions[0] + [0.1, 0, 0]
    with_al = _si2(6)
    with_al[1].symbol = "Al"
    ge2 = bulk("Ge", "diamond", a=5.66)
    store = DataStore(tmp_path / "lake.db")
    ids = store.add_many([_si2(1), _si2(2), overlapping, with_al, ge2])
    ticks: list[tuple[int, int]] = []
    with Engine(_site("htex"), tmp_path / "run") as engine:
        with pytest.raises(OracleConfigError) as error:
            label_batch(engine, store, ids, oracle, tmp_path / "dft",
                        progress=lambda done, total: ticks.append((done, total)))
    assert "Ge.pbe-kjpaw.UPF" in str(error.value) and f"row {ids[4]}" in str(error.value)
    assert "'converged': 2" in str(error.value)
    assert ticks[-1] == (5, 5)

    rows = {row.id: row for row in store.rows()}
    for good in ids[:2]:
        atoms = store.get_atoms(good)
        assert atoms.info["status"] == "labelled" and atoms.info["provenance"] == "random"
        assert atoms.get_forces().shape == (2, 3)
        assert atoms.info["oracle"]["name"] == "qe"
        assert atoms.info["healing"][0]["outcome"] == "converged"
        assert (tmp_path / "dft" / str(good) / "attempt_01_initial" / "stdout.txt").is_file()
    assert rows[ids[2]].status == "quarantined" and rows[ids[2]].reason.startswith("unphysical")
    assert rows[ids[3]].status == "quarantined"
    assert "'Al'" in rows[ids[3]].reason and str(DEBIAN_PSEUDO_DIR) in rows[ids[3]].reason
    assert rows[ids[4]].status == "candidate"  # not the structure's fault: kept for a re-run


def test_emt_batch_and_resume_skips_labelled(tmp_path: Path) -> None:
    oracle = make_oracle(CampaignConfig(elements=["Cu"], oracle={"kind": "emt"}))
    store = DataStore(tmp_path / "lake.db")
    structures = []
    for seed in range(6):
        atoms = bulk("Cu", "fcc", a=3.6).repeat(2)
        atoms.rattle(0.05, seed=seed)
        structures.append(atoms)
    ids = store.add_many(structures)
    with Engine(_site("threads"), tmp_path / "run") as engine:
        assert label_batch(engine, store, ids, oracle, tmp_path / "w") == {
            "converged": 6, "quarantined": 0, "skipped": 0}
        assert label_batch(engine, store, ids, oracle, tmp_path / "w") == {
            "converged": 0, "quarantined": 0, "skipped": 6}
    for atoms in store.atoms(status="labelled"):
        assert atoms.info["oracle"]["name"] == "emt" and "NOT DFT" in atoms.info["oracle"]["method"]


KILL_SCRIPT = """
import sys
from pathlib import Path
from pyacemaker.config import CampaignConfig, SiteConfig, StageResources
from pyacemaker.datastore import DataStore
from pyacemaker.execution import Engine
from pyacemaker.execution.labelling import label_batch
from pyacemaker.stages.oracle.base import make_oracle
tmp = Path(sys.argv[1])
site = SiteConfig(local_executor="threads")
site.resources["dft"] = StageResources(max_parallel_tasks=1)
oracle = make_oracle(CampaignConfig(elements=["Si"], oracle={"qe": %r}))
store = DataStore(tmp / "lake.db")
with Engine(site, tmp / "run") as engine:
    label_batch(engine, store, [row.id for row in store.rows()], oracle, tmp / "dft")
""" % FAST


@pytest.mark.slow
def test_kill_loses_only_runs_in_flight_and_rerun_resumes(tmp_path: Path) -> None:
    store = DataStore(tmp_path / "lake.db")
    ids = store.add_many([_si2(seed) for seed in range(10, 14)])
    script = tmp_path / "batch.py"
    script.write_text(KILL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while store.count(status="labelled") < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pw.x, mid-batch
    proc.wait()
    survived = store.count(status="labelled")
    assert 1 <= survived < len(ids)
    first = [row.id for row in store.rows(status="labelled")]
    energies = {i: store.get_atoms(i).get_potential_energy() for i in first}

    oracle = make_oracle(CampaignConfig(elements=["Si"], oracle={"qe": FAST}))
    with Engine(_site("threads"), tmp_path / "run2") as engine:
        counts = label_batch(engine, store, ids, oracle, tmp_path / "dft")
    assert counts == {"converged": len(ids) - survived, "quarantined": 0, "skipped": survived}
    assert store.count(status="labelled") == len(ids)
    for i, energy in energies.items():  # what was stored before the kill is untouched
        assert store.get_atoms(i).get_potential_energy() == energy


class _OracleWithABug:
    """An oracle whose code is broken (a TypeError inside label, hit by two-atom cells): a
    failure path no real oracle shows on demand. EMT labels the other structures."""

    name = "emt-with-a-bug"

    def __init__(self) -> None:
        self.real = make_oracle(CampaignConfig(elements=["Cu"], oracle={"kind": "emt"}))

    def estimate_cost(self, structures: object, done: object = ()) -> None:
        return None

    def label(self, atoms: Atoms, workdir: Path, launch: object = None) -> object:
        if len(atoms) == 2:
            return len(None)  # type: ignore[arg-type]  # the bug
        return self.real.label(atoms, workdir, launch)


def test_a_bug_in_the_oracle_raises_with_its_traceback_and_quarantines_nothing(
        tmp_path: Path) -> None:
    from pyacemaker.execution.labelling import LabellingTaskFailed

    structures = [bulk("Cu", "fcc", a=a) for a in (3.55, 3.60, 3.65)]
    structures[1] = structures[1].repeat((2, 1, 1))
    store = DataStore(tmp_path / "lake.db")
    ids = store.add_many(structures)
    with Engine(_site("threads"), tmp_path / "run") as engine:
        with pytest.raises(LabellingTaskFailed, match="1 labelling task") as caught:
            label_batch(engine, store, ids, _OracleWithABug(), tmp_path / "label")
    assert isinstance(caught.value.__cause__, TypeError)  # the bug itself, chained
    assert store.count(status="labelled") == 2
    assert store.count(status="quarantined") == 0  # a bug is never filed as a DFT failure
    assert store.count(status="candidate") == 1  # the resumed run will try it again
