"""Opening a campaign folder with a (possibly changed) config: resume, refuse, or start over.

A resumed campaign goes on with the data and fits it has, so the settings that made them
must still hold. :func:`open_campaign_state` compares the new config with the one the
folder's campaign ran with (``config_changes.py``): execution changes (timeouts, budgets
...) are accepted and logged one line each; physics changes are refused, naming every field
with its old and new value, unless ``force``.

``force`` never deletes or overwrites. Everything a run derived from the old settings moves
into ``superseded/<UTC time>/`` (:data:`DERIVED`: state, data lake with its SQLite side
files, config copy, iteration folders, validation reports, report, start pools, monitoring,
data-lake backups, dist); the log of every run (campaign.log), the driver's lock and
Parsl's run folders stay.
Labels still valid under the new settings are reused: when neither the oracle physics nor
the elements changed, the labelled rows are copied into the new data lake (marked
``reused_from``), so the oracle is not asked again; the keyed DFT reference cache of the
validation crystals is copied back too (a stale entry is never used: its key differs).
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from pyacemaker.config_changes import CONFIG_COPY, Comparison, compare_with_folder
from pyacemaker.datastore import BACKUP_DIR, DataStore
from pyacemaker.layout import ITERATION_GLOB
from pyacemaker.release import DATASTORE_FILE, REPORT_FILE, VALIDATION_DIR
from pyacemaker.stages.explore.engines import KMC_START_FILE, START_POOL_FILE
from pyacemaker.stages.validate.reference import REFERENCE_DIR
from pyacemaker.state import STATE_FILE, StateError, WorkflowState, atomic_write_text, \
    load_state

if TYPE_CHECKING:
    from pyacemaker.config import CampaignConfig

log = logging.getLogger(__name__)
SUPERSEDED_DIR = "superseded"
# what a run writes into the campaign folder from its settings (globs, in the folder):
# state.json (and an older version's state.json.bak), the data lake with its -wal/-shm/
# -journal side files and its backups (datastore.BACKUP_DIR: a recover must not bring the
# old lake back), the iteration folders, validation reports and the DFT reference cache,
# the report, the start pools of stages/explore/engines.py, Parsl monitoring
# (execution/monitoring.py), a release
DERIVED = (f"{STATE_FILE}*", f"{DATASTORE_FILE}*", BACKUP_DIR, CONFIG_COPY, ITERATION_GLOB,
           VALIDATION_DIR, REPORT_FILE, START_POOL_FILE, KMC_START_FILE, "monitoring.db",
           "monitoring_summary.json", "dist")


def open_campaign_state(workdir: Path, config: CampaignConfig, force: bool = False
                        ) -> WorkflowState:
    """The state to run ``config`` with in ``workdir`` (created, resumed or started over);
    writes the config copy, not the state (the caller saves it once its images are pinned).
    Raises StateError for a refused physics change."""
    workdir = Path(workdir)
    state = load_state(workdir)
    if state is not None:
        comparison = compare_with_folder(workdir, config, state.config_fingerprint)
        for change in comparison.execution:
            log.info("%s (execution setting, accepted)", change)
        if comparison.refused:
            if not force:
                raise StateError(refusal(workdir, comparison))
            start_over(workdir, comparison)
            state = None
        elif force:
            log.info("--force: no physics setting changed since this campaign started; "
                     "resuming it (nothing moved)")
    state = state or WorkflowState(config_fingerprint=config.fingerprint())
    state.config_fingerprint = config.fingerprint()  # the current form from now on
    atomic_write_text(workdir / CONFIG_COPY, yaml.safe_dump(
        config.model_dump(mode="json"), sort_keys=False))
    return state


def refusal(workdir: Path, comparison: Comparison) -> str:
    """The StateError text: every physics change, and what --force would do."""
    labels = ("the old labels stay there but are not reused (the oracle settings or the "
              "elements changed: they would differ)" if comparison.changes_labels else
              "the labels are copied into the new data lake (oracle and elements unchanged), "
              "so no structure is labelled again")
    return (f"{workdir / STATE_FILE}: this campaign was started with other physics "
            "settings:\n" + comparison.describe() + "\nResuming would mix results made with "
            "the old settings into the new ones. Put the old values back (execution settings "
            "such as timeouts and budgets may change freely), use another --workdir, or pass "
            "--force to start over here: the old state, data lake, campaign.yaml, iteration "
            f"folders and reports move to {workdir / SUPERSEDED_DIR}/<UTC time>/ (nothing is "
            f"deleted) and {labels}.")


def start_over(workdir: Path, comparison: Comparison) -> Path:
    """``--force`` after a physics change: supersede the folder's results, reuse what is
    still valid. Returns the superseded folder."""
    folder = supersede(workdir)
    shown = folder.relative_to(workdir)
    log.info("--force: physics settings changed:\n%s", comparison.describe())
    old_db = folder / DATASTORE_FILE
    if comparison.changes_labels:
        log.info("--force: the oracle settings or the elements changed: the new data lake "
                 "starts empty; the old labels are in %s", shown / DATASTORE_FILE)
    elif old_db.is_file():
        copied = DataStore(workdir / DATASTORE_FILE).copy_labelled_from(
            DataStore(old_db), reused_from=str(shown))
        log.info("--force: %d labelled structures reused from %s (oracle and elements "
                 "unchanged: their labels still hold)", copied, shown / DATASTORE_FILE)
    if (folder / REFERENCE_DIR).is_dir():  # keyed by its settings: a stale one is not used
        shutil.copytree(folder / REFERENCE_DIR, workdir / REFERENCE_DIR)
    return folder


def supersede(workdir: Path) -> Path:
    """Move everything of :data:`DERIVED` into a new ``superseded/<UTC time>/`` (unique,
    also for two calls in one second) and log where; returns that folder."""
    workdir = Path(workdir)
    folder = _new_folder(workdir / SUPERSEDED_DIR)
    moved = []
    for pattern in DERIVED:
        for path in sorted(workdir.glob(pattern)):
            path.rename(folder / path.name)  # same file system: atomic, nothing copied
            moved.append(path.name)
    log.info("--force: moved %s to %s", ", ".join(moved) or "nothing", folder)
    return folder


def _new_folder(parent: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()  # fails if it exists: never reuses a folder
        except FileExistsError:
            continue
        return folder
    raise StateError(f"{parent}: cannot make a new superseded folder for {stamp}")
