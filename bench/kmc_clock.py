"""Is the kMC clock right? EMT Cu vacancy (31 atoms), with and without symmetry completion.

The exact answer for this cell: 12 equivalent nearest-neighbour hops, total escape rate
R = 12 k_hop, mean residence time 1/R. Prints, for `symmetry: false` (the pre-fix
behaviour: searches alone) and `symmetry: true` (default), over a few seeds:
processes in the first state's table, R / (12 k_hop), mean drawn residence time over
1/(12 k_hop), searches, process tables searched, and wall time; then the computed
(Vineyard) prefactor against eOn's local-region `get_prefactors` default.

Usage: python bench/kmc_clock.py [--steps 200] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from pyacemaker.config import KMCConfig
from pyacemaker.stages.explore.kmc import kmc_task, run_akmc

HOP_EV = 0.776


def vacancy_cell() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    del atoms[0]
    return atoms


def one_run(symmetry: bool, seed: int, steps: int, workdir: Path) -> list[str]:
    settings = KMCConfig(temperature=500.0, prefactor=1e12, searches_per_state=8,
                         max_steps=steps, symmetry=symmetry)
    started = time.perf_counter()
    run = run_akmc(kmc_task(f"clock_{symmetry}_{seed}", settings, seed=seed),
                   vacancy_cell(), None, settings, workdir, calculator=EMT())
    wall = time.perf_counter() - started
    first = run.tables[0]
    hop = next(p for p in first.processes if abs(p.barrier - HOP_EV) < 0.01)
    exact_rate = 12 * hop.rate
    mean_rate = np.mean([s.total_rate for s in run.steps])
    mean_dt = np.mean([s.dt_s for s in run.steps])
    return [str(symmetry), str(seed), str(len(first.processes)),
            f"{mean_rate / exact_rate:.3f}", f"{mean_dt * exact_rate:.3f}",
            str(sum(t.searches for t in run.tables)), str(len(run.tables)),
            f"{wall:.1f}"]


def prefactors(workdir: Path) -> list[str]:
    import pyeonclient as eon

    settings = KMCConfig(prefactor="computed", searches_per_state=1, max_steps=1)
    run = run_akmc(kmc_task("prefactor", settings, seed=0, epicentres=(0,)), vacancy_cell(),
                   None, settings, workdir, calculator=EMT())
    table = run.tables[0]
    process = table.processes[0]
    params = eon.Parameters()
    params.prefactor_filter_scheme = "cutoff"
    potential = eon.potential_from_ase(EMT(), params)
    matters = [eon.matter_from_ase(a, potential, params)
               for a in (table.reactant, process.saddle, process.product)]
    local, _ = eon.get_prefactors(params, *matters)
    region = len(eon.moved_atoms(params, *matters))
    return [f"Vineyard, all {len(table.reactant)} atoms: {process.prefactor:.3e}/s",
            f"eOn get_prefactors, local region of {region} atoms: {local:.3e}/s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    header = ["symmetry", "seed", "processes", "R/12k", "<dt>*12k", "searches", "tables",
              "wall s"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for symmetry in (False, True):
            for seed in args.seeds:
                rows.append(one_run(symmetry, seed, args.steps,
                                    Path(scratch) / f"{symmetry}_{seed}"))
                print("  ".join(rows[-1]), flush=True)
        lines = prefactors(Path(scratch) / "prefactor")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print()
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\n{args.steps} kMC steps each; exact: 12 processes, R/12k = 1, <dt>*12k = 1 "
          f"+- {1 / np.sqrt(args.steps):.2f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
