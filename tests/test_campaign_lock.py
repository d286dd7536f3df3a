"""One driver per campaign folder, with real ``pyacemaker run`` processes.

The first driver holds ``<workdir>/.pyacemaker.lock`` for its life; a second one on the same
folder fails at once, names the holder and touches nothing; the kernel frees the lock when
the holder dies, even by SIGKILL, and the holder's fit dies with it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_driver_signals import (
    LOCAL_SITE,
    campaign_processes,
    start_driver,
    wait_for,
    write_config,
)

from pyacemaker.campaign_lock import LOCK_FILE, CampaignLocked, acquire_campaign_lock
from pyacemaker.programs import process_start_ticks
from pyacemaker.state import load_state

HOLDER = """\
import sys, time
from pathlib import Path
from pyacemaker.campaign_lock import acquire_campaign_lock
lock = acquire_campaign_lock(Path(sys.argv[1]), ["holder", "test"])
print("locked", flush=True)
time.sleep(300)
"""


def run_cli(config: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyacemaker.cli", "run", str(config), "--site", str(LOCAL_SITE),
         "--workdir", str(workdir)], capture_output=True, text=True, timeout=60, check=False)


def pid_in(path: Path) -> int | None:
    """The pid a lock file or marker names (None while absent or being written)."""
    try:
        return int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        content = (tmp_path / LOCK_FILE).read_bytes()
        info = json.loads(content)
        assert info["pid"] == holder.pid and info["host"] == socket.gethostname()
        assert info["command"] == ["holder", "test"] and info["started"]
        with pytest.raises(CampaignLocked) as refused:
            acquire_campaign_lock(tmp_path)
        message = str(refused.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message
        assert str(tmp_path / LOCK_FILE) in message and "\n" not in message
        assert (tmp_path / LOCK_FILE).read_bytes() == content  # the refused one wrote nothing
    finally:
        holder.kill()
        holder.wait()
    lock = acquire_campaign_lock(tmp_path)  # SIGKILL freed it: no stale lock to remove
    assert pid_in(tmp_path / LOCK_FILE) == os.getpid()
    lock.release()


@pytest.mark.slow
def test_second_driver_is_refused_at_once_and_the_first_finishes(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    workdir = tmp_path / "w"
    first = start_driver(config, workdir)
    fit_marker = workdir / "iter_000" / "fit" / "running_pacemaker.json"
    wait_for(fit_marker.exists, first, 120, "pacemaker fit of the first driver")
    fit_pid = json.loads(fit_marker.read_text())["pid"]
    kept = ("state.json", "data.db", "campaign.yaml", LOCK_FILE)
    before = {name: (workdir / name).read_bytes() for name in kept}
    names = sorted(p.name for p in workdir.iterdir())

    started = time.monotonic()
    second = run_cli(config, workdir)
    took = time.monotonic() - started
    assert second.returncode == 1
    assert second.stdout == ""
    message = second.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert f"in use by pid {first.pid} on host {socket.gethostname()}" in message
    assert f"lock file {workdir / LOCK_FILE}" in message
    assert took < 20, f"the second driver took {took:.1f} s to give up"

    # the first was in the same fit all along, so any change would be the second's
    assert json.loads(fit_marker.read_text())["pid"] == fit_pid
    assert {name: (workdir / name).read_bytes() for name in kept} == before
    assert sorted(p.name for p in workdir.iterdir()) == names
    assert "in use by" not in (workdir / "campaign.log").read_text()

    assert first.wait(timeout=400) == 0
    state = load_state(workdir)
    assert state is not None and state.finished and state.potential is not None


def test_lock_is_free_after_the_holder_is_sigkilled(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    workdir = tmp_path / "w"
    first = start_driver(config, workdir)
    fit_marker = workdir / "iter_000" / "fit" / "running_pacemaker.json"
    wait_for(fit_marker.exists, first, 120, "pacemaker fit of the first driver")
    fit = json.loads(fit_marker.read_text())
    first.kill()
    assert first.wait(timeout=10) == -signal.SIGKILL
    # the fit got SIGTERM from the kernel when its driver died (PR_SET_PDEATHSIG)
    wait_for(lambda: process_start_ticks(fit["pid"]) != fit["start_ticks"], None, 15,
             "end of the killed driver's pacemaker")

    second = start_driver(config, workdir)
    wait_for(lambda: pid_in(workdir / LOCK_FILE) == second.pid, second, 60,
             "lock of the second driver")
    # it resumes: the fit starts again (a new pacemaker; the stale marker was removed)
    wait_for(lambda: pid_in(fit_marker) not in (None, fit["pid"]), second, 120,
             "fit of the second driver")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 143
    assert campaign_processes(workdir) == []
