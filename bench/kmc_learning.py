"""How fast the loop learns a kMC halt, and the barrier it ends up with.

Runs the EMT Cu campaign of tests/integration/test_campaign_kmc.py (one kMC task per
iteration on a 31-atom vacancy cell, ASE MD at 300 K next to it) for a few iterations per
campaign seed. Prints per seed: the iteration of the first kMC halt, the first iteration
whose kMC rerun passed, labels used by then, the kMC barriers of the last run against
EMT's 0.776 eV, and the wall time.

Usage: python bench/kmc_learning.py [--iterations 5] [--seeds 42 7]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from test_campaign_kmc import CAMPAIGN  # noqa: E402  (the test's campaign, one source)

from pyacemaker.campaign import Campaign  # noqa: E402
from pyacemaker.config import load_campaign, load_site  # noqa: E402
from pyacemaker.logs import setup_logging  # noqa: E402

EMT_BARRIER_EV = 0.7761


def run(folder: Path, iterations: int, seed: int) -> dict[str, object]:
    settings = {**CAMPAIGN, "seed": seed,
                "active_learning": {**CAMPAIGN["active_learning"], "max_iterations": iterations}}
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(settings))
    started = time.monotonic()
    campaign = Campaign.open(load_campaign(path), load_site(REPO / "site_configs" / "local.yaml"),
                             folder / "run")
    campaign.run()
    records = []
    for summary in sorted((folder / "run").glob("iter_*/explore/summary.json")):
        records += [r for r in json.loads(summary.read_text()) if r["task"]["engine"] == "kmc"]
    halts = [r["task"]["iteration"] for r in records if r["halted"]]
    passed = [r["task"]["iteration"] for r in records if not r["halted"] and halts
              and r["task"]["iteration"] > halts[0]]
    labels_by = None
    if passed:
        labels_by = sum(1 for row in campaign.datastore.rows(status="labelled")
                        if int(row.get("iteration") or 0) < passed[0])
    last = records[-1] if records else None
    barriers: list[float] = []
    if last is not None:
        log = folder / "run" / f"iter_{last['task']['iteration']:03d}" / "explore" / \
            last["task"]["name"] / "kmc_log.json"
        if log.exists():
            barriers = [s["barrier"] for s in json.loads(log.read_text())["steps"]]
    return {"first_halt": halts[0] if halts else None,
            "first_pass_after_halt": passed[0] if passed else None,
            "labels_before_pass": labels_by, "kmc_halts": len(halts),
            "last_barriers": barriers, "wall_s": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7])
    args = parser.parse_args()
    setup_logging(None)  # the campaign's progress lines, not Parsl's debug chatter
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="kmc_learning_") as tmp:
            result = run(Path(tmp), args.iterations, seed)
        rows.append((seed, result))
        print(f"seed {seed}: {result}", flush=True)
    print()
    print(f"{'seed':>5} {'1st halt':>8} {'passes at':>9} {'labels':>6} "
          f"{'kMC halts':>9} {'last barriers (eV)':<26} {'wall s':>6}")
    for seed, r in rows:
        steps = r["last_barriers"]
        barriers = (f"{min(steps):.3f}-{max(steps):.3f} ({len(steps)} steps)"  # type: ignore[arg-type]
                    if steps else "-")
        print(f"{seed:>5} {r['first_halt'] or '-':>8} "
              f"{r['first_pass_after_halt'] or 'never':>9} {r['labels_before_pass'] or '-':>6} "
              f"{r['kmc_halts']:>9} {barriers:<26} {r['wall_s']:>6.0f}")
    print(f"(EMT barrier of the hop: {EMT_BARRIER_EV} eV; iterations capped at {args.iterations})")


if __name__ == "__main__":
    main()
