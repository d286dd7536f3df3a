"""Summary of a Parsl monitoring database, read after the run (never live: reading the db
while Parsl writes it can lock it).

Parsl writes ``<run_dir>/monitoring.db`` (SQLite) when the site enables ``monitoring``; every
Engine session of a campaign (a resume too) adds one workflow run. :func:`summarize_monitoring`
turns it into per-executor figures for the report: tasks, failures, retries, task run times
and the batch jobs (blocks) used. Plain sqlite3: no Parsl import needed to read it.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

MONITORING_DB = "monitoring.db"
SUMMARY_FILE = "monitoring_summary.json"
FAILED_STATES = {"failed", "dep_fail"}
DONE_STATES = {"exec_done", "memo_done"}


class MonitoringDBError(ValueError):
    """The file is missing or is not a Parsl monitoring database."""


@dataclass
class ExecutorSummary:
    executor: str
    tasks: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    tries: int = 0
    mean_try_s: float = 0.0
    max_try_s: float = 0.0
    blocks: int = 0
    job_ids: list[str] = field(default_factory=list)


@dataclass
class MonitoringSummary:
    db: str
    runs: int
    wall_time_s: float
    tasks: int
    succeeded: int
    failed: int
    executors: list[ExecutorSummary]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def table(self) -> str:
        """A plain-text table, one line per executor (stage class)."""
        head = (f"{'executor':10s} {'tasks':>6s} {'ok':>5s} {'failed':>6s} {'retried':>7s} "
                f"{'mean s':>8s} {'max s':>8s} {'blocks':>6s}")
        lines = [head, "-" * len(head)]
        for e in self.executors:
            lines.append(f"{e.executor:10s} {e.tasks:6d} {e.succeeded:5d} {e.failed:6d} "
                         f"{e.retried:7d} {e.mean_try_s:8.2f} {e.max_try_s:8.2f} {e.blocks:6d}")
        lines.append(f"{self.runs} run(s), {self.wall_time_s:.1f} s of workflow wall time, "
                     f"{self.tasks} tasks ({self.failed} failed)")
        return "\n".join(lines)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _connect(db: Path) -> sqlite3.Connection:
    if not db.is_file():
        raise MonitoringDBError(f"{db}: monitoring database not found (is monitoring.enabled "
                                "set in the site YAML, and has a run finished?)")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    except sqlite3.DatabaseError as exc:
        raise MonitoringDBError(f"{db}: not an SQLite database ({exc})") from None
    missing = {"workflow", "task", "try", "status"} - tables
    if missing:
        con.close()
        raise MonitoringDBError(f"{db}: not a Parsl monitoring database "
                                f"(tables {sorted(missing)} missing)")
    return con


def summarize_monitoring(db: str | Path, run_id: str | None = None) -> MonitoringSummary:
    """Per-executor figures over all workflow runs in ``db`` (or only ``run_id``)."""
    db = Path(db)
    con = _connect(db)
    where, args = ("where run_id = ?", (run_id,)) if run_id else ("", ())
    try:
        runs = con.execute(f"select time_began, time_completed from workflow {where}",
                           args).fetchall()
        last_state: dict[tuple[str, int], str] = {}
        for rid, task, state in con.execute(
                f"select run_id, task_id, task_status_name from status {where} "
                "order by timestamp", args):
            last_state[(rid, task)] = state
        per_exec: dict[str, ExecutorSummary] = {}
        durations: dict[str, list[float]] = defaultdict(list)
        tries_of_task: dict[tuple[str, int], int] = defaultdict(int)
        executor_of_task: dict[tuple[str, int], str] = {}
        for rid, task, executor, launched, returned in con.execute(
                "select run_id, task_id, task_executor, task_try_time_launched, "
                f"task_try_time_returned from try {where}", args):
            tries_of_task[(rid, task)] += 1
            executor_of_task[(rid, task)] = executor
            start, end = _time(launched), _time(returned)
            if start and end:
                durations[executor].append((end - start).total_seconds())
        for key, executor in executor_of_task.items():
            summary = per_exec.setdefault(executor, ExecutorSummary(executor))
            summary.tasks += 1
            summary.tries += tries_of_task[key]
            summary.retried += tries_of_task[key] > 1
            state = last_state.get(key, "")
            summary.succeeded += state in DONE_STATES
            summary.failed += state in FAILED_STATES
        if "block" in {r[0] for r in con.execute("select name from sqlite_master")}:
            blocks: dict[str, set[str]] = defaultdict(set)
            jobs: dict[str, set[str]] = defaultdict(set)
            for rid, executor, block, job in con.execute(
                    f"select run_id, executor_label, block_id, job_id from block {where}", args):
                blocks[executor].add(f"{rid}:{block}")
                if job:
                    jobs[executor].add(str(job))
            for executor, ids in blocks.items():
                summary = per_exec.setdefault(executor, ExecutorSummary(executor))
                summary.blocks = len(ids)
                summary.job_ids = sorted(jobs[executor])
    finally:
        con.close()
    for executor, values in durations.items():
        per_exec[executor].mean_try_s = sum(values) / len(values)
        per_exec[executor].max_try_s = max(values)
    wall = 0.0
    for began, completed in runs:
        start, end = _time(began), _time(completed)
        if start and end:
            wall += (end - start).total_seconds()
    executors = sorted(per_exec.values(), key=lambda e: e.executor)
    return MonitoringSummary(
        db=str(db), runs=len(runs), wall_time_s=wall,
        tasks=sum(e.tasks for e in executors), succeeded=sum(e.succeeded for e in executors),
        failed=sum(e.failed for e in executors), executors=executors)


def write_monitoring_summary(run_dir: str | Path) -> Path | None:
    """Summarise ``run_dir/monitoring.db`` into ``run_dir/monitoring_summary.json`` (what the
    report reads). Returns None when the run has no monitoring db."""
    run_dir = Path(run_dir)
    db = run_dir / MONITORING_DB
    if not db.is_file():
        return None
    out = run_dir / SUMMARY_FILE
    tmp = out.with_suffix(".json.tmp")
    summary = summarize_monitoring(db)
    summary.db = db.name  # next to the summary: stays right when the folder moves
    tmp.write_text(json.dumps(summary.to_dict(), indent=1))
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table of RUN_DIR/monitoring.db (or of a db file); ``make monitor`` calls it."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: monitoring RUN_DIR|monitoring.db", file=sys.stderr)
        return 2
    target = Path(args[0])
    db = target / MONITORING_DB if target.is_dir() else target
    try:
        print(summarize_monitoring(db).table())
    except MonitoringDBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
