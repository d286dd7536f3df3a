"""Shared by the SLURM, PBS and container tests: the local SLURM cluster's lifecycle and a
tiny real DFT task (Si 2-atom cell, coarse k-mesh) that runs as a Parsl app on any worker.

Worker-side functions live here (not in test modules) so Parsl workers import them by name
(PYTHONPATH is exported by parsl_configs.common.worker_init)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ase.build import bulk
from ase.io import read, write

from pyacemaker.programs import Launch, run_program

REPO = Path(__file__).resolve().parents[2]
SLURM_SCRIPT = REPO / "scripts" / "slurm_cluster.sh"
SI_PSEUDO = "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"
PSEUDO_DIR = Path("/usr/share/espresso/pseudo")


# ----------------------------------------------------------------------------- SLURM cluster


def slurm_cluster_up() -> Iterator[str]:
    """Start the single-node cluster (if not running), yield its SLURM_CONF, stop it after
    if this call started it. Use inside a session-scoped fixture."""
    already = subprocess.run(["bash", str(SLURM_SCRIPT), "status"], capture_output=True)
    started = subprocess.run(["bash", str(SLURM_SCRIPT), "start"], capture_output=True,
                             text=True, timeout=120)
    if started.returncode != 0:
        raise RuntimeError(f"scripts/slurm_cluster.sh start failed:\n{started.stderr}")
    conf = started.stdout.strip().split("=", 1)[1]
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield conf
    finally:
        if already.returncode != 0:
            subprocess.run(["bash", str(SLURM_SCRIPT), "stop"], capture_output=True, timeout=120)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


def squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                         check=True).stdout
    return set(out.split())


def submit_scripts(run_dir: Path) -> list[str]:
    """The batch scripts Parsl wrote for this run (runinfo/NNN/submit_scripts/parsl.*)."""
    folder = sorted(run_dir.glob("runinfo/*/submit_scripts"))
    return [p.read_text() for d in folder for p in sorted(d.glob("parsl.*"))
            if p.suffix not in (".stdout", ".stderr")]


# ----------------------------------------------------------------------------- a DFT label


def write_si2_input(folder: Path, a: float = 5.43, kpts: int = 2, ecutwfc: float = 20.0,
                    displacement: float = 0.0, pseudo_dir: Path = PSEUDO_DIR) -> Path:
    """A Si 2-atom diamond cell; ``displacement`` (A) moves atom 1 to get non-zero forces."""
    folder.mkdir(parents=True, exist_ok=True)
    atoms = bulk("Si", "diamond", a=a)
    atoms.positions[1, 0] += displacement
    path = folder / "pw.in"
    write(path, atoms, format="espresso-in", pseudopotentials={"Si": SI_PSEUDO},
          kpts=(kpts,) * 3,
          input_data={"control": {"calculation": "scf", "tprnfor": True,
                                  "pseudo_dir": str(pseudo_dir), "outdir": "./tmp",
                                  "disk_io": "none"},
                      "system": {"ecutwfc": ecutwfc, "ecutrho": 8 * ecutwfc},
                      "electrons": {"conv_thr": 1e-10}})
    return path


@dataclass
class Label:
    energy: float
    forces: list[list[float]]
    slurm_job_id: str | None
    host: str
    workdir: str


def label_si2(folder: str, launch: Launch | None = None, timeout_s: float = 600,
              start_marker: str | None = None) -> Label:
    """Run pw.x on ``folder/pw.in`` (written beforehand) and parse energy and forces.
    ``start_marker``: a file this call appends its SLURM job id to before pw.x starts."""
    if start_marker:
        with open(start_marker, "a") as fh:
            fh.write(f"{os.environ.get('SLURM_JOB_ID', 'none')}\n")
    result = run_program(["pw.x", "-in", "pw.in"], folder, timeout_s=timeout_s, launch=launch)
    out = read(Path(result.workdir) / result.stdout_file, format="espresso-out")
    return Label(energy=float(out.get_potential_energy()),
                 forces=out.get_forces().tolist(),
                 slurm_job_id=os.environ.get("SLURM_JOB_ID"),
                 host=os.uname().nodename, workdir=result.workdir)


def job_environment() -> dict[str, str]:
    """What a worker sees of its batch job."""
    keys = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_JOB_NAME", "PBS_JOBID", "SLURM_CPUS_ON_NODE")
    env = {k: os.environ[k] for k in keys if k in os.environ}
    env["pid"] = str(os.getpid())
    env["time"] = str(time.time())
    return env
