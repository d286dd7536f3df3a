"""The driver: a small loop over stages that decides, delegates and records.

It holds no science: stages live in ``pyacemaker.stages``, execution in
``pyacemaker.execution``. State is saved after every stage transition; every stage is
idempotent given the data lake, so running the same command again after a kill resumes
where the killed run stopped without redoing finished DFT or fits.

    iteration 0:  generate -> label -> fit
    iteration k:  explore -> select -> label -> fit     (until a stop criterion holds)

What to do next is decided by :func:`pyacemaker.decision.decide`; exploration engines are
asked through their protocol (stages/explore/engines.py), never by name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase.io import read, write

from pyacemaker import layout
from pyacemaker.config import CampaignConfig, SiteConfig
from pyacemaker.config_changes import CONFIG_COPY  # noqa: F401 - the config copy's name
from pyacemaker.datastore import DataStore
from pyacemaker.logs import log_results
from pyacemaker.decision import History, decide
from pyacemaker.stages.explore.engines import ENGINES, START_POOL_FILE, engine_for
from pyacemaker.stages.explore.result import ExplorationRecord, read_records, write_records
from pyacemaker.state import WorkflowState, save_state

log = logging.getLogger(__name__)
DATASTORE_FILE = "data.db"


class CampaignFailed(RuntimeError):
    """A stage failed in a way the loop cannot work around; the state says where."""


@dataclass
class Campaign:
    config: CampaignConfig
    site: SiteConfig
    workdir: Path
    state: WorkflowState
    datastore: DataStore
    engine: Any = None
    _started: float = field(default_factory=time.monotonic)
    after_each_stage: Callable[[], None] | None = None  # a detached driver's hand-over check
    _gate: tuple[int, Any, float] | None = None  # background gate: iteration, future, start

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, config: CampaignConfig, site: SiteConfig, workdir: Path,
             force: bool = False) -> Campaign:
        """Resume or start the campaign of ``workdir``; a physics change since it started
        is refused, or with ``force`` started over (resume.py, config_changes.py)."""
        from pyacemaker.images.pinning import pin_site_images
        from pyacemaker.resume import open_campaign_state

        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        state = open_campaign_state(workdir, config, force=force)
        site, state.images = pin_site_images(site, workdir, state.images, force=force)
        save_state(state, workdir)
        return cls(config, site, workdir, state, DataStore(workdir / DATASTORE_FILE))

    # ------------------------------------------------------------------ the loop
    def run(self, continue_finished: bool = False) -> WorkflowState:
        """Run until a stop criterion holds. A finished campaign is left alone unless
        ``continue_finished``: then it goes on under the current config's budgets (raise
        ``max_iterations`` or ``max_dft_calls`` first, or it stops again at once)."""
        from pyacemaker.children import reap_stale_children
        from pyacemaker.execution import Engine

        reap_stale_children(self.workdir)  # programs a killed driver left running here
        if self.state.finished:
            if not continue_finished:
                log.info("campaign already finished: %s (to go on with larger budgets, run "
                         "again with --continue)", self.state.stop_reason)
                return self.state
            log.info("continuing a finished campaign (it had stopped: %s)",
                     self.state.stop_reason)
            self.state.finished = False
            self.state.stop_reason = None
            save_state(self.state, self.workdir)
        self._started = time.monotonic()
        try:
            with Engine(self.site, self.workdir) as engine:
                self.engine = engine
                self._resume_gate()
                self._loop()
        finally:
            self.state.elapsed_s += time.monotonic() - self._started
            self._started = time.monotonic()
            save_state(self.state, self.workdir)
        self._write_report()
        log_results(self.state, self.datastore, self.workdir)
        return self.state

    def _loop(self) -> None:
        """Ask :func:`pyacemaker.decision.decide` what to do next, do it, repeat."""
        announced = False
        while True:
            decision = decide(self._history(), self.config)
            if decision.stop:
                self._finish(decision.reason)
                return
            if decision.action == "await_validation":
                self._collect_gate(wait=True)
                continue
            if decision.action == "next_iteration":
                if decision.reason:
                    log.info("%s", decision.reason)
                self.state.iteration += 1
                save_state(self.state, self.workdir)
                announced = False
                continue
            if not announced:
                log.info("== iteration %d%s", self.state.iteration,
                         ": cold start" if self.state.iteration == 0 else "")
                announced = True
            if decision.stage == "select" and decision.reason:
                log.info("   %s", decision.reason)
            assert decision.stage is not None
            self._stage(decision.stage, self._stage_work(decision.stage))

    def _stage_work(self, stage: str) -> Callable[[], str]:
        work: dict[str, Callable[[], str]] = {
            "generate": self._generate_initial, "label": self._label_candidates,
            "fit": self._fit, "validate": self._validate_in_background,
            "validate_previous": self._validate_now,
            "explore": self._explore, "select": self._select,
        }
        return work[stage]

    def _history(self) -> History:
        """The campaign so far, as the decision function sees it."""
        self._collect_gate(wait=False)
        state = self.state
        pot = state.potential
        return History(
            iteration=state.iteration, done=state.stages_done(),
            halts=state.halts.get(state.iteration, 0),
            frames=self._frames_found(),
            potential_iteration=pot.iteration if pot else None,
            verdict=state.validation.get(pot.iteration) if pot else None,
            dft_calls=self.dft_calls(),
            elapsed_h=(state.elapsed_s + time.monotonic() - self._started) / 3600,
            pending_engines=tuple(self._pending_engines()),
            validation_pending=self._gate is not None)

    def _write_report(self) -> None:
        from pyacemaker.release import report_campaign

        try:
            path = report_campaign(self.workdir)
            log.info("report: %s", path)
        except Exception as exc:  # a report problem must not hide the campaign's results
            log.warning("could not write the report: %s", exc)

    def _stage(self, name: str, work: Callable[[], str]) -> None:
        """Run one stage unless it is done already in this iteration; record the outcome."""
        if self.state.status_of(name) == "done":
            log.info("   %s: done before, skipped", name)
            return
        self.state.mark(name, "running")
        save_state(self.state, self.workdir)
        started = time.monotonic()
        try:
            message = work()
            self.datastore.after_stage(self.state, name)  # backup; empty cold start
        except Exception as exc:
            self.state.mark(name, "failed", f"{type(exc).__name__}: {exc}"[:2000])
            save_state(self.state, self.workdir)
            raise
        self.state.mark(name, "done", message)
        save_state(self.state, self.workdir)
        log.info("   %s: %s (%.0f s)", name, message, time.monotonic() - started)
        if self.after_each_stage is not None:
            self.after_each_stage()

    # ------------------------------------------------------------------ facts
    def _frames_found(self) -> int:
        if self.state.iteration in self.state.frames:
            return self.state.frames[self.state.iteration]
        # a state written before frame counts were recorded
        path = layout.exploration_frames(self.workdir, self.state.iteration)
        return len(read(path, index=":")) if path.exists() else 0

    def _pending_engines(self) -> list[str]:
        """Engines that must explore in this iteration before it may converge and have not."""
        ran = {record.task.engine for record in
               read_records(layout.exploration_summary(self.workdir, self.state.iteration))}
        return [engine.label for name, engine in ENGINES.items()
                if engine.needed_before_convergence(self.config) and name not in ran]

    def _validate_in_background(self) -> str:
        """The gate of a new fit runs beside the next exploration (decision.py says when
        its verdict is waited for). A potential kept over a worse fit is judged again:
        the validation set has grown."""
        self._submit_gate()
        return "the gate runs in the background, beside the next exploration"

    def _validate_now(self) -> str:
        self._submit_gate()
        return self._collect_gate(wait=True) or ""

    def _submit_gate(self) -> None:
        from pyacemaker.execution.validating import submit_validation

        pot = self.state.potential
        assert pot is not None and self._gate is None
        future = submit_validation(self.engine, pot, self.config, self.workdir,
                                   self.workdir / DATASTORE_FILE)
        self._gate = (pot.iteration, future, time.monotonic())

    def _collect_gate(self, wait: bool) -> str | None:
        """Record the background gate's verdict once it is in (``wait``: block for it)."""
        if self._gate is None or not (wait or self._gate[1].done()):
            return None
        iteration, future, started = self._gate
        self._gate = None
        report = future.result()  # a bug in the gate surfaces here with its traceback
        reasons = "; ".join(report.reasons[:3])
        self.state.validation[iteration] = "GO" if report.passed else f"NO-GO ({reasons})"
        save_state(self.state, self.workdir)
        message = f"{report.verdict}" + (f": {reasons}" if reasons else "")
        log.info("   validate (potential of iteration %d): %s (%.0f s)", iteration, message,
                 time.monotonic() - started)
        return message

    def _resume_gate(self) -> None:
        """A driver stopped while its gate ran in the background: run that gate again."""
        pot = self.state.potential
        if pot is not None and pot.iteration not in self.state.validation and any(
                "validate" in self.state.stages_done(it)
                for it in range(pot.iteration, self.state.iteration + 1)):
            self._submit_gate()

    def _finish(self, reason: str) -> None:
        from pyacemaker.release import hand_over_best

        handed_over = hand_over_best(self.state, self.workdir)  # never a worse one than it had
        self.state.finished = True
        self.state.stop_reason = reason + (f"; handed over {handed_over}" if handed_over else "")
        save_state(self.state, self.workdir)
        log.info("== campaign stopped: %s", reason)

    # ------------------------------------------------------------------ helpers
    def dft_calls(self) -> int:
        return self.datastore.count(status="labelled") + self.datastore.count(status="quarantined")

    def _iter_dir(self, *parts: str) -> Path:
        folder = self.state.iteration_dir(self.workdir).joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _rng(self, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, self.state.iteration, salt])

    # ------------------------------------------------------------------ stages
    def _generate_initial(self) -> str:
        from pyacemaker.stages.generate import initial_structures

        al = self.config.active_learning
        structures = initial_structures(self.config, al.initial_structures, self._rng())
        for atoms in structures:
            atoms.info.setdefault("provenance", "coldstart")
            atoms.info["iteration"] = 0
        write(self.workdir / START_POOL_FILE, structures, format="extxyz")
        new = self.datastore.add_many(structures)
        return f"{len(structures)} initial structures ({len(new)} new in the data lake)"

    def _label_candidates(self) -> str:
        from pyacemaker.execution.labelling import label_batch
        from pyacemaker.stages.oracle.base import make_oracle

        ids = [row.id for row in self.datastore.rows(status="candidate")]
        if not ids:
            return "nothing to label"
        budget = self.config.active_learning.max_dft_calls - self.dft_calls()
        if budget <= 0:
            return f"DFT budget exhausted; {len(ids)} candidates left unlabelled"
        ids = ids[:budget]
        oracle = make_oracle(self.config, self.site.programs)
        log.info("   labelling %d structures with %s", len(ids), oracle.name)

        def progress(done: int, total: int, note: str = "") -> None:
            log.info("   label: %d/%d done%s", done, total, f", {note}" if note else "")

        counts = label_batch(self.engine, self.datastore, ids, oracle,
                             self._iter_dir("label"), progress=progress)
        self.state.dft_calls = self.dft_calls()
        return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))

    def _fit(self) -> str:
        from pyacemaker.campaign_fit import fit_iteration

        return fit_iteration(self)

    def _explore(self) -> str:
        from pyacemaker.execution.exploring import explore_many, lammps_available
        from pyacemaker.stages.policy import plan_exploration

        has_lammps = lammps_available(self.site, self.config.exploration.engine)
        tasks = plan_exploration(self._exploration_history(), self.config, self.state.iteration,
                                 lammps_available=has_lammps)
        starts = {name: engine_for(name).start_structures(self.config, self.workdir)
                  for name in sorted({t.engine for t in tasks})}
        folder = self._iter_dir(layout.EXPLORE)
        log.info("   %d exploration tasks: %s", len(tasks),
                 ", ".join(f"{t.name} ({t.engine}, {t.temperature:.0f} K)" for t in tasks))
        assert self.state.potential is not None
        # kept in task order, not the order they finish in: the same campaign selects the same
        order = {task.name: k for k, task in enumerate(tasks)}
        finished, failures = [], []
        for outcome in explore_many(self.engine, tasks, starts, self.state.potential,
                                    self.config, folder):
            if outcome.result is None:
                failures.append(f"{outcome.task.name}: {outcome.error}")
                log.warning("   %s failed: %s", outcome.task.name, outcome.error)
                continue
            result = outcome.result
            finished.append((order[outcome.task.name], result))
            unit = engine_for(outcome.task.engine).step_unit
            log.info("   %s: %s, max gamma %.2f (%s)", outcome.task.name,
                     f"HALTED at {unit} {result.halt_step}" if result.halted
                     else "ran its full length", result.max_gamma, result.message)
        finished.sort(key=lambda item: item[0])
        summaries = [result.record() for _, result in finished]
        frames = [frame for _, result in finished for frame in result.frames]
        for frame in frames:
            frame.info["iteration"] = self.state.iteration
        if not summaries:
            raise CampaignFailed("every exploration task failed:\n" + "\n".join(failures))
        write_records(folder / layout.SUMMARY_FILE, summaries)
        if frames:
            write(folder / layout.FRAMES_FILE, frames, format="extxyz")
        halts = sum(s.halted for s in summaries)
        self.state.halts[self.state.iteration] = halts
        self.state.frames[self.state.iteration] = len(frames)
        failed = f", {len(failures)} failed" if failures else ""
        return (f"{halts}/{len(tasks)} tasks halted{failed}, "
                f"{len(frames)} frames above gamma_lower")

    def _exploration_history(self) -> list[ExplorationRecord]:
        return [record for it in range(1, self.state.iteration)
                for record in read_records(layout.exploration_summary(self.workdir, it))]

    def _select(self) -> str:
        from pyacemaker.stages.halt_candidates import candidate_pool
        from pyacemaker.stages.select import deduplicate, select_d_optimal

        frames = read(layout.exploration_frames(self.workdir, self.state.iteration), index=":")
        pool = candidate_pool(frames, self.config.exploration.target_atoms,
                              self.config.training.cutoff, self._rng(1))
        pool = deduplicate(pool, self.datastore.atoms(status="labelled"))
        n = self.config.active_learning.max_candidates_per_iteration
        pot = self.state.potential
        assert pot is not None and pot.asi is not None
        chosen = select_d_optimal(pool, Path(pot.yaml), Path(pot.asi), n)
        picked = [pool[i] for i in chosen]
        for atoms in picked:
            atoms.info["iteration"] = self.state.iteration
        new = self.datastore.add_many(picked)
        return f"{len(picked)} of {len(pool)} candidates chosen by D-optimality ({len(new)} new)"

