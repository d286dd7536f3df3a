"""Recovering a campaign whose data lake (``data.db``) is corrupt: ``pyacemaker recover``.

The data lake holds every label, i.e. every DFT hour spent. ``datastore.py`` checks the
file at every open; :func:`after_stage` makes a verified backup after every stage that
wrote to it (``backups/data-<UTC time>.db``, the newest three, :func:`make_backup`). The
rest is what a user needs when the file breaks (a disk fault, garbage written over it, a
copy cut short):

* :func:`corrupt_message`: the one line every command prints for a corrupt file: which
  file, the last good backup (its labelled rows and its time) and the command to restore
  it, or plainly that no backup exists;
* :func:`recover`: moves the corrupt file aside (``data.db.corrupt-<time>``, never
  deleted), restores the newest backup that passes ``PRAGMA integrity_check`` and says what
  it holds. The backup is the lake as it was when a stage was about to be marked done, so
  the state agrees with it and the next ``run`` redoes only what ran after it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import sys
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from typing import TYPE_CHECKING

from pyacemaker.datastore import (
    BACKUP_DIR,
    ColdStartRejected,
    DataLakeCorrupt,
    DataLakeError,
    DataStore,
    database_problem,
    fsync_path,
    integrity_problem,
)

if TYPE_CHECKING:
    from pyacemaker.state import WorkflowState

log = logging.getLogger(__name__)
DATASTORE_FILE = "data.db"
LOG_FILE = "campaign.log"
KEEP_BACKUPS = 3
BACKUP_TIME = "%Y%m%dT%H%M%S.%fZ"  # UTC; sorts like the time it names
SIDE_FILES = ("-wal", "-shm")  # WAL mode: a db is these files too, and moves with them
# Stages that write rows, labels or splits. A backup is made when one of them has done its
# work, before the state marks it done: the newest backup is then the lake the state
# describes, so restoring it loses only the work of a stage that was not done yet. (A
# backup after labelling only would lose the splits of the fit and the candidates of
# select that the state already counts as done.)
LAKE_WRITERS = frozenset({"generate", "select", "label", "fit"})


@dataclass
class Backup:
    """One backup file and what it holds (``problem`` set: it fails the integrity check)."""

    path: Path
    taken: datetime
    counts: dict[str, int] = field(default_factory=dict)
    problem: str | None = None

    def when(self) -> str:
        return self.taken.strftime("%Y-%m-%d %H:%M:%S UTC")

    def holds(self) -> str:
        c = self.counts
        return (f"{c.get('labelled', 0)} labelled, {c.get('candidate', 0)} candidates, "
                f"{c.get('quarantined', 0)} quarantined rows")


def after_stage(store: DataStore, state: WorkflowState, stage: str) -> None:
    """The data lake's part at the end of a stage's work (before it is marked done).

    A cold start whose labels all ended quarantined cannot fit anything: the stage fails
    with the oracle's reasons from the rows, and ``generate`` is marked pending again so
    that the next run generates from the fixed seed files or settings instead of finding
    the folder stuck. After a stage that wrote to the lake, a verified backup is made."""
    if stage == "label" and state.iteration == 0 and store.count(status="labelled") == 0:
        state.mark("generate", "pending")
        quarantined, left = store.count(status="quarantined"), store.count(status="candidate")
        raise ColdStartRejected(
            f"the cold start labelled nothing: {quarantined} structure(s) quarantined"
            + (f", {left} left unlabelled (active_learning.max_dft_calls counts quarantined "
               "ones too)" if left else "")
            + (f": {store.quarantine_reasons()}" if quarantined else "")
            + ". Fix the seed structures (seed_structures) or the oracle settings and run "
            "the same command again: the cold start is generated again")
    if stage in LAKE_WRITERS and store.count() > 0:
        try:
            make_backup(store.path)
        except (OSError, sqlite3.OperationalError) as exc:  # e.g. no space for a copy: the
            # campaign goes on (the last good backup stays the one named when it breaks)
            log.warning("could not back up the data lake %s: %s", store.path, exc)


def make_backup(db: Path, keep: int = KEEP_BACKUPS) -> Path:
    """A verified copy in ``backups/data-<UTC time>.db``; the newest ``keep`` are kept.

    SQLite's online backup API gives a consistent copy even while others read or write.
    It goes to a temporary file that must pass ``PRAGMA integrity_check`` before it is
    renamed into place, so a backup file is always whole and good."""
    folder = db.parent / BACKUP_DIR
    folder.mkdir(exist_ok=True)
    final = folder / f"data-{datetime.now(timezone.utc).strftime(BACKUP_TIME)}.db"
    tmp = folder / f".{final.name}.tmp"
    try:
        try:
            with closing(sqlite3.connect(db, timeout=20)) as source, \
                    closing(sqlite3.connect(tmp)) as copy:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                problem = integrity_problem(copy, "integrity_check")
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:  # the source itself is unreadable
            problem = str(exc)
        if problem is not None:
            raise DataLakeCorrupt(corrupt_message(
                db, f"its backup copy fails the integrity check: {problem}"))
        fsync_path(tmp)
        os.replace(tmp, final)
        fsync_path(folder)
    finally:
        tmp.unlink(missing_ok=True)
    for old in sorted(folder.glob("data-*.db"))[:-keep]:
        old.unlink()
    return final


def _taken(path: Path) -> datetime:
    try:
        return datetime.strptime(path.stem[len("data-"):], BACKUP_TIME).replace(
            tzinfo=timezone.utc)
    except ValueError:  # renamed by hand: its modification time
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)


def inspect_backup(path: Path) -> Backup:
    """Check one backup (``PRAGMA integrity_check``, read-only) and count its rows."""
    backup = Backup(path, _taken(path))
    try:
        with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as con:
            backup.problem = integrity_problem(con, "integrity_check")
            if backup.problem is None:
                backup.counts = {str(status): int(n) for status, n in con.execute(
                    "SELECT value, COUNT(*) FROM text_key_values WHERE key = 'status' "
                    "GROUP BY value")}
    except sqlite3.DatabaseError as exc:
        backup.problem = str(exc)
    return backup


def backups(workdir: Path) -> list[Backup]:
    """Every backup of the campaign's data lake, newest first, checked."""
    folder = Path(workdir) / BACKUP_DIR
    return [inspect_backup(path) for path in sorted(folder.glob("data-*.db"), reverse=True)]


def corrupt_message(db: Path, problem: str) -> str:
    """One line: the corrupt file, the last good backup and how to restore it (or that
    there is none: a backup is never claimed that does not exist)."""
    workdir = db.parent
    text = f"the data lake {db} is corrupt ({problem})"
    found = backups(workdir)
    good = next((b for b in found if b.problem is None), None)
    if good is not None:
        return (f"{text}; the last good backup is {good.path} ({good.holds()}, taken "
                f"{good.when()}): restore it with 'pyacemaker recover --workdir {workdir}' "
                "(the corrupt file is kept, renamed), then run the same command again to "
                "resume")
    why = (f"none of the {len(found)} backups in {workdir / BACKUP_DIR} passes the "
           "integrity check" if found else f"there is no backup of it ({workdir / BACKUP_DIR}"
           " is empty or missing)")
    return (f"{text}; {why}, so its labels cannot be restored: move {db} aside and run "
            "again to label from scratch, or put back a copy of your own")


def lake_problem(workdir: Path) -> str | None:
    """The message for an unusable data lake in ``workdir``; None when it is readable."""
    db = Path(workdir) / DATASTORE_FILE
    try:
        problem = database_problem(db)
    except DataLakeError as exc:
        return str(exc)
    return None if problem is None else corrupt_message(db, problem)


def require_readable_lake(workdir: Path) -> None:
    """Raise DataLakeError with :func:`lake_problem`'s message (commands that read it)."""
    problem = lake_problem(workdir)
    if problem is not None:
        raise DataLakeError(problem)


def closing_advice(workdir: Path, problem: str | None) -> str:
    """The driver's last line after a failure, given :func:`lake_problem`: it says the
    labels are kept only when the data lake is readable."""
    details = f"(details: {Path(workdir) / LOG_FILE})"
    if problem is not None:
        return f"{problem} {details}"
    return (f"every finished label and fit is kept in {workdir}; fix the cause and run the "
            f"same command again to resume {details}")


def set_aside_orphans(path: Path) -> None:
    """A -wal/-shm file without its database belongs to a file that was moved away (a
    killed run then --force, a manual mv): SQLite would replay it into the next data.db."""
    if path.exists():
        return
    stamp = datetime.now(timezone.utc).strftime(BACKUP_TIME)
    for suffix in SIDE_FILES:
        orphan = path.with_name(path.name + suffix)
        if orphan.exists():
            target = orphan.with_name(f"{orphan.name}.orphan-{stamp}")
            os.replace(orphan, target)
            log.warning("%s had no database next to it; kept as %s", orphan, target)


def move_lake(path: Path, target: Path) -> list[Path]:
    """Move a data lake with its -wal/-shm files (never one without the others)."""
    moved = []
    for suffix in ("",) + SIDE_FILES:
        source = path.with_name(path.name + suffix)
        if source.exists():
            dest = target.with_name(target.name + suffix)
            os.replace(source, dest)
            moved.append(dest)
    return moved


def recover(workdir: Path) -> list[str]:
    """Restore the newest good backup over a corrupt (or missing) data lake; the lines
    to print. A readable data lake is left alone."""
    from pyacemaker.campaign_lock import acquire_campaign_lock

    workdir = Path(workdir)
    if not workdir.is_dir():
        raise DataLakeError(f"{workdir}: no such folder: pass the --workdir of the campaign")
    db = workdir / DATASTORE_FILE
    problem = database_problem(db) if db.exists() else f"{db} is missing"
    if problem is None:
        counts = _counts(DataStore(db))
        return [f"nothing to recover: {db} passes the integrity check ({counts})"]
    found = backups(workdir)
    good = next((b for b in found if b.problem is None), None)
    if good is None:
        if not db.exists():
            raise DataLakeError(f"{db} is missing and no backup in {workdir / BACKUP_DIR} "
                                "passes the integrity check: nothing to restore")
        raise DataLakeError(corrupt_message(db, problem) + f"; {db} is left as it is")
    lock = acquire_campaign_lock(workdir)  # no driver may write while we swap the file
    try:
        stamp = datetime.now(timezone.utc).strftime(BACKUP_TIME)
        aside = move_lake(db, workdir / f"{DATASTORE_FILE}.corrupt-{stamp}")
        tmp = workdir / f".{DATASTORE_FILE}.restore.tmp"
        shutil.copyfile(good.path, tmp)
        fsync_path(tmp)
        os.replace(tmp, db)
        fsync_path(workdir)
        counts = _counts(DataStore(db))
    finally:
        lock.release()
    lines = [f"data lake {db}: {problem}"]
    if aside:
        lines.append(f"moved the corrupt file aside (not deleted): "
                     f"{', '.join(str(p) for p in aside)}")
    skipped = [b for b in found if b.taken > good.taken]
    if skipped:
        lines.append("skipped newer backups that fail the integrity check: "
                     + ", ".join(f"{b.path.name} ({b.problem})" for b in skipped))
    lines.append(f"restored {db} from {good.path} (taken {good.when()}): {counts}")
    later = _done_after(workdir, good.taken)
    if later:
        lines.append(f"warning: state.json marks {', '.join(later)} done after this backup "
                     "was taken: what they wrote to the data lake is not in it")
    lines.append("run the same 'pyacemaker run' command again to resume: work on the data "
                 f"lake after {good.when()} is done again")
    return lines


def _done_after(workdir: Path, taken: datetime) -> list[str]:
    """Stages that wrote to the lake, recorded done, that started after ``taken``."""
    from pyacemaker.state import load_state

    try:
        state = load_state(workdir)
    except Exception:  # noqa: BLE001 - an unreadable state is reported by run itself
        return []
    return [key for key, record in (state.stages.items() if state else []) if
            record.name in LAKE_WRITERS and record.status == "done" and record.started
            and datetime.fromisoformat(record.started) > taken]


def _counts(store: DataStore) -> str:
    return ", ".join(f"{store.count(status=status)} {name}" for status, name in (
        ("labelled", "labelled"), ("candidate", "candidates"), ("quarantined", "quarantined")))


def recover_command(workdir: Path) -> int:
    """``pyacemaker recover --workdir W``: 0 when the lake is readable afterwards."""
    from pyacemaker.campaign_lock import CampaignLocked

    try:
        lines = recover(Path(workdir))
    except (DataLakeError, CampaignLocked) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0
