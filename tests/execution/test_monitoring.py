"""Parsl monitoring: a run writes monitoring.db next to the campaign; after the run the
Engine summarises it into monitoring_summary.json, which the report reads."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pyacemaker.config import MonitoringSettings, SiteConfig, StageResources
from pyacemaker.execution import Engine
from pyacemaker.execution.monitoring import (
    MonitoringDBError,
    main,
    summarize_monitoring,
)

pytestmark = pytest.mark.timeout(300)


def double(x: int) -> int:
    return 2 * x


def broken_stage(x: int) -> int:
    raise ValueError(f"stage failed on {x}")


def monitored_site() -> SiteConfig:
    site = SiteConfig(name="monitored", monitoring=MonitoringSettings(enabled=True))
    site.resources["light"] = StageResources(max_parallel_tasks=2)
    return site


def test_run_writes_db_and_summary_after_the_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "campaign"
    with Engine(monitored_site(), run_dir) as engine:
        results = [engine.submit("light", double, i) for i in range(3)]
        program = engine.run_program("dft", ["sleep", "0.3"], tmp_path / "task")
        failing = engine.submit("dft", broken_stage, 7)
        assert [f.result() for f in results] == [0, 2, 4]
        assert program.result().ok
        with pytest.raises(ValueError, match="stage failed on 7"):
            failing.result()
    assert (run_dir / "monitoring.db").is_file()
    written = json.loads((run_dir / "monitoring_summary.json").read_text())
    summary = summarize_monitoring(run_dir / "monitoring.db")
    # the summary names its db by file name (it sits next to it): a moved folder stays right
    assert written == {**summary.to_dict(), "db": "monitoring.db"}
    assert (summary.runs, summary.tasks, summary.succeeded, summary.failed) == (1, 5, 4, 1)
    by_exec = {e.executor: e for e in summary.executors}
    assert (by_exec["light"].tasks, by_exec["light"].failed) == (3, 0)
    assert (by_exec["dft"].tasks, by_exec["dft"].failed) == (2, 1)
    # an error raised by the stage itself is final: not retried (infrastructure only)
    assert by_exec["dft"].retried == 0 and by_exec["dft"].tries == 2
    assert by_exec["dft"].max_try_s >= 0.3  # the sleep program ran inside the try
    assert "dft" in summary.table() and "5 tasks (1 failed)" in summary.table()

    # a resumed campaign adds a second workflow run to the same db
    with Engine(monitored_site(), run_dir) as engine:
        assert engine.submit("light", double, 5).result() == 10
    again = summarize_monitoring(run_dir / "monitoring.db")
    assert (again.runs, again.tasks) == (2, 6)
    assert json.loads((run_dir / "monitoring_summary.json").read_text())["tasks"] == 6


def test_monitoring_off_writes_nothing(tmp_path: Path) -> None:
    with Engine(SiteConfig(), tmp_path / "run") as engine:
        assert engine.submit("light", double, 1).result() == 2
    assert not (tmp_path / "run" / "monitoring.db").exists()
    assert not (tmp_path / "run" / "monitoring_summary.json").exists()


def test_missing_or_foreign_db_is_a_named_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(MonitoringDBError, match="monitoring database not found"):
        summarize_monitoring(tmp_path / "nope.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(MonitoringDBError, match=f"{garbage}: not an SQLite database"):
        summarize_monitoring(garbage)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table x (a int)").connection.commit()
    with pytest.raises(MonitoringDBError, match="not a Parsl monitoring database"):
        summarize_monitoring(other)
    assert main([str(other)]) == 1
    assert "not a Parsl monitoring database" in capsys.readouterr().err
