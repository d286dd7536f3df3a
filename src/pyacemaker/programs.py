"""Running one external program (pw.x, lmp, pacemaker, eonclient) the same way everywhere.

A run is an argv list (never a shell string built from config values), executed in its
own task folder with stdout/stderr kept in files, a timeout that kills the whole process
group, and an optional MPI launcher and container prefix (hybrid model: the host's
launcher outside, the binary inside the image). This module has no Parsl import: stages
call :func:`run_program` directly, the execution layer ships the same call to workers.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

ContainerRuntime = Literal["none", "apptainer", "singularity", "charliecloud"]
MpiLauncher = Literal["mpirun", "srun", "none"]


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
    stdin = open(stdin_file, "rb") if stdin_file else subprocess.DEVNULL  # noqa: SIM115
    try:
        with open(workdir / result.stdout_file, "wb") as out, \
                open(workdir / result.stderr_file, "wb") as err:
            try:
                proc = subprocess.Popen(full_argv, cwd=workdir, stdout=out, stderr=err,
                                        stdin=stdin, env=run_env, start_new_session=True)
            except (FileNotFoundError, PermissionError) as exc:
                err.write(f"cannot start {full_argv[0]!r}: {exc}\n".encode())
                result.returncode = 127
                proc = None
            if proc is not None:
                try:
                    result.returncode = proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    result.timed_out = True
                    _kill_group(proc)
                    result.returncode = proc.returncode
                except BaseException:
                    _kill_group(proc)  # e.g. KeyboardInterrupt: never leave orphans running
                    raise
    finally:
        if stdin is not subprocess.DEVNULL:
            stdin.close()
    result.duration_s = time.monotonic() - start
    (workdir / f"result{suffix}.json").write_text(json.dumps(asdict(result), indent=1))
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


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
