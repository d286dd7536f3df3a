"""The adaptive exploration policy: histories in, tasks out, as its docstring documents."""

from __future__ import annotations

from collections import Counter

import pytest

from pyacemaker.config import CampaignConfig, ExplorationSettings, KMCConfig
from pyacemaker.stages.explore.result import ExplorationResult, ExplorationTask
from pyacemaker.stages.policy import ExplorationSummary, melting_point, plan_exploration


def cu_config(kmc: dict[str, object] | None = None, **exploration: object) -> CampaignConfig:
    """MD-rule tests plan no kMC unless they ask for it."""
    settings = ExplorationSettings(kmc=KMCConfig(**(kmc or {"schedule": "off"})), **exploration)
    return CampaignConfig(elements=["Cu"], exploration=settings)


def ran(tasks: list[ExplorationTask], halted: callable = lambda t: False) -> list[ExplorationResult]:  # type: ignore[valid-type]
    """Results of ``tasks`` where ``halted(task)`` says which ones halted (at step 100)."""
    return [ExplorationResult(task=t, halted=halted(t), halt_step=100 if halted(t) else None,
                              steps_done=100 if halted(t) else t.steps,
                              gamma_history=[(0, 1.0), (100, 6.0 if halted(t) else 1.5)])
            for t in tasks]


def walkers_per_condition(tasks: list[ExplorationTask]) -> Counter:
    return Counter((t.temperature, t.temperature_end, t.pressure_gpa) for t in tasks)


def test_start_uses_the_configured_conditions() -> None:
    config = cu_config(temperatures=[300, 900], walkers=3, steps=1000, engine="auto")
    tasks = plan_exploration([], config, iteration=1)
    assert walkers_per_condition(tasks) == {(300, None, None): 3, (900, None, None): 3}
    assert {t.steps for t in tasks} == {1000}
    assert {t.engine for t in tasks} == {"lammps"}
    assert [t.structure_index for t in tasks[:3]] == [0, 1, 2]
    assert len({t.seed for t in tasks}) == len(tasks)
    assert len({t.name for t in tasks}) == len(tasks)
    assert all(t.iteration == 1 for t in tasks)
    assert {t.engine for t in plan_exploration([], config, 1, lammps_available=False)} == {"ase"}


def test_npt_ensemble_crosses_temperatures_and_pressures() -> None:
    config = cu_config(temperatures=[300, 600], pressures_gpa=[0, 10], ensemble="npt", walkers=1)
    conditions = set(walkers_per_condition(plan_exploration([], config, 1)))
    assert conditions == {(t, None, p) for t in (300, 600) for p in (0, 10)}


def test_no_halts_goes_longer_hotter_toward_the_melt_and_under_pressure() -> None:
    config = cu_config(temperatures=[300, 600, 1200], steps=2000, walkers=1, max_tasks=50)
    first = plan_exploration([], config, 1)
    second = plan_exploration(ran(first), config, 2)
    assert {t.steps for t in second} == {4000}  # x2 after one quiet iteration
    conditions = set(walkers_per_condition(second))
    assert (1500.0, None, None) in conditions  # 1200 x 1.25
    assert (1200.0, round(1.2 * 1358, 3), None) in conditions  # ramp toward Cu's melt
    assert {(1200.0, None, 0.0), (1200.0, None, 5.0)} <= conditions  # NPT, one higher pressure
    assert second[0].n_atoms == config.exploration.target_atoms
    third = plan_exploration(ran(first) + ran(second), config, 3)
    assert {t.steps for t in third} == {8000}
    # 1200 x 1.25^2 = 1875 K is above 1.3 x Cu's melting point: capped there
    assert max(t.temperature for t in third) == pytest.approx(1.3 * 1358)
    assert third[0].n_atoms == 2 * config.exploration.target_atoms


def test_many_halts_at_1200_k_get_more_walkers_there() -> None:
    config = cu_config(temperatures=[300, 600, 1200], steps=2000, walkers=2)
    first = plan_exploration([], config, 1)
    history = ran(first, halted=lambda t: t.temperature == 1200)
    second = plan_exploration(history, config, 2)
    walkers = walkers_per_condition(second)
    assert walkers[(1200, None, None)] == 4
    assert walkers[(300, None, None)] == walkers[(600, None, None)] == 2
    assert second[0].temperature == 1200  # halting conditions first
    steps = {t.temperature: t.steps for t in second}
    assert steps[1200] == 2000 and steps[300] == steps[600] == 4000
    # halting again keeps doubling, up to max_walkers
    third = plan_exploration(history + ran(second, halted=lambda t: t.temperature == 1200),
                             config, 3)
    assert walkers_per_condition(third)[(1200, None, None)] == 8
    fourth_history = history + ran(second) + ran(third, halted=lambda t: t.temperature == 1200)
    fourth = plan_exploration(fourth_history, config, 4)
    assert walkers_per_condition(fourth)[(1200, None, None)] == 8


def test_halts_only_in_npt_shift_walkers_to_pressure() -> None:
    config = cu_config(temperatures=[600], pressures_gpa=[0, 10], steps=1000, walkers=2)
    tasks = [ExplorationTask(name=f"t{k}", engine="lammps", temperature=600,
                             pressure_gpa=p, steps=1000, iteration=1, walkers=2)
             for k, p in enumerate([None, None, 10.0, 10.0])]
    history = ran(tasks, halted=lambda t: t.pressure_gpa == 10.0)
    plan = plan_exploration(history, config, 2)
    walkers = walkers_per_condition(plan)
    assert walkers[(600, None, None)] == 1  # NVT quiet: one walker
    assert walkers[(600, None, 10.0)] == 4  # halting NPT: doubled
    assert walkers[(600, None, 15.0)] == 2  # one more, higher pressure
    assert plan[0].pressure_gpa is not None


def test_summary_records_from_the_driver_are_accepted() -> None:
    """Also the summary.json of campaigns written before tasks had typed fields."""
    config = cu_config(temperatures=[300, 1200], walkers=1)
    records = [{"task": {"name": f"T{t}", "engine": "lammps", "temperature": t,
                         "temperature_end": None, "pressure_gpa": None, "steps": 2000,
                         "options": {"iteration": 1, "walkers": 1, "n_atoms": 64}},
                "halted": t == 1200, "halt_step": 50 if t == 1200 else None, "max_gamma": 7.0,
                "steps_done": 50 if t == 1200 else 2000, "iteration": 1}
               for t in (300, 1200)]
    from_records = plan_exploration(records, config, 2)
    from_results = plan_exploration(
        ran(plan_exploration([], config, 1), halted=lambda t: t.temperature == 1200), config, 2)
    assert walkers_per_condition(from_records) == walkers_per_condition(from_results)
    with pytest.raises(ValueError, match="exploration record lacks"):
        plan_exploration([{"halted": True}], config, 2)


def test_plans_are_reproducible_capped_and_ignore_the_future() -> None:
    config = cu_config(walkers=4, max_tasks=5)
    first = plan_exploration([], config, 1)
    assert len(first) == 5
    assert [(t.name, t.seed) for t in first] == [(t.name, t.seed)
                                                 for t in plan_exploration([], config, 1)]
    later = [ExplorationSummary(iteration=7, temperature=300, pressure_gpa=None, halted=True,
                                steps=10)]
    assert [t.name for t in plan_exploration(later, config, 1)] == [t.name for t in first]


def test_non_metals_get_no_melting_ramp() -> None:
    assert melting_point(["Si"]) is None and melting_point(["Ti", "O"]) is None
    assert melting_point(["Cu", "Ni"]) == 1358
    config = CampaignConfig(elements=["Si"], exploration=ExplorationSettings(
        temperatures=[300, 600], walkers=1, max_tasks=50))
    second = plan_exploration(ran(plan_exploration([], config, 1)), config, 2)
    assert all(t.temperature_end is None for t in second)
    assert max(t.temperature for t in second) == 750


def md_only(tasks: list[ExplorationTask]) -> list[ExplorationTask]:
    return [t for t in tasks if t.engine != "kmc"]


def kmc_only(tasks: list[ExplorationTask]) -> list[ExplorationTask]:
    return [t for t in tasks if t.engine == "kmc"]


def test_kmc_after_md_quiet_starts_once_md_is_quiet_and_stays() -> None:
    config = cu_config(kmc={"schedule": "after_md_quiet", "tasks": 2, "max_steps": 3},
                       temperatures=[300, 900], walkers=1)
    first = plan_exploration([], config, 1)
    assert kmc_only(first) == []
    halting = ran(first, halted=lambda t: t.temperature == 900)
    second = plan_exploration(halting, config, 2)
    assert kmc_only(second) == []  # MD still halts: no kMC yet
    history = halting + ran(second)  # iteration 2: MD quiet
    third = plan_exploration(history, config, 3)
    kmc = kmc_only(third)
    assert len(kmc) == 2 and {t.steps for t in kmc} == {3}
    assert len({t.seed for t in kmc}) == 2 and [t.structure_index for t in kmc] == [0, 1]
    # the MD part is unchanged by the kMC tasks
    assert md_only(third) == plan_exploration(history, cu_config(temperatures=[300, 900],
                                                                 walkers=1), 3)
    # MD halts again in iteration 3, kMC halts: kMC stays on and reruns the same tasks
    history += ran(third, halted=lambda t: True)
    fourth = kmc_only(plan_exploration(history, config, 4))
    assert [t.seed for t in fourth] == [t.seed for t in kmc]
    assert {t.steps for t in fourth} == {3}
    assert "rerun" in fourth[0].reason
    # quiet kMC: more steps, x2 per quiet iteration, at most x8
    for iteration, factor in ((5, 2), (6, 4), (7, 8), (8, 8)):
        history += ran(plan_exploration(history, config, iteration - 1)) \
            if iteration > 5 else ran(fourth)
        steps = {t.steps for t in kmc_only(
            plan_exploration(history, config, iteration))}
        assert steps == {3 * factor}, (iteration, steps)


def test_kmc_always_and_off() -> None:
    always = cu_config(kmc={"schedule": "always", "temperature": 700.0})
    kmc = kmc_only(plan_exploration([], always, 1))
    assert len(kmc) == 1 and kmc[0].temperature == 700.0 and kmc[0].engine == "kmc"
    assert kmc[0].name == "it001_kmc0_T700"
    off = cu_config(kmc={"schedule": "off"}, walkers=1)
    quiet = ran(plan_exploration([], off, 1))
    assert kmc_only(plan_exploration(quiet, off, 2)) == []


def test_kmc_records_from_the_driver_keep_their_engine() -> None:
    from dataclasses import asdict

    config = cu_config(kmc={"schedule": "always"}, temperatures=[300], walkers=1)
    first = plan_exploration([], config, 1)
    records = [{"task": asdict(r.task), "halted": r.halted, "halt_step": r.halt_step,
                "max_gamma": r.max_gamma, "steps_done": r.steps_done}
               for r in ran(first, halted=lambda t: t.engine == "kmc")]
    second = plan_exploration(records, config, 2)
    # the kMC halt does not count as an MD halt: MD is quiet and goes longer
    assert {t.steps for t in md_only(second)} == {2 * first[0].steps}
    assert "rerun" in kmc_only(second)[0].reason
