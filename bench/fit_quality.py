"""Fit quality along an EMT campaign: per iteration, the fit's errors and the gate's verdict.

Runs examples/cu-emt.yaml (or --config) in a fresh folder on the local site, or reads a
finished campaign folder (--read DIR), then prints one row per fitted potential:
structures fitted / left out, pacemaker's test-split RMSE, the RMSE on an independent EMT
set (15 MD snapshots of 32-atom fcc Cu at 300/800/1500 K and 5 strained primitive cells,
never seen by the campaign), the stress RMSE there (stresses are not fitted: pacemaker
0.4.0rc1 has no stress loss), and the Go/No-Go verdict with the elastic-constant errors.

    .venv/bin/python bench/fit_quality.py [--config examples/cu-emt.yaml] [--workdir DIR]
    .venv/bin/python bench/fit_quality.py --read DIR
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from pyacemaker.state import PotentialRecord

REPO = Path(__file__).resolve().parents[1]


def emt_reference_set(seed: int = 5) -> list[Atoms]:
    """Independent EMT-labelled Cu: MD snapshots at 300/800/1500 K and strained cells."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="ase")
    warnings.filterwarnings("ignore", category=FutureWarning, module="ase")
    warnings.filterwarnings("ignore", message="Use thermalize_momenta")
    rng = np.random.default_rng(seed)
    structures = []
    for temperature in (300, 800, 1500):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
        atoms.calc = EMT()
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        md = Langevin(atoms, 2 * units.fs, temperature_K=temperature, friction=0.02, rng=rng)
        for _ in range(5):
            md.run(40)
            structures.append(atoms.copy())
    structures += [bulk("Cu", "fcc", a=3.61 * (1 + s)) for s in np.linspace(-0.04, 0.04, 5)]
    for atoms in structures:
        atoms.calc = EMT()
        atoms.get_stress()
    return structures


def reference_errors(record: PotentialRecord, reference: list[Atoms]) -> tuple[float, ...]:
    """Energy (meV/atom), force (eV/A) and stress (GPa) RMSE of ``record`` on ``reference``."""
    from pyacemaker.stages.train import total_energy_calculator

    calc = total_energy_calculator(record)
    energy, force, stress = [], [], []
    for atoms in reference:
        work = atoms.copy()
        work.calc = calc
        energy.append((work.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
        force.append(work.get_forces() - atoms.get_forces())
        stress.append((work.get_stress() - atoms.get_stress()) / units.GPa)
    with np.errstate(over="ignore", invalid="ignore"):
        return (1000 * float(np.sqrt(np.mean(np.square(energy)))),
                float(np.sqrt(np.mean(np.square(np.concatenate(force))))),
                float(np.sqrt(np.mean(np.square(stress)))))


def verdict(workdir: Path, iteration: int) -> str:
    path = workdir / "validation" / f"iter_{iteration:03d}.json"
    if not path.is_file():
        return "not validated"
    report = json.loads(path.read_text())
    failed = [c for c in report["checks"] if not c["passed"]]
    cij = {c["name"].split(": ")[-1]: c["value"] for c in report["checks"]
           if c["name"].split(": ")[-1] in ("C11", "C12", "C44")}
    worst = max((v for v in cij.values() if v is not None), default=float("nan"))
    return f"{report['verdict']} ({len(failed)} checks failed, worst Cij off {worst:.0%})"


def summarise(workdir: Path) -> None:
    state = json.loads((workdir / "state.json").read_text())
    reference = emt_reference_set()
    print(f"\n{workdir}: {state.get('stop_reason')}")
    print(f"{'it':>2} {'mode':4} {'fit':>4} {'out':>4} {'split E':>8} {'split F':>8} "
          f"{'EMT E':>8} {'EMT F':>7} {'EMT S':>7}  gate")
    print(f"{'':>2} {'':4} {'':>4} {'':>4} {'meV/at':>8} {'eV/A':>8} {'meV/at':>8} "
          f"{'eV/A':>7} {'GPa':>7}")
    for data in state["potentials"]:
        record = PotentialRecord.model_validate(data)
        m = record.metrics
        fitted = m.get("train_size", 0) + m.get("test_size", 0)
        left_out = m.get("n_structures", fitted) - fitted
        e, f, s = reference_errors(record, reference)
        print(f"{record.iteration:2d} {record.mode or '':4} {fitted:4.0f} {left_out:4.0f} "
              f"{m['energy_rmse_mev_per_atom']:8.1f} {m['force_rmse_ev_per_a']:8.3f} "
              f"{e:8.1f} {f:7.3f} {s:7.2f}  {verdict(workdir, record.iteration)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "examples" / "cu-emt.yaml"))
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--read", default=None, help="only summarise this campaign folder")
    args = parser.parse_args()
    if args.read:
        summarise(Path(args.read))
        return
    from pyacemaker.campaign import Campaign
    from pyacemaker.config import load_campaign, load_site
    from pyacemaker.logs import setup_logging

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fit_quality_"))
    setup_logging(workdir)
    campaign = Campaign.open(load_campaign(args.config),
                             load_site(REPO / "site_configs" / "local.yaml"), workdir)
    campaign.run()
    summarise(workdir)


if __name__ == "__main__":
    main()
