"""Cost of the quality gate: time per validation part, EMT vs an ACE potential.

    .venv/bin/python bench/bench_validate.py [--potential output_potential.yaml]
                                             [--supercells 2 3 4 5]

Without --potential only EMT is timed (an ACE needs a fit: pass any pacemaker
output_potential.yaml). Prints one row per (calculator, phonon supercell).
"""

from __future__ import annotations

import argparse
import time
import warnings

from ase.calculators.emt import EMT

from pyacemaker.config import ValidationSettings
from pyacemaker.stages.validate import validate_potential
from pyacemaker.stages.validate.crystal import default_crystals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--potential", help="pacemaker B-basis yaml to time with pyace")
    parser.add_argument("--supercells", type=int, nargs="+", default=[2, 3, 4, 5])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    calculators = [("EMT", EMT)]
    if args.potential:
        from pyace import PyACECalculator

        calculators.append(("ACE (pyace)", lambda: PyACECalculator(args.potential)))
    header = (f"{'calculator':<12} {'supercell':>9} {'atoms':>6} {'relax s':>8} "
              f"{'phonons s':>9} {'elastic s':>9} {'eos s':>7} {'total s':>8} {'verdict':>7}")
    print(header)
    print("-" * len(header))
    for name, factory in calculators:
        for n in args.supercells:
            settings = ValidationSettings(phonon_supercell=n)
            start = time.perf_counter()
            report = validate_potential(factory, default_crystals(["Cu"]), settings)
            total = time.perf_counter() - start
            t = report.crystals[0].timings_s
            print(f"{name:<12} {n:>7}^3 {n ** 3:>6} {t.get('relax', 0):>8.2f} "
                  f"{t.get('phonons', 0):>9.2f} {t.get('elastic', 0):>9.2f} "
                  f"{t.get('eos', 0):>7.2f} {total:>8.2f} {report.verdict:>7}")


if __name__ == "__main__":
    main()
