"""The potential a finished campaign hands over: a NO-GO one gives way to an earlier
validated one that the gate judged better on the same checks (pure decision logic over
gate reports; the Si demo's real reports are the last case)."""

from __future__ import annotations


import pytest

from pyacemaker.stages.validate.checks import Check
from pyacemaker.stages.validate.gate import ValidationReport
from pyacemaker.stages.validate.handover import better_validated



def report(iteration: int, ratios: dict[str, float]) -> ValidationReport:
    """A report whose check ``name`` has value/threshold ``ratio`` (fails above 1)."""
    checks = [Check(name=name, passed=ratio <= 1, message=name, value=ratio * 0.1,
                    threshold=0.1) for name, ratio in ratios.items()]
    failed = [c.message for c in checks if not c.passed]
    return ValidationReport(iteration=iteration, verdict="NO-GO" if failed else "GO",
                            reasons=failed, checks=checks, crystals=[])


def test_a_go_potential_is_always_kept() -> None:
    current = report(3, {"C11": 0.9, "C12": 0.5})
    assert better_validated(current, {0: report(0, {"C11": 0.1, "C12": 0.1}),
                                      3: current}) is None


def test_an_earlier_potential_with_fewer_failures_is_handed_over() -> None:
    # the Si demo run of session 7: iteration 3's refit failed C11, C12, C44, G and phonons
    history = {
        0: report(0, {"C11": 0.9, "C12": 2.5, "C44": 3.1, "phonons": 1.3, "EOS": 2.0}),
        1: report(1, {"C11": 0.8, "C12": 2.1, "C44": 1.3, "phonons": 1.2, "EOS": 2.0}),
        2: report(2, {"C11": 1.2, "C12": 2.0, "C44": 6.3, "phonons": 2.5, "EOS": 2.0}),
        3: report(3, {"C11": 5.5, "C12": 6.6, "C44": 4.8, "phonons": 1.8, "EOS": 2.0}),
    }
    iteration, reason = better_validated(history[3], history)
    assert iteration == 1
    assert "iteration 1's potential (NO-GO, 4 failed checks" in reason
    assert "instead of iteration 3's (NO-GO, 5 failed" in reason


def test_only_the_checks_both_reports_made_are_compared() -> None:
    # iteration 0 had no phonon reference yet: its missing check is not counted in its favour
    early = report(0, {"C11": 1.5})
    current = report(2, {"C11": 1.4, "phonons": 3.0})
    assert better_validated(current, {0: early, 2: current}) is None


def test_ties_go_to_the_later_potential_and_go_beats_no_go() -> None:
    current = report(4, {"C11": 3.0, "C12": 1.5})
    history = {1: report(1, {"C11": 0.5, "C12": 1.2}), 2: report(2, {"C11": 0.5, "C12": 1.2}),
               3: report(3, {"C11": 0.9, "C12": 0.99}), 4: current}
    assert better_validated(current, history)[0] == 3  # GO
    del history[3]
    assert better_validated(current, history)[0] == 2  # equal standing: the later one


def test_with_as_many_failures_the_smaller_overshoot_wins() -> None:
    # the Si demo: iteration 0 fails only the phonons (7.6 % of 5 %) with every Cij close;
    # iteration 1 fails them by less (6.1 %) with its Cij nearer their limits
    current = report(2, {"C11": 0.2, "C44": 0.3, "phonons": 1.9})
    history = {0: report(0, {"C11": 0.1, "C44": 0.1, "phonons": 1.52}),
               1: report(1, {"C11": 0.6, "C44": 0.8, "phonons": 1.22}), 2: current}
    assert better_validated(current, history)[0] == 1


@pytest.mark.parametrize("absurd", [1e3, 1e9])
def test_one_absurd_value_is_capped(absurd: float) -> None:
    current = report(2, {"C11": 1.5, "C12": 1.5, "C44": 1.5})
    earlier = report(1, {"C11": absurd, "C12": 0.2, "C44": 0.2})
    assert better_validated(current, {1: earlier, 2: current})[0] == 1  # 1 failed < 3


def test_the_stopping_campaign_switches_its_potential(tmp_path) -> None:
    """release.hand_over_best on the reports the gate saved: the state's potential becomes
    the better earlier one (only a deployed record can be handed over)."""
    from pyacemaker.release import hand_over_best, save_validation
    from pyacemaker.state import PotentialRecord, WorkflowState

    records = [PotentialRecord(iteration=i, yaml=f"iter_00{i}/fit/p.yaml",
                               deployed=i != 2) for i in range(4)]
    state = WorkflowState(config_fingerprint="x", potentials=records, potential=records[3])
    for i, ratios in enumerate(({"C11": 3.0}, {"C11": 0.5}, {"C11": 0.1}, {"C11": 2.0})):
        save_validation(report(i, ratios), tmp_path)
    assert "iteration 1's potential (GO" in hand_over_best(state, tmp_path)
    assert state.potential is records[1]  # iteration 2's (better) fit was never deployed
    assert hand_over_best(state, tmp_path) is None  # now GO: kept

