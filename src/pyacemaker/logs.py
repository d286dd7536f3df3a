"""Logging: everything to the campaign's log file, a concise line per event on the terminal."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyacemaker.datastore import DataStore
    from pyacemaker.state import WorkflowState

LOG_FILE = "campaign.log"


def setup_logging(campaign_dir: Path | None, verbose: bool = False) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    terminal = logging.StreamHandler(sys.stdout)
    terminal.setLevel(logging.DEBUG if verbose else logging.INFO)
    terminal.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    terminal.addFilter(lambda record: record.name.startswith("pyacemaker") or verbose)
    root.addHandler(terminal)
    if campaign_dir is not None:
        campaign_dir.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(campaign_dir / LOG_FILE)
        to_file.setLevel(logging.DEBUG)
        to_file.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(to_file)
    for noisy in ("parsl", "tensorflow", "matplotlib", "h5py"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


def log_results(state: WorkflowState, datastore: DataStore, workdir: Path) -> None:
    """The closing lines of a campaign run: where the potential is, and the data lake."""
    log = logging.getLogger("pyacemaker.campaign")
    pot = state.potential
    log.info("results in %s", workdir)
    if pot is not None:
        log.info("   potential: %s", pot.yace or pot.yaml)
        log.info("   active set: %s", pot.asi)
        log.info("   metrics: %s", ", ".join(f"{k}={v:.4g}" for k, v in pot.metrics.items()))
    log.info("   data lake: %d labelled, %d quarantined (%s)", datastore.count(
        status="labelled"), datastore.count(status="quarantined"), datastore.provenance_counts())
