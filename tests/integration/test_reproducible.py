"""The same campaign config and seed label the same structures, run after run.

Exploration tasks run in parallel and finish in any order; the frames they return are
kept in task order, so selection sees the same pool each time (before, two runs of the EMT
example labelled 34 and 36 structures). Real runs of the CLI: cold start, then one
iteration with four MD tasks on two workers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_campaign import LOCAL_SITE, run_cli, write_config

from pyacemaker.datastore import DataStore, structure_fingerprint


@pytest.mark.slow
def test_two_runs_of_one_config_label_the_same_structures(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cu.yaml", exploration__temperatures=[300, 1200],
                          exploration__walkers=2, exploration__max_tasks=4,
                          active_learning__max_dft_calls=40,
                          # thresholds low enough that the 8-function potential halts
                          active_learning__gamma_lower=0.8, active_learning__gamma_upper=1.1)
    labelled = []
    for run in ("first", "second"):
        folder = tmp_path / run
        out = run_cli("run", config, "--site", LOCAL_SITE, "--workdir", folder)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        state = json.loads((folder / "state.json").read_text())
        assert state["iteration"] == 1 and "001:explore" in state["stages"]
        atoms = DataStore(folder / "data.db").atoms(status="labelled")
        labelled.append(sorted(structure_fingerprint(a) for a in atoms))
    assert len(labelled[0]) > 16  # the iteration learned from its exploration
    assert labelled[0] == labelled[1]
