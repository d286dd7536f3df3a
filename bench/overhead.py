"""Where the wall time of an EMT campaign goes: external programs and MD versus the rest.

Runs examples/cu-emt.yaml (or --config) in a fresh folder on the local site, then splits
the campaign's wall time into
  * external programs (pacemaker, pace_yaml2yace, pace_activeset ...: the durations
    recorded in every result*.json a program run leaves in its task folder),
  * exploration MD (the explore stages: in-process ASE/pyace MD or LAMMPS runs),
  * labelling (the EMT reference itself costs milliseconds: this is mostly driver work),
  * everything else: driver, Parsl, data lake I/O, selection, generation.

    .venv/bin/python bench/overhead.py [--config examples/cu-emt.yaml] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from pyacemaker.campaign import Campaign
from pyacemaker.config import load_campaign, load_site
from pyacemaker.logs import setup_logging

REPO = Path(__file__).resolve().parents[1]


def stage_seconds(state) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for record in state.stages.values():
        if record.started and record.finished:
            start = datetime.fromisoformat(record.started)
            end = datetime.fromisoformat(record.finished)
            totals[record.name] += (end - start).total_seconds()
    return dict(totals)


def program_seconds(folder: Path) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for result in folder.rglob("result*.json"):
        try:
            data = json.loads(result.read_text())
            argv = data["argv"]
            duration = float(data["duration_s"])
        except (ValueError, KeyError, TypeError):
            continue
        program = next((Path(a).name for a in argv if not a.startswith("-")
                        and Path(a).name not in ("mpirun", "srun")), argv[0])
        totals[program] += duration
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "examples" / "cu-emt.yaml"))
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="overhead_"))
    setup_logging(workdir)
    config = load_campaign(args.config)
    site = load_site(REPO / "site_configs" / "local.yaml")
    started = time.monotonic()
    campaign = Campaign.open(config, site, workdir)
    campaign.run()
    wall = time.monotonic() - started

    programs = program_seconds(workdir)
    stages = stage_seconds(campaign.state)
    external = sum(programs.values())
    explore = stages.get("explore", 0.0)
    label = stages.get("label", 0.0)
    rest = wall - external - explore - label
    print(f"\ncampaign {config.name}: {campaign.state.iteration} iterations, "
          f"{campaign.dft_calls()} labels, wall {wall:.1f} s  ({campaign.state.stop_reason})")
    print(f"{'part':<40s} {'seconds':>9s} {'share':>7s}")
    for name, seconds in sorted(programs.items(), key=lambda kv: -kv[1]):
        print(f"{'program ' + name:<40s} {seconds:9.1f} {seconds / wall:7.1%}")
    print(f"{'exploration MD (explore stages)':<40s} {explore:9.1f} {explore / wall:7.1%}")
    print(f"{'labelling (EMT reference + storing)':<40s} {label:9.1f} {label / wall:7.1%}")
    print(f"{'driver, Parsl, I/O, selection, other':<40s} {rest:9.1f} {rest / wall:7.1%}")
    print(f"\noverhead outside external programs and MD: {rest / wall:.1%} of wall time")


if __name__ == "__main__":
    main()
