"""Fit time and accuracy of a real pacemaker fit versus training-set size.

Cu labelled by ASE's EMT (strained fcc cells and thermal-like rattles of 4-8 atoms). Each
size is a full fit from scratch with the same tiny basis and BFGS budget; accuracy is
measured on one fixed held-out set, so rows are comparable.

    .venv/bin/python bench/fit_scaling.py [--sizes 20 40 80 160] [--iterations 150]
                                          [--functions 15] [--workdir DIR (kept)]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

from pyacemaker.config import TrainingSettings  # noqa: E402
from pyacemaker.datastore import labelled_copy  # noqa: E402
from pyacemaker.stages.train import (fit_potential, free_atom_energies,  # noqa: E402
                                     total_energy_calculator, write_training_set)


def cu_structures(count: int, seed: int) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    cubic = bulk("Cu", "fcc", a=3.6, cubic=True)
    structures = []
    for k in range(count):
        atoms = cubic.repeat((2, 1, 1)) if k % 2 else cubic.copy()
        atoms.set_cell(atoms.cell * (1 + rng.uniform(-0.03, 0.03)), scale_atoms=True)
        atoms.rattle(stdev=rng.uniform(0.02, 0.12), seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        structures.append(labelled_copy(atoms, atoms.get_potential_energy(), atoms.get_forces()))
    return structures


def holdout_errors(record, holdout: list[Atoms]) -> tuple[float, float]:
    calc = total_energy_calculator(record)
    de, df = [], []
    for atoms in holdout:
        work = atoms.copy()
        work.calc = calc
        de.append((work.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
        df.append(work.get_forces() - atoms.get_forces())
    return 1000 * float(np.sqrt(np.mean(np.square(de)))), float(
        np.sqrt(np.mean(np.square(np.concatenate(df)))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 40, 80, 160])
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--functions", type=int, default=15)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if args.workdir is not None:
        run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="fit_scaling_") as folder:
            run(args, Path(folder))


def run(args: argparse.Namespace, root: Path) -> None:
    references = free_atom_energies(EMT(), ["Cu"])
    pool = cu_structures(max(args.sizes), seed=1)
    holdout = cu_structures(30, seed=2)
    settings = TrainingSettings(cutoff=5.0, number_of_functions_per_element=args.functions,
                                max_iterations=args.iterations, test_fraction=0.0,
                                timeout_s=3600)
    print(f"# Cu/EMT, {args.functions} functions, {args.iterations} BFGS iterations, "
          f"held-out set: {len(holdout)} structures; work in {root}")
    header = (f"{'structures':>10} {'atoms':>6} {'fit_s':>7} {'wall_s':>7} "
              f"{'train_E_meV/at':>14} {'holdout_E_meV/at':>16} {'holdout_F_eV/A':>14}")
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        subset = pool[:size]
        start = time.monotonic()
        dataset = write_training_set(subset, root / f"n{size}" / "data.pckl.gzip", references)
        record = fit_potential(dataset, ["Cu"], settings, root / f"n{size}" / "fit",
                               reference_energies=references)
        wall = time.monotonic() - start
        energy_rmse, force_rmse = holdout_errors(record, holdout)
        print(f"{size:>10} {sum(len(a) for a in subset):>6} {record.metrics['fit_time_s']:>7.1f} "
              f"{wall:>7.1f} {record.metrics['train_energy_rmse_mev_per_atom']:>14.2f} "
              f"{energy_rmse:>16.2f} {force_rmse:>14.4f}", flush=True)


if __name__ == "__main__":
    main()
