"""Active learning versus random sampling of the same candidate pool (EMT Cu reference).

Both learners start from the same few structures and grow their training set in the same
batch sizes from one fixed pool (MD snapshots at 300-1600 K, strained cells, vacancies,
surfaces). The active learner picks each batch by D-optimality against the current
potential's active set; the random learner picks uniformly. A fixed held-out set (other
MD snapshots at several temperatures, defects and surfaces; never trained on) gives the
force RMSE after every fit.

Over several seeds (each its own pool, held-out set and start), prints the geometric mean and range
of both curves, a power law fitted to each mean curve (does the error fall with data?),
and the labels each needs on its fitted curve to reach random sampling's final error;
saves a plot with error bars (bench/out/data_efficiency_<weighting>.png).

    .venv/bin/python bench/data_efficiency.py [--seeds 7,8,9] [--batches 8,16,32,64]
        [--weighting energy_based|uniform] [--functions 20] [--iterations 150]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc100, fcc111
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.units import fs

from pyacemaker.config import TrainingSettings
from pyacemaker.datastore import labelled_copy
from pyacemaker.stages.select import select_d_optimal, select_random
from pyacemaker.stages.train import (
    fit_potential,
    free_atom_energies,
    total_energy_calculator,
    write_training_set,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
OUT = Path(__file__).resolve().parent / "out"
FALLS = 0.05  # fitted exponent below this: the curve is flat within the seeds' noise


def emt(atoms: Atoms) -> Atoms:
    work = atoms.copy()
    work.calc = EMT()
    return labelled_copy(atoms, work.get_potential_energy(), work.get_forces(), work.get_stress())


def md_snapshots(temperatures: list[float], per_temperature: int, rng: np.random.Generator,
                 repeat: int = 2) -> list[Atoms]:
    frames = []
    for temperature in temperatures:
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
        if rng.random() < 0.5:
            del atoms[int(rng.integers(len(atoms)))]
        atoms.calc = EMT()
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        dyn = Langevin(atoms, 2 * fs, temperature_K=temperature, friction=0.02, rng=rng)
        for _ in range(per_temperature):
            dyn.run(25)
            frames.append(atoms.copy())
    return frames


def structure_pool(size: int, rng: np.random.Generator) -> list[Atoms]:
    """The candidate pool both learners draw from."""
    pool = md_snapshots([300, 700, 1100, 1600], size // 6, rng)
    for strain in np.linspace(-0.06, 0.06, size // 12):
        cell = bulk("Cu", "fcc", a=3.61 * (1 + strain), cubic=True)
        cell.rattle(0.03, seed=int(rng.integers(1 << 30)))
        pool.append(cell)
    for _ in range(size // 12):
        slab = (fcc111 if rng.random() < 0.5 else fcc100)("Cu", size=(2, 2, 3), vacuum=5.0)
        slab.rattle(0.08, seed=int(rng.integers(1 << 30)))
        slab.pbc = True  # periodic slab with vacuum: pyace needs full periodicity
        pool.append(slab)
    return [emt(a) for a in pool[:size]]


def held_out(rng: np.random.Generator) -> list[Atoms]:
    frames = md_snapshots([400, 900, 1400], 4, rng)
    vacancy = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    del vacancy[0]
    vacancy.rattle(0.05, seed=11)
    slab = fcc111("Cu", size=(2, 2, 4), vacuum=6.0)
    slab.rattle(0.05, seed=12)
    slab.pbc = True
    return frames + [vacancy, slab]


def force_rmse(record, frames: list[Atoms]) -> float:
    calc = total_energy_calculator(record)
    errors = []
    for frame in frames:
        reference = emt(frame)
        predicted = frame.copy()
        predicted.calc = calc
        errors.append(predicted.get_forces() - reference.get_forces())
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))


def learn(strategy: str, pool: list[Atoms], start: list[int], sizes: list[int],
          test: list[Atoms], settings: TrainingSettings, refs: dict[str, float],
          workdir: Path, seed: int) -> list[tuple[int, float, float]]:
    chosen = list(start)
    rows = []
    record = None
    for step, size in enumerate(sizes):
        need = size - len(chosen)
        if need > 0:
            remaining = [i for i in range(len(pool)) if i not in chosen]
            candidates = [pool[i] for i in remaining]
            if strategy == "active":
                assert record is not None
                picks = select_d_optimal(candidates, Path(record.yaml), Path(record.asi), need)
                if len(picks) < need:  # nothing more is new: top up randomly
                    rest = [k for k in range(len(candidates)) if k not in picks]
                    extra = select_random([candidates[k] for k in rest], need - len(picks),
                                          seed + step)
                    picks += [rest[k] for k in extra]
            else:
                picks = select_random(candidates, need, seed + step)
            chosen += [remaining[k] for k in picks]
        folder = workdir / f"{strategy}_{size:03d}"
        dataset = write_training_set([pool[i] for i in chosen], folder / "data.pckl.gzip", refs)
        started = time.monotonic()
        record = fit_potential(dataset, ["Cu"], settings, folder / "fit",
                               reference_energies=refs)
        rmse = force_rmse(record, test)
        rows.append((len(chosen), rmse, time.monotonic() - started))
        print(f"  {strategy:6s} n={len(chosen):4d}  held-out force RMSE {rmse * 1000:7.1f} meV/A",
              flush=True)
    return rows


def power_law(rows: list[tuple[int, float]]) -> tuple[float, float]:
    """(a, b) of error = a * labels**-b, least squares in log-log over the whole curve."""
    n = np.log([r[0] for r in rows])
    e = np.log([r[1] for r in rows])
    slope, intercept = np.polyfit(n, e, 1)
    return float(np.exp(intercept)), float(-slope)


def geometric_mean(values: np.ndarray) -> np.ndarray:
    """Over seeds (axis 0)."""
    return np.exp(np.log(values).mean(axis=0))


def labels_for(fit: tuple[float, float], target: float) -> float | None:
    """Labels at which the fitted curve reaches ``target`` (None: it does not fall)."""
    a, b = fit
    return float((a / target) ** (1 / b)) if b > FALLS else None


def run_seed(args: argparse.Namespace, seed: int, sizes: list[int],
             settings: TrainingSettings, workdir: Path) -> dict[str, list[tuple[int, float]]]:
    rng = np.random.default_rng(seed)
    print(f"seed {seed}: a pool of {args.pool} EMT-labelled Cu structures and a held-out set")
    pool = structure_pool(args.pool, rng)
    test = held_out(np.random.default_rng(seed + 1000))
    start = [int(i) for i in rng.choice(len(pool), sizes[0], replace=False)]
    refs = free_atom_energies(EMT(), ["Cu"])
    return {name: [(n, e) for n, e, _ in learn(name, pool, start, sizes, test, settings, refs,
                                               workdir / f"seed{seed}", seed)]
            for name in ("active", "random")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=240)
    parser.add_argument("--batches", default="8,16,32,64")
    parser.add_argument("--functions", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--weighting", choices=["energy_based", "uniform"],
                        default="energy_based")
    parser.add_argument("--seeds", default="7,8,9")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.batches.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = TrainingSettings(number_of_functions_per_element=args.functions,
                                max_iterations=args.iterations, test_fraction=0.0,
                                weighting={"kind": args.weighting})
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="data_efficiency_"))
    print(f"fits in {workdir}; {args.functions} functions, up to {args.iterations} BFGS "
          f"steps, weighting {args.weighting}, seeds {seeds}")
    runs = [run_seed(args, seed, sizes, settings, workdir) for seed in seeds]
    curves = {name: np.array([[e for _, e in run[name]] for run in runs]) * 1000
              for name in ("active", "random")}

    # geometric mean and range over seeds: one start of 8 labels can blow up on held-out
    # data (seed 8: 24.5 eV/A), which an arithmetic mean would let decide the curve
    print(f"\nheld-out force RMSE (meV/A): geometric mean [min - max] over {len(seeds)} seeds")
    print(" labels |        active          |        random")
    for k, n in enumerate(sizes):
        cells = []
        for name in ("active", "random"):
            values = curves[name][:, k]
            cells.append(f"{geometric_mean(values):7.1f} [{values.min():.1f} - {values.max():.1f}]")
        print(f" {n:6d} | " + " | ".join(f"{c:22s}" for c in cells))
    fits = {name: power_law(list(zip(sizes, geometric_mean(c), strict=True)))
            for name, c in curves.items()}
    for name, (a, b) in fits.items():
        trend = "falls" if b > FALLS else "RISES" if b < -FALLS else "is flat"
        print(f"{name}: fitted error = {a:.1f} * labels^-{b:.2f} meV/A ({trend} with data)")
    target = float(geometric_mean(curves["random"][:, -1]))
    need = {name: labels_for(fit, target) for name, fit in fits.items()}
    if all(v is not None for v in need.values()):
        print(f"labels to reach {target:.1f} meV/A (random's geometric mean at {sizes[-1]}) on the fitted "
              f"curves: active {need['active']:.0f}, random {need['random']:.0f} "
              f"(active needs {need['active'] / need['random']:.2f} of random's labels)")
    else:
        print(f"no label count to reach {target:.1f} meV/A read off the curves: "
              + ", ".join(f"{name} {'does not fall' if v is None else f'{v:.0f}'}"
                          for name, v in need.items()))
    OUT.mkdir(exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, c in curves.items():
        middle = geometric_mean(c)
        ax.errorbar(sizes, middle, yerr=[middle - c.min(axis=0), c.max(axis=0) - middle],
                    fmt="o-", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("labelled structures")
    ax.set_ylabel("held-out force RMSE (meV/A)")
    ax.set_title(f"EMT Cu, {len(seeds)} seeds, weighting {args.weighting}")
    ax.legend()
    fig.tight_layout()
    plot = OUT / f"data_efficiency_{args.weighting}.png"
    fig.savefig(plot, dpi=120)
    print(f"plot: {plot}")


if __name__ == "__main__":
    main()
