"""The data lake: every structure of a campaign, its labels and provenance.

An ASE database (SQLite). One row per distinct structure, de-duplicated by
:func:`structure_fingerprint`. A row's ``status`` is ``candidate`` (not labelled yet),
``labelled`` (energy/forces/stress from the oracle) or ``quarantined`` (the oracle
gave up; ``reason`` says why). Every write is one SQLite transaction, so a kill in the
middle of a write leaves the database valid.

Structures travel as ASE Atoms whose ``info`` carries ``provenance``, ``iteration``,
``gamma_max`` and ``source_task``; labels travel as a SinglePointCalculator.

Integrity: the file is in WAL mode (rollback journal on a network file system, see
:func:`_use_wal`) and checked (``PRAGMA quick_check``) at every open; a corrupt file raises
:class:`DataLakeCorrupt`, whose message names the last good backup and ``pyacemaker
recover``. The backups (after every stage that wrote here) are ``recover.py``'s.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db.sqlite import SQLite3Database
from ase.io import write

if TYPE_CHECKING:
    from pyacemaker.state import WorkflowState

log = logging.getLogger(__name__)
Status = Literal["candidate", "labelled", "quarantined"]
INFO_KEYS = ("provenance", "iteration", "gamma_max", "source_task", "generator")
DATA_KEYS = ("healing", "oracle", "core_mask")
BACKUP_DIR = "backups"  # in the campaign folder; written by recover.make_backup


class DataLakeError(RuntimeError):
    """The data lake cannot be used; the message says what to do."""


class DataLakeCorrupt(DataLakeError):
    """The data lake file fails SQLite's checks; the message names the last good backup."""


class ColdStartRejected(DataLakeError):
    """Every cold-start structure was refused by the oracle; the message gives its reasons."""


class _LakeDatabase(SQLite3Database):
    """ase.db's SQLite backend with the durability settings of every connection."""

    def _connect(self) -> sqlite3.Connection:
        con = _open(Path(self.filename))
        # WAL + synchronous=FULL. With WAL, NORMAL never corrupts the file either, but a
        # power cut can lose the last commits (still unsynced in the -wal file). A commit
        # here is a label worth minutes to hours of DFT and commits are rare (one per
        # structure), so FULL's extra fsync per commit costs nothing measurable.
        con.execute("PRAGMA synchronous=FULL")
        return con


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
        from pyacemaker.recover import corrupt_message, set_aside_orphans

        set_aside_orphans(self.path)
        problem = database_problem(self.path)
        if problem is not None:
            raise DataLakeCorrupt(corrupt_message(self.path, problem))
        if not _read_only(self.path):
            _use_wal(self.path)
        # No ASE lock file: SQLite locks and transactions already protect the db, and a
        # lock file left behind by a killed process would block every later run forever.
        self._db = _LakeDatabase(str(self.path.resolve()), use_lock_file=False)

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

    def copy_labelled_from(self, source: DataStore, **extra: Any) -> int:
        """Copy ``source``'s labelled rows (labels, provenance, split, oracle and healing
        records; ``extra`` added) in one transaction, skipping structures already here;
        returns how many. ``run --force`` reuses still-valid labels so (resume.py)."""
        copied = 0
        with self._db:
            for row in source.rows(status="labelled"):
                atoms = row.toatoms()
                fingerprint = row.get("fingerprint") or structure_fingerprint(atoms)
                if self._db.count(fingerprint=fingerprint):
                    continue
                kvp = {**row.key_value_pairs, "fingerprint": fingerprint, **extra}
                self._db.write(atoms, key_value_pairs=kvp, data=dict(row.data))
                copied += 1
        return copied

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

    def quarantine_reasons(self, limit: int = 5) -> str:
        """The most common quarantine reasons with their counts and row ids (for errors)."""
        rows: dict[str, list[int]] = {}
        for row in self._db.select(status="quarantined"):
            rows.setdefault(str(row.get("reason") or "no reason recorded"), []).append(row.id)
        ranked = sorted(rows.items(), key=lambda item: -len(item[1]))
        return "; ".join(f"{len(ids)} x {reason!r} (rows {', '.join(map(str, ids[:5]))}"
                         f"{' ...' if len(ids) > 5 else ''})" for reason, ids in ranked[:limit])

    def after_stage(self, state: WorkflowState, stage: str) -> None:
        """A verified backup after a stage that wrote here; a cold start that labelled
        nothing refused (``recover.after_stage``)."""
        from pyacemaker.recover import after_stage

        after_stage(self, state, stage)

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


def database_problem(path: Path) -> str | None:
    """What is wrong with the SQLite file ``path`` (None: nothing, or no file yet).

    An access problem (permissions, a lock held too long) raises DataLakeError instead:
    it is never reported as corruption."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        with closing(_open(path)) as con:
            return integrity_problem(con, "quick_check")
    except sqlite3.OperationalError as exc:
        raise DataLakeError(f"cannot open the data lake {path}: {exc} (check the folder's "
                            "permissions and free space)") from exc
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed" ...
        return str(exc)


def _read_only(path: Path) -> bool:
    return path.exists() and not os.access(path.parent, os.W_OK)


def _open(path: Path) -> sqlite3.Connection:
    """A connection; in a folder we cannot write (an archived campaign on a read-only
    share), an immutable read-only one: WAL readers otherwise need to create -shm there."""
    if _read_only(path):
        return sqlite3.connect(path.resolve().as_uri() + "?mode=ro&immutable=1", uri=True)
    return sqlite3.connect(path, timeout=20)


def integrity_problem(con: sqlite3.Connection, pragma: str) -> str | None:
    found = [str(row[0]) for row in con.execute(f"PRAGMA {pragma}").fetchall()]
    return None if found == ["ok"] else "; ".join(found[:3])


def _use_wal(path: Path) -> None:
    """Write-ahead logging: readers never block the writer, and a kill or power cut leaves
    the last committed state (the mode is stored in the file). Not on a network file
    system: WAL's index is shared memory that readers on other nodes (the gate's workers
    on a cluster) would not see ("WAL does not work over a network filesystem", SQLite's
    docs); there the rollback journal is kept, as safe against kills, only slower."""
    mode = "DELETE" if filesystem_type(path.parent) in NETWORK_FS else "WAL"
    try:
        with closing(sqlite3.connect(path, timeout=20)) as con:
            con.execute(f"PRAGMA journal_mode={mode}")
    except sqlite3.OperationalError as exc:  # a read-only folder: read as it is
        log.debug("%s: journal mode %s not set: %s", path, mode, exc)


NETWORK_FS = frozenset({"nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs",
                        "ceph", "fuse.sshfs", "fuse.glusterfs", "9p"})


def filesystem_type(folder: Path) -> str:
    """The type of the file system holding ``folder`` (/proc/mounts; "" when unknown)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    target, best, kind = str(Path(folder).resolve()), "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
