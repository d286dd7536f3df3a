"""Logging: everything to the campaign's log file, a concise line per event on the terminal."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

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
