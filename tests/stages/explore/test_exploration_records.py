"""summary.json has one schema: what the driver writes the policy and the report read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyacemaker.stages.explore.result import (
    ExplorationRecord,
    ExplorationResult,
    ExplorationTask,
    read_records,
    write_records,
)


def test_records_round_trip_with_every_task_field(tmp_path: Path) -> None:
    task = ExplorationTask(name="it002_kmc0_T500", engine="kmc", temperature=500.0, steps=6,
                           seed=9, structure_index=1, iteration=2, walkers=2,
                           reason="kMC halted: rerun", epicentres=(0, 3))
    result = ExplorationResult(task=task, halted=True, halt_step=4, steps_done=4,
                               gamma_history=[(1, 2.0), (4, 12.5)], message="halted")
    path = tmp_path / "summary.json"
    write_records(path, [result.record()])
    (back,) = read_records(path)
    assert back == result.record()
    assert back.iteration == 2 and back.max_gamma == 12.5 and back.task.epicentres == (0, 3)
    assert read_records(tmp_path / "absent.json") == []


def test_a_record_of_an_older_campaign_with_an_options_dict_is_read(tmp_path: Path) -> None:
    old = {"task": {"name": "kmc0", "engine": "kmc", "temperature": 300.0, "steps": 1000,
                    "options": {"iteration": 3, "max_steps": 8, "reason": "kMC scheduled"}},
           "halted": False, "halt_step": None, "steps_done": 8, "max_gamma": 1.2,
           "n_frames": 0, "message": "", "iteration": 3}
    record = ExplorationRecord.from_dict(old)
    assert record.task.steps == 8 and record.iteration == 3 and record.task.reason


def test_a_corrupt_or_foreign_summary_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text("[{not json")
    with pytest.raises(ValueError, match="summary.json: not valid JSON"):
        read_records(path)
    path.write_text(json.dumps([{"task": {"name": "x", "engine": "ase", "colour": 1},
                                 "halted": False, "halt_step": None, "steps_done": 1}]))
    with pytest.raises(ValueError, match=r"summary.json.*unknown fields \['colour'\]"):
        read_records(path)
