"""The driver: a small loop over stages that decides, delegates and records.

It holds no science: stages live in ``pyacemaker.stages``, execution in
``pyacemaker.execution``. State is saved after every stage transition so that running
the same command again resumes where a killed run stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pyacemaker.config import CampaignConfig, SiteConfig
from pyacemaker.datastore import DataStore
from pyacemaker.state import WorkflowState, open_state

log = logging.getLogger(__name__)
DATASTORE_FILE = "data.db"


class CampaignNotReady(RuntimeError):
    """A part of the pipeline the campaign needs is not available."""


@dataclass
class Campaign:
    config: CampaignConfig
    site: SiteConfig
    workdir: Path
    state: WorkflowState
    datastore: DataStore

    @classmethod
    def open(cls, config: CampaignConfig, site: SiteConfig, workdir: Path,
             force: bool = False) -> Campaign:
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        state = open_state(workdir, config.fingerprint(), force=force)
        datastore = DataStore(workdir / DATASTORE_FILE)
        return cls(config, site, workdir, state, datastore)

    def run(self) -> WorkflowState:
        raise CampaignNotReady(
            "the active-learning loop (generate -> label -> select -> fit -> explore) is not "
            "built yet: see the 'closed loop' issue. Config, site, state and data lake in "
            f"{self.workdir} were validated and opened; nothing was computed."
        )
