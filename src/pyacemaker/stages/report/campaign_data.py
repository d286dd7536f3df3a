"""What the report shows, gathered from a campaign folder (read-only)."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from pyacemaker.datastore import DataStore
from pyacemaker.layout import all_exploration_summaries
from pyacemaker.stages.explore.engines import engine_for
from pyacemaker.stages.explore.result import read_records
from pyacemaker.state import WorkflowState

MONITORING_FILE = "monitoring.db"


class IterationRow(BaseModel):
    iteration: int
    labelled: int = 0
    quarantined: int = 0
    halts: int | None = None
    dataset_size: int = Field(0, description="Labelled structures up to this iteration.")


class HealingSummary(BaseModel):
    structures_healed: int = Field(0, description="Labelled after at least one healing step.")
    structures_quarantined: int = 0
    attempts: int = 0
    strategies: dict[str, int] = Field(default_factory=dict)
    quarantine_reasons: dict[str, int] = Field(default_factory=dict)


class MonitoringRow(BaseModel):
    app: str
    tasks: int
    failed_tries: int
    mean_s: float | None
    max_s: float | None


class CampaignData(BaseModel):
    iterations: list[IterationRow]
    provenance_counts: dict[str, int]
    gamma_by_provenance: dict[str, list[float]]
    healing: HealingSummary
    monitoring: list[MonitoringRow] | None = None
    monitoring_source: str = ""


class KMCRow(BaseModel):
    """One kMC exploration task, from the iteration's summary.json and its kmc_log.json."""

    iteration: int
    task: str
    halted: bool
    steps: int
    simulated_time_s: float | None = None
    barriers_ev: list[float] = Field(default_factory=list)
    max_gamma: float
    message: str = ""
    residence_ratio: float | None = None  # mean drawn dt / mean 1/R, ~1 +- 1/sqrt(steps)
    tables: list[dict[str, Any]] = Field(default_factory=list)  # kmc_log.json "tables"


def collect_kmc(workdir: Path) -> list[KMCRow]:
    rows = []
    for summary in all_exploration_summaries(Path(workdir)):
        for record in read_records(summary):
            if engine_for(record.task.engine).family != "kmc":
                continue
            log_path = summary.parent / record.task.name / "kmc_log.json"
            log = json.loads(log_path.read_text()) if log_path.exists() else {}
            rows.append(KMCRow(
                iteration=record.iteration, task=record.task.name, halted=record.halted,
                steps=record.steps_done, simulated_time_s=log.get("simulated_time_s"),
                barriers_ev=[float(step["barrier"]) for step in log.get("steps", [])],
                max_gamma=record.max_gamma, message=record.message,
                residence_ratio=log.get("residence_time", {}).get("ratio"),
                tables=log.get("tables", [])))
    return rows


def _attempt_name(attempt: Any) -> str:
    if isinstance(attempt, dict):
        for key in ("strategy", "action", "name", "fix", "step"):
            if attempt.get(key):
                return str(attempt[key])
        return "attempt"
    return str(attempt)


def collect_datastore(store: DataStore, state: WorkflowState) -> CampaignData:
    per_iteration: dict[int, Counter[str]] = defaultdict(Counter)
    gammas: dict[str, list[float]] = defaultdict(list)
    healing = HealingSummary()
    strategies: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for row in store.rows():
        status = row.get("status", "candidate")
        iteration = int(row.get("iteration", 0) or 0)
        per_iteration[iteration][status] += 1
        gamma = row.get("gamma_max")
        if gamma is not None:
            gammas[str(row.get("provenance", "unknown"))].append(float(gamma))
        history = row.data.get("healing") if row.data else None
        if history:
            attempts = history if isinstance(history, list) else [history]
            healing.attempts += len(attempts)
            strategies.update(_attempt_name(a) for a in attempts)
            if status == "labelled":
                healing.structures_healed += 1
        if status == "quarantined":
            healing.structures_quarantined += 1
            reasons[str(row.get("reason", "no reason recorded"))[:120]] += 1
    healing.strategies = dict(strategies.most_common())
    healing.quarantine_reasons = dict(reasons.most_common(10))
    known = set(per_iteration) | set(state.halts) | {p.iteration for p in state.potentials}
    rows, total = [], 0
    for iteration in sorted(known):
        counts = per_iteration.get(iteration, Counter())
        total += counts["labelled"]
        rows.append(IterationRow(iteration=iteration, labelled=counts["labelled"],
                                 quarantined=counts["quarantined"],
                                 halts=state.halts.get(iteration), dataset_size=total))
    return CampaignData(iterations=rows, provenance_counts=store.provenance_counts(),
                        gamma_by_provenance=dict(gammas), healing=healing)


def _seconds(start: Any, end: Any) -> float | None:
    if not start or not end:
        return None
    try:
        return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))
                ).total_seconds()
    except ValueError:
        return None


def read_monitoring_db(path: Path) -> list[MonitoringRow]:
    """Per-app task counts and durations from a Parsl monitoring db, opened read-only
    (after the run: reading it live can lock it)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tasks = connection.execute(
            "SELECT task_func_name, task_time_invoked, task_time_returned, task_fail_count "
            "FROM task").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path}: not a Parsl monitoring database: {exc}") from exc
    finally:
        connection.close()
    by_app: dict[str, list[tuple[float | None, int]]] = defaultdict(list)
    for name, invoked, returned, fails in tasks:
        by_app[str(name)].append((_seconds(invoked, returned), int(fails or 0)))
    rows = []
    for app, entries in sorted(by_app.items()):
        durations = [d for d, _ in entries if d is not None]
        rows.append(MonitoringRow(
            app=app, tasks=len(entries), failed_tries=sum(f for _, f in entries),
            mean_s=sum(durations) / len(durations) if durations else None,
            max_s=max(durations) if durations else None))
    return rows


class MonitoringData(BaseModel):
    source: str
    overview: dict[str, float] = Field(default_factory=dict,
                                       description="runs, wall_time_s, tasks, succeeded, failed")
    executors: list[dict[str, Any]] = Field(default_factory=list)
    apps: list[MonitoringRow] = Field(default_factory=list)


def find_monitoring_db(workdir: Path) -> Path | None:
    """``monitoring.db`` in the campaign folder or one level below (the Parsl run dir)."""
    for candidate in [Path(workdir) / MONITORING_FILE,
                      *sorted(Path(workdir).glob(f"*/{MONITORING_FILE}"))]:
        if candidate.is_file():
            return candidate
    return None


def collect_monitoring(workdir: Path) -> MonitoringData | None:
    """The execution layer's per-executor summary (its monitoring_summary.json, or computed
    from the db) plus per-app counts read from the db, read-only, after the run."""
    db = find_monitoring_db(workdir)
    if db is None:
        return None
    data = MonitoringData(source=str(db), apps=read_monitoring_db(db))
    summary: dict[str, Any] | None = None
    saved = db.parent / "monitoring_summary.json"
    if saved.is_file():
        summary = json.loads(saved.read_text())
    else:
        try:
            from pyacemaker.execution.monitoring import summarize_monitoring
        except ImportError:
            summarize_monitoring = None
        if summarize_monitoring is not None:
            summary = asdict(summarize_monitoring(db))
    if summary:
        data.overview = {k: float(summary[k]) for k in
                         ("runs", "wall_time_s", "tasks", "succeeded", "failed") if k in summary}
        data.executors = list(summary.get("executors", []))
    return data
