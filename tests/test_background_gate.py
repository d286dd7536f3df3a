"""The gate of a new fit runs beside the next exploration (decision.py); a driver stopped
while it ran leaves the stage done and no verdict, and the next run judges that potential
again before it decides anything that needs the verdict.

Real run: a copy of the session's small finished EMT campaign (tests/tiny_campaign.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_campaign import LOCAL_SITE, copy_of, finished_campaign, run_cli, write_config


@pytest.mark.slow
def test_a_gate_lost_with_its_driver_is_run_again_on_resume(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    folder = copy_of(finished_campaign(tmp_path_factory), tmp_path / "cu-tiny")
    state_file = folder / "state.json"
    state = json.loads(state_file.read_text())
    verdict = state["validation"]["0"]
    assert state["stages"]["000:validate"]["status"] == "done"
    # what a driver killed while its gate ran in the background leaves behind
    del state["validation"]["0"]
    state.update(finished=False, stop_reason=None)
    state_file.write_text(json.dumps(state))

    out = run_cli("run", write_config(tmp_path / "cu-tiny.yaml"), "--site", LOCAL_SITE,
                  "--workdir", folder)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    resumed = json.loads(state_file.read_text())
    assert resumed["validation"]["0"] == verdict  # judged again, same verdict
    assert resumed["stop_reason"].startswith("budget: max_dft_calls=16 reached")
    log = (folder / "campaign.log").read_text()  # the first run's lines and this one's
    assert log.count("validate (potential of iteration 0)") == 2
    assert log.count("fitting on") == 1  # nothing was refitted
