"""A driver stopped by a signal, and programs a dead driver left behind, with real processes.

A real ``pyacemaker run`` (EMT labels, a real pacemaker fit, the threads executor) gets
SIGTERM / SIGINT / SIGHUP during its fit: it must log one line, stop the fit, save the
state and exit within seconds with 128 + signal, leaving no process of the campaign. The
reaper is shown on real ``sleep`` programs started through ``run_program`` by a Python
process that is then SIGKILLed; only the pid-reuse case needs a marker written by hand (a
test cannot make the kernel hand out a pid again).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pyacemaker.children import reap_stale_children
from pyacemaker.datastore import DataStore
from pyacemaker.programs import live_session_members, process_start_ticks
from pyacemaker.state import load_state

REPO = Path(__file__).resolve().parents[1]
LOCAL_SITE = REPO / "site_configs" / "local.yaml"
# Seconds to the fit (12 one-atom EMT labels); the fit itself takes 20 s to minutes.
TINY_EMT = {
    "name": "tiny-emt", "elements": ["Cu"], "oracle": {"kind": "emt"},
    "training": {"cutoff": 4.0, "number_of_functions_per_element": 5, "max_iterations": 5,
                 "warm_start_iterations": 5},
    "exploration": {"engine": "ase", "temperatures": [300], "steps": 20, "target_atoms": 8,
                    "walkers": 1, "max_tasks": 1},
    "active_learning": {"initial_structures": 12, "max_candidates_per_iteration": 2,
                        "max_iterations": 1, "gamma_lower": 1000.0, "gamma_upper": 2000.0},
    "validation": {"validate_every_iteration": False, "phonon_supercell": 2,
                   "phonon_mesh": 4, "relax": False, "eos_points": 7,
                   "elastic_strain_points": 2, "reference_phonons": False},
}


def write_config(folder: Path, config: dict = TINY_EMT) -> Path:
    path = folder / "campaign-in.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_driver(config: Path, workdir: Path,
                 preexec: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
    """``pyacemaker run`` in the background, its terminal output in <workdir>.out. The
    driver's signals start at their defaults (the suite itself may run under nohup, or as a
    background job whose SIGINT the shell ignores), unless ``preexec`` says otherwise."""
    out = open(f"{workdir}.out", "wb")  # noqa: SIM115 - closed with the test's tmp_path
    return subprocess.Popen(
        [sys.executable, "-m", "pyacemaker.cli", "run", str(config), "--site", str(LOCAL_SITE),
         "--workdir", str(workdir)], stdout=out, stderr=subprocess.STDOUT,
        cwd=workdir.parent, preexec_fn=preexec or default_signals)  # noqa: PLW1509


def default_signals() -> None:
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def wait_for(what: Callable[[], object], driver: subprocess.Popen[bytes] | None,
             timeout_s: float, describe: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        if driver is not None and driver.poll() is not None:
            pytest.fail(f"the driver ended ({driver.returncode}) before {describe}")
        time.sleep(0.2)
    pytest.fail(f"no {describe} after {timeout_s} s")


def markers(workdir: Path) -> list[dict]:
    found = []
    for path in workdir.rglob("running*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass  # being written or removed
    return found


def campaign_processes(workdir: Path) -> list[str]:
    """Processes that name the campaign folder on their command line (``pgrep -f``) or run
    inside it (pw.x, orted and pacemaker get only relative paths)."""
    found = subprocess.run(["pgrep", "-af", str(workdir)], capture_output=True, check=False,
                           text=True).stdout.splitlines()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cwd = os.readlink(entry / "cwd")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if state != "Z" and (cwd + "/").startswith(f"{workdir}/"):
                found.append(f"{entry.name} {command} (in {cwd})")
    return found


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130),
                                           (signal.SIGHUP, 129)])
def test_signal_during_a_fit_stops_the_run_and_its_programs(
        tmp_path: Path, signum: signal.Signals, code: int) -> None:
    workdir = tmp_path / "w"
    driver = start_driver(write_config(tmp_path), workdir)
    fit_marker = workdir / "iter_000" / "fit" / "running_pacemaker.json"
    wait_for(fit_marker.exists, driver, 120, "pacemaker fit")
    running = markers(workdir)
    assert running and all(m["host"] == socket.gethostname() for m in running)
    assert all(process_start_ticks(m["pid"]) == m["start_ticks"] for m in running)
    signalled_at = time.time()

    driver.send_signal(signum)
    started = time.monotonic()
    assert driver.wait(timeout=30) == code
    took = time.monotonic() - started
    assert took < 15, f"the driver took {took:.1f} s to stop"

    log = (workdir / "campaign.log").read_text()
    lines = [line for line in log.splitlines() if "received " in line]
    assert len(lines) == 1, lines
    assert f"received {signum.name}: saving the state, stopping 1 running program; run the " \
           "same command again to resume" in lines[0]
    terminal = Path(f"{workdir}.out").read_text()
    assert terminal.count("received ") == 1 and "Traceback" not in terminal
    state = load_state(workdir)
    assert state is not None and state.stage == "fit"
    assert (workdir / "state.json").stat().st_mtime >= signalled_at - 1  # saved on the way out
    assert state.elapsed_s > 0
    assert all(process_start_ticks(m["pid"]) != m["start_ticks"] for m in running)
    assert markers(workdir) == []  # removed by run_program when pacemaker ended
    assert campaign_processes(workdir) == []


def test_a_signal_ignored_by_nohup_does_not_stop_the_driver(tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    driver = start_driver(write_config(tmp_path), workdir,
                          preexec=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    fit_marker = workdir / "iter_000" / "fit" / "running_pacemaker.json"
    wait_for(fit_marker.exists, driver, 120, "pacemaker fit")
    driver.send_signal(signal.SIGHUP)  # the terminal of a 'nohup pyacemaker run' closed
    time.sleep(3)
    assert driver.poll() is None and fit_marker.exists()
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=30) == 143
    assert campaign_processes(workdir) == []


# --------------------------------------------------------------------------- the reaper

LAUNCHER = """\
import sys
from pyacemaker.programs import run_program
run_program(sys.argv[2:], sys.argv[1], check=False)
"""


def orphan(folder: Path, argv: list[str]) -> dict:
    """Start ``argv`` through run_program in a Python process, SIGKILL that process once the
    program runs, and return the program's marker."""
    parent = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(folder), *argv])
    marker = folder / "running.json"
    wait_for(marker.exists, parent, 30, "running.json")
    info = json.loads(marker.read_text())
    time.sleep(0.3)  # let a shell start its own children
    parent.kill()
    parent.wait()
    return info


def test_a_program_dies_with_its_killed_parent(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a plain ``sleep 300`` gets SIGTERM when run_program's process is
    SIGKILLed; nothing is left for the reaper but the marker, which it removes."""
    info = orphan(tmp_path, ["sleep", "300"])
    wait_for(lambda: process_start_ticks(info["pid"]) is None, None, 5, "end of sleep")
    assert (tmp_path / "running.json").exists()
    assert reap_stale_children(tmp_path) == []
    assert not (tmp_path / "running.json").exists()


OWNER_LAUNCHER = """\
import sys
from pyacemaker.programs import mark_owner, run_program
mark_owner()
run_program(sys.argv[2:], sys.argv[1], check=False)
"""


def test_reaper_leaves_the_programs_of_a_live_command_alone(tmp_path: Path) -> None:
    """A program whose owning pyacemaker command (e.g. a `validate` next to a resumed run)
    is alive is not stale: the reaper keeps it and its marker."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER_LAUNCHER, str(tmp_path),
                              "sleep", "300"])
    marker = tmp_path / "running.json"
    try:
        wait_for(marker.exists, owner, 30, "running.json")
        info = json.loads(marker.read_text())
        assert info["owner"].startswith(f"{owner.pid}:")
        assert reap_stale_children(tmp_path) == []
        assert marker.exists() and process_start_ticks(info["pid"]) == info["start_ticks"]
    finally:
        owner.kill()
        owner.wait()
    wait_for(lambda: process_start_ticks(info["pid"]) is None, None, 5, "end of sleep")


def test_reaper_ends_a_program_that_ignores_sigterm(tmp_path: Path) -> None:
    """A stale child alive with the marker's start time: SIGTERM, then SIGKILL."""
    info = orphan(tmp_path, ["sh", "-c", "trap '' TERM; exec sleep 300"])
    time.sleep(0.5)
    assert process_start_ticks(info["pid"]) == info["start_ticks"]  # survived its parent
    started = time.monotonic()
    lines = reap_stale_children(tmp_path, grace_s=1.0)
    assert len(lines) == 1 and f"pid {info['pid']}" in lines[0] and "sleep 300" in lines[0]
    assert time.monotonic() - started < 5
    assert process_start_ticks(info["pid"]) is None
    assert not (tmp_path / "running.json").exists()


# Like mpirun: each rank in a process group of its own, in the program's session.
MPIRUN_LIKE = ("import subprocess, time; "
               "subprocess.Popen(['sleep', '300'], process_group=0); time.sleep(300)")


def test_reaper_ends_what_a_dead_program_left_in_its_session(tmp_path: Path) -> None:
    """The program died with its parent, its child (in a process group of its own, as
    mpirun's ranks are) did not: the session outlives its leader and is ended."""
    info = orphan(tmp_path, [sys.executable, "-c", MPIRUN_LIKE])
    wait_for(lambda: process_start_ticks(info["pid"]) is None, None, 5, "end of the leader")
    left = live_session_members(info["sid"])
    assert len(left) == 1 and os.getpgid(left[0]) != info["pgid"]  # the sleep
    lines = reap_stale_children(tmp_path, grace_s=2.0)
    assert len(lines) == 1 and f"pid {info['pid']}" in lines[0]
    assert live_session_members(info["sid"]) == []
    assert not (tmp_path / "running.json").exists()


def test_reaper_leaves_a_reused_pid_and_other_hosts_alone(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        ticks = process_start_ticks(bystander.pid)
        assert ticks is not None
        reused = tmp_path / "iter_000" / "label" / "0"
        reused.mkdir(parents=True)
        # the marker of an earlier program that had this pid (it started at another time)
        (reused / "running.json").write_text(json.dumps({
            "pid": bystander.pid, "pgid": bystander.pid, "host": socket.gethostname(),
            "start_ticks": ticks - 100, "argv": ["pw.x"]}))
        remote = tmp_path / "iter_000" / "fit"
        remote.mkdir(parents=True)
        (remote / "running_pacemaker.json").write_text(json.dumps({
            "pid": bystander.pid, "pgid": bystander.pid, "host": "node-elsewhere-17",
            "start_ticks": ticks, "argv": ["pacemaker", "input.yaml"]}))
        lines = reap_stale_children(tmp_path, grace_s=1.0)
        assert len(lines) == 1
        assert "node-elsewhere-17" in lines[0] and f"pid {bystander.pid}" in lines[0]
        time.sleep(0.2)
        assert bystander.poll() is None  # not killed
        assert not (reused / "running.json").exists()  # a marker of an ended program
        assert (remote / "running_pacemaker.json").exists()  # left for its own host
    finally:
        bystander.kill()
        bystander.wait()


STOPPER = """\
import sys, threading, time
from pyacemaker.programs import ProgramsStopped, run_program, terminate_running_programs
folder = sys.argv[1]
outcomes = []


def run(i, argv):
    try:
        outcomes.append(run_program(argv, f"{folder}/p{i}", check=False).returncode)
    except ProgramsStopped:  # stopped by terminate_running_programs: not a failed program
        outcomes.append("stopped")


argvs = [["sleep", "300"], ["sh", "-c", "trap '' TERM; exec sleep 300"]]
threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(argvs)]
for t in threads:
    t.start()
time.sleep(1.0)
started = time.monotonic()
print("stopped", terminate_running_programs(grace_s=1.0, refuse_new=True))
for t in threads:
    t.join()
print("took", round(time.monotonic() - started, 1))
print(*outcomes)
try:
    run_program(["sleep", "1"], f"{folder}/p2")
except ProgramsStopped:
    print("refused")
"""


def test_terminate_running_programs_stops_every_group(tmp_path: Path) -> None:
    """In its own process: the 'refuse new programs' state lasts for the process's life."""
    out = subprocess.run([sys.executable, "-c", STOPPER, str(tmp_path)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "stopped 2"
    assert float(lines[1].split()[1]) < 4  # SIGKILL after the 1 s grace for the deaf one
    assert lines[2] == "stopped stopped"
    assert lines[3] == "refused"
    assert list(tmp_path.rglob("running*.json")) == []
    assert campaign_processes(tmp_path) == []


TINY_QE = {  # 2 Si atoms, low cutoff; the dense k-mesh (25^3) makes one pw.x last ~25 s
    "name": "si-tiny", "elements": ["Si"],
    "oracle": {"kind": "qe", "qe": {"kspacing": 0.1, "ecutwfc": 15, "ecutrho": 120}},
    "active_learning": {"initial_structures": 2, "max_iterations": 1},
}


@pytest.mark.skipif(shutil.which("pw.x") is None, reason="needs Quantum ESPRESSO's pw.x")
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_a_driver_stopped_while_pw_x_runs_leaves_no_pw_x_or_orted(
        tmp_path: Path, signum: signal.Signals, code: int) -> None:
    """Debian's pw.x runs as an MPI singleton: it starts an ``orted`` in a session of its
    own, which a kill of pw.x's process group does not reach. Nothing may be left, after
    SIGTERM (the driver stops pw.x) or SIGKILL (the kernel does: PR_SET_PDEATHSIG)."""
    workdir = tmp_path / "w"
    driver = start_driver(write_config(tmp_path, TINY_QE), workdir)

    def pw_and_orted() -> list[str]:
        running = campaign_processes(workdir)
        return running if any("orted" in p for p in running) else []

    before = wait_for(pw_and_orted, driver, 120, "pw.x with its orted")
    assert any("pw.x" in p for p in before)
    driver.send_signal(signum)
    assert driver.wait(timeout=30) == code
    wait_for(lambda: campaign_processes(workdir) == [], None, 5, "end of pw.x and orted")
    terminal = Path(f"{workdir}.out").read_text()
    assert "retrying" not in terminal  # a stopped pw.x is not a crash to heal
    store = DataStore(workdir / "data.db")
    assert store.count(status="quarantined") == 0 and store.count(status="candidate") == 2
