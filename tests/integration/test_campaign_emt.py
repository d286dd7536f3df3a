"""The closed loop for real: EMT reference oracle, real pacemaker fits, real ASE/pyace MD
with the gamma watchdog, real Parsl. One uninterrupted campaign is shared by the tests of
this module; a second one is killed with SIGKILL during labelling and during fitting and
resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.units import fs

from pyacemaker.campaign import Campaign
from pyacemaker.config import load_campaign, load_site
from pyacemaker.datastore import DataStore
from pyacemaker.state import PotentialRecord, load_state
from pyacemaker.stages.train import total_energy_calculator

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

CAMPAIGN = {
    "name": "cu-loop-test",
    "elements": ["Cu"],
    "oracle": {"kind": "emt"},
    "training": {"number_of_functions_per_element": 15, "max_iterations": 80,
                 "warm_start_iterations": 40, "full_refit_every": 2},
    "exploration": {"engine": "ase", "temperatures": [600, 1400], "steps": 300,
                    "target_atoms": 32, "walkers": 1, "max_tasks": 4},
    "active_learning": {"initial_structures": 16, "max_candidates_per_iteration": 8,
                        "max_iterations": 2},
}


def write_campaign(folder: Path) -> Path:
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(CAMPAIGN))
    return path


def held_out_set() -> list[Atoms]:
    """Never used in training: EMT MD snapshots at several temperatures, a vacancy cell
    and a (111) surface slab."""
    rng = np.random.default_rng(1234)
    frames: list[Atoms] = []
    for temperature in (300, 800, 1300):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        atoms.calc = EMT()
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        dyn = Langevin(atoms, 2 * fs, temperature_K=temperature, friction=0.02, rng=rng)
        for _ in range(3):
            dyn.run(60)
            frames.append(atoms.copy())
    vacancy = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    del vacancy[5]
    vacancy.rattle(0.05, seed=3)
    frames.append(vacancy)
    slab = fcc111("Cu", size=(2, 2, 4), vacuum=6.0)
    slab.rattle(0.05, seed=4)
    slab.pbc = True  # a periodic slab with vacuum: pyace needs full periodicity
    frames.append(slab)
    return frames


def force_rmse(record: PotentialRecord, frames: list[Atoms]) -> float:
    calc = total_energy_calculator(record)
    errors = []
    for frame in frames:
        reference = frame.copy()
        reference.calc = EMT()
        predicted = frame.copy()
        predicted.calc = calc
        errors.append(predicted.get_forces() - reference.get_forces())
    return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))


@pytest.fixture(scope="module")
def finished_campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    folder = tmp_path_factory.mktemp("emt-campaign")
    config = load_campaign(write_campaign(folder))
    site = load_site(REPO / "site_configs" / "local.yaml")
    campaign = Campaign.open(config, site, folder / "run")
    campaign.run()
    return campaign


def test_campaign_runs_to_a_recorded_stop(finished_campaign: Campaign) -> None:
    state = finished_campaign.state
    assert state.finished
    assert state.stop_reason and ("max_iterations" in state.stop_reason
                                  or "converged" in state.stop_reason)
    assert state.iteration >= 1
    assert len(state.potentials) >= 2  # cold start plus at least one refit
    for record in state.potentials:
        for path in (record.yaml, record.yace, record.asi):
            assert path and Path(path).is_file()


def test_halts_were_found_and_learned_from(finished_campaign: Campaign) -> None:
    state = finished_campaign.state
    assert sum(state.halts.values()) >= 1
    store = finished_campaign.datastore
    counts = store.provenance_counts()
    learned = sum(n for p, n in counts.items() if p != "coldstart")
    assert learned >= 1, counts
    first_refit = state.potentials[1]
    assert first_refit.metrics["n_structures"] > state.potentials[0].metrics["n_structures"]


def test_learned_potential_beats_the_cold_start_on_held_out_data(
        finished_campaign: Campaign) -> None:
    state = finished_campaign.state
    frames = held_out_set()
    cold = force_rmse(state.potentials[0], frames)
    final = force_rmse(state.potentials[-1], frames)
    print(f"held-out force RMSE: cold start {cold:.4f} eV/A, final {final:.4f} eV/A")
    assert final < cold


def test_data_lake_has_no_duplicates_and_every_label(finished_campaign: Campaign) -> None:
    store = finished_campaign.datastore
    fingerprints = [row.fingerprint for row in store.rows()]
    assert len(fingerprints) == len(set(fingerprints))
    assert store.count(status="candidate") == 0
    assert store.count(status="labelled") == finished_campaign.state.dft_calls


def run_until(args: list[str], trigger: str, timeout: float = 900) -> tuple[int, str]:
    """Run the CLI; SIGKILL it as soon as ``trigger`` appears in its output."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if trigger in line:
            os.kill(proc.pid, signal.SIGKILL)
            break
        if time.monotonic() > deadline:
            proc.kill()
            break
    proc.wait()
    return proc.returncode, "".join(seen)


def test_sigkill_during_labelling_and_fitting_then_resume(
        finished_campaign: Campaign, tmp_path: Path) -> None:
    config_path = write_campaign(tmp_path)
    workdir = tmp_path / "run"
    cli = [sys.executable, "-m", "pyacemaker.cli", "run", str(config_path),
           "--site", str(REPO / "site_configs" / "local.yaml"), "--workdir", str(workdir)]

    code, out = run_until(cli, "label: 3/")  # killed while the cold start is being labelled
    assert code == -signal.SIGKILL, out[-2000:]
    labelled_before = DataStore(workdir / "data.db").count(status="labelled")

    code, out = run_until(cli, "fitting on")  # killed while pacemaker runs
    assert code == -signal.SIGKILL, out[-2000:]
    store = DataStore(workdir / "data.db")
    assert store.count(status="labelled") >= labelled_before  # nothing lost
    state = load_state(workdir)
    assert state is not None and state.status_of("fit") == "running"

    done = subprocess.run(cli, capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = load_state(workdir)
    assert state is not None and state.finished
    assert state.iteration == finished_campaign.state.iteration
    store = DataStore(workdir / "data.db")
    fingerprints = Counter(row.fingerprint for row in store.rows())
    assert max(fingerprints.values()) == 1  # no duplicated labels
    assert store.count(status="candidate") == 0  # no structure left unlabelled
    cold = [r for r in store.rows(status="labelled") if r.get("provenance") == "coldstart"]
    assert len(cold) == CAMPAIGN["active_learning"]["initial_structures"]
