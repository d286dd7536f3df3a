"""The quality gate runs as a task on the light executor: on an HTEX site it runs in a
worker process, not in the driver (on a cluster the driver is on a login node)."""

from __future__ import annotations

import os
import socket

import pytest

from pyacemaker.config import SiteConfig, load_campaign
from pyacemaker.execution import Engine
from pyacemaker.execution.validating import submit_validation
from pyacemaker.release import load_validation
from pyacemaker.state import load_state
from stages.validate.campaign_factory import make_cu_campaign, well_trained_cu_potential


@pytest.mark.slow
def test_validation_runs_in_an_htex_worker(tmp_path_factory: pytest.TempPathFactory) -> None:
    potential = well_trained_cu_potential(tmp_path_factory.getbasetemp() / "cu_ace_well_trained")
    folder = make_cu_campaign(tmp_path_factory.mktemp("htex_validation") / "cu", potential,
                              validation={"phonon_supercell": 3})
    state = load_state(folder)
    assert state is not None and state.potential is not None
    config = load_campaign(folder / "campaign.yaml")
    with Engine(SiteConfig(local_executor="htex"), folder / "run") as engine:
        report = submit_validation(engine, state.potential, config, folder,
                                   folder / "data.db").result()
    host, pid = report.computed_by.split(":")
    assert host == socket.gethostname() and int(pid) != os.getpid()
    assert report.verdict in ("GO", "NO-GO") and report.crystals  # a real gate ran
    saved = load_validation(folder, state.potential.iteration)
    assert saved is not None and saved.computed_by == report.computed_by
