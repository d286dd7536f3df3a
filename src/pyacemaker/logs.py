"""Logging: everything to the campaign's log file, a concise line per event on the terminal."""

from __future__ import annotations

import errno
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyacemaker.datastore import DataStore
    from pyacemaker.state import WorkflowState

LOG_FILE = "campaign.log"
# errno -> (what it means, the fix) for a folder we cannot write into
FOLDER_PROBLEMS = {
    errno.EROFS: ("read-only file system", "choose another --workdir"),
    errno.EACCES: ("permission denied", "choose another --workdir or fix its permissions"),
    errno.EPERM: ("not permitted", "choose another --workdir or fix its permissions"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose another --workdir"),
    errno.ENOSPC: ("no space left", "free some space or choose another --workdir"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose another --workdir"),
}


class FolderNotWritable(OSError):
    """The campaign folder cannot be created or written; the message names it and the fix."""


def folder_problem(exc: OSError, folder: Path | None = None) -> str | None:
    """One line for an OSError that means "cannot write there" (None for any other)."""
    if isinstance(exc, FolderNotWritable):
        return str(exc)
    if exc.errno not in FOLDER_PROBLEMS:
        return None
    what, fix = FOLDER_PROBLEMS[exc.errno]
    return f"cannot write to {exc.filename or folder or 'the campaign folder'} ({what}): {fix}"


def check_writable(folder: Path) -> None:
    """Create ``folder`` and a file in it, or raise FolderNotWritable (before any work, so
    a read-only place fails in one line instead of a traceback halfway)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        message = folder_problem(exc, folder)
        if message is None:
            raise
        raise FolderNotWritable(message) from exc


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
        check_writable(campaign_dir)
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
