"""A campaign folder that cannot be written, or does not exist: one error line naming the
path and the fix, never a traceback.

The tests run as root, and root ignores permission bits (chmod a-w changes nothing for it),
so a read-only folder is made for real: a small tmpfs mounted in the test and remounted
read-only (needs root and mount rights; skipped otherwise). A path under a regular file
(NotADirectoryError) needs no privilege and always runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ase.build import bulk

from pyacemaker.datastore import DataStore
from pyacemaker.state import WorkflowState, save_state

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "pyacemaker.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode in (1, 2), out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr
    return errors[0]


def config_file(folder: Path) -> Path:
    path = folder / "c.yaml"
    path.write_text("elements: [Cu]\noracle: {kind: emt}\n")
    return path


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Callable[[], Path]]:
    """A tmpfs at tmp_path/ro: fill it, then call the fixture's value to make it read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")

    def make_read_only() -> Path:
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        return mount

    try:
        yield make_read_only
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_run_in_a_read_only_parent(tmp_path: Path, read_only_mount: Callable[[], Path]) -> None:
    workdir = read_only_mount() / "campaign"
    error = one_error_line(run_cli("run", str(config_file(tmp_path)), "--workdir",
                                   str(workdir)))
    assert f"cannot write to {workdir} (read-only file system)" in error
    assert "choose another --workdir" in error


def test_run_in_a_read_only_existing_folder(tmp_path: Path,
                                            read_only_mount: Callable[[], Path]) -> None:
    mount = tmp_path / "ro"
    (mount / "empty").mkdir()
    campaign = mount / "campaign"  # a campaign that ran before: state, data lake, log
    save_state(WorkflowState(config_fingerprint="x"), campaign)
    (campaign / "campaign.log").write_text("")
    read_only_mount()
    for workdir in (mount / "empty", campaign):
        error = one_error_line(run_cli("run", str(config_file(tmp_path)), "--workdir",
                                       str(workdir)))
        assert f"cannot write to {workdir}" in error and "read-only file system" in error


def test_status_of_a_read_only_campaign_says_what_failed(
        read_only_mount: Callable[[], Path], tmp_path: Path) -> None:
    campaign = tmp_path / "ro" / "campaign"
    store = DataStore(campaign / "data.db")  # a WAL-mode lake, as a run leaves it
    store.add_many([bulk("Cu", "fcc", a=3.6), bulk("Cu", "bcc", a=2.9)])
    del store
    state = WorkflowState(config_fingerprint="x")
    state.mark("generate", "done", "2 initial structures")
    state.mark("label", "failed", "OracleConfigError: elements: EMT has no parameters\n"
               "for ['Si']")
    save_state(state, campaign)
    read_only_mount()
    out = run_cli("status", "--workdir", str(campaign))
    assert out.returncode == 0, out.stderr
    assert "FAILED: 000:label" in out.stdout and "EMT has no parameters" in out.stdout
    assert "for ['Si']" in out.stdout  # the rest of the message, indented
    assert "data lake: 0 labelled, 2 candidates" in out.stdout


def test_a_file_in_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    workdir = blocker / "campaign"
    error = one_error_line(run_cli("run", str(config_file(tmp_path)), "--workdir",
                                   str(workdir)))
    assert f"cannot write to {workdir}" in error
    assert "a part of the path is a file, not a folder" in error
    assert "choose another --workdir" in error


@pytest.mark.parametrize("command", ["status", "report", "recover"])
def test_a_missing_folder(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "no-such-campaign"
    error = one_error_line(run_cli(command, "--workdir", str(missing)))
    assert f"{missing}: no such folder" in error and "--workdir" in error
    assert not missing.exists()
