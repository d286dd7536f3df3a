"""A DFT labelling batch as one scheduler job array (``resources.dft.submission: array``).

The batch folder (``<label dir>/array/``) holds everything, so a restarted driver picks up
where the last one stopped:

    elements.json          row id of every element index (append-only)
    inputs/<i>.pkl         what element i labels: (row id, structure, oracle, launch, folder)
    arrays.json            every array submitted: job id, the element indices it runs
    array_<n>.sh/.json     the batch script of array n and its element list (task k -> index)
    outcomes/<i>.pkl       element i's answer: {"outcome": LabelOutcome} or {"error": ...}
    logs/array_<n>_<k>.out scheduler output of each element

Each element runs :func:`pyacemaker.execution.labelling.label_one` (the function a pilot
block's dft task runs: the oracle with its healing) through
``python -m pyacemaker.execution.array_element``. The driver polls the scheduler and the
outcome files; what it does next is :func:`pyacemaker.execution.array_plan.next_array_step`.
"""

from __future__ import annotations

import json
import logging
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ase import Atoms

from pyacemaker.execution import batch_jobs
from pyacemaker.execution.array_plan import next_array_step
from pyacemaker.programs import Launch
from pyacemaker.site_config import SiteConfig
from pyacemaker.stages.oracle.base import LabelOutcome, Oracle, OracleConfigError

log = logging.getLogger(__name__)
BATCH_FOLDER = "array"
ARRAYS_FILE = "arrays.json"
Answer = LabelOutcome | Exception


class ArrayElementLost(RuntimeError):
    """An element ended without an outcome as often as the site allows resubmitting it."""


class ArrayElementFailed(RuntimeError):
    """An element's labelling task raised (a bug, a broken environment); its traceback is
    in the message and in the element's log."""


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


class ArrayBatch:
    """The batch folder of one labelling batch."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    # ------------------------------------------------------------------ elements
    def rows(self) -> list[int]:
        path = self.folder / "elements.json"
        return json.loads(path.read_text())["rows"] if path.exists() else []

    def add_elements(self, items: list[tuple[int, Atoms]], oracle: Oracle,
                     launch: Launch | None, label_dir: Path) -> dict[int, int]:
        """Element index of every row of ``items``; rows seen before keep theirs (their
        outcome files stay valid), new rows are appended with their inputs written."""
        rows = self.rows()
        index_of = {row: i for i, row in enumerate(rows)}
        for row_id, atoms in items:
            if row_id in index_of:
                continue
            index_of[row_id] = len(rows)
            rows.append(row_id)
            write_atomically(self.input_path(index_of[row_id]), pickle.dumps(
                (row_id, atoms, oracle, launch, str(label_dir))))
        write_atomically(self.folder / "elements.json", json.dumps({"rows": rows}).encode())
        return {row_id: index_of[row_id] for row_id, _ in items}

    def input_path(self, index: int) -> Path:
        return self.folder / "inputs" / f"{index}.pkl"

    def outcome_path(self, index: int) -> Path:
        return self.folder / "outcomes" / f"{index}.pkl"

    def answered(self) -> set[int]:
        return {int(p.stem) for p in (self.folder / "outcomes").glob("*.pkl")}

    def answer(self, index: int) -> Answer:
        """Element ``index``'s outcome, or the exception it reported."""
        saved: dict[str, Any] = pickle.loads(self.outcome_path(index).read_bytes())
        if "outcome" in saved:
            return saved["outcome"]
        if saved.get("config_error"):
            return OracleConfigError(saved["error"])
        return ArrayElementFailed(f"array element {index}: {saved['error']}")

    # ------------------------------------------------------------------ arrays
    def arrays(self) -> list[dict[str, Any]]:
        path = self.folder / ARRAYS_FILE
        return json.loads(path.read_text()) if path.exists() else []

    def submissions(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for array in self.arrays():
            for index in array["indices"]:
                counts[index] = counts.get(index, 0) + 1
        return counts

    def element_index(self, array_number: int, task: int) -> int:
        return json.loads((self.folder / f"array_{array_number}.json").read_text())[task]

    def submit(self, site: SiteConfig, indices: tuple[int, ...]) -> str:
        """Write the batch script of a new array over ``indices`` and submit it; its job
        id is recorded in arrays.json before anything else happens."""
        from parsl_configs.common import worker_init

        res = site.resources["dft"]
        number = len(self.arrays())
        write_atomically(self.folder / f"array_{number}.json", json.dumps(list(indices)).encode())
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        one = len(indices) == 1  # PBS Pro refuses a one-element array: a plain job then
        shape = batch_jobs.JobShape(
            name=f"pyace-dft-{self.folder.parent.parent.name}", walltime=res.walltime,
            output=self.folder / "logs" / (f"array_{number}.out" if one else
                                           f"array_{number}_%a.out"),
            nodes=res.nodes, tasks=res.mpi_ranks,
            cores_per_task=max(1, res.cores_per_task // res.mpi_ranks),
            partition=site.partition or site.queue, account=site.account,
            array_size=0 if one else len(indices),
            throttle=res.array_throttle or res.max_parallel_tasks * res.max_blocks,
            extra=site.scheduler_options)
        script = self.folder / f"array_{number}.sh"
        lines = [*batch_jobs.script_header(site, shape), worker_init(site),
                 f"exec {sys.executable} -m pyacemaker.execution.array_element "
                 f"{self.folder.resolve()} {number}"]
        script.write_text("\n".join(lines) + "\n")
        job_id = batch_jobs.submit(site, script)
        record = self.arrays() + [{
            "job_id": job_id, "indices": list(indices),
            "submitted": datetime.now(timezone.utc).isoformat(timespec="seconds")}]
        write_atomically(self.folder / ARRAYS_FILE, json.dumps(record, indent=1).encode())
        return job_id

    def running_job(self, site: SiteConfig) -> str | None:
        """The newest array of this batch if the scheduler still has it pending or running
        (arrays run one after the other, so only the newest can be alive)."""
        arrays = self.arrays()
        if arrays and batch_jobs.job_alive(site, arrays[-1]["job_id"]):
            return str(arrays[-1]["job_id"])
        return None


def array_answers(site: SiteConfig, items: list[tuple[int, Atoms]], oracle: Oracle,
                  label_dir: Path, launch: Launch | None,
                  note: Callable[[str], None] | None = None,
                  ) -> Iterator[tuple[int, Answer]]:
    """Label ``items`` as job arrays; yield (row id, outcome or exception) as each element's
    answer appears, so the caller stores it at once. ``note`` gets a line on every change
    of what the batch waits for ("array 123 running")."""
    if not items:
        return
    batch = ArrayBatch(label_dir / BATCH_FOLDER)
    index_of = batch.add_elements(items, oracle, launch, label_dir)
    row_of = {index: row for row, index in index_of.items()}
    delivered: set[int] = set()
    max_submissions = 1 + site.resources["dft"].array_resubmits
    last_note = ""
    while True:
        running = batch.running_job(site)  # before reading the outcomes: none can be missed
        answered = batch.answered() & set(row_of)
        for index in sorted(answered - delivered):
            delivered.add(index)
            yield row_of[index], batch.answer(index)
        step = next_array_step(row_of, answered, batch.submissions(), running, max_submissions)
        if step.action == "submit":
            again = any(batch.submissions().get(i) for i in step.indices)
            job_id = batch.submit(site, step.indices)
            log.info("   %s %d element(s) as job array %s", "resubmitted" if again else
                     "submitted", len(step.indices), job_id)
            continue
        for index in step.lost:
            if index not in delivered:
                delivered.add(index)
                yield row_of[index], ArrayElementLost(
                    f"array element {index} (row {row_of[index]}) ended without an outcome "
                    f"{max_submissions} time(s); see {batch.folder / 'logs'}")
        if step.action == "done":
            return
        text = f"array {step.job_id} running"
        if note is not None and text != last_note:
            note(text)
            last_note = text
        time.sleep(site.scheduler_poll_s)
