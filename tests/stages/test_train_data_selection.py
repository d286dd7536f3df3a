"""What a fit trains on: energy-based weights, absurd-force structures left out, and the ZBL
core placed below the shortest distance of the whole training set (real pacemaker fits)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from ace_fixtures import FittedPotential, cu_training_structures, emt_label, tiny_training_settings
from ase import Atoms
from ase.build import bulk

from pyacemaker.config import TrainingSettings, WeightingSettings
from pyacemaker.stages.train import (fit_potential, pacemaker_input, shortest_distance,
                                     write_training_set)


def close_pair_cell(distance: float) -> Atoms:
    """An fcc cell whose atoms 0 and 1 are pushed to ``distance`` A (EMT-labelled)."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    direction = atoms.positions[1] - atoms.positions[0]
    atoms.positions[1] = atoms.positions[0] + direction / np.linalg.norm(direction) * distance
    return emt_label([atoms])[0]


def absurd_force_cell() -> Atoms:
    atoms = cu_training_structures(seed=3)[12]
    atoms.calc.results["forces"] = atoms.calc.results["forces"].copy()
    atoms.calc.results["forces"][0] = [50.0, 0.0, 0.0]  # eV/A: a broken label
    atoms.info["row_id"] = 999
    return atoms


def fitted_names(workdir: Path) -> set[str]:
    names: set[str] = set()
    for split in ("fitting_data_info.pckl.gzip", "test_data_info.pckl.gzip"):
        names |= set(pd.read_pickle(workdir / split, compression="gzip")["name"].astype(str))
    return names


def test_input_yaml_weighting_block_and_core_radii() -> None:
    settings = TrainingSettings(weighting=WeightingSettings(de=0.5, df=2.0, wlow=0.8))
    fit = pacemaker_input(["Cu"], settings, "d", 10, seed=7)["fit"]
    assert fit["weighting"] == {"type": "EnergyBasedWeightingPolicy", "DElow": 1.0,
                                "DEup": 10.0, "DE": 0.5, "DF": 2.0, "energy": "convex_hull",
                                "seed": 7, "wlow": 0.8}
    uniform = TrainingSettings(weighting=WeightingSettings(kind="uniform"))
    assert "weighting" not in pacemaker_input(["Cu"], uniform, "d", 10)["fit"]
    config = pacemaker_input(["Cu", "Ni"], TrainingSettings(), "d", 10,
                             inner_radii={("Cu", "Cu"): 2.1, ("Cu", "Ni"): 2.0, ("Ni", "Ni"): 1.9})
    assert "repulsion" not in config["fit"]  # explicit radii replace pacemaker's post-fit auto
    bonds = config["potential"]["bonds"]
    assert [bonds[k]["r_in"] for k in ("Cu Cu", "Cu Ni", "Ni Ni")] == [2.1, 2.0, 1.9]
    assert all(b["inner_cutoff_type"] == "zbl" for b in bonds.values())


@pytest.mark.slow
def test_absurd_forces_left_out_weights_applied_core_below_all_data(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    structures = cu_training_structures()[:20] + [close_pair_cell(2.15), absurd_force_cell()]
    dataset = write_training_set(structures, tmp_path / "d.pckl.gzip", {"Cu": 3.51})
    settings = tiny_training_settings(max_iterations=20, test_fraction=0.2,
                                      weighting=WeightingSettings())  # the campaign default
    with caplog.at_level(logging.INFO, logger="pyacemaker"):
        record = fit_potential(dataset, ["Cu"], settings, tmp_path / "fit")
    workdir = tmp_path / "fit"
    assert "1 of 22 structures left out (a force above 20 eV/A, largest 50.0 eV/A)" in caplog.text
    assert record.metrics["n_excluded_max_force"] == 1
    again = fit_potential(dataset, ["Cu"], settings, tmp_path / "fit")  # same inputs: reused
    assert again.metrics["fit_time_s"] == record.metrics["fit_time_s"]
    assert record.metrics["n_excluded_by_weighting"] == 0
    assert fitted_names(workdir) == {str(i) for i in range(21)}  # all but the absurd one
    # pacemaker applied its EnergyBasedWeightingPolicy: high-force atoms weigh less
    config = yaml.safe_load((workdir / "input.yaml").read_text())
    assert config["fit"]["weighting"]["type"] == "EnergyBasedWeightingPolicy"
    assert "EnergyBasedWeightingPolicy" in (workdir / "log.txt").read_text()
    frame = pd.read_pickle(workdir / "fitting_data_info.pckl.gzip", compression="gzip")
    weights = np.concatenate(frame["w_forces"].map(np.ravel).to_list())
    assert weights.max() / weights.min() > 5
    # the core sits at the closest pair of the whole set (train and test split)
    from pyace import BBasisConfiguration

    shortest = shortest_distance(structures[:21])
    assert shortest == pytest.approx(2.15, abs=1e-6)
    (block,) = BBasisConfiguration(record.yaml).funcspecs_blocks
    assert block.inner_cutoff_type == "zbl"
    assert block.r_in == pytest.approx(2.15)


@pytest.mark.slow
def test_warm_start_moves_the_core_below_new_close_pairs(cu_ace_potential: FittedPotential,
                                                         tmp_path: Path) -> None:
    from pyace import BBasisConfiguration

    previous = BBasisConfiguration(str(cu_ace_potential.yaml)).funcspecs_blocks[0].r_in
    assert previous == pytest.approx(2.14)  # its data's closest pair (2.148 A)
    structures = cu_ace_potential.training_structures + [close_pair_cell(1.8)]
    dataset = write_training_set(structures, tmp_path / "d.pckl.gzip",
                                 cu_ace_potential.reference_energies)
    settings = tiny_training_settings(warm_start_iterations=10, test_fraction=0.0)
    record = fit_potential(dataset, ["Cu"], settings, tmp_path / "warm",
                           initial_potential=cu_ace_potential.yaml)
    for path in (tmp_path / "warm" / "initial_potential.yaml", Path(record.yaml)):
        assert BBasisConfiguration(str(path)).funcspecs_blocks[0].r_in == pytest.approx(1.8)
    # the close pair is fitted by ACE, not pushed onto the ZBL wall
    assert record.metrics["train_energy_rmse_mev_per_atom"] < 20.0


def test_the_test_split_is_drawn_near_the_hull(tmp_path: Path) -> None:
    """pacemaker's test metrics crash when no test structure is within 1 eV/atom of the
    hull (a seed-1 cold start did); the split draws its test structures from there."""
    from pyacemaker.stages.train.dataset import split_test_set

    cells, energies = [], []
    for k in range(10):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.01 * k, cubic=True)
        cells.append(atoms)
        energies.append(len(atoms) * (-3.5 + 0.05 * k))  # all within 0.5 eV/atom
    for k in range(10):
        dimer = Atoms("Cu2", positions=[[0, 0, 0], [1.6 + 0.01 * k, 0, 0]], cell=[8] * 3,
                      pbc=True)
        cells.append(dimer)
        energies.append(2 * (-3.5 + 1.5))  # 1.5 eV/atom above
    frame = pd.DataFrame({"ase_atoms": cells, "energy_corrected": energies,
                          "forces": [np.zeros((len(a), 3)) for a in cells],
                          "name": [f"s{k}" for k in range(len(cells))]})
    source = tmp_path / "all.pckl.gzip"
    frame.to_pickle(source, compression="gzip")
    n = split_test_set(source, tmp_path / "train.pckl.gzip", tmp_path / "test.pckl.gzip",
                       0.25, seed=1)
    train = pd.read_pickle(tmp_path / "train.pckl.gzip", compression="gzip")
    test = pd.read_pickle(tmp_path / "test.pckl.gzip", compression="gzip")
    assert n == len(test) == 5 and len(train) == 15  # int(20 * 0.25), as pacemaker counts
    assert all(len(atoms) == 4 for atoms in test["ase_atoms"])  # none of the dimers
    assert sorted(train["name"].tolist() + test["name"].tolist()) == sorted(frame["name"])
    again = split_test_set(source, tmp_path / "t2.pckl.gzip", tmp_path / "s2.pckl.gzip",
                           0.25, seed=1)
    same = pd.read_pickle(tmp_path / "s2.pckl.gzip", compression="gzip")
    assert again == n and same["name"].tolist() == test["name"].tolist()  # reproducible


def test_the_basis_shape_is_a_setting_and_its_orders_must_match() -> None:
    settings = TrainingSettings(lmax_by_orders=[0, 3, 3, 2], nradmax_by_orders=[15, 6, 4, 2])
    functions = pacemaker_input(["Cu", "Ni"], settings, "d", 10)["potential"]["functions"]
    for block in ("UNARY", "BINARY", "ALL"):
        assert functions[block] == {"lmax_by_orders": [0, 3, 3, 2],
                                    "nradmax_by_orders": [15, 6, 4, 2]}
    with pytest.raises(ValueError, match="lmax_by_orders .*nradmax_by_orders"):
        TrainingSettings(lmax_by_orders=[0, 3])


def test_regularisation_reaches_pacemakers_loss() -> None:
    loss = pacemaker_input(["Si"], TrainingSettings(l2_coefficients=1e-5), "d", 10)["fit"]["loss"]
    assert loss["L2_coeffs"] == 1e-5 and loss["L1_coeffs"] == 1e-8
    with pytest.raises(ValueError, match="l1_coefficients"):
        TrainingSettings(l1_coefficients=-1)
