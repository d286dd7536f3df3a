"""Adaptive kMC, in process on eOn's client library, with EMT Cu (real saddle searches).

The vacancy-hop barrier of a 31-atom Cu cell with EMT is 0.776 eV (checked by hand
with pyeonclient's improved dimer: 0.7761 eV).
"""

from __future__ import annotations

from pyacemaker.stages.explore.kmc import kmc_task

import json
import math
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from pyacemaker.config import ConfigError, KMCConfig, load_campaign
from pyacemaker.stages.explore.kmc import KMCRun, run_akmc, run_kmc
from pyacemaker.stages.explore.kmc.engine import epicentres, initial_displacement
from pyacemaker.stages.explore.kmc.processes import Process, ProcessTable, max_displacement
from pyacemaker.stages.explore.kmc.rates import BOLTZMANN_EV_PER_K, htst_rate, kmc_step
from pyacemaker.stages.explore.result import ExplorationTask
from pyacemaker.state import PotentialRecord

EMT_VACANCY_HOP_EV = 0.776
NEAREST_NEIGHBOUR = 3.6 / math.sqrt(2)


def vacancy_cell() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    del atoms[0]
    return atoms


@pytest.fixture(scope="module")
def emt_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kmc_emt")


@pytest.fixture(scope="module")
def emt_run(emt_workdir: Path) -> KMCRun:
    """Two kMC steps from a Cu vacancy cell at 500 K, three searches a state."""
    settings = KMCConfig(temperature=500.0, prefactor=1e12, searches_per_state=3,
                         confidence=0.9, max_steps=2)
    task = kmc_task("kmc_emt", settings, seed=0)
    return run_akmc(task, vacancy_cell(), None, settings, emt_workdir, calculator=EMT())


@pytest.mark.slow
def test_finds_vacancy_hop_with_right_barrier(emt_run: KMCRun) -> None:
    hops = [p for table in emt_run.tables for p in table.processes
            if abs(p.barrier - EMT_VACANCY_HOP_EV) < 0.01]
    assert hops, [p.summary() for t in emt_run.tables for p in t.processes]
    reactant = emt_run.tables[0].reactant
    first = next(p for p in emt_run.tables[0].processes
                 if abs(p.barrier - EMT_VACANCY_HOP_EV) < 0.01)
    # a hop: one atom moves one nearest-neighbour distance into the vacancy
    moved = np.linalg.norm(_displacements(reactant, first.product), axis=1)
    assert np.sum(moved > 1.0) == 1
    assert moved.max() == pytest.approx(NEAREST_NEIGHBOUR, abs=0.15)
    assert abs(first.product_energy - emt_run.tables[0].energy) < 0.01  # equivalent site


def _displacements(a: Atoms, b: Atoms) -> np.ndarray:
    from ase.geometry import find_mic

    diff, _ = find_mic(b.positions - a.positions, a.cell, a.pbc)
    return diff - diff.mean(axis=0)


@pytest.mark.slow
def test_kmc_steps_use_htst_rates_and_advance_the_clock(emt_run: KMCRun,
                                                        emt_workdir: Path) -> None:
    result = emt_run.result
    assert not result.halted and result.halt_step is None
    assert result.steps_done == len(emt_run.steps) == 2
    assert len(emt_run.states) == 3
    clock = 0.0
    for record in emt_run.steps:
        expected = 1e12 * math.exp(-record.barrier / (BOLTZMANN_EV_PER_K * 500.0))
        assert record.rate == pytest.approx(expected, rel=1e-12)
        assert record.total_rate >= record.rate
        clock += record.dt_s
        assert record.time_s == pytest.approx(clock, rel=1e-12)
    assert emt_run.simulated_time_s == pytest.approx(clock, rel=1e-12)
    for before, after in zip(emt_run.states, emt_run.states[1:]):
        assert max_displacement(before, after) > 1.0  # each step moved the system
    for table in emt_run.tables:
        assert table.total_rate() == pytest.approx(sum(p.rate for p in table.processes))
    log = json.loads((emt_workdir / "kmc_log.json").read_text())
    assert [s["step"] for s in log["steps"]] == [1, 2]
    assert log["simulated_time_s"] == pytest.approx(clock)
    assert result.gamma_history == []  # EMT has no extrapolation grade
    assert [step for step, _ in result.energy_history] == [0, 1, 2]
    assert result.energy_history[1][1] == pytest.approx(emt_run.steps[0].energy_after)


def test_kmc_step_samples_processes_by_rate_and_residence_time() -> None:
    rng = np.random.default_rng(7)
    rates = [1.0, 2.0, 7.0]
    draws = [kmc_step(rates, rng) for _ in range(20000)]
    chosen = np.bincount([c for c, _ in draws], minlength=3) / len(draws)
    assert chosen == pytest.approx([0.1, 0.2, 0.7], abs=0.015)
    assert np.mean([dt for _, dt in draws]) == pytest.approx(1 / 10.0, rel=0.03)
    with pytest.raises(ValueError, match="empty"):
        kmc_step([], rng)
    with pytest.raises(ValueError, match="zero"):
        kmc_step([0.0, 0.0], rng)


def test_htst_rate() -> None:
    kt = BOLTZMANN_EV_PER_K * 300.0
    assert htst_rate(0.5, 1e13, 300.0) == pytest.approx(1e13 * math.exp(-0.5 / kt))
    with pytest.raises(ValueError, match="temperature"):
        htst_rate(0.5, 1e13, 0.0)


def test_process_table_merges_equal_processes_and_estimates_confidence() -> None:
    reactant = vacancy_cell()
    product = reactant.copy()
    product.positions[0] += [1.8, 1.8, 0.0]
    other = reactant.copy()
    other.positions[1] += [0.0, 1.8, 1.8]

    def process(prod: Atoms, barrier: float, shift: float = 0.0) -> Process:
        saddle = reactant.copy()
        saddle.positions = 0.5 * (reactant.positions + prod.positions) + shift
        return Process(barrier=barrier, prefactor=1e12, rate=1.0, saddle=saddle,
                       product=prod, product_energy=0.0, epicentre=0)

    table = ProcessTable(reactant=reactant, energy=0.0)
    assert table.confidence() == 0.0
    assert table.add(process(product, 0.776))
    assert not table.add(process(product, 0.7765, shift=0.05))  # same up to translation
    assert table.add(process(other, 0.776))  # same barrier, another product
    assert table.add(process(product, 0.95))  # another saddle to the same product
    assert [p.count for p in table.processes] == [2, 1, 1]
    assert table.confidence() == pytest.approx(1 - 2 / 4)


def test_epicentres_are_the_vacancy_neighbours() -> None:
    atoms = vacancy_cell()
    centres = epicentres(atoms, None, 2.0)
    vacancy_site = np.zeros(3)  # the deleted atom 0 sat at the origin
    near = np.flatnonzero(np.linalg.norm(
        _displacements_to(atoms, vacancy_site), axis=1) < NEAREST_NEIGHBOUR + 0.1)
    assert sorted(centres) == sorted(near.tolist()) and len(centres) == 12
    gamma = np.zeros(len(atoms))
    gamma[20] = 3.0
    assert 20 in epicentres(atoms, gamma, 2.0)
    assert epicentres(atoms, None, 2.0, override=[5]) == [5]
    with pytest.raises(ValueError, match="epicentres"):
        epicentres(atoms, None, 2.0, override=[99])
    kick = initial_displacement(atoms, centres[0], KMCConfig(), np.random.default_rng(0))
    assert np.allclose(kick.sum(axis=0), 0.0)  # no net translation


def _displacements_to(atoms: Atoms, site: np.ndarray) -> np.ndarray:
    from ase.geometry import find_mic

    diff, _ = find_mic(atoms.positions - site, atoms.cell, atoms.pbc)
    return diff


def test_bad_input_gives_clear_errors(tmp_path: Path) -> None:
    task = ExplorationTask(name="t", engine="kmc")
    with pytest.raises(ValueError, match="engine 'ase', not 'kmc'"):
        run_kmc(ExplorationTask(name="t", engine="ase"), vacancy_cell(), None, KMCConfig(),
                tmp_path, calculator=EMT())
    with pytest.raises(ValueError, match="exactly one"):
        run_kmc(task, vacancy_cell(), None, KMCConfig(), tmp_path)
    missing = PotentialRecord(iteration=0, yaml=str(tmp_path / "nope.yaml"),
                              asi=str(tmp_path / "nope.asi"))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        run_kmc(task, vacancy_cell(), missing, KMCConfig(), tmp_path)
    campaign = tmp_path / "c.yaml"
    campaign.write_text("elements: [Cu]\nexploration:\n  kmc:\n    prefactor: -3.0\n")
    with pytest.raises(ConfigError, match="exploration.kmc.prefactor"):
        load_campaign(campaign)
    campaign.write_text("elements: [Cu]\nexploration:\n  kmc:\n    searchs_per_state: 3\n")
    with pytest.raises(ConfigError, match="exploration.kmc.searchs_per_state: unknown key"):
        load_campaign(campaign)
    campaign.write_text("elements: [Cu]\nexploration:\n  kmc:\n    prefactor: computed\n"
                        "    engine: eonclient\n    gamma_upper: 8.0\n")
    kmc = load_campaign(campaign).exploration.kmc
    assert (kmc.prefactor, kmc.engine, kmc.gamma_upper) == ("computed", "eonclient", 8.0)
