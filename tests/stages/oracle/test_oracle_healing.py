"""The healing state machine on its own: order, skipping, budget, failure classes."""

from __future__ import annotations

import numpy as np

from pyacemaker.stages.oracle.healing import Healer, magnetic_ordering_problem
from pyacemaker.stages.oracle.outcome import Classification
from pyacemaker.stages.oracle.parameters import RunParameters

BASE = RunParameters(ecutwfc=30, ecutrho=240, kpts=(4, 4, 4), smearing="mv", degauss=0.01,
                     mixing_beta=0.7, conv_thr=1e-9, electron_maxstep=100, spin=False)
SCF = Classification("scf_not_converged", "convergence NOT achieved")


def test_scf_strategies_run_in_order_each_from_the_first_inputs() -> None:
    healer = Healer(["reduce_mixing", "local_tf", "more_steps", "more_smearing",
                     "cg_diagonalization"], budget=10)
    seen = []
    params = BASE
    while (step := healer.next_run(params, SCF, density_saved=True, restart_saved=False)):
        name, params = step
        seen.append((name, params))
    assert [n for n, _ in seen] == ["reduce_mixing", "local_tf", "more_steps", "more_smearing",
                                    "cg_diagonalization"]
    by_name = dict(seen)
    assert by_name["reduce_mixing"].mixing_beta == 0.3
    assert by_name["local_tf"].mixing_mode == "local-TF"
    assert by_name["more_steps"].electron_maxstep == 200
    assert by_name["more_steps"].startingpot == "file"
    # a change that did not help is dropped: more smearing runs with the original mixing
    assert by_name["more_smearing"].degauss == 0.02
    assert by_name["more_smearing"].mixing_beta == 0.7
    assert by_name["cg_diagonalization"].diagonalization == "cg"


def test_budget_and_unrecoverable_classes_stop_healing() -> None:
    healer = Healer(["reduce_mixing", "local_tf"], budget=1)
    assert healer.next_run(BASE, SCF, False, False) is not None
    assert healer.next_run(BASE, SCF, False, False) is None  # budget spent
    for outcome in ("bad_input", "unphysical"):
        assert Healer(["local_tf"], 5).next_run(BASE, Classification(outcome, "x"),
                                                False, False) is None


def test_strategy_that_changes_nothing_is_skipped() -> None:
    already_smeared = RunParameters(**{**BASE.summary(), "kpts": (4, 4, 4), "degauss": 0.05})
    healer = Healer(["more_smearing", "cg_diagonalization"], budget=5)
    name, _ = healer.next_run(already_smeared, SCF, False, False)
    assert name == "cg_diagonalization"


def test_crash_halves_ranks_then_retries_once() -> None:
    crash = Classification("crashed", "killed by signal 9")
    healer = Healer(["reduce_mixing"], budget=5)
    name, p = healer.next_run(BASE.__class__(**{**BASE.summary(), "kpts": (4, 4, 4),
                                                "ranks": 4}), crash, False, False)
    assert (name, p.ranks) == ("fewer_ranks", 2)
    name, p = healer.next_run(p, crash, False, False)
    assert (name, p.ranks) == ("fewer_ranks", 1)
    name, p = healer.next_run(p, crash, False, False)
    assert name == "retry"
    assert healer.next_run(p, crash, False, False) is None


def test_walltime_restarts_only_from_saved_state() -> None:
    wall = Classification("walltime", "max_seconds")
    assert Healer(["local_tf"], 3).next_run(BASE, wall, True, restart_saved=False) is None
    name, p = Healer(["local_tf"], 3).next_run(BASE, wall, True, restart_saved=True)
    assert name == "restart_from_saved_state" and p.restart


def test_magnetic_flip_detected_but_collapse_accepted() -> None:
    start = np.array([2.5, -2.5])
    assert magnetic_ordering_problem(start, np.array([2.1, -2.0])) is None
    assert magnetic_ordering_problem(start, np.array([0.05, -0.02])) is None
    reason = magnetic_ordering_problem(start, np.array([2.1, 2.0]))
    assert reason is not None and "atoms [1]" in reason


def test_scf_cut_short_while_improving_continues_first() -> None:
    from pyacemaker.stages.oracle.outcome import steadily_converging

    assert steadily_converging([5e-2, 2e-3, 5e-5, 1e-7])
    assert not steadily_converging([5e-2, 2e-3, 5e-3, 1e-3])  # oscillating
    assert not steadily_converging([5e-2, 3e-2, 2e-2])  # too slow to call it converging
    cut_short = Classification("scf_not_converged", "x", converging=True)
    healer = Healer(["reduce_mixing", "more_steps"], budget=5)
    name, p = healer.next_run(BASE, cut_short, density_saved=True, restart_saved=False)
    assert (name, p.electron_maxstep, p.startingpot) == ("more_steps", 200, "file")
    name, p = healer.next_run(p, cut_short, density_saved=True, restart_saved=False)
    assert (name, p.electron_maxstep) == ("more_steps", 400)  # repeatable while improving
    assert Healer(["reduce_mixing"], 5).next_run(BASE, cut_short, True, False)[0] == \
        "reduce_mixing"  # only when the campaign allows more_steps


def test_closest_attempt_gets_more_steps_once_all_strategies_failed() -> None:
    healer = Healer(["reduce_mixing", "more_smearing"], budget=5)
    _, mixed = healer.next_run(BASE, SCF, False, False, scf_error=1e-2)
    _, smeared = healer.next_run(mixed, SCF, False, False, scf_error=1e-4)
    name, p = healer.next_run(smeared, SCF, False, False, scf_error=1e-3)
    assert name == "best_with_more_steps"
    # the reduce_mixing run (reported with 1e-4) came closest
    assert (p.degauss, p.mixing_beta, p.electron_maxstep) == (0.01, 0.3, 200)
    assert healer.next_run(p, SCF, False, False, scf_error=1e-5) is None
