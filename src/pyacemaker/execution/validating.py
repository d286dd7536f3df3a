"""The quality gate as a task on the site's ``light`` executor, never in the driver's process
(on a cluster the driver sits on a login node)."""

from __future__ import annotations

from pathlib import Path

from pyacemaker.config import CampaignConfig
from pyacemaker.execution.engine import Engine
from pyacemaker.stages.validate import ValidationReport
from pyacemaker.state import PotentialRecord


def validate_task(record: PotentialRecord, config: CampaignConfig, workdir: str,
                  datastore_path: str) -> ValidationReport:
    """The app body: opens the data lake read-only in the worker and runs the gate."""
    from pyacemaker.datastore import DataStore
    from pyacemaker.release import validate_record

    return validate_record(record, config, DataStore(Path(datastore_path)), Path(workdir))


def validate_in_worker(engine: Engine, record: PotentialRecord, config: CampaignConfig,
                       workdir: Path, datastore_path: Path) -> ValidationReport:
    """Run the gate on ``record`` as a ``light`` task and wait for its report."""
    future = engine.submit("light", validate_task, record, config, str(workdir),
                           str(datastore_path))
    return future.result()
