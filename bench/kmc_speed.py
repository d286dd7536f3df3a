"""kMC cost figures: force calls in process (EMT vs ACE + gamma) and the ext_pot driver.

Prints one table:
  - one improved-dimer saddle search on a 31-atom Cu vacancy cell, in process on eOn's
    client library: force calls, ms per call, barrier; EMT and ACE (gamma every call);
  - the generated pace_driver.py run as eOn runs it: ms per call as a fresh Python that
    loads pyace each time, and as a thin client of the persistent evaluator.

Usage: python bench/kmc_speed.py [--yaml POT.yaml --asi POT.asi] [--calls 10]
Without a potential it fits a tiny one first (pacemaker, EMT data, about a minute).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from pyacemaker.config import KMCConfig, TrainingSettings
from pyacemaker.stages.explore import pace_driver
from pyacemaker.stages.explore.kmc.eonclient import EonClientSearcher, install_driver
from pyacemaker.stages.explore.kmc.engine import initial_displacement
from pyacemaker.stages.explore.kmc.search import InProcessSearcher
from pyacemaker.stages.explore.kmc.watchdog import GammaWatchdog, ace_watchdog
from pyacemaker.state import PotentialRecord


def vacancy_cell() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    del atoms[0]
    return atoms


def tiny_fit(workdir: Path) -> PotentialRecord:
    from pyacemaker.datastore import labelled_copy
    from pyacemaker.stages.train import fit_potential, free_atom_energies, write_training_set

    structures = []
    for k in range(24):
        atoms = vacancy_cell() if k % 2 else bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
        atoms.rattle(0.03 + 0.004 * k, seed=k)
        atoms.calc = EMT()
        structures.append(labelled_copy(atoms, atoms.get_potential_energy(),
                                        atoms.get_forces(), atoms.get_stress()))
    references = free_atom_energies(EMT(), ["Cu"])
    dataset = write_training_set(structures, workdir / "cu.pckl.gzip", references)
    settings = TrainingSettings(cutoff=5.0, number_of_functions_per_element=15,
                                max_iterations=60, test_fraction=0.1, timeout_s=900)
    return fit_potential(dataset, ["Cu"], settings, workdir / "fit",
                         reference_energies=references)


def one_search(watchdog: GammaWatchdog, workdir: Path) -> tuple[int, float, float]:
    settings = KMCConfig(gamma_lower=1e3, gamma_upper=1e4)
    searcher = InProcessSearcher(watchdog, settings, 500.0, 0, workdir / "eon.log")
    state, energy = searcher.relax(vacancy_cell())
    kick = initial_displacement(state, 0, settings, np.random.default_rng(0))
    calls = watchdog.calls
    start = time.perf_counter()
    outcome = searcher.search(state, energy, kick)
    elapsed = time.perf_counter() - start
    used = watchdog.calls - calls
    return used, 1e3 * elapsed / used, outcome.barrier or float("nan")


def driver_calls(driver: Path, scratch: Path, calls: int) -> float:
    atoms = vacancy_cell()
    cell = "\n".join(" ".join(f"{v:.8f}" for v in row) for row in atoms.cell.array)
    rows = "\n".join(f"{z} {x:.8f} {y:.8f} {w:.8f}"
                     for z, (x, y, w) in zip(atoms.numbers, atoms.positions))
    (scratch / pace_driver.INPUT_FILE).write_text(f"{cell}\n{rows}\n")
    env = dict(os.environ, EON_EXTPOT_RUN_DIR=str(scratch))
    start = time.perf_counter()
    for _ in range(calls):
        subprocess.run([str(driver)], cwd=scratch, env=env, check=True)
    return 1e3 * (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yaml", type=Path)
    parser.add_argument("--asi", type=Path)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kmc_bench_") as tmp:
        work = Path(tmp)
        if args.yaml and args.asi:
            record = PotentialRecord(iteration=0, yaml=str(args.yaml), asi=str(args.asi))
        else:
            t0 = time.perf_counter()
            record = tiny_fit(work)
            print(f"(tiny pacemaker fit: {time.perf_counter() - t0:.0f} s)")
        rows = []
        calls, ms, barrier = one_search(GammaWatchdog(EMT(), None, 1e3, 1e4), work)
        rows.append(("in process, EMT", calls, ms, f"{barrier:.4f}"))
        calls, ms, barrier = one_search(ace_watchdog(record, 1e3, 1e4), work)
        rows.append(("in process, ACE + gamma", calls, ms, f"{barrier:.4f}"))

        scratch = work / "scratch"
        scratch.mkdir()
        driver = install_driver(work / "cold", record, 1e3, 1e4)
        rows.append(("pace_driver.py, fresh Python per call", args.calls,
                     driver_calls(driver, scratch, max(2, args.calls // 5)), "-"))
        settings = KMCConfig(engine="eonclient", gamma_lower=1e3, gamma_upper=1e4)
        with EonClientSearcher(record, settings, 500.0, 0, work / "warm") as searcher:
            rows.append(("pace_driver.py, persistent evaluator", args.calls,
                         driver_calls(searcher.driver, scratch, args.calls), "-"))

    print(f"{'what':42s} {'force calls':>11s} {'ms/call':>9s} {'barrier eV':>11s}")
    for what, n, ms, barrier in rows:
        print(f"{what:42s} {n:11d} {ms:9.1f} {barrier:>11s}")


if __name__ == "__main__":
    main()
