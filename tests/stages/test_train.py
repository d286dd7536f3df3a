"""Real pacemaker fits on EMT-labelled data: files, metrics, gamma, refit, failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ace_fixtures import (FittedPotential, cu_training_structures, emt_label,
                          tiny_training_settings)
from ase.build import bulk

from pyacemaker.config import BaselineSettings, TrainingSettings, WeightingSettings
from pyacemaker.datastore import DataStore
from pyacemaker.stages.train import (FitFailed, export_training_set, fit_potential,
                                     pacemaker_input, plan_refit, total_energy_calculator,
                                     write_training_set)
from pyacemaker.state import PotentialRecord


def gamma_max(fitted: FittedPotential, atoms) -> float:
    from pyace import PyACECalculator

    calc = PyACECalculator(str(fitted.yaml))
    calc.set_active_set(str(fitted.asi))
    work = atoms.copy()
    work.calc = calc
    work.get_potential_energy()
    return float(np.max(calc.results["gamma"]))


@pytest.mark.slow
def test_fit_writes_yaml_yace_asi_and_metrics(cu_ace_potential: FittedPotential) -> None:
    record = cu_ace_potential.record
    for path in (cu_ace_potential.yaml, cu_ace_potential.yace, cu_ace_potential.asi):
        assert path.is_absolute() and path.is_file() and path.stat().st_size > 0
    assert "elements" in cu_ace_potential.yace.read_text()  # .yace is pace's flat format
    metrics = record.metrics
    assert metrics["metrics_from_test_set"] == 1.0
    assert metrics["test_size"] == 4
    assert metrics["n_functions"] == 15
    assert metrics["fit_time_s"] > 0
    # no plateau test in the fixtures' settings: the cap of 100 BFGS steps is run
    # (pacemaker's log numbers them #1 to #99 after its #0 evaluation)
    assert 99 <= metrics["fit_steps"] <= 100 and metrics["stopped_on_plateau"] == 0.0
    # EMT Cu is easy: a tiny ACE reaches a few meV/atom and tens of meV/A on unseen cells
    assert metrics["energy_rmse_mev_per_atom"] < 10.0
    assert metrics["force_rmse_ev_per_a"] < 0.1


@pytest.mark.slow
def test_total_energy_reproduces_emt_labels(cu_ace_potential: FittedPotential) -> None:
    calc = total_energy_calculator(cu_ace_potential.record)
    errors = []
    for atoms in cu_ace_potential.training_structures[:10]:
        work = atoms.copy()
        work.calc = calc
        errors.append((work.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
    assert np.sqrt(np.mean(np.square(errors))) < 0.01  # eV/atom, absolute EMT energies


@pytest.mark.slow
def test_gamma_low_on_training_like_high_on_distorted(cu_ace_potential: FittedPotential) -> None:
    # same recipe, new random draws: strained cells and rattles up to 0.075 A
    fresh = cu_training_structures(seed=7)
    gammas = [gamma_max(cu_ace_potential, atoms) for atoms in fresh[:20]]
    assert max(gammas) < 1.5, gammas
    distorted = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    distorted.rattle(stdev=0.35, seed=3)
    squeezed = bulk("Cu", "fcc", a=3.6 * 0.8, cubic=True)
    assert gamma_max(cu_ace_potential, distorted) > 5.0
    assert gamma_max(cu_ace_potential, squeezed) > 5.0


def test_emt_label_keeps_energies() -> None:
    atoms = emt_label([bulk("Cu", "fcc", a=3.6)])[0]
    assert abs(atoms.get_potential_energy()) < 0.05


# --------------------------------------------------------------------------- warm start


@pytest.mark.slow
def test_warm_start_continues_from_previous_and_keeps_it(cu_ace_potential: FittedPotential,
                                                         tmp_path: Path) -> None:
    previous = cu_ace_potential.record
    before = {p: p.read_bytes() for p in (cu_ace_potential.yaml, cu_ace_potential.asi)}
    extra = cu_training_structures(seed=11)[10:16]
    dataset = write_training_set(cu_ace_potential.training_structures + extra,
                                 tmp_path / "data.pckl.gzip", cu_ace_potential.reference_energies)
    settings = tiny_training_settings(warm_start_iterations=15, test_fraction=0.0)
    plan = plan_refit(1, previous, settings, last_full_refit=0)
    assert plan.mode == "warm" and plan.max_iterations == 15
    record = fit_potential(dataset, ["Cu"], settings, tmp_path / "iter_001", iteration=1,
                           initial_potential=plan.initial_potential,
                           reference_energies=cu_ace_potential.reference_energies)
    assert record.mode == "warm" and record.iteration == 1
    # a cold fit starts ~100 meV/atom off; the warm one starts at the previous fit's error
    cold_start = previous.metrics["initial_train_energy_rmse_mev_per_atom"]
    warm_start = record.metrics["initial_train_energy_rmse_mev_per_atom"]
    assert warm_start < cold_start / 5, (warm_start, cold_start)
    assert record.metrics["energy_rmse_mev_per_atom"] < 10.0
    assert Path(record.yace).is_file() and Path(record.asi).is_file()
    # every iteration keeps its own potential; the previous one is byte-identical
    assert all(p.read_bytes() == data for p, data in before.items())
    assert Path(record.yaml).parent != cu_ace_potential.yaml.parent
    # a second call with the same inputs reuses the finished fit instead of refitting
    again = fit_potential(dataset, ["Cu"], settings, tmp_path / "iter_001", iteration=1,
                          initial_potential=plan.initial_potential,
                          reference_energies=cu_ace_potential.reference_energies)
    assert again.metrics["fit_time_s"] == record.metrics["fit_time_s"]


# --------------------------------------------------------------------------- refit policy


def _record(iteration: int, path: Path) -> PotentialRecord:
    return PotentialRecord(iteration=iteration, yaml=str(path))


def test_refit_policy(tmp_path: Path) -> None:
    settings = TrainingSettings(full_refit_every=3, max_iterations=300, warm_start_iterations=80)
    existing = tmp_path / "pot.yaml"
    existing.write_text("x")
    assert plan_refit(0, None, settings, None).mode == "full"
    warm = plan_refit(1, _record(0, existing), settings, last_full_refit=0)
    assert (warm.mode, warm.max_iterations, warm.initial_potential) == ("warm", 80, existing)
    assert plan_refit(2, _record(1, existing), settings, last_full_refit=0).mode == "warm"
    full = plan_refit(3, _record(2, existing), settings, last_full_refit=0)
    assert (full.mode, full.max_iterations, full.initial_potential) == ("full", 300, None)
    assert plan_refit(4, _record(3, existing), settings, last_full_refit=3).mode == "warm"
    gone = plan_refit(4, _record(3, tmp_path / "deleted.yaml"), settings, last_full_refit=3)
    assert gone.mode == "full" and "missing" in gone.reason
    every_time = TrainingSettings(full_refit_every=1)
    assert plan_refit(5, _record(4, existing), every_time, last_full_refit=4).mode == "full"


# --------------------------------------------------------------------------- inputs


def test_input_yaml_lists_every_bond_and_the_settings() -> None:
    settings = TrainingSettings(cutoff=6.0, number_of_functions_per_element=12, kappa=0.2,
                                test_fraction=0.0, ladder_step=4)
    config = pacemaker_input(["Ni", "Cu", "Au"], settings, "d.pckl.gzip", max_iterations=77)
    assert set(config["potential"]["bonds"]) == {
        "Au Au", "Au Cu", "Au Ni", "Cu Cu", "Cu Ni", "Ni Ni"}
    assert all(b["rcut"] == 6.0 for b in config["potential"]["bonds"].values())
    assert config["potential"]["elements"] == ["Au", "Cu", "Ni"]
    assert config["potential"]["functions"]["number_of_functions_per_element"] == 12
    assert config["fit"]["maxiter"] == 77 and config["fit"]["loss"]["kappa"] == 0.2
    assert config["fit"]["repulsion"] == "auto" and config["fit"]["ladder_step"] == 4
    assert config["backend"]["evaluator"] == "tensorpot"
    assert "test_size" not in config["data"]
    explicit = TrainingSettings(baseline=BaselineSettings(kind="zbl_core", inner_cutoff=1.8))
    bonds = pacemaker_input(["Cu"], explicit, "d", 10)["potential"]["bonds"]
    assert bonds["Cu Cu"]["r_in"] == 1.8 and bonds["Cu Cu"]["inner_cutoff_type"] == "zbl"
    delta = TrainingSettings(baseline=BaselineSettings(kind="delta_zbl"))
    assert "repulsion" not in pacemaker_input(["Cu"], delta, "d", 10)["fit"]


def test_training_set_is_referenced_per_element(tmp_path: Path) -> None:
    import pandas as pd

    structures = cu_training_structures()[:3]
    path = write_training_set(structures, tmp_path / "d.pckl.gzip", {"Cu": 3.51})
    frame = pd.read_pickle(path, compression="gzip")
    for atoms, row in zip(structures, frame.itertuples(), strict=True):
        assert row.energy_corrected == pytest.approx(
            atoms.get_potential_energy() - 3.51 * len(atoms))
        assert np.allclose(row.forces, atoms.get_forces())
    with pytest.raises(ValueError, match=r"structure 0: no reference energy .*\['Cu'\]"):
        write_training_set(structures, tmp_path / "x.pckl.gzip", {"Ni": -1.0})


def test_datastore_export(tmp_path: Path) -> None:
    import pandas as pd

    store = DataStore(tmp_path / "lake.db")
    structures = cu_training_structures()[:4]
    store.add_many(structures)
    store.add(bulk("Cu", "fcc", a=3.7))  # a candidate without labels: not exported
    path = export_training_set(store, tmp_path / "d.pckl.gzip", {"Cu": 3.51})
    assert len(pd.read_pickle(path, compression="gzip")) == 4
    with pytest.raises(ValueError, match="no labelled training structures"):
        export_training_set(DataStore(tmp_path / "empty.db"), tmp_path / "e.pckl.gzip", {})


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    settings = tiny_training_settings()
    with pytest.raises(ValueError, match="dataset not found: .*nothing.pckl.gzip"):
        fit_potential(tmp_path / "nothing.pckl.gzip", ["Cu"], settings, tmp_path / "w")
    corrupt = tmp_path / "corrupt.pckl.gzip"
    corrupt.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt.pckl.gzip: not a readable pacemaker dataset"):
        fit_potential(corrupt, ["Cu"], settings, tmp_path / "w")
    good = write_training_set(cu_training_structures()[:3], tmp_path / "g.pckl.gzip", {"Cu": 0.0})
    with pytest.raises(ValueError, match=r"element\(s\) \['Cu'\] not in elements \['Ni'\]"):
        fit_potential(good, ["Ni"], settings, tmp_path / "w")
    with pytest.raises(ValueError, match="initial_potential not found"):
        fit_potential(good, ["Cu"], settings, tmp_path / "w",
                      initial_potential=tmp_path / "gone.yaml")
    with pytest.raises(ValueError, match="non-finite energy or forces"):
        broken = cu_training_structures()[:1]
        broken[0].calc.results["forces"][0, 0] = np.nan
        write_training_set(broken, tmp_path / "b.pckl.gzip", {"Cu": 0.0})


# --------------------------------------------------------------------------- failures


def _small_dataset(tmp_path: Path) -> Path:
    return write_training_set(cu_training_structures()[:12], tmp_path / "d.pckl.gzip",
                              {"Cu": 3.51})


def _wrapper(tmp_path: Path, body: str) -> str:
    """A launcher script around the real pacemaker (resource limits, a kill)."""
    script = tmp_path / "pacemaker_wrapped"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_a_fit_stops_on_a_loss_plateau_before_its_cap(tmp_path: Path) -> None:
    settings = tiny_training_settings(max_iterations=3000, loss_plateau=3e-3,
                                      plateau_patience=10)
    assert pacemaker_input(["Cu"], settings, "d", 3000)["fit"][
        "min_relative_train_loss_per_iter"] == 3e-3
    record = fit_potential(_small_dataset(tmp_path), ["Cu"], settings, tmp_path / "fit")
    metrics = record.metrics
    assert metrics["stopped_on_plateau"] == 1.0 and 10 < metrics["fit_steps"] < 3000
    assert Path(record.yace).is_file() and metrics["energy_rmse_mev_per_atom"] < 50


def test_timeout_is_reported(tmp_path: Path) -> None:
    settings = tiny_training_settings(timeout_s=2)
    with pytest.raises(FitFailed, match="timed out") as info:
        fit_potential(_small_dataset(tmp_path), ["Cu"], settings, tmp_path / "fit")
    assert info.value.workdir == (tmp_path / "fit").resolve()
    assert not (tmp_path / "fit" / "potential_record.json").exists()


def test_killed_fit_is_reported(tmp_path: Path) -> None:
    pacemaker = _wrapper(tmp_path, 'exec timeout -s KILL 3 pacemaker "$@"')
    with pytest.raises(FitFailed, match="killed by signal 9"):
        fit_potential(_small_dataset(tmp_path), ["Cu"], tiny_training_settings(),
                      tmp_path / "fit", executable=pacemaker)


@pytest.mark.slow
def test_out_of_memory_is_reported_with_log_tail(tmp_path: Path) -> None:
    # 1 GB of address space: TensorFlow cannot load or start its thread pools (2 GB once
    # let it hang instead of aborting, so the fit also gets a short timeout)
    pacemaker = _wrapper(tmp_path, 'exec prlimit --as=1000000000 pacemaker "$@"')
    with pytest.raises(FitFailed, match="out of memory") as info:
        fit_potential(_small_dataset(tmp_path), ["Cu"], tiny_training_settings(timeout_s=240),
                      tmp_path / "fit", executable=pacemaker)
    tail = info.value.log_tail
    # the cause is in the tail: the loader's mmap refused (ENOMEM) or the thread pools failed
    assert ("failed to map segment" in tail or "pthread_create" in tail
            or "memory" in tail.lower())


@pytest.mark.slow
def test_non_finite_loss_is_reported(tmp_path: Path) -> None:
    structures = cu_training_structures()[:12]
    absurd = structures[3]
    absurd.calc.results["forces"] = np.full((len(absurd), 3), 1e200)  # finite, but overflows
    dataset = write_training_set(structures, tmp_path / "d.pckl.gzip", {"Cu": 3.51})
    # no force limit and uniform weights: the absurd label reaches pacemaker's loss as is
    settings = tiny_training_settings(max_iterations=5, test_fraction=0, max_force_ev_per_a=None,
                                      weighting=WeightingSettings(kind="uniform"))
    with pytest.raises(FitFailed, match=r"non-finite \(NaN/inf\) loss") as info:
        fit_potential(dataset, ["Cu"], settings, tmp_path / "fit")
    assert "Loss" in info.value.log_tail
