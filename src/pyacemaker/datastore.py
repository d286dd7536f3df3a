"""The data lake: every structure of a campaign, its labels and provenance.

An ASE database (SQLite). One row per distinct structure, de-duplicated by
:func:`structure_fingerprint`. A row's ``status`` is ``candidate`` (not labelled yet),
``labelled`` (energy/forces/stress from the oracle) or ``quarantined`` (the oracle
gave up; ``reason`` says why). Every write is one SQLite transaction, so a kill in the
middle of a write leaves the database valid.

Structures travel as ASE Atoms whose ``info`` carries ``provenance``, ``iteration``,
``gamma_max`` and ``source_task``; labels travel as a SinglePointCalculator.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from ase.io import write

Status = Literal["candidate", "labelled", "quarantined"]
INFO_KEYS = ("provenance", "iteration", "gamma_max", "source_task")
DATA_KEYS = ("healing", "oracle", "core_mask")


def structure_fingerprint(atoms: Atoms, decimals: int = 3) -> str:
    """A hash equal for identical structures (same species, cell and wrapped positions).

    Atoms are sorted, so a permutation of the same structure has the same fingerprint.
    """
    numbers = atoms.get_atomic_numbers()
    cell = np.round(atoms.cell.array, decimals) + 0.0
    if atoms.pbc.any():
        scaled = atoms.get_scaled_positions(wrap=True)
        scaled = np.round(scaled, decimals) % 1.0
        coords = np.round(scaled, decimals) + 0.0
    else:
        coords = np.round(atoms.positions - atoms.positions.mean(axis=0), decimals) + 0.0
    order = np.lexsort((coords[:, 2], coords[:, 1], coords[:, 0], numbers))
    digest = hashlib.sha256()
    digest.update(numbers[order].astype(np.int64).tobytes())
    digest.update(cell.tobytes())
    digest.update(coords[order].tobytes())
    digest.update(atoms.pbc.astype(np.int8).tobytes())
    return digest.hexdigest()[:24]


class DataStore:
    """Thin layer over ``ase.db`` with the campaign's conventions."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # No ASE lock file: SQLite locks and transactions already protect the db, and a
        # lock file left behind by a killed process would block every later run forever.
        self._db = connect(str(self.path), type="db", append=True, use_lock_file=False)

    # ------------------------------------------------------------------ writing
    def add(self, atoms: Atoms, status: Status | None = None, **extra: Any) -> tuple[int, bool]:
        """Store a structure unless an identical one is there. Returns (row id, is_new)."""
        fingerprint = structure_fingerprint(atoms)
        existing = self._db.select(fingerprint=fingerprint, limit=1)
        for row in existing:
            return row.id, False
        if status is None:
            status = "labelled" if atoms.calc is not None else "candidate"
        kvp, data = self._split_info(atoms)
        kvp.update(extra)
        kvp["status"] = status
        kvp["fingerprint"] = fingerprint
        row_id = self._db.write(atoms, key_value_pairs=kvp, data=data)
        return row_id, True

    def add_many(self, structures: Iterable[Atoms], **extra: Any) -> list[int]:
        """Store many structures in one transaction; returns ids of the new ones."""
        new_ids: list[int] = []
        with self._db:  # one transaction: all or nothing
            for atoms in structures:
                row_id, is_new = self.add(atoms, **extra)
                if is_new:
                    new_ids.append(row_id)
        return new_ids

    def set_label(self, row_id: int, labelled: Atoms, oracle: dict[str, Any] | None = None,
                  healing: list[dict[str, Any]] | None = None) -> None:
        """Attach energy/forces/stress (the SinglePointCalculator of ``labelled``)."""
        if labelled.calc is None:
            raise ValueError(f"row {row_id}: set_label needs an Atoms with a calculator")
        row = self._db.get(id=row_id)
        data = dict(row.data)
        if oracle is not None:
            data["oracle"] = oracle
        if healing is not None:
            data["healing"] = healing
        kvp = dict(row.key_value_pairs)
        kvp["status"] = "labelled"
        kvp.pop("reason", None)
        self._replace(row_id, labelled, kvp, data)

    def quarantine(self, row_id: int, reason: str,
                   healing: list[dict[str, Any]] | None = None) -> None:
        row = self._db.get(id=row_id)
        data = dict(row.data)
        if healing is not None:
            data["healing"] = healing
        kvp = dict(row.key_value_pairs)
        kvp.update(status="quarantined", reason=reason[:500])
        self._replace(row_id, row.toatoms(), kvp, data)

    def set_split(self, row_ids: Iterable[int], split: str) -> None:
        """Mark rows as ``validation`` (held out of every fit) or ``train``, in one transaction."""
        with self._db:
            for row_id in row_ids:
                self._db.update(row_id, split=split)

    def _replace(self, row_id: int, atoms: Atoms, kvp: dict[str, Any],
                 data: dict[str, Any]) -> None:
        # ase.db's update() cannot drop old calculator results; write(id=...) rewrites the
        # whole row in place (one transaction), keeping its id.
        self._db.write(atoms, key_value_pairs=kvp, data=data, id=row_id)

    # ------------------------------------------------------------------ reading
    def count(self, **selection: Any) -> int:
        return self._db.count(**selection)

    def rows(self, **selection: Any) -> Iterator[Any]:
        yield from self._db.select(**selection)

    def atoms(self, **selection: Any) -> list[Atoms]:
        """Structures matching the selection, with info keys and labels restored."""
        return [self.row_to_atoms(row) for row in self._db.select(**selection)]

    def get_atoms(self, row_id: int) -> Atoms:
        return self.row_to_atoms(self._db.get(id=row_id))

    @staticmethod
    def row_to_atoms(row: Any) -> Atoms:
        atoms = row.toatoms()
        for key in INFO_KEYS + ("status", "reason", "fingerprint"):
            if key in row.key_value_pairs:
                atoms.info[key] = row.key_value_pairs[key]
        atoms.info["row_id"] = row.id
        for key in DATA_KEYS:
            if key in row.data:
                atoms.info[key] = row.data[key]
        return atoms

    def provenance_counts(self, status: Status = "labelled") -> dict[str, int]:
        counts = Counter(row.get("provenance", "unknown") for row in self._db.select(status=status))
        return dict(counts)

    # ------------------------------------------------------------------ export
    def to_pacemaker_dataframe(self, reference_energies: dict[str, float] | None = None,
                               **selection: Any) -> Any:
        """Labelled structures as the DataFrame pacemaker reads.

        ``energy_corrected`` = total energy minus the sum of per-element reference
        energies (zero where none is given), in eV, per structure.
        """
        import pandas as pd

        reference_energies = reference_energies or {}
        records = []
        for atoms in self.atoms(status="labelled", **selection):
            energy = atoms.get_potential_energy()
            shift = sum(reference_energies.get(s, 0.0) for s in atoms.get_chemical_symbols())
            records.append({
                "name": f"row{atoms.info['row_id']}",
                "ase_atoms": atoms,
                "energy": energy,
                "energy_corrected": energy - shift,
                "forces": atoms.get_forces(),
                "provenance": atoms.info.get("provenance", "unknown"),
                "row_id": atoms.info["row_id"],
            })
        return pd.DataFrame.from_records(records)

    def export_pacemaker(self, path: str | Path,
                         reference_energies: dict[str, float] | None = None,
                         **selection: Any) -> Path:
        path = Path(path)
        frame = self.to_pacemaker_dataframe(reference_energies, **selection)
        if frame.empty:
            raise ValueError(f"{self.path}: no labelled structures to export")
        frame.to_pickle(path, compression="gzip", protocol=4)
        return path

    def export_extxyz(self, path: str | Path, **selection: Any) -> Path:
        path = Path(path)
        structures = self.atoms(**selection)
        for atoms in structures:
            for key in DATA_KEYS:  # nested data does not fit extxyz comment lines
                atoms.info.pop(key, None)
        write(path, structures, format="extxyz")
        return path

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _split_info(atoms: Atoms) -> tuple[dict[str, Any], dict[str, Any]]:
        kvp: dict[str, Any] = {}
        data: dict[str, Any] = {}
        for key in INFO_KEYS:
            value = atoms.info.get(key)
            if value is None:
                continue
            if isinstance(value, np.generic):
                value = value.item()
            kvp[key] = value
        for key in DATA_KEYS:
            if key in atoms.info:
                data[key] = atoms.info[key]
        return kvp, data


def labelled_copy(atoms: Atoms, energy: float, forces: np.ndarray,
                  stress: np.ndarray | None = None, **results: Any) -> Atoms:
    """A copy of ``atoms`` carrying the given labels as a SinglePointCalculator."""
    copy = atoms.copy()
    copy.info.update(atoms.info)
    calc_results: dict[str, Any] = {"energy": energy, "forces": np.asarray(forces)}
    if stress is not None:
        calc_results["stress"] = np.asarray(stress)
    calc_results.update(results)
    copy.calc = SinglePointCalculator(copy, **calc_results)
    return copy
