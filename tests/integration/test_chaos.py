"""Chaos: a real EMT campaign (real pacemaker, real Parsl) killed at seeded random moments
(10 SIGKILLs of the driver's process group; 3 SIGTERMs, which must stop it cleanly) and
resumed each time finishes with nothing lost, nothing labelled twice and no process of the
campaign left alive. ~5.5 and ~3 min on 2 cores; bench/chaos.py is the longer version."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from pyacemaker.state import load_state

from chaos_support import run_chaos

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1500)
@pytest.mark.parametrize(("sig", "kills"), [(signal.SIGKILL, 10), (signal.SIGTERM, 3)],
                         ids=["SIGKILL", "SIGTERM"])
def test_killed_and_resumed_loses_nothing(tmp_path: Path, sig: signal.Signals,
                                          kills: int) -> None:
    report = run_chaos(tmp_path, kills=kills, sig=sig, seed=11 if kills == 10 else 12)
    print(report.summary())
    state = load_state(tmp_path / "campaign")
    assert state is not None and state.finished, report.summary()
    assert report.kills >= kills // 2, f"finished before most kills: {report.summary()}"
    assert report.lost == 0 and report.duplicated == 0, report.summary()
    assert report.orphans == [], report.summary()
    assert report.labelled >= 12
    if sig == signal.SIGTERM:  # a clean stop: saved state, exit 143, every time
        assert set(report.exit_codes) <= {143, 0}, report.summary()
        log = (tmp_path / "campaign" / "campaign.log").read_text()
        assert log.count("received SIGTERM") == report.kills
