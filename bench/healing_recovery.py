"""Recovery rate of the QE oracle's self-healing over a corpus of provoked pw.x failures.

Every case is a real pw.x run made to fail on purpose (too few SCF steps, a hard magnetic
start with tiny smearing, a killed MPI rank, a wall-time limit), labelled with the default
healing order. Prints one row per case and the recovery rate.

    .venv/bin/python bench/healing_recovery.py [--workdir DIR] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.build import bulk

from pyacemaker.config import CampaignConfig
from pyacemaker.programs import Launch
from pyacemaker.stages.oracle.base import make_oracle

os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
FAST = {"kspacing": 0.8, "ecutwfc": 25, "ecutrho": 200}
# The hard bcc Fe case of TOOLCHAIN.md (4x4x4 k, 0.002 Ry smearing)
FE = {"kspacing": 0.6, "ecutwfc": 30, "ecutrho": 240, "degauss": 0.002,
      "conv_thr_per_atom": 5e-9}
TWO_RANKS = Launch(mpi_launcher="mpirun", mpi_ranks=2, mpirun="/usr/bin/mpirun")


def si2(seed: int) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=seed)
    return atoms


def si8(seed: int) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def fe_afm(moment: float) -> Atoms:
    atoms = bulk("Fe", "bcc", a=2.87, cubic=True)
    atoms.set_initial_magnetic_moments([moment, -moment])
    return atoms


@dataclass
class Case:
    name: str
    provoked: str
    elements: list[str]
    structure: Callable[[], Atoms]
    qe: dict[str, Any]
    launch: Launch | None = None
    kill_first_run: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("si2_maxstep3", "electron_maxstep=3", ["Si"], lambda: si2(1),
         {**FAST, "electron_maxstep": 3}),
    Case("si2_maxstep5", "electron_maxstep=5", ["Si"], lambda: si2(2),
         {**FAST, "electron_maxstep": 5}),
    Case("si8_maxstep4", "electron_maxstep=4", ["Si"], lambda: si8(3),
         {**FAST, "electron_maxstep": 4}),
    Case("cu_maxstep3", "electron_maxstep=3 (PAW)", ["Cu"],
         lambda: bulk("Cu", "fcc", a=3.61), {**FAST, "electron_maxstep": 3}),
    Case("ni_fm_maxstep6", "spin, electron_maxstep=6", ["Ni"],
         lambda: bulk("Ni", "fcc", a=3.52), {**FAST, "electron_maxstep": 6}),
    Case("fe_afm_saturated", "AFM start +/-1.0, degauss 0.002 Ry, 50 steps", ["Fe"],
         lambda: fe_afm(16.0), {**FE, "electron_maxstep": 50}),
    Case("fe_afm_moderate", "AFM start +/-2.5 muB, degauss 0.002 Ry, 30 steps", ["Fe"],
         lambda: fe_afm(2.5), {**FE, "electron_maxstep": 30}),
    Case("si2_killed_rank", "SIGKILL one of 2 pw.x ranks", ["Si"], lambda: si2(4),
         dict(FAST), TWO_RANKS, kill_first_run=True),
    Case("si8_killed_rank", "SIGKILL one of 2 pw.x ranks", ["Si"], lambda: si8(5),
         dict(FAST), TWO_RANKS, kill_first_run=True),
    Case("si8_walltime", "timeout_s=16 (pw.x max_seconds 8.6 s)", ["Si"], lambda: si8(6),
         {**FAST, "timeout_s": 16.0}),
    Case("si2_beta1_maxstep4", "mixing_beta=1.0, electron_maxstep=4", ["Si"],
         lambda: si2(7), {**FAST, "mixing_beta": 1.0, "electron_maxstep": 4}),
]


def kill_one_rank(folder: Path, killed: list[int], deadline_s: float = 300.0) -> None:
    end = time.monotonic() + deadline_s
    stdout = folder / "stdout.txt"
    while time.monotonic() < end:
        if stdout.is_file() and "iteration #" in stdout.read_text(errors="replace"):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    cwd = os.readlink(f"/proc/{pid}/cwd")
                except OSError:
                    continue
                if comm == "pw.x" and Path(cwd) == folder.resolve():
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                    return
        time.sleep(0.05)


def run_case(case: Case, root: Path) -> dict[str, Any]:
    oracle = make_oracle(CampaignConfig(elements=case.elements, oracle={"qe": case.qe}))
    workdir = root / case.name
    killer = None
    killed: list[int] = []
    if case.kill_first_run:
        killer = threading.Thread(target=kill_one_rank,
                                  args=(workdir / "attempt_01_initial", killed), daemon=True)
        killer.start()
    start = time.monotonic()
    outcome = oracle.label(case.structure(), workdir, case.launch)
    seconds = time.monotonic() - start
    first_failed = bool(outcome.attempts) and outcome.attempts[0]["outcome"] != "converged"
    return {
        "case": case.name, "provoked": case.provoked, "first_failed": first_failed,
        "status": outcome.status, "seconds": seconds,
        "path": " > ".join(f"{a['strategy']}:{a['outcome']}" for a in outcome.attempts),
        "reason": outcome.reason,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="healing_bench_"))
    cases = [c for c in CASES if not args.only or c.name in args.only]
    rows = []
    for case in cases:
        row = run_case(case, root)
        rows.append(row)
        print(f"{row['case']:<20} {row['status']:<12} {row['seconds']:6.1f}s  {row['path']}",
              flush=True)
    provoked = [r for r in rows if r["first_failed"]]
    healed = [r for r in provoked if r["status"] == "converged"]
    print()
    print(f"{'case':<20} {'provoked failure':<42} {'first run':<10} {'final':<12} "
          f"{'time':>7}  attempts")
    for r in rows:
        print(f"{r['case']:<20} {r['provoked']:<42} "
              f"{'failed' if r['first_failed'] else 'ok':<10} {r['status']:<12} "
              f"{r['seconds']:6.1f}s  {r['path']}")
    for r in rows:
        if r["status"] != "converged":
            print(f"  quarantined {r['case']}: {r['reason']}")
    rate = len(healed) / len(provoked) if provoked else float("nan")
    print(f"\nprovoked failures: {len(provoked)} of {len(rows)} cases; healed: {len(healed)}; "
          f"recovery rate {rate:.0%}; work folders in {root}")


if __name__ == "__main__":
    main()
