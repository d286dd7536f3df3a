"""The generated eOn ext_pot driver, run exactly as eOn 3.2+ runs it.

eOn writes ``from_eon_to_extpot`` in a scratch folder, runs the script there (through the
shell, with ``EON_EXTPOT_RUN_DIR`` set to the job folder) and reads
``from_extpot_to_eon``. Here the same files and the same call, with the session's real
pacemaker fit of Cu; results are compared with pyace in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read
from pyace import PyACECalculator

from ace_fixtures import FittedPotential

from pyacemaker.config import KMCConfig
from pyacemaker.stages.explore import pace_driver
from pyacemaker.stages.explore.kmc.eonclient import EonClientSearcher, install_driver

GAMMA_LOWER, GAMMA_UPPER = 2.0, 5.0


def write_eon_input(folder: Path, atoms: Atoms) -> None:
    cell = "\n".join(" ".join(f"{v:.10f}" for v in row) for row in atoms.cell.array)
    rows = "\n".join(f"{z} {x:.10f} {y:.10f} {w:.10f}"
                     for z, (x, y, w) in zip(atoms.numbers, atoms.positions))
    (folder / pace_driver.INPUT_FILE).write_text(f"{cell}\n{rows}\n")


def run_like_eon(driver: Path, scratch: Path, run_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, EON_EXTPOT_RUN_DIR=str(run_dir))
    return subprocess.run([str(driver)], cwd=scratch, env=env, capture_output=True, text=True,
                          timeout=120)


def read_eon_output(scratch: Path) -> tuple[float, np.ndarray]:
    lines = (scratch / pace_driver.OUTPUT_FILE).read_text().split("\n")
    return float(lines[0]), np.array([[float(v) for v in line.split()]
                                      for line in lines[1:] if line.strip()])


def pyace_reference(fitted: FittedPotential, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
    calc = PyACECalculator(str(fitted.yaml))
    calc.set_active_set(str(fitted.asi))
    work = atoms.copy()
    work.calc = calc
    return work.get_potential_energy(), work.get_forces(), calc.results["gamma"]


def rattled_cu() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    del atoms[3]
    atoms.rattle(0.04, seed=3)
    return atoms


def squeezed_cu() -> Atoms:
    """Far outside any training data: compressed by 15 % (gamma in the hundreds)."""
    atoms = bulk("Cu", "fcc", a=3.6 * 0.85, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.1, seed=1)
    return atoms


@pytest.fixture()
def driver(cu_ace_potential: FittedPotential, tmp_path: Path) -> Path:
    return install_driver(tmp_path / "run", cu_ace_potential.record, GAMMA_LOWER, GAMMA_UPPER)


def scratch_dirs(tmp_path: Path) -> tuple[Path, Path]:
    run_dir = tmp_path / "run"
    scratch = run_dir / "extpot_1_0"
    scratch.mkdir(parents=True)
    return run_dir, scratch


def test_driver_is_an_executable_with_its_settings(
        driver: Path, cu_ace_potential: FittedPotential) -> None:
    assert os.access(driver, os.X_OK)
    assert driver.read_text().startswith("#!/") and " -S\n" in driver.read_text()[:200]
    settings = json.loads(pace_driver.settings_path(driver).read_text())
    assert settings["potential_yaml"] == str(Path(cu_ace_potential.yaml).resolve())
    assert settings["gamma_upper"] == GAMMA_UPPER
    assert len(settings["socket"]) < 100  # UNIX socket path limit


def test_standalone_call_gives_pyace_energy_and_forces(
        driver: Path, cu_ace_potential: FittedPotential, tmp_path: Path) -> None:
    """No evaluator running: the script loads the potential itself (slow, same numbers)."""
    run_dir, scratch = scratch_dirs(tmp_path)
    atoms = rattled_cu()
    write_eon_input(scratch, atoms)
    done = run_like_eon(driver, scratch, run_dir)
    assert done.returncode == 0, done.stderr
    energy, forces = read_eon_output(scratch)
    ref_energy, ref_forces, gamma = pyace_reference(cu_ace_potential, atoms)
    assert gamma.max() < GAMMA_UPPER
    assert energy == pytest.approx(ref_energy, abs=1e-8)
    assert np.allclose(forces, ref_forces, atol=1e-8)


def test_persistent_evaluator_gives_the_same_answers(
        cu_ace_potential: FittedPotential, tmp_path: Path) -> None:
    """With the evaluator the engine starts, each call is a thin stdlib client."""
    settings = KMCConfig(engine="eonclient", gamma_lower=GAMMA_LOWER, gamma_upper=GAMMA_UPPER)
    searcher = EonClientSearcher(cu_ace_potential.record, settings, 500.0, 0, tmp_path / "run")
    run_dir, scratch = scratch_dirs(tmp_path)
    with searcher:
        for seed in range(3):
            atoms = rattled_cu()
            atoms.rattle(0.03, seed=10 + seed)
            write_eon_input(scratch, atoms)
            done = run_like_eon(searcher.driver, scratch, run_dir)
            assert done.returncode == 0, done.stderr
            energy, forces = read_eon_output(scratch)
            ref_energy, ref_forces, _ = pyace_reference(cu_ace_potential, atoms)
            assert energy == pytest.approx(ref_energy, abs=1e-8)
            assert np.allclose(forces, ref_forces, atol=1e-8)
        socket_path = Path(searcher.driver_settings["socket"])
        assert socket_path.exists()
    assert not socket_path.exists()
    log = (run_dir / pace_driver.GAMMA_LOG).read_text().splitlines()
    assert len(log) == 3  # all three calls answered by the one evaluator


def test_high_gamma_input_exits_100_and_dumps_the_structure(
        driver: Path, cu_ace_potential: FittedPotential, tmp_path: Path) -> None:
    run_dir, scratch = scratch_dirs(tmp_path)
    atoms = squeezed_cu()
    write_eon_input(scratch, atoms)
    done = run_like_eon(driver, scratch, run_dir)
    assert done.returncode == pace_driver.HALT_EXIT_STATUS == 100, done.stderr
    assert "extrapolation halt" in done.stderr
    assert not (scratch / pace_driver.OUTPUT_FILE).exists()  # eOn must not read stale forces
    dump = read(run_dir / pace_driver.HALT_DUMP)
    _, _, gamma = pyace_reference(cu_ace_potential, atoms)
    assert gamma.max() > GAMMA_UPPER
    assert np.allclose(dump.positions, atoms.positions, atol=1e-8)
    assert (dump.numbers == atoms.numbers).all()
    assert np.allclose(dump.cell.array, atoms.cell.array)
    assert np.allclose(dump.arrays["gamma"], gamma, rtol=1e-6)
    assert dump.info["gamma_max"] == pytest.approx(gamma.max(), rel=1e-6)


def test_bad_eon_input_fails_with_a_message_naming_the_file(driver: Path,
                                                           tmp_path: Path) -> None:
    run_dir, scratch = scratch_dirs(tmp_path)
    done = run_like_eon(driver, scratch, run_dir)
    assert done.returncode not in (0, 100)
    assert "from_eon_to_extpot" in done.stderr and "not found" in done.stderr
    (scratch / pace_driver.INPUT_FILE).write_text("1 0 0\n0 1 0\n")
    done = run_like_eon(driver, scratch, run_dir)
    assert done.returncode not in (0, 100)
    assert "expected 3 cell rows" in done.stderr
