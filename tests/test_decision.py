"""The stop rule and the stage order, over made-up histories (pure logic, milliseconds)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pyacemaker.config import CampaignConfig
from pyacemaker.decision import History, decide, not_converged_because, potential_problems

CONFIG = CampaignConfig(elements=["Cu"], active_learning={
    "max_iterations": 5, "max_dft_calls": 100, "max_wall_time_h": 10})
GOOD = {"potential_iteration": 1, "verdict": "GO"}
ENERGY_NO_GO = ("NO-GO (energy RMSE on the held-out test split (6 structures): 12.3 meV/atom "
                "(target <= 10))")
LEARNED = frozenset({"explore", "select", "label", "fit", "validate"})


def history(iteration: int = 2, done: tuple[str, ...] = (), **facts: object) -> History:
    values = {**GOOD, **facts}
    return History(iteration=iteration, done=frozenset(done), **values)  # type: ignore[arg-type]


def config(**sections: dict[str, object]) -> CampaignConfig:
    data = CONFIG.model_dump()
    for name, values in sections.items():
        data[name] = {**data[name], **values}
    return CampaignConfig.model_validate(data)


# --------------------------------------------------------------------------- cold start

@pytest.mark.parametrize("done, expected", [
    ((), "generate"), (("generate",), "label"), (("generate", "label"), "fit"),
    (("generate", "label", "fit"), "validate"),
])
def test_cold_start_runs_its_stages_in_order(done: tuple[str, ...], expected: str) -> None:
    fresh = History(iteration=0, done=frozenset(done))
    decision = decide(fresh, CONFIG)
    assert decision.action == "run" and decision.stage == expected


def test_cold_start_without_validation_ends_after_the_fit() -> None:
    no_gate = config(validation={"validate_every_iteration": False})
    done = history(0, ("generate", "label", "fit"), verdict=None, potential_iteration=0)
    assert decide(done, no_gate).action == "next_iteration"


def test_a_finished_cold_start_never_converges() -> None:
    """Iteration 0 has not explored: a perfect fit is still not 'converged'."""
    done = history(0, ("generate", "label", "fit", "validate"), potential_iteration=0)
    assert decide(done, CONFIG).action == "next_iteration"


# --------------------------------------------------------------------------- an iteration

def test_an_iteration_starts_by_exploring() -> None:
    assert decide(history(3), CONFIG).stage == "explore"


def test_halts_lead_to_select_label_fit_validate() -> None:
    steps = []
    done: tuple[str, ...] = ("explore",)
    for _ in range(4):
        decision = decide(history(2, done, halts=2, frames=5), CONFIG)
        steps.append(decision.stage)
        done += (decision.stage,)  # type: ignore[operator]
    assert steps == ["select", "label", "fit", "validate"]


def test_quiet_exploration_of_an_unvalidated_potential_validates_it_first() -> None:
    decision = decide(history(2, ("explore",), verdict=None, frames=3), CONFIG)
    assert decision.stage == "validate_previous"


def test_quiet_but_failing_targets_learns_from_frames_with_a_reason() -> None:
    decision = decide(history(2, ("explore",), frames=3, verdict=ENERGY_NO_GO), CONFIG)
    assert decision.stage == "select"
    assert "no halt, but validation NO-GO (energy RMSE on the held-out" in decision.reason


def test_quiet_and_no_frames_is_complete_without_learning() -> None:
    bad = history(2, ("explore",), frames=0, verdict="NO-GO (C11 off)")
    decision = decide(bad, CONFIG)
    assert decision.action == "next_iteration"
    assert "validation NO-GO (C11 off)" in decision.reason


def test_resume_after_a_kill_during_labelling_continues_with_label() -> None:
    """A stage marked running (killed) is not done: it is run again."""
    decision = decide(history(2, ("explore", "select"), halts=1, frames=2), CONFIG)
    assert decision.stage == "label"


def test_after_a_fit_the_iteration_is_complete() -> None:
    decision = decide(history(2, tuple(LEARNED), halts=1, frames=2), CONFIG)
    assert decision.action == "next_iteration"


# --------------------------------------------------------------------------- converged

def test_converged_when_quiet_targets_met_and_go() -> None:
    decision = decide(history(2, ("explore",), frames=0), CONFIG)
    assert decision.stop
    assert decision.reason.startswith("converged: no exploration task halted in iteration 2")


def test_quiet_with_frames_but_good_potential_converges() -> None:
    decision = decide(history(2, ("explore",), frames=4), CONFIG)
    assert decision.stop and decision.reason.startswith("converged")


def test_not_converged_in_an_iteration_that_fitted() -> None:
    """The new potential has not explored yet: the next iteration must check it."""
    decision = decide(history(2, tuple(LEARNED), halts=0, frames=3, verdict=ENERGY_NO_GO),
                      CONFIG)
    assert decision.action == "next_iteration"


def test_pending_kmc_blocks_convergence() -> None:
    quiet = history(2, ("explore",), frames=0, pending_engines=("kMC",))
    decision = decide(quiet, CONFIG)
    assert decision.action == "next_iteration"
    assert "kMC exploration has not run yet" in decision.reason


def test_no_go_blocks_convergence() -> None:
    quiet = history(2, ("explore",), frames=0, verdict="NO-GO (phonons imaginary)")
    assert decide(quiet, CONFIG).action == "next_iteration"


def test_an_error_target_missed_on_held_out_data_blocks_convergence() -> None:
    """One set of error targets: the gate's, on held-out data; its NO-GO says which."""
    force = "NO-GO (force RMSE on the held-out test split (6 structures): 0.5 eV/A (target <= 0.2))"
    quiet = history(2, ("explore",), frames=0, verdict=force)
    decision = decide(quiet, CONFIG)
    assert decision.action == "next_iteration" and "force RMSE" in decision.reason


def test_the_old_stopping_error_targets_are_refused_with_where_they_went() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="stopping.energy_rmse_mev_per_atom is now "
                       "validation.energy_rmse_mev_per_atom"):
        CampaignConfig(elements=["Cu"], stopping={"energy_rmse_mev_per_atom": 5.0})


def test_require_no_halts_off_converges_despite_halts() -> None:
    relaxed = config(stopping={"require_no_halts": False})
    learned = history(2, tuple(LEARNED), halts=3, frames=5, potential_iteration=2)
    decision = decide(learned, relaxed)
    assert decision.stop and "require_no_halts is off" in decision.reason
    assert decide(learned, CONFIG).action == "next_iteration"  # the default waits


def test_require_no_halts_off_still_needs_targets_and_go() -> None:
    relaxed = config(stopping={"require_no_halts": False})
    learned = history(2, tuple(LEARNED), halts=3, frames=5, verdict="NO-GO (EOS)")
    assert decide(learned, relaxed).action == "next_iteration"


# --------------------------------------------------------------------------- budgets

def test_max_iterations_stops_at_the_end_of_that_iteration() -> None:
    mid = history(5, ("explore",), halts=1, frames=2)
    assert decide(mid, CONFIG).stage == "select"  # not cut short mid-iteration
    end = history(5, tuple(LEARNED), halts=1, frames=2, verdict=ENERGY_NO_GO)
    decision = decide(end, CONFIG)
    assert decision.stop and decision.reason.startswith("budget: max_iterations=5 reached")
    assert "not converged: validation NO-GO (energy RMSE" in decision.reason


def test_convergence_wins_over_the_iteration_budget() -> None:
    decision = decide(history(5, ("explore",), frames=0), CONFIG)
    assert decision.reason.startswith("converged")


def test_dft_budget_stops_at_a_boundary_only() -> None:
    spent = {"halts": 1, "frames": 2, "dft_calls": 100}
    assert decide(history(2, ("explore", "select"), **spent), CONFIG).stage == "label"
    decision = decide(history(2, tuple(LEARNED), **spent), CONFIG)
    assert decision.stop and decision.reason == "budget: max_dft_calls=100 reached (100 calls)"


def test_wall_time_budget() -> None:
    decision = decide(history(2, tuple(LEARNED), halts=1, frames=2, elapsed_h=10.5), CONFIG)
    assert decision.stop and decision.reason == "budget: max_wall_time_h=10.0 reached"


def test_budget_order_iterations_before_dft_calls() -> None:
    both = history(5, tuple(LEARNED), halts=1, frames=2, dft_calls=500)
    assert "max_iterations" in decide(both, CONFIG).reason


# --------------------------------------------------------------------------- problems

def test_problems_of_a_missing_potential() -> None:
    assert potential_problems(History(iteration=1), CONFIG) == ["no potential yet"]


def test_unvalidated_potential_is_a_problem() -> None:
    problems = potential_problems(history(verdict=None, potential_iteration=3), CONFIG)
    assert problems == ["the potential of iteration 3 is not validated"]


def test_not_converged_lists_everything_at_once() -> None:
    facts = replace(history(verdict="NO-GO (x)"), pending_engines=("kMC", "other"))
    reasons = not_converged_because(facts, CONFIG)
    assert reasons == ["validation NO-GO (x)", "kMC exploration has not run yet",
                       "other exploration has not run yet"]


# --------------------------------------------------------------------------- background gate

PENDING = {"verdict": None, "validation_pending": True}


def test_the_next_iteration_explores_while_the_gate_runs() -> None:
    after_fit = history(2, tuple(LEARNED), halts=1, frames=2, **PENDING)
    assert decide(after_fit, CONFIG).action == "next_iteration"
    assert decide(history(3, (), **PENDING), CONFIG).stage == "explore"
    cold = history(0, ("generate", "label", "fit", "validate"), **PENDING)
    assert decide(cold, CONFIG).action == "next_iteration"


def test_a_quiet_exploration_waits_for_the_verdict_and_does_not_revalidate() -> None:
    quiet = history(3, ("explore",), frames=0, **PENDING)
    assert decide(quiet, CONFIG).action == "await_validation"
    assert decide(replace(quiet, validation_pending=False, verdict="GO"), CONFIG).stop


def test_learning_and_the_next_gate_wait_for_the_running_one() -> None:
    halted = history(3, ("explore",), halts=2, frames=4, **PENDING)
    assert decide(halted, CONFIG).action == "await_validation"  # select: before any label
    refitted = history(3, ("explore", "select", "label", "fit"), halts=2, frames=4, **PENDING)
    assert decide(refitted, CONFIG).action == "await_validation"
    assert decide(replace(refitted, validation_pending=False), CONFIG).stage == "validate"


def test_no_stop_while_the_gate_runs() -> None:
    end = history(5, tuple(LEARNED), halts=1, frames=2, **PENDING)
    assert decide(end, CONFIG).action == "await_validation"
    done = replace(end, validation_pending=False, verdict=ENERGY_NO_GO)
    assert decide(done, CONFIG).reason.startswith("budget: max_iterations=5 reached")
    lenient = config(stopping={"require_no_halts": False})
    assert decide(history(2, tuple(LEARNED), halts=1, frames=2, **PENDING),
                  lenient).action == "await_validation"
