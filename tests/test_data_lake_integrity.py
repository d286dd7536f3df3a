"""The data lake survives garbage written over it: WAL mode, verified rotating backups, one
clear message in every command, and ``pyacemaker recover``.

A real EMT campaign (real Parsl, real labels) runs the cold start's generate and label
stages once for the module; its site names a pacemaker that does not exist, so it stops at
the fit in a second instead of fitting for minutes (the data lake is all these tests need;
a fit writes nothing into it but splits). Each test works on its own copy of the folder.
"""

from __future__ import annotations

import gc
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from ase.build import bulk

from pyacemaker.datastore import DataLakeCorrupt, DataStore
from pyacemaker.recover import closing_advice, lake_problem, make_backup

from tiny_campaign import NO_PACEMAKER_SITE as SITE
from tiny_campaign import run_cli

CONFIG = """\
name: lake
elements: [Cu]
oracle: {kind: emt}
active_learning: {initial_structures: 4, max_dft_calls: 4}
validation: {validate_every_iteration: false}
"""


def write_inputs(folder: Path) -> tuple[Path, Path]:
    config, site = folder / "campaign-in.yaml", folder / "site.yaml"
    config.write_text(CONFIG)
    site.write_text(SITE)
    return config, site


def garbage_over(db: Path) -> bytes:
    """What a user found: random bytes written over the start of data.db."""
    junk = bytes(range(256)) * 32
    with open(db, "r+b") as handle:
        handle.write(junk)
    return db.read_bytes()


@pytest.fixture(scope="module")
def labelled_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A campaign folder whose cold start labelled 4 structures, stopped at the fit."""
    folder = tmp_path_factory.mktemp("lake")
    config, site = write_inputs(folder)
    out = run_cli("run", str(config), "--site", str(site), "--workdir", str(folder / "w"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "stopped in iteration 0, stage 'fit'" in out.stdout
    return folder


@pytest.fixture
def campaign(labelled_campaign: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(workdir, config, site): a private copy of the labelled campaign."""
    shutil.copytree(labelled_campaign, tmp_path / "c")
    return tmp_path / "c" / "w", tmp_path / "c" / "campaign-in.yaml", tmp_path / "c" / "site.yaml"


def test_the_lake_is_in_wal_mode_with_verified_backups(campaign: tuple[Path, Path, Path]) -> None:
    workdir, _, _ = campaign
    with sqlite3.connect(workdir / "data.db") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    backups = sorted((workdir / "backups").glob("data-*.db"))
    assert len(backups) == 2  # after generate and after label (the fit failed)
    for backup in backups:
        with sqlite3.connect(backup) as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    assert DataStore(backups[-1]).count(status="labelled") == 4
    assert not list((workdir / "backups").glob(".*"))  # no temporary file left
    status = run_cli("status", "--workdir", str(workdir))
    assert status.returncode == 0
    assert "FAILED: 000:fit" in status.stdout and "pacemaker" in status.stdout
    assert "4 labelled" in status.stdout


def test_a_corrupt_lake_gives_one_message_naming_the_backup(
        campaign: tuple[Path, Path, Path]) -> None:
    workdir, config, site = campaign
    newest = sorted((workdir / "backups").glob("data-*.db"))[-1]
    garbage_over(workdir / "data.db")
    outputs = [run_cli("run", str(config), "--site", str(site), "--workdir", str(workdir)),
               run_cli("status", "--workdir", str(workdir)),
               run_cli("report", "--workdir", str(workdir))]
    messages = set()
    for out in outputs:
        assert out.returncode != 0
        assert "Traceback" not in out.stdout + out.stderr
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, out.stderr
        messages.add(errors[0])
    assert len(messages) == 1  # the same message from run, status and report
    message = messages.pop()
    for part in (str(workdir / "data.db"), "corrupt", str(newest), "4 labelled",
                 f"pyacemaker recover --workdir {workdir}"):
        assert part in message
    assert "every finished label" not in outputs[0].stdout + outputs[0].stderr


def test_recover_restores_the_backup_and_the_run_resumes(
        campaign: tuple[Path, Path, Path]) -> None:
    workdir, config, site = campaign
    corrupt = garbage_over(workdir / "data.db")
    out = run_cli("recover", "--workdir", str(workdir))
    assert out.returncode == 0, out.stderr
    assert "restored" in out.stdout
    assert "4 labelled, 0 candidates, 0 quarantined" in out.stdout
    kept = list(workdir.glob("data.db.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == corrupt  # moved aside, never deleted
    assert DataStore(workdir / "data.db").count(status="labelled") == 4
    again = run_cli("recover", "--workdir", str(workdir))
    assert again.returncode == 0 and "nothing to recover" in again.stdout
    resumed = run_cli("run", str(config), "--site", str(site), "--workdir", str(workdir))
    # generate and label are not redone: the fit starts at once on the backup's labels
    assert "labelling" not in resumed.stdout and "generate:" not in resumed.stdout
    assert "fitting on" in resumed.stdout
    assert "every finished label and fit is kept in" in resumed.stdout


def test_no_backup_is_never_claimed(campaign: tuple[Path, Path, Path]) -> None:
    workdir, _, _ = campaign
    shutil.rmtree(workdir / "backups")
    corrupt = garbage_over(workdir / "data.db")
    status = run_cli("status", "--workdir", str(workdir))
    assert status.returncode != 0 and "Traceback" not in status.stderr
    assert "there is no backup" in status.stderr and "recover --workdir" not in status.stderr
    out = run_cli("recover", "--workdir", str(workdir))
    assert out.returncode == 1 and "there is no backup" in out.stderr
    assert (workdir / "data.db").read_bytes() == corrupt  # left as it was


def _small_lake(folder: Path) -> DataStore:
    store = DataStore(folder / "data.db")
    store.add_many([bulk("Cu", "fcc", a=3.5 + 0.01 * i) for i in range(3)])
    return store


def test_backups_rotate_to_three(tmp_path: Path) -> None:
    store = _small_lake(tmp_path)
    made = [make_backup(store.path) for _ in range(5)]
    kept = sorted((tmp_path / "backups").glob("data-*.db"))
    assert kept == made[-3:]
    assert not list((tmp_path / "backups").glob(".*"))
    for backup in kept:
        assert DataStore(backup).count(status="candidate") == 3


def test_a_corrupt_lake_is_not_backed_up_over_good_backups(tmp_path: Path) -> None:
    store = _small_lake(tmp_path)
    good = make_backup(store.path)
    garbage_over(store.path)
    with pytest.raises(DataLakeCorrupt, match=good.name):
        make_backup(store.path)
    assert sorted((tmp_path / "backups").glob("data-*.db")) == [good]
    with pytest.raises(DataLakeCorrupt, match="3 candidates"):
        DataStore(store.path)


def test_the_final_message_claims_kept_labels_only_when_true(tmp_path: Path) -> None:
    store = _small_lake(tmp_path)
    assert "every finished label and fit is kept" in closing_advice(
        tmp_path, lake_problem(tmp_path))
    make_backup(store.path)
    garbage_over(store.path)
    advice = closing_advice(tmp_path, lake_problem(tmp_path))
    assert "every finished label" not in advice
    assert "corrupt" in advice and "pyacemaker recover" in advice


def test_no_wal_on_a_network_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyacemaker import datastore

    store = _small_lake(tmp_path)  # local disk: WAL
    with closing(sqlite3.connect(store.path)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    del store
    gc.collect()  # ase.db's last connection (leaving WAL needs the file to itself)
    monkeypatch.setattr(datastore, "filesystem_type", lambda folder: "nfs4")
    store = DataStore(tmp_path / "data.db")  # the same folder seen on NFS: rollback journal
    with closing(sqlite3.connect(store.path)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert store.count(status="candidate") == 3


def test_recover_skips_a_bad_newest_backup_and_says_what_is_missing(tmp_path: Path) -> None:
    from pyacemaker.recover import recover
    from pyacemaker.state import WorkflowState, save_state

    store = _small_lake(tmp_path)
    older = make_backup(store.path)
    state = WorkflowState(config_fingerprint="x", iteration=1)
    state.mark("select", "running")
    state.stages["001:select"].started = "2999-01-01T00:00:00+00:00"  # after the backup
    state.mark("select", "done", "2 candidates")
    save_state(state, tmp_path)
    store.add_many([bulk("Cu", "bcc", a=2.8 + 0.01 * i) for i in range(2)])
    newer = make_backup(store.path)
    garbage_over(newer)
    garbage_over(store.path)
    lines = "\n".join(recover(tmp_path))
    assert f"restored {store.path} from {older}" in lines
    assert "3 candidates" in lines and newer.name in lines  # skipped, named
    assert "001:select" in lines  # its candidates are not in the restored lake
    assert DataStore(tmp_path / "data.db").count() == 3
