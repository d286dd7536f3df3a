"""Running one external program (pw.x, lmp, pacemaker, eonclient) the same way everywhere.

A run is an argv list (never a shell string built from config values), executed in its
own task folder with stdout/stderr kept in files, a timeout that kills the whole process
group, and an optional MPI launcher and container prefix (hybrid model: the host's
launcher outside, the binary inside the image). This module has no Parsl import: stages
call :func:`run_program` directly, the execution layer ships the same call to workers.

A program must not outlive the process that started it: on Linux it gets
``PR_SET_PDEATHSIG`` (SIGTERM when its parent dies, even by SIGKILL), a
``running{suffix}.json`` marker in its folder says which process it is while it runs (the
reaper of :mod:`pyacemaker.children` ends it if the driver died anyway), and
:func:`terminate_running_programs` stops every program of this process at once (a
stopping driver must not wait for a 6 h fit in a worker thread).
"""

from __future__ import annotations

import ctypes
import getpass
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

ContainerRuntime = Literal["none", "apptainer", "singularity", "charliecloud"]
MpiLauncher = Literal["mpirun", "srun", "none"]
MARKER_GLOB = "running*.json"  # running{suffix}.json: a program of this folder is running
OWNER_ENV = "PYACEMAKER_OWNER"  # 'pid:start ticks' of the pyacemaker command owning the work
_RUNNING: set[int] = set()  # process groups started by run_program and not yet ended
_RUNNING_LOCK = threading.RLock()  # re-entrant: the signal handler may run in a holder
_REFUSING = threading.Event()  # set when the process is stopping: start nothing new
_HAVE_PROC = Path("/proc/self/stat").exists()  # Linux: sessions and start times from /proc


@dataclass(frozen=True)
class Launch:
    """How a program is started: MPI ranks and container image."""

    mpi_launcher: MpiLauncher = "none"
    mpi_ranks: int = 1
    container_runtime: ContainerRuntime = "none"
    image: str | None = None
    binds: tuple[str, ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()
    mpirun: str = "mpirun"

    def with_ranks(self, ranks: int) -> Launch:
        return replace(self, mpi_ranks=ranks)

    def mpi_prefix(self) -> list[str]:
        if self.mpi_launcher == "none" or self.mpi_ranks <= 1:
            return []
        if self.mpi_launcher == "mpirun":
            return [self.mpirun, "-np", str(self.mpi_ranks)]
        return ["srun", "--ntasks", str(self.mpi_ranks), "--cpus-per-task", "1"]

    def container_prefix(self, workdir: Path) -> list[str]:
        if self.container_runtime == "none":
            return []
        if not self.image:
            raise ValueError(
                f"container runtime {self.container_runtime!r} set but no image for this stage"
            )
        if self.container_runtime in ("apptainer", "singularity"):
            prefix = [self.container_runtime, "exec", "--cleanenv"]
            if self.binds:
                prefix += ["--bind", ",".join(self.binds)]
            return prefix + ["--pwd", str(workdir), self.image]
        # charliecloud: the image stays read-only, so a bind needs its mount point inside it.
        # Bind the task folder's top-level folder (/work, /scratch ...: the image provides
        # those mount points) at the same path so absolute paths mean the same inside;
        # ch-run binds the host's /tmp itself. The host's library/Python paths must not leak in.
        prefix = ["ch-run", "--unset-env=LD_LIBRARY_PATH", "--unset-env=PYTHONPATH"]
        top = Path(*Path(workdir).resolve().parts[:2])
        if str(top) not in ("/", "/tmp"):
            prefix += ["-b", f"{top}:{top}"]
        for bind in self.binds:
            prefix += ["-b", bind if ":" in bind else f"{bind}:{bind}"]
        return prefix + ["-c", str(workdir), self.image, "--"]

    def wrap(self, argv: list[str], workdir: Path) -> list[str]:
        """Full argv: MPI launcher outside, container inside, then the program."""
        return self.mpi_prefix() + self.container_prefix(workdir) + list(argv)


@dataclass
class ProgramResult:
    argv: list[str]
    workdir: str
    returncode: int
    duration_s: float
    timed_out: bool = False
    stdout_file: str = "stdout.txt"
    stderr_file: str = "stderr.txt"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def signal(self) -> int | None:
        """The signal that killed the program, if any (also through mpirun's 128+N)."""
        if self.returncode < 0:
            return -self.returncode
        if self.returncode > 128 and self.returncode - 128 in {s.value for s in signal.Signals}:
            return self.returncode - 128
        return None

    def stdout(self) -> str:
        return (Path(self.workdir) / self.stdout_file).read_text(errors="replace")

    def stderr(self) -> str:
        return (Path(self.workdir) / self.stderr_file).read_text(errors="replace")

    def tail(self, lines: int = 15) -> str:
        """Last lines of stdout and of stderr (programs like pw.x report errors on stdout)."""
        parts = []
        for name, text in (("stdout", self.stdout()), ("stderr", self.stderr())):
            kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
            if kept:
                parts.append(f"[{name}]\n" + "\n".join(kept))
        return "\n".join(parts)


class ProgramFailed(RuntimeError):
    """An external program ended badly; the message carries its argv, status and stderr."""

    def __init__(self, result: ProgramResult):
        self.result = result
        status = "timed out" if result.timed_out else f"exit status {result.returncode}"
        super().__init__(
            f"{shlex.join(result.argv)} failed ({status}) in {result.workdir}\n"
            f"--- last lines of output ---\n{result.tail()}"
        )

    def __reduce__(self) -> tuple[type[ProgramFailed], tuple[ProgramResult]]:
        # Parsl ships exceptions between processes; rebuild from the result record.
        return (ProgramFailed, (self.result,))


class ProgramsStopped(RuntimeError):
    """The process is stopping (:func:`terminate_running_programs` with ``refuse_new``):
    a program it stopped did not fail (no oracle may heal or quarantine on it), and a task
    still queued in a worker thread must not start a new one."""


def run_program(
    argv: list[str],
    workdir: str | Path,
    timeout_s: float | None = None,
    launch: Launch | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    stdin_file: str | Path | None = None,
    log_name: str = "",
) -> ProgramResult:
    """Run ``argv`` in ``workdir`` and return its :class:`ProgramResult`.

    ``check=True`` raises :class:`ProgramFailed` on a non-zero exit or timeout. The
    output files are ``stdout{log_name}.txt`` and ``stderr{log_name}.txt``; the exact
    command is written to ``command{log_name}.json`` next to them.
    """
    if not argv or not all(isinstance(a, str) for a in argv):
        raise TypeError(f"argv must be a non-empty list of strings, got {argv!r}")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    launch = launch or Launch()
    if launch.container_runtime != "none" and launch.image and not Path(launch.image).exists():
        raise FileNotFoundError(
            f"container image {launch.image!r} ({launch.container_runtime}) not found on "
            f"{os.uname().nodename}: check the site's container.images"
        )
    if launch.container_runtime == "none":
        argv = [resolve_executable(argv[0])] + list(argv[1:])
    full_argv = launch.wrap(argv, workdir)
    run_env = dict(os.environ)
    run_env.update(dict(launch.extra_env))
    if launch.container_runtime == "charliecloud":
        run_env.setdefault("USER", getpass.getuser())  # ch-run refuses to start without it
    if env:
        run_env.update(env)
    suffix = f"_{log_name}" if log_name else ""
    result = ProgramResult(argv=full_argv, workdir=str(workdir), returncode=-1, duration_s=0.0,
                           stdout_file=f"stdout{suffix}.txt", stderr_file=f"stderr{suffix}.txt")
    (workdir / f"command{suffix}.json").write_text(json.dumps({"argv": full_argv}, indent=1))
    start = time.monotonic()
    marker = workdir / f"running{suffix}.json"
    stdin = open(stdin_file, "rb") if stdin_file else subprocess.DEVNULL  # noqa: SIM115
    proc: subprocess.Popen[bytes] | None = None
    try:
        with open(workdir / result.stdout_file, "wb") as out, \
                open(workdir / result.stderr_file, "wb") as err:
            try:
                proc = _start(full_argv, workdir, out, err, stdin, run_env)
            except (FileNotFoundError, PermissionError) as exc:
                err.write(f"cannot start {full_argv[0]!r}: {exc}\n".encode())
                result.returncode = 127
            if proc is not None:
                try:
                    _write_marker(marker, proc.pid, full_argv)
                    result.returncode = proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    result.timed_out = True
                    _kill_group(proc)
                    result.returncode = proc.returncode
                except BaseException:
                    _kill_group(proc)  # e.g. KeyboardInterrupt: never leave orphans running
                    raise
    finally:
        if proc is not None:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc.pid)
            marker.unlink(missing_ok=True)
        if stdin is not subprocess.DEVNULL:
            stdin.close()
    result.duration_s = time.monotonic() - start
    (workdir / f"result{suffix}.json").write_text(json.dumps(asdict(result), indent=1))
    if _REFUSING.is_set() and not result.ok:  # stopped by the driver: not a failed program
        raise ProgramsStopped(f"{shlex.join(full_argv)} stopped: this process is stopping")
    if check and not result.ok:
        raise ProgramFailed(result)
    return result


def resolve_executable(name: str) -> str:
    """``name`` as given when PATH finds it; else the venv's own copy (pacemaker,
    pace_activeset ... live next to this Python even when the venv is not activated)."""
    if os.sep in name or shutil.which(name):
        return name
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.is_file() else name


def _start(argv: list[str], workdir: Path, out: Any, err: Any, stdin: Any,
           env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Popen in its own session (a Ctrl-C in the terminal goes to the driver, which stops
    the program itself), dying with its parent, registered under the lock so that
    :func:`terminate_running_programs` sees every program or refuses to start it."""
    with _RUNNING_LOCK:
        if _REFUSING.is_set():
            raise ProgramsStopped(f"not starting {shlex.join(argv)}: this process is stopping")
        preexec = _die_with_parent(os.getpid())  # only calls prctl: safe with threads
        proc = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=err, stdin=stdin,
                                env=env, start_new_session=True,
                                preexec_fn=preexec)  # noqa: PLW1509
        _RUNNING.add(proc.pid)  # start_new_session: its pid is its process group
    return proc


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec function that asks Linux for SIGTERM when the parent dies (None elsewhere).

    Linux sends it when the *thread* that forked exits; run_program's thread waits for the
    program, so that is the end of the process. mpirun passes SIGTERM on to its ranks."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not after fork
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def mark_owner() -> None:
    """Name this process (pid and start time) as the owner of the programs it and its local
    workers start; the reaper leaves the programs of a live owner alone."""
    os.environ[OWNER_ENV] = f"{os.getpid()}:{process_start_ticks(os.getpid())}"


def owner_alive(owner: str | None) -> bool:
    """True when ``owner`` ('pid:start ticks' of a marker) is a live process other than
    this one."""
    try:
        pid, ticks = (owner or "").split(":")
        return int(pid) != os.getpid() and str(process_start_ticks(int(pid))) == ticks
    except ValueError:
        return False


def _write_marker(marker: Path, pid: int, argv: list[str]) -> None:
    """``running{suffix}.json``: which process runs here, with its kernel start time, so a
    reaper can tell this program from a later process that got the same pid."""
    info = {"pid": pid, "pgid": pid, "sid": pid, "host": socket.gethostname(),
            "start_ticks": process_start_ticks(pid), "parent_pid": os.getpid(),
            "owner": os.environ.get(OWNER_ENV),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": argv}
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, marker)


def running_groups() -> set[int]:
    """Process groups (= sessions) of the programs this process is running now."""
    with _RUNNING_LOCK:
        return set(_RUNNING)


def terminate_running_programs(grace_s: float = 5.0, refuse_new: bool = False) -> int:
    """SIGTERM every running program, SIGKILL what is left of it after ``grace_s``; return
    how many were stopped. ``refuse_new``: start no program from now on (a stopping
    driver's queued tasks would otherwise start the next pw.x)."""
    with _RUNNING_LOCK:
        if refuse_new:
            _REFUSING.set()
        groups = sorted(_RUNNING)
    return len(stop_sessions(groups, grace_s))


def stop_sessions(sessions: Iterable[int], grace_s: float = 5.0) -> list[int]:
    """SIGTERM every process of the sessions, wait up to ``grace_s``, SIGKILL the rest;
    return the sessions that had a live process.

    A program runs in a session of its own (start_new_session), and the session, not the
    process group, is what it leaves behind: mpirun puts each rank in a process group of
    its own, so a kill of mpirun's group misses the ranks once mpirun is gone."""
    signalled = [sid for sid in sessions if _signal_session(sid, signal.SIGTERM)]
    deadline = time.monotonic() + grace_s
    left = list(signalled)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [sid for sid in left if live_session_members(sid)]
    for sid in left:
        _signal_session(sid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0  # SIGKILL is delivered asynchronously
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [sid for sid in left if live_session_members(sid)]
    return signalled


def _signal_session(sid: int, signum: int) -> bool:
    """Signal every live process of the session (without /proc: its leader's process
    group); False when none was there."""
    targets = live_session_members(sid) if _HAVE_PROC else [-sid]
    sent = False
    for pid in targets:
        try:
            os.kill(pid, signum)  # a negative pid is a process group
            sent = True
        except (ProcessLookupError, PermissionError):
            pass
    return sent


def _proc_stat(pid: int | str) -> list[str] | None:
    """Fields 3... of /proc/PID/stat (after the command name, which may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_start_ticks(pid: int) -> int | None:
    """Start time of a live (not zombie) process, field 22 of /proc/PID/stat; None when
    there is no such process (or no /proc)."""
    fields = _proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def live_session_members(sid: int) -> list[int]:
    """Pids of the processes of a session (field 6 of /proc/PID/stat) that are not zombies.
    Without /proc: the session leader's process group, as the kernel sees it."""
    if not _HAVE_PROC:
        try:
            os.killpg(sid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [sid]
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(entry.name)
            if fields is not None and fields[0] not in ("Z", "X") and int(fields[3]) == sid:
                members.append(int(entry.name))
    return members


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """End a program on timeout or error: its whole session (see :func:`stop_sessions`)."""
    stop_sessions([proc.pid], grace_s)
    proc.wait()
