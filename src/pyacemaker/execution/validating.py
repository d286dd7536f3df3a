"""The quality gate as a task on the site's ``light`` executor, never in the driver's process
(on a cluster the driver sits on a login node)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

from pyacemaker.config import CampaignConfig
from pyacemaker.execution.engine import Engine
from pyacemaker.stages.validate import ValidationReport
from pyacemaker.stages.validate.reference import CrystalReference
from pyacemaker.state import PotentialRecord


def validate_task(record: PotentialRecord, config: CampaignConfig, workdir: str,
                  datastore_path: str, references: dict[str, CrystalReference] | None = None,
                  reference_failures: dict[str, str] | None = None) -> ValidationReport:
    """The app body: opens the data lake read-only in the worker and runs the gate."""
    from pyacemaker.datastore import DataStore
    from pyacemaker.release import validate_record

    return validate_record(record, config, DataStore(Path(datastore_path)), Path(workdir),
                           references, reference_failures)


def submit_validation(engine: Engine, record: PotentialRecord, config: CampaignConfig,
                      workdir: Path, datastore_path: Path) -> Future[ValidationReport]:
    """Start the gate on ``record`` as a ``light`` task; its future holds the report. With a
    DFT oracle, the DFT references of the validation crystals come first (``dft`` tasks,
    computed once per campaign and waited for here: ``references.py``)."""
    references, failures = None, None
    if config.oracle.kind == "qe":
        from pyacemaker.execution.references import dft_references

        references, failures = dft_references(engine, config, workdir)
    return engine.submit("light", validate_task, record, config, str(workdir),
                         str(datastore_path), references, failures)
