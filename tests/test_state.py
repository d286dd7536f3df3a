"""Campaign state: atomic saves, resume, refusal of a state from another config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyacemaker.state import (
    STATE_FILE,
    PotentialRecord,
    StateError,
    WorkflowState,
    load_state,
    open_state,
    save_state,
)


def test_round_trip_and_resume(tmp_path: Path) -> None:
    state = open_state(tmp_path, "abc")
    state.iteration = 2
    state.mark("label", "running")
    state.mark("label", "done", "12 labelled")
    state.potential = PotentialRecord(iteration=2, yaml="iter_002/fit/pot.yaml",
                                      metrics={"force_rmse_ev_per_a": 0.05})
    save_state(state, tmp_path)
    resumed = open_state(tmp_path, "abc")
    assert resumed.iteration == 2
    assert resumed.status_of("label") == "done"
    assert resumed.potential is not None and resumed.potential.metrics["force_rmse_ev_per_a"] == 0.05
    assert resumed.iteration_dir(tmp_path).name == "iter_002"


def test_other_config_is_refused_unless_forced(tmp_path: Path) -> None:
    open_state(tmp_path, "first")
    with pytest.raises(StateError, match="different configuration"):
        open_state(tmp_path, "second")
    fresh = open_state(tmp_path, "second", force=True)
    assert fresh.config_fingerprint == "second"
    # nothing deleted or overwritten: the old state moved to superseded/<UTC time>/
    (old,) = (tmp_path / "superseded").iterdir()
    assert load_state(old).config_fingerprint == "first"  # type: ignore[union-attr]
    assert not (tmp_path / (STATE_FILE + ".bak")).exists()


def test_corrupt_state_file_is_named(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(StateError, match=str(tmp_path / STATE_FILE)):
        load_state(tmp_path)


WRITER = """
import sys
from pathlib import Path
from pyacemaker.state import WorkflowState, save_state
folder = Path(sys.argv[1])
state = WorkflowState(config_fingerprint="x")
# a large payload makes each write take long enough to be killed in the middle
state.halts = {i: i for i in range(20000)}
i = 0
while True:
    i += 1
    state.iteration = i
    save_state(state, folder)
    print(i, flush=True)
"""


def test_sigkill_while_writing_leaves_a_valid_state(tmp_path: Path) -> None:
    for attempt in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one complete save happened
        time.sleep(0.05 * (attempt + 1))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        state = load_state(tmp_path)
        assert state is not None and state.iteration >= 1
        assert len(state.halts) == 20000
        json.loads((tmp_path / STATE_FILE).read_text())
        leftovers = [p for p in tmp_path.iterdir() if p.name != STATE_FILE]
        for p in leftovers:  # only temporary files of the killed write may remain
            assert p.name.startswith(f".{STATE_FILE}.") and p.name.endswith(".tmp")


def test_iteration_dirs_are_numbered(tmp_path: Path) -> None:
    state = WorkflowState(config_fingerprint="x", iteration=7)
    assert state.iteration_dir(tmp_path).name == "iter_007"
    assert state.iteration_dir(tmp_path, 12).name == "iter_012"
