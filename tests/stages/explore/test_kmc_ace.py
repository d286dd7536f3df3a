"""kMC with a real ACE potential (the session's pacemaker fit of Cu): halts and learning.

To make "the active set does not cover the saddle region" certain rather than a matter
of luck, the potential's active set is rebuilt (pyace's maxvol, as pace_activeset does)
from structures near the vacancy minimum only. Learning a halt is then what the loop
does to the active set: the halted configuration joins the structures the active set is
built from, and the same kMC task runs again.
"""

from __future__ import annotations

from pyacemaker.stages.explore.kmc import kmc_task

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from pyace import PyACECalculator

from ace_fixtures import FittedPotential

from pyacemaker.config import KMCConfig
from pyacemaker.programs import ProgramFailed
from pyacemaker.stages.explore.kmc import run_akmc, run_kmc
from pyacemaker.stages.explore.kmc.processes import max_displacement
from pyacemaker.stages.explore.result import ExplorationTask
from pyacemaker.state import PotentialRecord

GAMMA_LOWER, GAMMA_UPPER = 1.5, 3.0


def vacancy_cell() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    del atoms[0]
    return atoms


def active_set_record(fitted: FittedPotential, structures: list[Atoms],
                      path: Path) -> PotentialRecord:
    """The fixture's potential with an active set built from ``structures`` only."""
    from pyace import ACEBBasisSet, BBasisConfiguration
    from pyace.activelearning import (compute_A_active_inverse, compute_active_set,
                                      compute_B_projections, save_active_inverse_set)

    basis = ACEBBasisSet(BBasisConfiguration(str(fitted.yaml)))
    projections = compute_B_projections(basis, structures)
    if isinstance(projections, tuple):
        projections = projections[0]
    inverse = compute_A_active_inverse(compute_active_set(projections))
    save_active_inverse_set(str(path), inverse, elements_name=basis.elements_name)
    return fitted.record.model_copy(update={"asi": str(path)})


def minimum_region(n: int = 6) -> list[Atoms]:
    structures = []
    for k in range(n):
        atoms = vacancy_cell()
        atoms.rattle(0.02, seed=k)
        structures.append(atoms)
    return structures


@pytest.fixture(scope="module")
def narrow_potential(cu_ace_potential: FittedPotential,
                     tmp_path_factory: pytest.TempPathFactory) -> PotentialRecord:
    path = tmp_path_factory.mktemp("narrow") / "minimum_only.asi"
    return active_set_record(cu_ace_potential, minimum_region(), path)


def kmc_settings(**overrides: object) -> KMCConfig:
    values: dict[str, object] = dict(temperature=500.0, searches_per_state=2, max_steps=1,
                                     gamma_lower=GAMMA_LOWER, gamma_upper=GAMMA_UPPER)
    values.update(overrides)
    return KMCConfig(**values)


def task(name: str = "kmc_ace", iteration: int = 3) -> ExplorationTask:
    # epicentre 0 is a vacancy neighbour: the search climbs to the hop saddle
    return kmc_task(name, kmc_settings(), seed=2, epicentres=(0,), iteration=iteration)


def test_halts_when_the_active_set_does_not_cover_the_saddle(
        narrow_potential: PotentialRecord, tmp_path: Path) -> None:
    run = run_akmc(task(), vacancy_cell(), narrow_potential, kmc_settings(), tmp_path)
    result = run.result
    assert result.halted and result.halt_step == 1, result.message
    assert result.steps_done == 0
    halt = result.frames[0]
    assert halt.info["provenance"] == "kmc_halt"
    assert halt.info["source_task"] == "kmc_ace" and halt.info["iteration"] == 3
    assert halt.info["kmc_stage"] == "saddle search"
    assert halt.info["gamma_max"] > GAMMA_UPPER
    # the frame is the configuration being evaluated: its gamma recomputed agrees
    calc = PyACECalculator(str(narrow_potential.yaml))
    calc.set_active_set(str(narrow_potential.asi))
    check = halt.copy()
    check.calc = calc
    check.get_potential_energy()
    assert calc.results["gamma"].max() == pytest.approx(halt.info["gamma_max"], rel=1e-6)
    assert np.allclose(halt.arrays["gamma"], calc.results["gamma"])
    assert result.gamma_history[-1] == (1, pytest.approx(halt.info["gamma_max"]))
    for frame in result.frames[1:]:
        assert frame.info["provenance"] == "kmc_frame"
        assert GAMMA_LOWER < frame.info["gamma_max"] <= GAMMA_UPPER
    assert (tmp_path / "frames.extxyz").is_file() and (tmp_path / "kmc_log.json").is_file()


def test_learning_the_halts_lets_the_next_run_pass(
        cu_ace_potential: FittedPotential, narrow_potential: PotentialRecord,
        tmp_path: Path) -> None:
    """Halt -> add the halted configuration to the active set -> rerun, until it passes."""
    learned = minimum_region()
    record = narrow_potential
    halts = 0
    for round_ in range(8):
        result = run_kmc(task(f"round{round_}"), vacancy_cell(), record, kmc_settings(),
                         tmp_path / f"round{round_}")
        if not result.halted:
            break
        halts += 1
        learned += [f for f in result.frames if f.info["provenance"] == "kmc_halt"]
        record = active_set_record(cu_ace_potential, learned, tmp_path / f"asi{round_}.asi")
    assert halts >= 1
    assert not result.halted, "still halting after learning 8 halts"
    assert result.steps_done == 1
    assert result.max_gamma <= GAMMA_UPPER


def test_full_active_set_crosses_the_saddle_and_records_gamma(
        cu_ace_potential: FittedPotential, tmp_path: Path) -> None:
    """With a high threshold the run crosses the hop saddle: one kMC step, gamma history
    per step. The barrier is the fitted potential's own (about 0.98 eV for this small fit
    trained without saddle configurations; EMT gives 0.776 eV)."""
    run = run_akmc(task("ace_barrier"), vacancy_cell(), cu_ace_potential.record,
                   kmc_settings(gamma_lower=50.0, gamma_upper=1000.0), tmp_path)
    assert not run.result.halted, run.result.message
    assert run.result.steps_done == 1
    hop = run.tables[0].processes[0]
    assert 0.5 < hop.barrier < 1.5
    assert max_displacement(hop.product, run.tables[0].reactant) > 1.0
    assert [step for step, _ in run.result.gamma_history] == [1]
    assert run.result.gamma_history[0][1] > 1.0  # the saddle region is beyond the minimum


def test_eonclient_engine_halts_through_the_ext_pot_driver(
        narrow_potential: PotentialRecord, tmp_path: Path) -> None:
    """eOn's own client job code (via pyeonclient, in a subprocess) runs the generated
    pace_driver.py as ext_pot; the driver exits 100 at the saddle and the engine returns
    the dumped configuration as the halt."""
    settings = kmc_settings(engine="eonclient", eonclient="pyeonclient")
    result = run_kmc(task("kmc_eon"), vacancy_cell(), narrow_potential, settings, tmp_path)
    assert result.halted, result.message
    assert "exit status 100" in result.message
    halt = result.frames[0]
    assert halt.info["provenance"] == "kmc_halt" and halt.info["gamma_max"] > GAMMA_UPPER
    jobs = sorted((tmp_path / "eon_jobs").iterdir())
    assert [j.name.split("_", 1)[1] for j in jobs] == ["minimization", "saddle_search"]
    assert "ext_pot_path = " + str(tmp_path.resolve() / "pace_driver.py") in \
        (jobs[1] / "config.ini").read_text()
    assert "Potential evaluation failed" in (jobs[1] / "results.dat").read_text()
    assert (jobs[1] / "pace_halt.extxyz").is_file()
    # the evaluator was stopped and its socket removed
    socket_path = Path(__import__("json").loads(
        (tmp_path / "pace_driver.json").read_text())["socket"])
    assert not socket_path.exists()


@pytest.mark.slow
def test_eonclient_engine_matches_the_inprocess_engine(cu_ace_potential: FittedPotential,
                                                       tmp_path: Path) -> None:
    """A full search through eOn's client jobs (saddle_search + 2 minimizations, every
    force call through pace_driver.py and the persistent evaluator) finds the same
    process as the in-process engine."""
    high = dict(gamma_lower=50.0, gamma_upper=1000.0, searches_per_state=1)
    inprocess = run_akmc(task("same_inprocess"), vacancy_cell(), cu_ace_potential.record,
                         kmc_settings(**high), tmp_path / "inprocess")
    eon = run_akmc(task("same_eon"), vacancy_cell(), cu_ace_potential.record,
                   kmc_settings(engine="eonclient", eonclient="pyeonclient", **high),
                   tmp_path / "eon")
    assert not eon.result.halted and eon.result.steps_done == 1, eon.result.message
    mine, theirs = inprocess.tables[0].processes[0], eon.tables[0].processes[0]
    assert theirs.barrier == pytest.approx(mine.barrier, abs=2e-3)
    assert max_displacement(theirs.product, mine.product) < 0.1
    calls = (tmp_path / "eon" / "pace_gamma.log").read_text().splitlines()
    assert len(calls) > 20  # every force call went through the driver's evaluator


def test_eonclient_engine_names_a_missing_client(cu_ace_potential: FittedPotential,
                                                tmp_path: Path) -> None:
    settings = kmc_settings(engine="eonclient", eonclient="/nonexistent/eonclient")
    with pytest.raises(ProgramFailed, match="/nonexistent/eonclient"):
        run_kmc(task("no_client"), vacancy_cell(), cu_ace_potential.record, settings, tmp_path)
    with pytest.raises(ValueError, match="computed"):
        run_kmc(task("no_client"), vacancy_cell(), cu_ace_potential.record,
                kmc_settings(engine="eonclient", prefactor="computed"), tmp_path)
