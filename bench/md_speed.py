"""MD speed of the exploration engines: ms per atom-step, LAMMPS vs ASE, with and
without the gamma watchdog, at ~100, ~1000 and ~4000 atoms of fcc Cu.

The potential is a real pacemaker fit on EMT-labelled Cu (cached in build/bench_md/: the
second run reuses it). LAMMPS time is LAMMPS's own "Loop time" (no start-up); ASE time
is the MD loop alone. "watchdog" = pace/extrapolation + gamma every 10 steps + dump skip
test + fix halt (LAMMPS) / pyace with its active set (ASE, gamma on every force call);
"plain" = pair_style pace with the .yace (LAMMPS) / pyace without active set (ASE).

    .venv/bin/python bench/md_speed.py [--sizes 3 6 10] [--ase-max-atoms 4000]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pyacemaker.config import TrainingSettings  # noqa: E402
from pyacemaker.datastore import labelled_copy  # noqa: E402
from pyacemaker.stages.explore.ase_md import run_ase_md  # noqa: E402
from pyacemaker.stages.explore.lammps import (  # noqa: E402
    LammpsRunSpec,
    find_pace_plugin,
    run_lammps,
)
from pyacemaker.stages.explore.result import ExplorationTask  # noqa: E402
from pyacemaker.stages.train import (  # noqa: E402
    RECORD_FILE,
    fit_potential,
    free_atom_energies,
    load_record,
    write_training_set,
)
from pyacemaker.state import PotentialRecord  # noqa: E402

WORK = REPO / "build" / "bench_md"
GAMMA_EVERY = 10


def cu_potential() -> PotentialRecord:
    """A 30-function Cu fit on 40 EMT cells (reused when already in build/bench_md)."""
    if (WORK / "fit" / RECORD_FILE).is_file():
        return load_record(WORK / "fit")
    rng = np.random.default_rng(0)
    cubic = bulk("Cu", "fcc", a=3.6, cubic=True)
    structures = []
    for k in range(40):
        atoms = cubic.repeat((2, 1, 1)) if k % 2 else cubic.copy()
        atoms.set_cell(cubic.cell * (1 + rng.uniform(-0.03, 0.03)) if k % 2 == 0
                       else atoms.cell * (1 + rng.uniform(-0.03, 0.03)), scale_atoms=True)
        atoms.rattle(0.02 + 0.1 * k / 40, seed=k)
        atoms.calc = EMT()
        structures.append(labelled_copy(atoms, atoms.get_potential_energy(), atoms.get_forces(),
                                        atoms.get_stress()))
    refs = free_atom_energies(EMT(), ["Cu"])
    WORK.mkdir(parents=True, exist_ok=True)
    dataset = write_training_set(structures, WORK / "cu.pckl.gzip", refs)
    settings = TrainingSettings(cutoff=5.0, number_of_functions_per_element=30,
                                max_iterations=100, test_fraction=0.0, timeout_s=1800)
    return fit_potential(dataset, ["Cu"], settings, WORK / "fit", reference_energies=refs)


def lammps_ms_per_atom_step(record: PotentialRecord, repeat: int, watchdog: bool,
                            steps: int) -> float:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((repeat,) * 3)
    spec = LammpsRunSpec(elements=["Cu"], potential_yaml=Path(record.yaml),
                         active_set=Path(record.asi or ""), gamma_lower=50.0,
                         gamma_upper=1000.0, gamma_every=GAMMA_EVERY, plugin=find_pace_plugin(),
                         watchdog=watchdog, potential_yace=Path(record.yace or ""))
    task = ExplorationTask(name="bench", engine="lammps", temperature=300, steps=steps, seed=1)
    folder = WORK / f"lammps_{len(atoms)}_{'wd' if watchdog else 'plain'}"
    outcome = run_lammps(task, atoms, spec, folder, timeout_s=3600)
    log = (folder / "log.lammps").read_text()
    loop = re.search(r"Loop time of (\S+) on \d+ procs for (\d+) steps with (\d+) atoms", log)
    assert loop and outcome.halt is None
    seconds, n_steps, n_atoms = float(loop.group(1)), int(loop.group(2)), int(loop.group(3))
    return 1000 * seconds / (n_steps * n_atoms)


def ase_ms_per_atom_step(record: PotentialRecord, repeat: int, watchdog: bool,
                         steps: int) -> float:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((repeat,) * 3)
    task = ExplorationTask(name="bench", engine="ase", temperature=300, steps=steps, seed=1)
    asi = Path(record.asi or "") if watchdog else None
    start = time.perf_counter()
    outcome = run_ase_md(task, atoms, Path(record.yaml), asi, 50.0, 1000.0, GAMMA_EVERY)
    elapsed = time.perf_counter() - start
    assert outcome.halt is None
    # steps + the initial force call
    return 1000 * elapsed / ((outcome.thermo[-1].step + 1) * len(atoms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 6, 10],
                        help="cubic fcc repeats (4 atoms each): 3->108, 6->864, 10->4000")
    parser.add_argument("--atom-steps", type=float, default=4e5,
                        help="LAMMPS: steps = this / atoms (at least 20)")
    parser.add_argument("--ase-atom-steps", type=float, default=4e4,
                        help="ASE: steps = this / atoms (at least 10)")
    args = parser.parse_args()
    record = cu_potential()
    print(f"potential: {record.yaml} ({int(record.metrics.get('n_functions', 0))} functions)")
    print(f"{'engine':8} {'atoms':>6} {'steps':>6} {'plain ms/atom-step':>19} "
          f"{'watchdog ms/atom-step':>22} {'overhead':>9}")
    for engine, measure, budget, floor in (
            ("lammps", lammps_ms_per_atom_step, args.atom_steps, 20),
            ("ase", ase_ms_per_atom_step, args.ase_atom_steps, 10)):
        for repeat in args.sizes:
            n_atoms = 4 * repeat ** 3
            steps = max(floor, int(budget / n_atoms) // GAMMA_EVERY * GAMMA_EVERY)
            plain = measure(record, repeat, False, steps)
            watched = measure(record, repeat, True, steps)
            print(f"{engine:8} {n_atoms:>6} {steps:>6} {plain:>19.4f} {watched:>22.4f} "
                  f"{watched / plain:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
