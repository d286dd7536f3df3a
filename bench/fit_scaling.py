"""Fit time and accuracy of a real pacemaker fit versus training-set size, and D-optimal
versus random selection of the data added to a fit.

Cu labelled by ASE's EMT (strained fcc cells and thermal-like rattles of 4-8 atoms). Each
size is a full fit from scratch with the same tiny basis and BFGS budget; accuracy is
measured on one fixed held-out set, so rows are comparable. Selection: a potential fitted
on narrow data picks ``--select`` structures from a pool (half near its data, half wider:
larger strains and rattles, vacancies) by D-optimality or at random; each pick is refitted
and scored on held-out wide structures.

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
from pyacemaker.stages.select import select_d_optimal, select_random  # noqa: E402
from pyacemaker.stages.train import (fit_potential, free_atom_energies,  # noqa: E402
                                     total_energy_calculator, write_training_set)


def cu_structures(count: int, seed: int, strain: float = 0.03, rattle: float = 0.12,
                  vacancies: bool = False) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    cubic = bulk("Cu", "fcc", a=3.6, cubic=True)
    structures = []
    for k in range(count):
        atoms = cubic.repeat((2, 1, 1)) if k % 2 else cubic.copy()
        if vacancies and k % 4 == 3:
            del atoms[0]
        atoms.set_cell(atoms.cell * (1 + rng.uniform(-strain, strain)), scale_atoms=True)
        atoms.rattle(stdev=rng.uniform(0.02, rattle), seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        structures.append(labelled_copy(atoms, atoms.get_potential_energy(), atoms.get_forces()))
    return structures


def holdout_errors(record, holdout: list[Atoms]) -> tuple[float, float, float]:
    """Energy RMSE (meV/atom), force RMSE (eV/A), median |energy error| (meV/atom)."""
    calc = total_energy_calculator(record)
    de, df = [], []
    for atoms in holdout:
        work = atoms.copy()
        work.calc = calc
        de.append((work.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
        df.append(work.get_forces() - atoms.get_forces())
    return 1000 * float(np.sqrt(np.mean(np.square(de)))), float(
        np.sqrt(np.mean(np.square(np.concatenate(df))))), 1000 * float(np.median(np.abs(de)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 40, 80, 160])
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--functions", type=int, default=15)
    parser.add_argument("--select", type=int, default=15, help="0 skips the selection table")
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
        energy_rmse, force_rmse, _ = holdout_errors(record, holdout)
        print(f"{size:>10} {sum(len(a) for a in subset):>6} {record.metrics['fit_time_s']:>7.1f} "
              f"{wall:>7.1f} {record.metrics['train_energy_rmse_mev_per_atom']:>14.2f} "
              f"{energy_rmse:>16.2f} {force_rmse:>14.4f}", flush=True)
    if args.select > 0:
        compare_selection(args, root, settings, references)


def compare_selection(args: argparse.Namespace, root: Path, settings: TrainingSettings,
                      references: dict[str, float]) -> None:
    wide = dict(strain=0.08, rattle=0.25, vacancies=True)
    base = cu_structures(20, seed=3)
    pool = cu_structures(50, seed=4) + cu_structures(50, seed=5, **wide)
    holdout = cu_structures(30, seed=6, **wide)
    dataset = write_training_set(base, root / "select_base" / "data.pckl.gzip", references)
    first = fit_potential(dataset, ["Cu"], settings, root / "select_base" / "fit",
                          reference_energies=references)
    picks = {
        "d-optimal": select_d_optimal(pool, Path(first.yaml), Path(first.asi), args.select),
        "random": select_random(pool, args.select, seed=0),
    }
    energy_rmse, force_rmse, energy_median = holdout_errors(first, holdout)
    print(f"\n# selection: {len(base)} narrow structures + {args.select} picked from a pool of "
          f"{len(pool)} (half wide); held-out: {len(holdout)} wide structures")
    header = f"{'method':>10} {'added':>6} {'wide_in_pick':>12} {'holdout_E_meV/at':>16} " \
             f"{'holdout_F_eV/A':>14} {'median_|dE|_meV/at':>18}"
    print(header)
    print("-" * len(header))
    print(f"{'none':>10} {0:>6} {'-':>12} {energy_rmse:>16.2f} {force_rmse:>14.4f} "
          f"{energy_median:>18.2f}", flush=True)
    for method, chosen in picks.items():
        folder = root / f"select_{method}"
        data = write_training_set(base + [pool[i] for i in chosen], folder / "data.pckl.gzip",
                                  references)
        record = fit_potential(data, ["Cu"], settings, folder / "fit",
                               reference_energies=references)
        energy_rmse, force_rmse, energy_median = holdout_errors(record, holdout)
        wide_count = sum(i >= 50 for i in chosen)
        print(f"{method:>10} {len(chosen):>6} {wide_count:>12} {energy_rmse:>16.2f} "
              f"{force_rmse:>14.4f} {energy_median:>18.2f}", flush=True)


if __name__ == "__main__":
    main()
