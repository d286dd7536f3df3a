"""Batch labelling: one Parsl app per structure on the "dft" executor, or, where the site
says ``resources.dft.submission: array``, one scheduler job array per batch (job_array.py).

Each structure is labelled in ``workdir/<row_id>/`` and its result (label or quarantine,
with the healing history) is written to the data lake the moment it arrives, so a kill
loses at most the runs in flight. Rows already labelled are skipped, so running the same
batch again resumes it. Every oracle answer is also appended to
``workdir/<row_id>/outcomes.jsonl`` (status, time, host, pid): a row with two answers
was labelled twice.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from ase import Atoms

from pyacemaker.datastore import DataStore
from pyacemaker.execution.engine import Engine, launch_for
from pyacemaker.programs import Launch
from pyacemaker.stages.oracle.base import LabelOutcome, Oracle, OracleConfigError

log = logging.getLogger(__name__)
OUTCOMES_FILE = "outcomes.jsonl"


class LabellingTaskFailed(RuntimeError):
    """A labelling task raised something other than the oracle's own verdicts; the cause
    (with its traceback) is chained."""


def label_one(item: tuple[int, Atoms], oracle: Oracle, workdir: str,
              launch: Launch | None) -> LabelOutcome:
    """The Parsl app body: label one (row id, structure) in workdir/<row_id>/."""
    row_id, atoms = item
    folder = Path(workdir) / str(row_id)
    outcome = oracle.label(atoms, folder, launch)
    record_outcome(folder, outcome)
    return outcome


def record_outcome(folder: Path, outcome: LabelOutcome) -> None:
    """One line per oracle call in ``<row>/outcomes.jsonl``: the audit trail that shows a
    structure labelled twice (a kill between the oracle's answer and the lake's write)."""
    folder.mkdir(parents=True, exist_ok=True)
    line = {"status": outcome.status, "reason": outcome.reason,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(), "pid": os.getpid()}
    with open(folder / OUTCOMES_FILE, "a") as handle:
        handle.write(json.dumps(line) + "\n")


def label_batch(engine: Engine, datastore: DataStore, row_ids: list[int], oracle: Oracle,
                workdir: Path, progress: Callable[..., None] | None = None
                ) -> dict[str, int]:
    """Label ``row_ids`` in parallel; returns counts: converged, quarantined, skipped.
    ``progress(done, total)`` is called after every answer, as ``progress(done, total,
    note)`` while an array batch waits (``note``: "array 123 running").

    Only the oracle quarantines (a failed calculation it classified). A configuration error
    (one that would hit every structure, e.g. a pseudopotential file that vanished) and any
    other exception of a task (a lost worker, a bug) leave the affected rows as candidates
    and are raised after every other structure of the batch has been stored.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    items: list[tuple[int, Atoms]] = []
    for row_id in row_ids:
        atoms = datastore.get_atoms(row_id)
        if atoms.info.get("status") == "labelled":
            counts["skipped"] += 1
            continue
        items.append((row_id, _clean(atoms)))
    cost = oracle.estimate_cost([atoms for _, atoms in items], labelled_timings(datastore))
    if cost is not None and items:
        log.info("   DFT cost of this batch: %s", cost.describe())
    launch = launch_for(engine.site, "dft", "qe")
    config_errors: list[str] = []
    task_errors: list[Exception] = []
    done = 0
    waiting_for = [""]

    def report(text: str) -> None:
        if progress is not None:
            progress(done, len(items), text) if text else progress(done, len(items))

    def note(text: str) -> None:
        waiting_for[0] = text
        report(text)

    if engine.site.resources["dft"].submission == "array":
        from pyacemaker.execution.job_array import array_answers

        answers = array_answers(engine.site, items, oracle, workdir, launch, note)
    else:
        answers = _pilot_answers(engine, items, oracle, workdir, launch)
    for row_id, answer in answers:
        done += 1
        try:
            if isinstance(answer, Exception):
                raise answer
            outcome = answer
        except OracleConfigError as exc:
            config_errors.append(f"row {row_id}: {exc}")
            counts["config_error"] += 1
        except Exception as exc:  # noqa: BLE001 - raised below, after the others are stored
            # Not the structure's fault (a worker lost after Parsl's retries, or a bug in our
            # own code): the row stays a candidate for the resumed run; never quarantined.
            log.error("row %d: labelling task failed: %s: %s", row_id, type(exc).__name__, exc)
            task_errors.append(exc)
            counts["task_failed"] += 1
        else:
            store_outcome(datastore, row_id, outcome)
            counts[outcome.status] += 1
        report(waiting_for[0] if done < len(items) else "")
    if task_errors:
        raise LabellingTaskFailed(
            f"{len(task_errors)} labelling task(s) failed outside the oracle (others stored: "
            f"{dict(counts)}); their structures stay candidates for the resumed run"
        ) from task_errors[0]
    if config_errors:
        raise OracleConfigError(
            f"{len(config_errors)} structure(s) not labelled because of a configuration error "
            f"(others stored: {dict(counts)}):\n  " + "\n  ".join(config_errors[:5]))
    return {"converged": counts["converged"], "quarantined": counts["quarantined"],
            "skipped": counts["skipped"]}


def _pilot_answers(engine: Engine, items: list[tuple[int, Atoms]], oracle: Oracle,
                   workdir: Path, launch: Launch) -> Iterator[tuple[int, LabelOutcome | Exception]]:
    """(row id, outcome or the task's exception) as each dft task of the blocks finishes."""
    for (row_id, _), future in engine.map("dft", label_one, items, oracle=oracle,
                                          workdir=str(workdir), launch=launch):
        try:
            yield row_id, future.result()
        except Exception as exc:  # noqa: BLE001 - classified by the caller
            yield row_id, exc


def labelled_timings(datastore: DataStore, last: int = 50) -> list[tuple[Atoms, float]]:
    """(structure, pw.x seconds over its healing attempts) of the latest labels."""
    timings = []
    for row in list(datastore.rows(status="labelled"))[-last:]:
        attempts = (row.data or {}).get("healing") or []
        seconds = sum(float(a.get("duration_s", 0.0)) for a in attempts if isinstance(a, dict))
        if seconds > 0:
            timings.append((DataStore.row_to_atoms(row), seconds))
    return timings


def store_outcome(datastore: DataStore, row_id: int, outcome: LabelOutcome) -> None:
    if outcome.status == "converged" and outcome.atoms is not None:
        datastore.set_label(row_id, outcome.atoms, oracle=outcome.oracle,
                            healing=outcome.attempts)
    else:
        datastore.quarantine(row_id, outcome.reason or "quarantined without a reason",
                             healing=outcome.attempts)


def _clean(atoms: Atoms) -> Atoms:
    """The structure as the oracle should see it: no old calculator, no lake bookkeeping."""
    atoms = atoms.copy()
    atoms.calc = None
    for key in ("status", "reason", "fingerprint", "healing", "oracle"):
        atoms.info.pop(key, None)
    return atoms
