"""Time to GO of a campaign on this machine, its DFT calls, and its potential against
converged PBE.

    .venv/bin/python bench/demo_to_go.py [--config examples/si-qe.yaml] [--site local]
        [--workdir campaigns/bench-demo] [--reference FILE] [--reuse-dft-references DIR]

Runs ``pyacemaker run`` on a fresh work folder (the demo of ``make campaign`` by default;
``--config zero`` writes ``elements: [Si]`` and nothing else), then prints: wall time,
stop reason, DFT calls, the campaign's own verdict, and ``pyacemaker validate`` of the
deployed potential against ``--reference`` (default: the converged PBE reference of
bench/data/si_pbe_reference.json, made by bench/si_pbe_reference.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

# converged PBE (bench/si_pbe_reference.py; docs/validation.md has its values)
PBE_REFERENCE = Path(__file__).resolve().parent / "data" / "si_pbe_reference.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="examples/si-qe.yaml")
    parser.add_argument("--site", default="local")
    parser.add_argument("--workdir", type=Path, default=Path("campaigns/bench-demo"))
    parser.add_argument("--reference", type=Path, default=PBE_REFERENCE)
    parser.add_argument("--reuse-dft-references", type=Path, metavar="CAMPAIGN",
                        help="copy the cached DFT references of an earlier campaign folder "
                        "(used only where their settings key matches; the time to GO then "
                        "leaves out their pw.x time)")
    args = parser.parse_args()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    if args.reuse_dft_references:
        cache = Path("validation") / "dft_reference"
        shutil.copytree(args.reuse_dft_references / cache, args.workdir / cache)
        print(f"reusing the DFT references of {args.reuse_dft_references}")
    config = args.config
    if config == "zero":
        config = str(args.workdir.parent / f"{args.workdir.name}-zero.yaml")
        Path(config).write_text("elements: [Si]\n")
    pyace = [sys.executable, "-m", "pyacemaker.cli"]
    start = time.monotonic()
    run = subprocess.run([*pyace, "run", config, "--site", args.site,
                          "--workdir", str(args.workdir)], check=False)
    wall = time.monotonic() - start
    state = json.loads((args.workdir / "state.json").read_text())
    print(f"\n== {config} on site {args.site}")
    print(f"wall time      {wall / 60:.1f} min (exit {run.returncode})")
    print(f"stop           {state.get('stop_reason')}")
    print(f"DFT calls      {state.get('dft_calls')}")
    verdicts = state.get("validation", {})
    if verdicts:
        last = max(verdicts, key=int)
        print(f"campaign gate  iteration {last}: {verdicts[last]}")
    potential = state.get("potential")
    if not potential:
        print("no potential deployed")
        return
    deployed = Path(potential["yaml"])
    if not deployed.is_absolute():
        deployed = args.workdir / deployed
    if not args.reference.is_file():
        print(f"no {args.reference}: run bench/si_pbe_reference.py to compare with "
              "converged PBE")
        return
    print(f"\n== deployed potential ({deployed}) vs {args.reference}")
    subprocess.run([*pyace, "validate", str(deployed), "--elements", "Si", "--reference",
                    str(args.reference), "--output", str(args.workdir / "vs-pbe")],
                   check=False)


if __name__ == "__main__":
    main()
