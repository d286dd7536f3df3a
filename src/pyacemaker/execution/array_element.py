"""One element of a DFT job array: ``python -m pyacemaker.execution.array_element BATCH N``.

Reads its element index from the scheduler (``SLURM_ARRAY_TASK_ID``, Torque's
``PBS_ARRAYID``, PBS Pro's ``PBS_ARRAY_INDEX``; none: a one-element job, task 0), labels
that structure with :func:`pyacemaker.execution.labelling.label_one` (the oracle with its
healing, as a pilot block's dft task does) and writes ``outcomes/<index>.pkl`` atomically.
An exception of the task is written as an outcome too (the driver raises it after storing
the rest of the batch, as in pilot mode); only an element killed before it could write
leaves no file, and that is what the driver resubmits.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from pathlib import Path

from pyacemaker.execution.batch_jobs import ARRAY_INDEX_VARIABLES
from pyacemaker.execution.job_array import ArrayBatch, write_atomically


def array_task() -> int:
    for variable in ARRAY_INDEX_VARIABLES:
        value = os.environ.get(variable)
        if value:
            return int(value.split("[")[-1].rstrip("]"))  # PBS Pro's 123[4].server
    return 0


def run_element(batch_folder: Path, array_number: int, task: int) -> Path:
    """Label element ``task`` of array ``array_number``; return its outcome file."""
    from pyacemaker.execution.labelling import label_one
    from pyacemaker.stages.oracle.base import OracleConfigError

    batch = ArrayBatch(batch_folder)
    index = batch.element_index(array_number, task)
    row_id, atoms, oracle, launch, label_dir = pickle.loads(
        batch.input_path(index).read_bytes())
    print(f"array {array_number} task {task}: element {index}, row {row_id}", flush=True)
    saved: dict[str, object]
    try:
        outcome = label_one((row_id, atoms), oracle, label_dir, launch)
        saved = {"outcome": outcome}
        print(f"row {row_id}: {outcome.status} {outcome.reason}", flush=True)
    except OracleConfigError as exc:
        saved = {"error": str(exc), "config_error": True}
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which raises it
        saved = {"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}",
                 "config_error": False}
        traceback.print_exc()
    path = batch.outcome_path(index)
    write_atomically(path, pickle.dumps(saved))
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m pyacemaker.execution.array_element BATCH_FOLDER ARRAY_NUMBER",
              file=sys.stderr)
        return 2
    run_element(Path(args[0]), int(args[1]), array_task())
    return 0


if __name__ == "__main__":
    sys.exit(main())
