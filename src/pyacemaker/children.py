"""The driver's child processes: stopping them on a signal, and ending those a dead driver left.

A driver killed hard (SIGKILL, OOM, a node reboot of the login shell's parent ...) can leave
programs running: a pw.x whose parent thread died gets SIGTERM from Linux (PR_SET_PDEATHSIG,
see :mod:`pyacemaker.programs`), but a program started in an HTEX worker that outlived the
driver, or one that ignored SIGTERM, does not. Every program writes ``running{suffix}.json``
in its folder while it runs; :func:`reap_stale_children` reads those markers when a driver
starts (it holds the campaign lock, so no other driver on this folder owns them) and when it
stops after a signal, and ends what is still running. The kernel start time in the marker
keeps a later process that reused the pid from being killed.

:func:`install_signal_handlers` makes SIGTERM (scancel, a job's time limit), SIGHUP (the
terminal closed) and SIGINT (Ctrl-C) stop the driver the same way: one log line, the running
programs stopped at once (the Parsl cleanup would otherwise wait for them), the state saved
by the driver's ``finally``, exit status 128 + signal.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from pyacemaker.programs import (
    MARKER_GLOB,
    live_session_members,
    owner_alive,
    process_start_ticks,
    running_groups,
    stop_sessions,
    terminate_running_programs,
)

log = logging.getLogger("pyacemaker.children")
DRIVER_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class DriverInterrupted(KeyboardInterrupt):
    """The driver got a stop signal. A KeyboardInterrupt, so that a stage's
    ``except Exception`` does not swallow it; ``exit_code`` is the shell's 128 + signal."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __reduce__(self) -> tuple[type[DriverInterrupted], tuple[int]]:
        return (type(self), (self.signum,))


class DriverHandover(DriverInterrupted):
    """A detached driver job's time is up (SIGUSR1): stop as on SIGTERM, then the caller
    submits the successor job; the job's exit status is 0."""

    @property
    def exit_code(self) -> int:
        return 0


def install_signal_handlers(handover: bool = False) -> Callable[[], None]:
    """Handle SIGTERM, SIGHUP and SIGINT in the driver (main thread only; those not ignored),
    and with ``handover`` SIGUSR1 (a detached driver job's hand-over, raised as
    :class:`DriverHandover`); return a function that puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    stopping = threading.Event()
    driver = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != driver:  # a forked child of the driver: die as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if stopping.is_set():  # a second signal while stopping: let the first finish
            log.debug("received %s again while stopping", signal.Signals(signum).name)
            return
        stopping.set()
        n = len(running_groups())  # 0 with process-pool workers: their cleanup stops them
        what = f"{n} running program{'' if n == 1 else 's'}" if n else "the workers"
        if signum == signal.SIGUSR1:
            log.warning("driver job time is up (SIGUSR1): saving the state, stopping %s; a "
                        "successor job resumes the campaign", what)
        else:
            log.warning("received %s: saving the state, stopping %s; run the same command "
                        "again to resume", signal.Signals(signum).name, what)
        # Before raising: the main thread may be blocked on a future whose worker thread
        # waits for this very program; the Parsl cleanup would wait for it too.
        terminate_running_programs(refuse_new=True)
        raise (DriverHandover if signum == signal.SIGUSR1 else DriverInterrupted)(signum)

    # A signal set to be ignored stays ignored: under nohup a closed terminal's SIGHUP must
    # not stop the driver, nor a Ctrl-C one started with '&' from a script.
    wanted = DRIVER_SIGNALS + ((signal.SIGUSR1,) if handover else ())
    previous: dict[int, Any] = {sig: signal.signal(sig, handler) for sig in wanted
                                if signal.getsignal(sig) is not signal.SIG_IGN}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def reap_stale_children(workdir: Path, grace_s: float = 5.0) -> list[str]:
    """End the programs a dead driver left running in ``workdir``; return one line per
    program stopped or left (other host). Markers of ended programs are removed."""
    host = socket.gethostname()
    own = running_groups()
    lines: list[str] = []
    for marker in sorted(Path(workdir).rglob(MARKER_GLOB)):
        try:
            info = json.loads(marker.read_text())
            pid, sid = int(info["pid"]), int(info.get("sid", info["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a marker of ours, or being written
        if sid in own or owner_alive(info.get("owner")):
            continue  # a program of this process, or of another live pyacemaker command
        command = " ".join(str(a) for a in info.get("argv", []))[:200]
        if info.get("host") != host:
            line = (f"{marker}: pid {pid} on host {info.get('host')} may still be running "
                    f"({command}); check there, it was left alone")
            log.warning("%s", line)
            lines.append(line)
            continue
        line = _reap_one(marker, pid, sid, info.get("start_ticks"), command, grace_s)
        if line:
            lines.append(line)
    return lines


def _reap_one(marker: Path, pid: int, sid: int, start_ticks: int | None, command: str,
              grace_s: float) -> str | None:
    started = process_start_ticks(pid)
    if started is not None and started != start_ticks:
        # the pid belongs to a later process now (and so does its session): not ours
        log.debug("%s: pid %d was reused by another process; marker removed", marker, pid)
        marker.unlink(missing_ok=True)
        return None
    if not live_session_members(sid):
        log.debug("%s: pid %d has ended; marker removed", marker, pid)
        marker.unlink(missing_ok=True)
        return None
    # The program is alive with the same start time, or gone with its session still there
    # (Linux hands out no pid that is still a session id): what is left is the old program's.
    stop_sessions([sid], grace_s)
    marker.unlink(missing_ok=True)
    line = f"stopped pid {pid} left running by an earlier driver in {marker.parent}: {command}"
    log.warning("%s", line)
    return line


def exit_status_after_interrupt(workdir: Path, exc: KeyboardInterrupt) -> int:
    """On the way out after a signal (the state is saved): end whatever still runs in the
    folder and return 128 + signal. Worker threads still busy with Python work (an ASE MD,
    a phonon calculation) cannot be stopped and their results are not wanted: everything
    kept is on disk, so the process exits at once instead of waiting for them."""
    deadline = time.monotonic() + 2.0  # let run_program's threads see their programs end
    while running_groups() and time.monotonic() < deadline:
        time.sleep(0.05)
    reap_stale_children(workdir)
    code = exc.exit_code if isinstance(exc, DriverInterrupted) else 130
    busy = [t for t in threading.enumerate()
            if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    if busy and isinstance(exc, DriverInterrupted):
        log.debug("not waiting for %d worker threads: %s", len(busy),
                  ", ".join(t.name for t in busy))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
