"""Kill a real EMT campaign at random moments and resume it; count what was lost, redone
and left running. Shared by tests/integration/test_chaos.py and bench/chaos.py.

Lost: a row labelled in the data lake before a kill that is not labelled after it.
Duplicated: an oracle answer for a row that was already labelled in the lake (seen in the
rows' ``outcomes.jsonl`` audit trail). An answer that arrives in the instant between the
oracle and the lake's write is lost work of a run in flight, counted apart as ``redone``.
Orphans: processes whose working folder is inside the campaign folder once the driver is
gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from pyacemaker.datastore import DataStore

REPO = Path(__file__).resolve().parents[2]

TINY_CAMPAIGN = {
    "name": "cu-chaos",
    "elements": ["Cu"],
    "oracle": {"kind": "emt"},
    "training": {"number_of_functions_per_element": 10, "max_iterations": 40,
                 "warm_start_iterations": 20},
    "exploration": {"engine": "ase", "temperatures": [800, 1400], "steps": 200,
                    "target_atoms": 16, "walkers": 1, "max_tasks": 2},
    "active_learning": {"initial_structures": 16, "max_candidates_per_iteration": 6,
                        "max_iterations": 2},
}


@dataclass
class ChaosReport:
    kills: int = 0
    finished_before_kill: int = 0
    lost: int = 0
    duplicated: int = 0
    redone: int = 0
    orphans: list[str] = field(default_factory=list)
    exit_codes: Counter[int] = field(default_factory=Counter)
    labelled: int = 0
    wall_s: float = 0.0

    def summary(self) -> str:
        return (f"kills survived {self.kills}, labels lost {self.lost}, labels duplicated "
                f"{self.duplicated}, redone in flight {self.redone}, orphans found "
                f"{len(self.orphans)}, labelled {self.labelled}, exit codes "
                f"{dict(self.exit_codes)}, {self.wall_s:.0f} s")


def labelled_rows(workdir: Path) -> set[int]:
    db = workdir / "data.db"
    if not db.exists():
        return set()
    store = DataStore(db)
    return {row.id for row in store.rows(status="labelled")}


def answers(workdir: Path) -> Counter[int]:
    """Converged oracle answers per row id, over every iteration's label folder."""
    counts: Counter[int] = Counter()
    for path in workdir.glob("iter_*/label/*/outcomes.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip() and json.loads(line)["status"] == "converged":
                counts[int(path.parent.name)] += 1
    return counts


def campaign_processes(workdir: Path) -> list[str]:
    """Live processes (pid and command) whose working folder is inside ``workdir``."""
    found = []
    root = str(workdir.resolve())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        except OSError:
            continue
        if cwd == root or cwd.startswith(root + os.sep):
            found.append(f"{proc.name}: {cmd}")
    return found


def start_driver(config: Path, workdir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "pyacemaker.cli", "run", str(config), "--site",
         str(REPO / "site_configs/local.yaml"), "--workdir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        start_new_session=True,  # its own group: the kill below reaches the whole group
        preexec_fn=_default_signals)  # noqa: PLW1509 - the suite may run under nohup


def _default_signals() -> None:
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def wait_gone(workdir: Path, timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        left = campaign_processes(workdir)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def run_chaos(folder: Path, kills: int, sig: signal.Signals, seed: int = 7,
              window_s: tuple[float, float] = (4.0, 40.0),
              campaign: dict | None = None) -> ChaosReport:
    """Start, kill at a random moment, check, resume ... ``kills`` times; then finish."""
    rng = np.random.default_rng(seed)
    config = folder / "campaign.yaml"
    config.write_text(yaml.safe_dump(campaign or TINY_CAMPAIGN))
    workdir = folder / "campaign"
    report = ChaosReport()
    start = time.monotonic()
    for _ in range(kills):
        before, answered_before = labelled_rows(workdir), answers(workdir)
        driver = start_driver(config, workdir)
        try:
            driver.wait(timeout=float(rng.uniform(*window_s)))
            report.finished_before_kill += 1  # it finished on its own: nothing to kill
            report.exit_codes[driver.returncode] += 1
            break
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, sig)
        report.exit_codes[driver.wait(timeout=120)] += 1
        report.kills += 1
        report.orphans += wait_gone(workdir, timeout_s=15.0)
        _account(report, workdir, before, answered_before)
    before, answered_before = labelled_rows(workdir), answers(workdir)
    final = start_driver(config, workdir)
    report.exit_codes[final.wait(timeout=1800)] += 1
    report.orphans += wait_gone(workdir, timeout_s=15.0)
    _account(report, workdir, before, answered_before)
    report.labelled = len(labelled_rows(workdir))
    report.wall_s = time.monotonic() - start
    return report


def _account(report: ChaosReport, workdir: Path, before: set[int],
             answered_before: Counter[int]) -> None:
    """What one run (killed or not) did to the rows labelled before it."""
    after = labelled_rows(workdir)
    report.lost += len(before - after)
    for row, count in answers(workdir).items():
        extra = count - answered_before.get(row, 0)
        if row in before:
            report.duplicated += extra  # labelled already, and asked again
        else:
            report.redone += max(0, extra - (1 if row in after else 0))
