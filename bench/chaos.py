"""The long chaos run: a real EMT campaign killed at many seeded random moments.

    .venv/bin/python bench/chaos.py [--kills 20] [--signal KILL|TERM|INT] [--seed 1]

Prints kills survived, labels lost, labels duplicated, runs in flight redone and orphans
found (processes working inside the campaign folder after the driver died). The test
suite's version (tests/integration/test_chaos.py) does 10 kills per signal.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from chaos_support import run_chaos  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--signal", default="KILL", choices=["KILL", "TERM", "INT", "HUP"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=float, nargs=2, default=(3.0, 40.0),
                        help="seconds after a start at which a kill is drawn")
    args = parser.parse_args()
    sig = signal.Signals[f"SIG{args.signal}"]
    with tempfile.TemporaryDirectory(prefix="pyacemaker-chaos-") as folder:
        report = run_chaos(Path(folder), args.kills, sig, seed=args.seed,
                           window_s=tuple(args.window))
    print(f"SIG{args.signal}, seed {args.seed}: {report.summary()}")


if __name__ == "__main__":
    main()
