"""kMC that gets time right (EMT Cu, real eOn saddle searches and Hessians).

- the 31-atom vacancy cell: every state's table holds all 12 nearest-neighbour hops
  (one search finds one, the reactant's symmetry adds the other 11), the total escape
  rate is 12 k_hop, and the mean residence time over 1000 kMC steps is 1/(12 k_hop);
- ``prefactor: computed`` is Vineyard's harmonic TST prefactor, checked against ASE's
  own finite-difference vibrations of the same minimum and saddle;
- a (100) slab given with pbc [T, T, F] and two fixed bottom layers runs, its fixed
  atoms never move and are never epicentres;
- a product that is the reactant with atoms relabelled is no transition.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import add_adsorbate, bulk, fcc100
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.geometry import find_mic
from ase.vibrations import Vibrations

from pyacemaker.config import KMCConfig
from pyacemaker.stages.explore.kmc import KMCRun, kmc_task, run_akmc
from pyacemaker.stages.explore.kmc.engine import epicentres
from pyacemaker.stages.explore.kmc.identity import find_mapping, same_sites, same_state
from pyacemaker.stages.explore.kmc.search import relax_across_saddle
from pyacemaker.stages.explore.kmc.symmetry import equivalent_copies, symmetry_operations

EMT_VACANCY_HOP_EV = 0.776
NEAREST_NEIGHBOUR = 3.6 / math.sqrt(2)
CLOCK_STEPS = 1000


def vacancy_cell() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    del atoms[0]  # the vacancy sits at the origin
    return atoms


def hop_by_hand(reactant: Atoms) -> tuple[Atoms, Atoms]:
    """(saddle-like midpoint, product) of one neighbour jumping into the vacancy."""
    diff, dist = find_mic(reactant.positions, reactant.cell, True)
    jumper = int(np.argmin(dist))
    product = reactant.copy()
    product.positions[jumper] -= diff[jumper]
    saddle = reactant.copy()
    saddle.positions[jumper] -= diff[jumper] / 2
    return saddle, product


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[KMCRun, Path]:
    workdir = tmp_path_factory.mktemp("kmc_clock")
    settings = KMCConfig(temperature=500.0, prefactor=1e12, searches_per_state=4,
                         max_steps=CLOCK_STEPS)
    run = run_akmc(kmc_task("clock", settings, seed=0), vacancy_cell(), None, settings,
                   workdir, calculator=EMT())
    return run, workdir


def _moved_atom(reactant: Atoms, product: Atoms) -> int:
    diff, _ = find_mic(product.positions - reactant.positions, reactant.cell, True)
    moved = np.linalg.norm(diff - diff.mean(axis=0), axis=1)
    assert np.sum(moved > 1.0) == 1
    assert moved.max() == pytest.approx(NEAREST_NEIGHBOUR, abs=0.15)
    return int(np.argmax(moved))


@pytest.mark.slow
def test_every_state_has_all_twelve_hops_and_the_clock_is_right(long_run) -> None:
    run, workdir = long_run
    assert not run.result.halted and len(run.steps) == CLOCK_STEPS
    # every state after a hop is the start cell shifted by the hop, atoms relabelled:
    # one table, searched once, serves all 1000 steps
    assert len(run.tables) == 1 and run.tables[0].visits == CLOCK_STEPS
    table = run.tables[0]
    hops = [p for p in table.processes if abs(p.barrier - EMT_VACANCY_HOP_EV) < 0.01]
    assert len(hops) == 12
    assert len({_moved_atom(table.reactant, p.product) for p in hops}) == 12
    assert {p.multiplicity for p in hops} == {12}
    k_hop = hops[0].rate
    assert table.total_rate() == pytest.approx(12 * k_hop, rel=0.10)
    for state in run.states[:: CLOCK_STEPS // 10]:
        assert find_mapping(table.reactant, state) is not None
    assert {s.total_rate for s in run.steps} == {table.total_rate()}
    mean_residence = np.mean([s.dt_s for s in run.steps])
    assert mean_residence == pytest.approx(1 / (12 * k_hop), rel=0.10)
    assert run.simulated_time_s == pytest.approx(sum(s.dt_s for s in run.steps))
    log = json.loads((workdir / "kmc_log.json").read_text())
    assert log["residence_time"]["ratio"] == pytest.approx(1.0, abs=0.1)
    assert log["tables"][0]["orbits"][0]["multiplicity"] == 12
    assert log["tables"][0]["visits"] == CLOCK_STEPS


def _vineyard_from_ase(minimum: Atoms, saddle: Atoms, workdir: Path) -> float:
    """prod(nu at the minimum) / prod(real nu at the saddle), 3 translations left out."""
    energies = []
    for name, atoms in (("minimum", minimum), ("saddle", saddle)):
        atoms = atoms.copy()
        atoms.calc = EMT()
        vibrations = Vibrations(atoms, name=str(workdir / name), delta=0.005, nfree=2)
        vibrations.run()
        energies.append(np.asarray(vibrations.get_energies()))  # hbar omega, complex
    # hbar omega as signed magnitudes (imaginary -> negative), 3 softest left out
    modes = [np.where(np.abs(e.imag) > np.abs(e.real), -np.abs(e), np.abs(e)) for e in energies]
    at_minimum, at_saddle = (m[np.argsort(np.abs(m))][3:] for m in modes)
    assert (at_minimum > 0).all() and np.sum(at_saddle < 0) == 1
    real = at_saddle[at_saddle > 0]
    log_ratio = np.log(at_minimum).sum() - np.log(real).sum()
    return math.exp(log_ratio) / (2 * math.pi * units._hbar / units._e)


def test_computed_prefactor_is_vineyard_from_an_ase_hessian(tmp_path: Path,
                                                            monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # eOn may write Hessian dumps here; we remove them
    settings = KMCConfig(prefactor="computed", searches_per_state=1, max_steps=1)
    task = kmc_task("kmc_prefactor", settings, seed=0, epicentres=(0,))
    run = run_akmc(task, vacancy_cell(), None, settings, tmp_path / "kmc",
                   calculator=EMT())
    table = run.tables[0]
    process = table.processes[0]
    assert process.barrier == pytest.approx(EMT_VACANCY_HOP_EV, abs=0.01)
    reference = _vineyard_from_ase(table.reactant, process.saddle, tmp_path)
    assert process.prefactor == pytest.approx(reference, rel=0.10)
    assert 3e12 < process.prefactor < 7e12  # 4.65e12/s here; eOn's local default: 2.1e12
    assert not list(tmp_path.glob("*.dat"))  # no freqs.dat / hessian.dat left behind


def adatom_slab() -> tuple[Atoms, np.ndarray]:
    slab = fcc100("Cu", size=(3, 3, 4), a=3.6, vacuum=None)  # pbc [T, T, F]
    add_adsorbate(slab, "Cu", 1.8, "hollow")
    slab.info.clear()
    layers = np.unique(slab.positions[:, 2].round(2))
    fixed = np.flatnonzero(slab.positions[:, 2] < layers[2] - 0.1)
    slab.set_constraint(FixAtoms(indices=fixed))
    return slab, fixed


@pytest.mark.slow
def test_slab_with_fixed_layers(tmp_path: Path) -> None:
    slab, fixed = adatom_slab()
    assert list(slab.pbc) == [True, True, False] and len(fixed) == 18
    settings = KMCConfig(temperature=500.0, searches_per_state=3, max_steps=2)
    run = run_akmc(kmc_task("slab", settings, seed=1), slab, None, settings, tmp_path,
                   calculator=EMT())
    assert "embedded in a periodic box with 10 A of vacuum on each side along z" in \
        run.result.message
    assert len(run.steps) == 2
    start = run.states[0]
    assert start.cell.lengths()[2] > 20.0 and start.pbc.all()
    structures = run.states + [s for t in run.tables for p in t.processes
                               for s in (p.saddle, p.product)]
    for structure in structures:
        assert np.abs(structure.positions[fixed] - start.positions[fixed]).max() < 1e-6
    for table in run.tables:
        assert not set(epicentres(table.reactant, None, 2.0)) & set(fixed.tolist())
        assert not {p.epicentre for p in table.processes} & set(fixed.tolist())
    hops = [o for o in run.tables[0].orbits() if abs(o["barrier"] - 0.416) < 0.01]
    assert hops and hops[0]["multiplicity"] == 4  # hollow to hollow: four directions
    with pytest.raises(ValueError, match="fixed"):
        epicentres(start, None, 2.0, override=[int(fixed[0])])


def _row_slid_one_spacing(reactant: Atoms) -> Atoms:
    """A [110] row of four atoms, each moved onto its neighbour's site (dE = 0)."""
    step = np.array([1.8, 1.8, 0.0])
    sites = [np.array([0.0, 0.0, 3.6]) + k * step for k in range(4)]
    row = [int(np.argmin(np.linalg.norm(find_mic(reactant.positions - site,
                                                 reactant.cell, True)[0], axis=1)))
           for site in sites]
    slid = reactant.copy()
    slid.positions[row] += step
    slid.wrap()
    return slid


def test_relabelled_product_is_the_reactant() -> None:
    reactant = vacancy_cell()
    order = np.random.default_rng(3).permutation(len(reactant))
    relabelled = reactant[order]
    relabelled.positions += 0.03  # a little drift
    assert same_sites(reactant, relabelled) and same_state(reactant, relabelled)
    slid = _row_slid_one_spacing(reactant)
    assert np.abs(slid.positions - reactant.positions).max() > 2.0
    assert same_sites(reactant, slid)
    saddle, product = hop_by_hand(reactant)
    assert same_state(reactant, product) and not same_sites(reactant, product)

    def relax(atoms: Atoms) -> tuple[Atoms, float]:  # the two sides of a made-up saddle
        side = reactant if atoms.positions[0, 0] > saddle.positions[0, 0] else slid
        return side.copy(), 0.0

    mode = np.zeros((len(reactant), 3))
    mode[0, 0] = 1.0
    outcome = relax_across_saddle(saddle, mode, reactant, 0.5, relax)
    assert outcome.status == "no_change"


def test_symmetry_gives_the_twelve_hops_of_a_vacancy() -> None:
    reactant = vacancy_cell()
    operations = symmetry_operations(reactant, 0.05)
    assert len(operations) == 48  # Oh around the vacancy
    saddle, product = hop_by_hand(reactant)
    copies = equivalent_copies(reactant, saddle, product, operations)
    assert len(copies) == 12
    movers = {_moved_atom(reactant, p) for _, p in copies}
    assert len(movers) == 12
    for _, copy in copies:
        assert same_state(reactant, copy) and not same_sites(reactant, copy)
