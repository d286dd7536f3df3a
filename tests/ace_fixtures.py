"""Session-wide ACE potentials fitted for real (pacemaker) on EMT-labelled Cu data.

Registered in conftest.py (``pytest_plugins = ["ace_fixtures"]``); any test may ask for
``cu_ace_potential``. The fit takes about a minute on one core and runs once per session.
Energies of the potential are relative to the free EMT Cu atom: use
``pyacemaker.stages.train.total_energy_calculator(fixture.record)`` for absolute EMT-like
energies, or ``PyACECalculator(fixture.yaml)`` + ``set_active_set(fixture.asi)`` for gamma.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

from pyacemaker.config import TrainingSettings, WeightingSettings
from pyacemaker.datastore import labelled_copy
from pyacemaker.state import PotentialRecord

CU_LATTICE = 3.6  # EMT's Cu equilibrium is ~3.59 A
CUNI_FUNCTIONS = 15  # per element
CUNI_ITERATIONS = 150


@dataclass
class FittedPotential:
    yaml: Path
    yace: Path
    asi: Path
    cutoff: float
    elements: list[str]
    training_structures: list[Atoms]
    record: PotentialRecord
    reference_energies: dict[str, float] = field(default_factory=dict)


def emt_label(structures: list[Atoms]) -> list[Atoms]:
    """Copies carrying EMT energy, forces and stress as SinglePointCalculators."""
    labelled = []
    for atoms in structures:
        work = atoms.copy()
        work.calc = EMT()
        labelled.append(labelled_copy(atoms, work.get_potential_energy(), work.get_forces(),
                                      work.get_stress()))
    return labelled


def cu_training_structures(seed: int = 0) -> list[Atoms]:
    """40 EMT-labelled Cu cells: strained fcc, thermal-like rattles, vacancies, shears."""
    rng = np.random.default_rng(seed)
    cubic = bulk("Cu", "fcc", a=CU_LATTICE, cubic=True)
    structures: list[Atoms] = []
    for strain in np.linspace(-0.03, 0.03, 5):
        structures.append(bulk("Cu", "fcc", a=CU_LATTICE * (1 + strain)))
        strained = cubic.copy()
        strained.set_cell(cubic.cell * (1 + strain), scale_atoms=True)
        structures.append(strained)
    for k in range(20):  # rattle amplitude ~ sqrt(kT/k_spring): 0.03 A (300 K) .. 0.13 A
        atoms = cubic.repeat((2, 1, 1)) if k % 2 else cubic.copy()
        atoms.rattle(stdev=0.03 + 0.1 * k / 20, seed=int(rng.integers(1 << 30)))
        structures.append(atoms)
    for k in range(5):
        atoms = cubic.repeat((2, 2, 1))
        del atoms[0]
        atoms.rattle(stdev=0.05, seed=100 + k)
        structures.append(atoms)
    for k in range(5):
        atoms = cubic.copy()
        deform = np.eye(3) + rng.normal(0.0, 0.02, (3, 3))
        atoms.set_cell(cubic.cell @ deform, scale_atoms=True)
        atoms.rattle(stdev=0.05, seed=200 + k)
        structures.append(atoms)
    for atoms in structures:
        atoms.info["provenance"] = "test_emt"
    return emt_label(structures)


def tiny_training_settings(**overrides: object) -> TrainingSettings:
    # uniform weights: the fixtures stand in for "a potential" in other stages' tests and
    # were tuned that way (the energy-based default moves the well-trained fit's C11 from
    # within 10 % of EMT to 11 % off); the weighting itself is tested in
    # test_train_data_selection.py and by the campaigns
    # and run their full iteration counts (no loss-plateau stop: tested in test_train.py)
    values: dict[str, object] = dict(cutoff=5.0, number_of_functions_per_element=15,
                                     max_iterations=100, warm_start_iterations=30,
                                     loss_plateau=None,
                                     test_fraction=0.1, timeout_s=900,
                                     weighting=WeightingSettings(kind="uniform"))
    values.update(overrides)
    return TrainingSettings(**values)


@pytest.fixture(scope="session")
def cu_ace_potential(tmp_path_factory: pytest.TempPathFactory) -> FittedPotential:
    """A real pacemaker fit of Cu (15 functions, 100 BFGS steps, ZBL core) on EMT data."""
    from pyacemaker.stages.train import fit_potential, free_atom_energies, write_training_set

    workdir = tmp_path_factory.mktemp("cu_ace")
    structures = cu_training_structures()
    references = free_atom_energies(EMT(), ["Cu"])
    dataset = write_training_set(structures, workdir / "cu_emt.pckl.gzip", references)
    settings = tiny_training_settings()
    record = fit_potential(dataset, ["Cu"], settings, workdir / "fit",
                           reference_energies=references)
    return FittedPotential(
        yaml=Path(record.yaml), yace=Path(record.yace or ""), asi=Path(record.asi or ""),
        cutoff=settings.cutoff, elements=["Cu"], training_structures=structures,
        record=record, reference_energies=references,
    )


def cuni_training_structures(seed: int = 1) -> list[Atoms]:
    """30 EMT-labelled Cu-Ni cells: random fcc alloys, pure ends, strained and rattled."""
    rng = np.random.default_rng(seed)
    structures: list[Atoms] = []
    for k in range(30):
        atoms = bulk("Cu", "fcc", a=3.55, cubic=True)
        if k % 3 == 2:
            atoms = atoms.repeat((2, 1, 1))
        fraction_ni = [0.0, 1.0][k] if k < 2 else rng.uniform(0.2, 0.8)
        symbols = np.where(rng.random(len(atoms)) < fraction_ni, "Ni", "Cu")
        if k >= 2 and len(set(symbols)) == 1:
            symbols[0] = "Ni" if symbols[0] == "Cu" else "Cu"
        atoms.set_chemical_symbols(list(symbols))
        strain = rng.uniform(-0.03, 0.03)
        atoms.set_cell(atoms.cell * (1 + strain), scale_atoms=True)
        atoms.rattle(stdev=rng.uniform(0.02, 0.1), seed=int(rng.integers(1 << 30)))
        atoms.info["provenance"] = "test_emt"
        structures.append(atoms)
    return emt_label(structures)


def cuni_delta_settings() -> TrainingSettings:
    from pyacemaker.config import BaselineSettings

    return tiny_training_settings(
        number_of_functions_per_element=CUNI_FUNCTIONS, max_iterations=CUNI_ITERATIONS,
        test_fraction=0.0, baseline=BaselineSettings(kind="delta_zbl", inner_cutoff=2.3))


@pytest.fixture(scope="session")
def cuni_delta_potential(tmp_path_factory: pytest.TempPathFactory) -> FittedPotential:
    """A real Cu-Ni fit (delta learning on an explicit ZBL baseline reaching 2.3 A).

    The baseline's outer cutoff (2.3 A) lies above the shortest distances in the data on
    purpose, so the subtraction and re-addition of the baseline matter for the data.
    """
    from pyacemaker.stages.train import (fit_potential, free_atom_energies, resolve_baseline,
                                         write_training_set)

    workdir = tmp_path_factory.mktemp("cuni_delta")
    elements = ["Cu", "Ni"]
    structures = cuni_training_structures()
    references = free_atom_energies(EMT(), elements)
    settings = cuni_delta_settings()
    baseline = resolve_baseline(settings.baseline, elements, structures)
    dataset = write_training_set(structures, workdir / "cuni.pckl.gzip", references, baseline)
    record = fit_potential(dataset, elements, settings, workdir / "fit",
                           reference_energies=references)
    return FittedPotential(
        yaml=Path(record.yaml), yace=Path(record.yace or ""), asi=Path(record.asi or ""),
        cutoff=settings.cutoff, elements=elements, training_structures=structures,
        record=record, reference_energies=references,
    )
