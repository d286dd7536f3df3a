"""What running on a scheduler and inside a container costs, on this machine.

    .venv/bin/python bench/hpc_overhead.py [--tasks 40] [--repeats 3]

Rows:
  - ch-run start-up: `true` natively vs inside the QE image (ms per call);
  - a real pw.x label (Si 2-atom cell, 2x2x2 k, 20 Ry) natively vs inside the image (s);
  - Parsl through the local SLURM (test-slurm site): time from submit to the first result
    (batch job start + worker pool start) and per-task cost of a batch of no-op tasks,
    against the same tasks on a local HTEX.
Needs root for the SLURM part (it starts scripts/slurm_cluster.sh if not running and
stops it again) and the QE image (scripts/setup.d/qe_image.sh). Timings on a shared machine
are noisy: compare rows of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from ase.build import bulk
from ase.io import read, write

from pyacemaker.config import SiteConfig, StageResources, load_site
from pyacemaker.execution import Engine
from pyacemaker.programs import Launch, run_program

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "build" / "containers" / "qe"


def noop(x: int) -> int:
    return x


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def si2_label(folder: Path, launch: Launch) -> float:
    atoms = bulk("Si", "diamond", a=5.43)
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "pw.in", atoms, format="espresso-in",
          pseudopotentials={"Si": "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"}, kpts=(2, 2, 2),
          input_data={"control": {"pseudo_dir": "/usr/share/espresso/pseudo",
                                  "outdir": "./tmp", "disk_io": "none"},
                      "system": {"ecutwfc": 20.0, "ecutrho": 160.0}})
    result = run_program(["pw.x", "-in", "pw.in"], folder, launch=launch, timeout_s=600)
    return read(Path(result.workdir) / "stdout.txt", format="espresso-out").get_potential_energy()


def container_rows(tmp: Path, repeats: int) -> list[tuple[str, str, str]]:
    if not (IMAGE / ".pyacemaker-image").is_file():
        subprocess.run(["bash", str(REPO / "scripts/setup.d/qe_image.sh")], check=True)
    native, inside = Launch(), Launch(container_runtime="charliecloud", image=str(IMAGE))
    rows = []
    for name, launch in (("native", native), ("ch-run", inside)):
        calls = timed(lambda launch=launch: run_program(["true"], tmp / "true", launch=launch),
                      20)
        rows.append((f"`true` {name}", f"{1000 * statistics.median(calls):.1f} ms",
                     "median of 20"))
    energies = {}
    for name, launch in (("native", native), ("ch-run", inside)):
        runs = []
        for i in range(repeats):
            start = time.perf_counter()
            energies[name] = si2_label(tmp / f"pw_{name}_{i}", launch)
            runs.append(time.perf_counter() - start)
        rows.append((f"pw.x Si2 {name}", f"{statistics.median(runs):.2f} s",
                     f"median of {repeats}"))
    difference = abs(energies["ch-run"] - energies["native"])
    rows.append(("|E(ch-run) - E(native)|", f"{difference:.1e} eV",
                 "same binary and libraries"))
    return rows


def parsl_rows(site: SiteConfig, label: str, tmp: Path, tasks: int) -> list[tuple[str, str, str]]:
    with Engine(site, tmp / label.replace(" ", "_")) as engine:
        start = time.perf_counter()
        engine.submit("light", noop, 0).result(timeout=600)
        first = time.perf_counter() - start
        start = time.perf_counter()
        futures = [engine.submit("light", noop, i) for i in range(tasks)]
        assert [f.result(timeout=600) for f in futures] == list(range(tasks))
        per_task = (time.perf_counter() - start) / tasks
    return [(f"{label}: submit -> first result", f"{first:.1f} s", "block + worker start"),
            (f"{label}: {tasks} no-op tasks", f"{1000 * per_task:.1f} ms/task", "warm block")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    rows: list[tuple[str, str, str]] = []
    with TemporaryDirectory(prefix="bench_hpc_") as tmp_name:
        tmp = Path(tmp_name)
        rows += container_rows(tmp, args.repeats)
        local = SiteConfig(local_executor="htex")
        local.resources["light"] = StageResources(max_parallel_tasks=2)
        rows += parsl_rows(local, "local HTEX", tmp, args.tasks)
        status = subprocess.run(["bash", str(REPO / "scripts/slurm_cluster.sh"), "status"],
                                capture_output=True)
        started = subprocess.run(["bash", str(REPO / "scripts/slurm_cluster.sh"), "start"],
                                 capture_output=True, text=True, check=True)
        os.environ["SLURM_CONF"] = started.stdout.strip().split("=", 1)[1]
        try:
            slurm = load_site(REPO / "site_configs" / "test-slurm.yaml")
            slurm.resources["light"] = StageResources(max_parallel_tasks=2, walltime="00:10:00")
            rows += parsl_rows(slurm, "SLURM HTEX", tmp, args.tasks)
        finally:
            if status.returncode != 0:
                subprocess.run(["bash", str(REPO / "scripts/slurm_cluster.sh"), "stop"],
                               capture_output=True)
    width = max(len(r[0]) for r in rows)
    print(f"{'what':{width}s}  {'figure':>14s}  note")
    print("-" * (width + 40))
    for what, figure, note in rows:
        print(f"{what:{width}s}  {figure:>14s}  {note}")


if __name__ == "__main__":
    main()
