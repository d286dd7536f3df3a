"""Batch jobs submitted by pyacemaker itself (not by Parsl): job arrays of DFT labels and the
detached driver. One place for the scheduler's command lines: the submit-script header,
``sbatch``/``qsub``, "is this job still alive" and ``scancel``/``qdel``.

SLURM: ``sbatch --parsable``, ``squeue -h -j ID -o %T``, ``scancel``. PBS Pro and Torque:
``qsub``, ``qstat``, ``qdel``; arrays are ``#PBS -J`` (PBS Pro) or ``#PBS -t`` (Torque).
Every argv is a list (no shell strings built from config values).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from pyacemaker.site_config import SiteConfig

# squeue states of a job (or array element) that has not ended
SLURM_ALIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
               "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT"}
# qstat's one-letter states of a job that has not ended (C completed, F finished, X expired)
PBS_ALIVE = set("QRHWBSTE")
# the element's index, per scheduler (SLURM, Torque, PBS Pro)
ARRAY_INDEX_VARIABLES = ("SLURM_ARRAY_TASK_ID", "PBS_ARRAYID", "PBS_ARRAY_INDEX")
JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID")


class BatchJobError(RuntimeError):
    """A scheduler command failed; the message names the command and its output."""


@dataclass(frozen=True)
class JobShape:
    """What one batch job asks for."""

    name: str
    walltime: str
    output: Path                   # stdout+stderr file (SLURM: may hold %A / %a; PBS arrays:
                                   # unused, the elements' files go to the script's folder)
    nodes: int = 1
    tasks: int = 1                 # MPI ranks
    cores_per_task: int = 1
    partition: str | None = None   # SLURM partition / PBS queue
    account: str | None = None
    array_size: int = 0            # 0: not an array; n >= 2: elements 0..n-1
    throttle: int | None = None    # elements running at once
    extra: str = ""                # verbatim #SBATCH/#PBS lines


def script_header(site: SiteConfig, shape: JobShape) -> list[str]:
    """The #SBATCH or #PBS lines of ``shape`` on ``site``'s scheduler."""
    if site.scheduler == "slurm":
        return _slurm_header(shape)
    if site.scheduler == "pbs":
        return _pbs_header(shape, site.pbs_flavor)
    raise BatchJobError(f"site {site.name!r}: scheduler 'local' has no batch jobs; "
                        "use a slurm or pbs site")


def _throttle(shape: JobShape) -> str:
    return f"%{shape.throttle}" if shape.throttle else ""


def _slurm_header(shape: JobShape) -> list[str]:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={shape.name}",
             f"#SBATCH --time={shape.walltime}", f"#SBATCH --nodes={shape.nodes}",
             f"#SBATCH --ntasks={shape.tasks}",
             f"#SBATCH --cpus-per-task={shape.cores_per_task}",
             f"#SBATCH --output={shape.output}"]
    if shape.partition:
        lines.append(f"#SBATCH --partition={shape.partition}")
    if shape.account:
        lines.append(f"#SBATCH --account={shape.account}")
    if shape.array_size:
        lines.append(f"#SBATCH --array=0-{shape.array_size - 1}{_throttle(shape)}")
    return lines + ([shape.extra] if shape.extra else [])


def _pbs_header(shape: JobShape, flavor: str) -> list[str]:
    cores = shape.tasks * shape.cores_per_task
    select = (f"nodes={shape.nodes}:ppn={cores}" if flavor == "torque"
              else f"select={shape.nodes}:ncpus={cores}:mpiprocs={shape.tasks}")
    lines = ["#!/bin/bash", f"#PBS -N {shape.name}", f"#PBS -l {select}",
             f"#PBS -l walltime={shape.walltime}", "#PBS -j oe"]
    if not shape.array_size:  # an array's elements write <name>.o<id> where qsub ran (the
        lines.append(f"#PBS -o {shape.output}")  # script's folder): PBS has no %a
    if shape.partition:
        lines.append(f"#PBS -q {shape.partition}")
    if shape.account:
        lines.append(f"#PBS -A {shape.account}")
    if shape.array_size:
        flag = "-t" if flavor == "torque" else "-J"
        lines.append(f"#PBS {flag} 0-{shape.array_size - 1}{_throttle(shape)}")
    return lines + ([shape.extra] if shape.extra else [])


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BatchJobError(f"{' '.join(argv)}: {exc}") from exc


def submit(site: SiteConfig, script: Path, after: str | None = None) -> str:
    """Submit ``script``; ``after``: start only once that job has ended (in any way).
    Returns the job id (SLURM: ``123``; PBS: ``123.server``)."""
    if site.scheduler == "slurm":
        argv = ["sbatch", "--parsable"]
        if after:
            argv.append(f"--dependency=afterany:{after}")
    else:
        argv = ["qsub"] + (["-W", f"depend=afterany:{after}"] if after else [])
    script = Path(script).resolve()
    done = _run([*argv, str(script)], cwd=script.parent)  # default output files land there
    if done.returncode != 0 or not done.stdout.strip():
        raise BatchJobError(f"{' '.join(argv)} {script} failed ({done.returncode}): "
                            f"{(done.stderr or done.stdout).strip()}")
    return done.stdout.strip().splitlines()[-1].split(";")[0].strip()


def job_alive(site: SiteConfig, job_id: str) -> bool:
    """Whether the job (or any element of the array) is pending or running."""
    if site.scheduler == "slurm":
        done = _run(["squeue", "-h", "-j", job_id, "-o", "%T"])
        if done.returncode != 0:  # "Invalid job id": ended and purged
            return False
        return any(state.strip() in SLURM_ALIVE for state in done.stdout.split())
    # PBS Pro lists an array's elements with -t; Torque's qstat (and its SLURM wrapper)
    # has no -t and shows the array as one line
    done = _run(["qstat", "-t", job_id] if site.pbs_flavor == "pbspro" else ["qstat", job_id])
    if done.returncode != 0:
        return False
    states = [line.split()[4] for line in done.stdout.splitlines()
              if len(line.split()) >= 6 and line.split()[0].startswith(job_id.split(".")[0])]
    return any(state in PBS_ALIVE for state in states)


def cancel(site: SiteConfig, job_ids: list[str]) -> None:
    """``scancel`` / ``qdel`` the jobs (ids that already ended are ignored)."""
    if not job_ids:
        return
    argv = ["scancel", *job_ids] if site.scheduler == "slurm" else ["qdel", *job_ids]
    _run(argv)


def signal_job(site: SiteConfig, job_id: str, signal_name: str = "TERM") -> bool:
    """Send a signal to the job's batch script only (the driver), not kill the job."""
    if site.scheduler == "slurm":
        argv = ["scancel", "--batch", f"--signal={signal_name}", job_id]
    else:
        argv = ["qsig", "-s", signal_name, job_id]
    return _run(argv).returncode == 0


def slurm_jobs_with_scripts_under(folder: Path) -> list[str]:
    """SLURM jobs (pending or running) whose batch script lies below ``folder``: the Parsl
    blocks (runinfo/), job arrays and driver jobs of one campaign."""
    done = _run(["squeue", "-h", "-o", "%i|%o"])
    root = str(Path(folder).resolve())
    ids = []
    for line in done.stdout.splitlines():
        job_id, _, command = line.partition("|")
        if command.startswith(root + "/"):
            ids.append(job_id.split("_")[0])
    return sorted(set(ids))
