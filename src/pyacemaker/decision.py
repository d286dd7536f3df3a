"""The loop's one decision: given what has happened, what to do next (or why to stop).

:func:`decide` is a pure function of a :class:`History` (built from the campaign state by
the driver) and the campaign config. The driver (``campaign.py``) asks it after every stage
and does what it says, so resuming after a kill needs no special case: the history already
says which stages of the current iteration are done.

An iteration:

    iteration 0:  generate -> label -> fit [-> validate]                  (cold start)
    iteration k:  explore [-> validate_previous] -> select -> label -> fit [-> validate]

Iteration k skips select/label/fit when exploration found nothing to learn: no frame above
gamma_lower, or no halt while the potential's validation already said GO. At the end of an
iteration ("a boundary") the stop rule is, in order:

1. converged: the current potential explored without a halt (it was not refitted in this
   iteration), its validation said GO, and every engine that must run quietly before
   convergence (kMC) has. GO includes the one set of error targets
   (``validation.energy_rmse_mev_per_atom`` ...), judged by the gate on held-out data, so
   no second set of targets exists here. With ``stopping.require_no_halts: false`` a
   potential whose validation said GO converges even if its exploration halted.
2. budget: ``max_iterations`` reached, then ``max_dft_calls``, then ``max_wall_time_h``.

Otherwise the next iteration starts. Budgets are judged at boundaries only, so an
iteration that labelled its last affordable structures still fits on them.

The gate of an iteration's fit runs in the background, beside the next iteration's
exploration (``validation_pending``): its verdict decides nothing until that exploration is
done. Any step but exploration and the start of the next iteration first waits for it
(``await_validation``), and so does the stop rule whenever it could stop or converge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pyacemaker.config import CampaignConfig

Stage = Literal["generate", "label", "fit", "validate", "explore", "validate_previous",
                "select"]
COLD_START: tuple[Stage, ...] = ("generate", "label", "fit")
LEARN: tuple[Stage, ...] = ("select", "label", "fit")


@dataclass(frozen=True)
class History:
    """What the decision needs to know about the campaign so far (no paths, no files)."""

    iteration: int
    done: frozenset[str] = frozenset()  # stages finished in the current iteration
    halts: int = 0  # exploration tasks that halted in the current iteration
    frames: int = 0  # frames above gamma_lower found in the current iteration
    potential_iteration: int | None = None  # iteration that fitted the current potential
    # the current potential's validation verdict ("GO", "NO-GO (reasons)"; None: none yet)
    verdict: str | None = None
    dft_calls: int = 0
    elapsed_h: float = 0.0
    # engines that must explore (quietly) in this iteration before it may converge
    pending_engines: tuple[str, ...] = field(default=())
    validation_pending: bool = False  # the current potential's gate is still running


@dataclass(frozen=True)
class Decision:
    """Run ``stage`` next, or start the next iteration, or stop with ``reason``."""

    action: Literal["run", "next_iteration", "stop", "await_validation"]
    stage: Stage | None = None
    reason: str = ""

    @property
    def stop(self) -> bool:
        return self.action == "stop"


def _run(stage: Stage, reason: str = "") -> Decision:
    return Decision("run", stage, reason)


def _after_validation(decision: Decision, history: History) -> Decision:
    """``decision``, or first wait for the gate running in the background: only exploration
    and the start of the next iteration go on without its verdict."""
    if not history.validation_pending or decision.stage == "explore" \
            or decision.action == "next_iteration":
        return decision
    return Decision("await_validation", reason=f"{decision.action} {decision.stage or ''}"
                    .strip() + " waits for the gate of the current potential")


def potential_problems(history: History, config: CampaignConfig) -> list[str]:
    """Why the current potential is not good enough yet (empty: its validation said GO)."""
    if history.potential_iteration is None:
        return ["no potential yet"]
    if history.verdict is None:
        return [f"the potential of iteration {history.potential_iteration} is not validated"]
    if not history.verdict.startswith("GO"):
        return [f"validation {history.verdict}"]
    return []


def not_converged_because(history: History, config: CampaignConfig) -> list[str]:
    """What a quiet iteration still lacks to be converged (empty: nothing)."""
    pending = [f"{engine} exploration has not run yet" for engine in history.pending_engines]
    return potential_problems(history, config) + pending


def _iteration_work(history: History, config: CampaignConfig) -> Decision | None:
    """The next stage of the current iteration, or None when the iteration is complete."""
    validate: tuple[Stage, ...] = (
        ("validate",) if config.validation.validate_every_iteration else ())
    if history.iteration == 0:
        for stage in COLD_START + validate:
            if stage not in history.done:
                return _run(stage, "cold start")
        return None
    if "fit" in history.done:  # learned in this iteration: finish it
        return next((_run(s) for s in validate if s not in history.done), None)
    if "explore" not in history.done:
        return _run("explore")
    quiet = history.halts == 0
    if quiet and history.verdict is None and "validate_previous" not in history.done:
        return _run("validate_previous", "the stop rule needs a verdict on the potential "
                    "that explored without a halt")
    nothing_to_learn = history.frames == 0 or (
        quiet and not potential_problems(history, config))
    if nothing_to_learn:
        return None
    for stage in LEARN + validate:
        if stage not in history.done:
            why = ("no halt, but " + "; ".join(potential_problems(history, config))
                   + ": learning from the frames above gamma_lower") if quiet else ""
            return _run(stage, why if stage == "select" else "")
    return None


def decide(history: History, config: CampaignConfig) -> Decision:
    """The next step of the campaign; see the module docstring for the rule."""
    work = _iteration_work(history, config)
    if work is not None:
        return _after_validation(work, history)
    it = history.iteration
    explored_quietly = it > 0 and "fit" not in history.done and history.halts == 0
    may_converge = explored_quietly or (
        not config.stopping.require_no_halts and history.potential_iteration is not None)
    if may_converge and history.validation_pending:
        return Decision("await_validation", reason="the stop rule waits for the gate")
    waiting = not_converged_because(history, config)
    if may_converge and not waiting:
        if explored_quietly:
            return Decision("stop", reason=f"converged: no exploration task halted in "
                            f"iteration {it}, validation GO")
        return Decision("stop", reason="converged: validation GO "
                        "(stopping.require_no_halts is off)")
    budget = _budget_stop(history, config, waiting)
    if budget is not None:
        return _after_validation(budget, history)
    reason = ("no halts, but " + "; ".join(waiting)) if explored_quietly and waiting else ""
    return Decision("next_iteration", reason=reason)


def _budget_stop(history: History, config: CampaignConfig, waiting: list[str]) -> Decision | None:
    al = config.active_learning
    if history.iteration >= al.max_iterations:
        return Decision("stop", reason=f"budget: max_iterations={al.max_iterations} reached"
                        + (f" (not converged: {'; '.join(waiting)})" if waiting else ""))
    if history.dft_calls >= al.max_dft_calls:
        return Decision("stop", reason=f"budget: max_dft_calls={al.max_dft_calls} reached "
                        f"({history.dft_calls} calls)")
    if history.elapsed_h >= al.max_wall_time_h:
        return Decision("stop", reason=f"budget: max_wall_time_h={al.max_wall_time_h} reached")
    return None
