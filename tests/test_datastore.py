"""The data lake: labelled structures round-trip, de-duplicate, export, survive a kill."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read

from pyacemaker.datastore import DataStore, labelled_copy, structure_fingerprint


def emt_labelled(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    structures = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.002 * (i % 10), cubic=True).repeat((2, 1, 1))
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        labelled = labelled_copy(atoms, atoms.get_potential_energy(), atoms.get_forces(),
                                 atoms.get_stress())
        labelled.info.update(provenance="random" if i % 2 else "coldstart", iteration=i % 3)
        structures.append(labelled)
    return structures


def test_fingerprint_ignores_permutation_and_wrapping() -> None:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.01, seed=1)
    shuffled = atoms[[3, 1, 0, 2]]
    shifted = atoms.copy()
    shifted.positions += atoms.cell[0]  # one full lattice vector: same structure
    assert structure_fingerprint(atoms) == structure_fingerprint(shuffled)
    assert structure_fingerprint(atoms) == structure_fingerprint(shifted)
    moved = atoms.copy()
    moved.positions[0, 0] += 0.05
    assert structure_fingerprint(atoms) != structure_fingerprint(moved)


def test_store_100_dedupe_export_and_load_back(tmp_path: Path) -> None:
    store = DataStore(tmp_path / "data.db")
    structures = emt_labelled(100)
    new_ids = store.add_many(structures)
    assert len(new_ids) == 100
    assert store.add_many(structures[:10]) == []  # exact duplicates are not stored twice
    row_id, is_new = store.add(structures[5].copy())
    assert not is_new and row_id == new_ids[5]
    assert store.count(status="labelled") == 100
    assert store.provenance_counts() == {"coldstart": 50, "random": 50}

    refs = {"Cu": -0.25}
    path = store.export_pacemaker(tmp_path / "train.pckl.gzip", reference_energies=refs)
    frame = pd.read_pickle(path, compression="gzip")
    assert len(frame) == 100
    assert {"ase_atoms", "energy", "energy_corrected", "forces"} <= set(frame.columns)
    by_row = {int(r.row_id): r for r in frame.itertuples()}
    for row_id, original in zip(new_ids, structures):
        record = by_row[row_id]
        energy = original.get_potential_energy()
        assert np.isclose(record.energy, energy)
        assert np.isclose(record.energy_corrected, energy - refs["Cu"] * len(original))
        np.testing.assert_allclose(record.forces, original.get_forces())

    xyz = store.export_extxyz(tmp_path / "all.extxyz")
    frames = read(xyz, index=":")
    assert len(frames) == 100
    assert np.isclose(frames[0].get_potential_energy(), structures[0].get_potential_energy())


def test_candidate_label_and_quarantine_lifecycle(tmp_path: Path) -> None:
    store = DataStore(tmp_path / "data.db")
    candidate = bulk("Cu", "fcc", a=3.6).repeat(2)
    candidate.info.update(provenance="md_halt", iteration=3, gamma_max=7.5, source_task="md_0")
    row_id, _ = store.add(candidate)
    assert store.count(status="candidate") == 1
    got = store.get_atoms(row_id)
    assert got.info["provenance"] == "md_halt" and got.info["gamma_max"] == 7.5
    assert got.calc is None

    candidate.calc = EMT()
    labelled = labelled_copy(candidate, candidate.get_potential_energy(), candidate.get_forces())
    healing = [{"strategy": "default", "outcome": "converged"}]
    store.set_label(row_id, labelled, oracle={"name": "emt"}, healing=healing)
    got = store.get_atoms(row_id)
    assert got.info["status"] == "labelled" and got.info["healing"] == healing
    assert got.info["provenance"] == "md_halt" and got.info["oracle"]["name"] == "emt"
    assert np.isclose(got.get_potential_energy(), candidate.get_potential_energy())

    other, _ = store.add(bulk("Cu", "bcc", a=2.9).repeat(2))
    store.quarantine(other, "scf_not_converged after 6 attempts", healing=healing * 6)
    bad = store.get_atoms(other)
    assert bad.info["status"] == "quarantined"
    assert "scf_not_converged" in bad.info["reason"]
    assert len(bad.info["healing"]) == 6


WRITER = """
import sys
import numpy as np
from ase.build import bulk
from pyacemaker.datastore import DataStore, labelled_copy
store = DataStore(sys.argv[1])
i = 0
while True:
    atoms = bulk("Cu", "fcc", a=3.6).repeat(3)
    atoms.positions[0, 0] += 0.02 * i
    lab = labelled_copy(atoms, -float(i), np.full((len(atoms), 3), float(i)))
    batch = [lab]
    store.add_many(batch)
    print(i, flush=True)
    i += 1
"""


def test_sigkill_mid_write_leaves_a_valid_database(tmp_path: Path) -> None:
    db = tmp_path / "data.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    for _ in range(20):
        proc.stdout.readline()
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = DataStore(db)
    rows = store.atoms(status="labelled")
    assert len(rows) >= 20
    for atoms in rows:  # every committed row is whole: its labels match its own index
        i = -atoms.get_potential_energy()
        np.testing.assert_allclose(atoms.get_forces(), i)
    # the killed writer must not leave anything behind that blocks the next writer
    started = time.monotonic()
    _, is_new = store.add(bulk("Cu", "bcc", a=2.9))
    assert is_new and time.monotonic() - started < 5
