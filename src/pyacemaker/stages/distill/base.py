"""The base ACE of a distillation: fitted with the training stage on the teacher's
labels in the data lake, judged against teacher structures held out of the fit."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from pyacemaker.config import TrainingSettings
from pyacemaker.datastore import DataStore
from pyacemaker.programs import Launch
from pyacemaker.stages.distill.chunks import PROVENANCE
from pyacemaker.stages.train import fit_potential, total_energy_calculator, write_training_set
from pyacemaker.stages.train.dataset import composition_fit_energies
from pyacemaker.stages.validation_set import VALIDATION
from pyacemaker.state import PotentialRecord


@dataclass(frozen=True)
class TeacherErrors:
    """RMSE of a potential against teacher labels: energy per atom and force components."""

    structures: int
    energy_rmse_mev_per_atom: float
    force_rmse_ev_per_a: float


def hold_out(lake: DataStore, fraction: float) -> tuple[list[Atoms], list[Atoms]]:
    """Split the teacher rows into (train, held out): every k-th row by id is held out
    (marked ``split: validation`` in the lake, so every later fit leaves it out too).
    A row once held out stays held out."""
    rows = sorted(lake.rows(provenance=PROVENANCE, status="labelled"), key=lambda r: r.id)
    if fraction > 0 and not any(r.get("split") == VALIDATION for r in rows):
        every = max(2, round(1 / fraction))
        lake.set_split([r.id for i, r in enumerate(rows) if i % every == every - 1],
                       VALIDATION)
        rows = sorted(lake.rows(provenance=PROVENANCE, status="labelled"),
                      key=lambda r: r.id)
    train = [DataStore.row_to_atoms(r) for r in rows if r.get("split") != VALIDATION]
    held_out = [DataStore.row_to_atoms(r) for r in rows if r.get("split") == VALIDATION]
    return train, held_out


def fit_base(train: list[Atoms], elements: list[str], settings: TrainingSettings,
             workdir: Path, launch: Launch | None = None,
             executable: str = "pacemaker") -> PotentialRecord:
    """pacemaker on the teacher's labels (per-element reference energies from a
    composition fit of the teacher's energies); a finished identical fit is reused."""
    references = composition_fit_energies(train, elements)
    dataset = workdir / "teacher_train.pckl.gzip"
    key = _training_key(train, references)
    key_file = workdir / "teacher_train.key"
    # the fit is reused when its dataset's bytes are the same, and re-pickling the same
    # structures gives other bytes (gzip header): write it only when the structures changed
    if not (dataset.is_file() and key_file.is_file() and key_file.read_text() == key):
        dataset = write_training_set(train, dataset, references)
        key_file.write_text(key)
    return fit_potential(dataset.resolve(), elements, settings, workdir / "fit",
                         launch=launch, reference_energies=references,
                         executable=executable)


def _training_key(train: list[Atoms], references: dict[str, float]) -> str:
    """A digest of the training structures and labels (row fingerprints and energies)."""
    digest = hashlib.sha256(json.dumps(references, sort_keys=True).encode())
    for atoms in train:
        digest.update(f"{atoms.info.get('fingerprint')}:{atoms.get_potential_energy():.8f};"
                      .encode())
    return digest.hexdigest()


def errors_against_teacher(record: PotentialRecord, structures: list[Atoms]) -> TeacherErrors:
    """The potential's energy and force RMSE against the teacher's labels."""
    if not structures:
        raise ValueError("no held-out teacher structures to measure against")
    calc = total_energy_calculator(record)
    energy, forces = [], []
    for atoms in structures:
        work = atoms.copy()
        work.calc = calc
        energy.append((work.get_potential_energy() - atoms.get_potential_energy())
                      / len(atoms))
        forces.append((work.get_forces() - atoms.get_forces()).ravel())
    return TeacherErrors(len(structures), 1000.0 * float(np.sqrt(np.mean(np.square(energy)))),
                         float(np.sqrt(np.mean(np.square(np.concatenate(forces))))))
