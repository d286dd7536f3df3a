"""Adaptive exploration policy: the campaign's history in, this iteration's tasks out.

:func:`plan_exploration` is a pure function. Its rules, applied to the explorations of the
latest iteration before the current one (a *condition* is a temperature, or a ramp, and
a pressure; ``None`` pressure means NVT):

1. **Start** (no history): every configured temperature (x every configured pressure when
   ``ensemble: npt``) with ``walkers`` walkers and ``steps`` steps.
2. **Quiet** (nothing halted in the latest iteration; ``q`` = consecutive quiet
   iterations): steps x 2^q (at most x8); one hotter temperature, max(T) x 1.25^q, capped
   at 1.3 x the melting point for metals with a known one; for metals a temperature ramp
   from max(T) to 1.2 x the melting point (toward the melting region); NPT runs at
   ``pressures_gpa`` plus one higher pressure (max + 5 GPa); after two quiet iterations the
   cells double in size (``ExplorationTask.n_atoms``).
3. **Halts**: every condition that halted gets twice the walkers of its previous run (up
   to ``max_walkers``); conditions that stayed quiet keep ``walkers`` walkers and get 2x
   the steps. When halts happened only in NPT runs while NVT runs were quiet, NVT
   conditions drop to one walker and one more pressure (max + 5 GPa) is added.

The task list is cut to ``max_tasks`` keeping halting conditions first. The engine is the
configured one; ``auto`` means LAMMPS when it is available, else ASE. Seeds are derived
from the campaign seed, iteration and task index, so a plan is reproducible.

Engines come in families (``ExplorationEngine.family``): the MD rules read the history of
the ``md`` family, the kMC rules that of ``kmc``. kMC tasks (``exploration.kmc``) come on top of the MD tasks, ``kmc.tasks`` of them, when
``schedule`` is ``always``, or for ``after_md_quiet`` once an iteration's MD runs halted
nothing (from then on in every iteration, so the stop criterion sees them). Their seeds
do not depend on the iteration: after a halt is learned the same task reruns through the
same region, which is the check that the region is learned. With ``k`` consecutive
kMC-quiet iterations a task takes ``max_steps`` x 2^k steps (at most x8), reaching
further states. The MD rules above read only the MD history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pyacemaker.config import CampaignConfig
from pyacemaker.stages.explore.engines import engine_for
from pyacemaker.stages.explore.result import ExplorationRecord, ExplorationResult, ExplorationTask

MAX_STEP_FACTOR = 8
HOTTER_FACTOR = 1.25
MELT_CAP_FACTOR = 1.3
MELT_RAMP_FACTOR = 1.2
EXTRA_PRESSURE_GPA = 5.0
SIZE_GROWTH_AFTER_QUIET = 2

# Melting points (K) of common metals; used for ramps toward the melt and to cap heat.
MELTING_POINT_K: dict[str, float] = {
    "Li": 454, "Na": 371, "K": 337, "Mg": 923, "Al": 933, "Ti": 1941, "V": 2183,
    "Cr": 2180, "Mn": 1519, "Fe": 1811, "Co": 1768, "Ni": 1728, "Cu": 1358, "Zn": 693,
    "Zr": 2128, "Nb": 2750, "Mo": 2896, "Ru": 2607, "Rh": 2237, "Pd": 1828, "Ag": 1235,
    "Sn": 505, "Hf": 2506, "Ta": 3290, "W": 3695, "Re": 3459, "Ir": 2719, "Pt": 2041,
    "Au": 1337, "Pb": 600, "Be": 1560, "Ca": 1115, "Sc": 1814, "Y": 1799, "Ga": 303,
    "In": 430, "Cd": 594, "Bi": 545,
}
NON_METALS = {"H", "He", "B", "C", "N", "O", "F", "Ne", "Si", "P", "S", "Cl", "Ar", "Ge",
              "As", "Se", "Br", "Kr", "Sb", "Te", "I", "Xe", "Rn"}


@dataclass(frozen=True)
class ExplorationSummary:
    """What the policy needs to know about one past exploration."""

    iteration: int
    temperature: float
    pressure_gpa: float | None
    halted: bool
    steps: int
    temperature_end: float | None = None
    halt_step: int | None = None
    max_gamma: float = 0.0
    walkers: int = 1
    engine: str = "ase"

    @property
    def family(self) -> str:
        return engine_for(self.engine).family

    @property
    def condition(self) -> Condition:
        return (round(self.temperature, 3),
                None if self.temperature_end is None else round(self.temperature_end, 3),
                self.pressure_gpa)


Condition = tuple[float, float | None, float | None]  # (T, T_end or None, P or None)


def summarize(result: ExplorationResult | ExplorationRecord | dict[str, Any]
              ) -> ExplorationSummary:
    """Summary of a result, of its record, or of the record's JSON form (summary.json)."""
    if isinstance(result, dict):
        result = ExplorationRecord.from_dict(result)
    task = result.task
    return ExplorationSummary(
        iteration=task.iteration, temperature=task.temperature,
        temperature_end=task.temperature_end, pressure_gpa=task.pressure_gpa,
        halted=result.halted, steps=task.steps, halt_step=result.halt_step,
        max_gamma=result.max_gamma, walkers=task.walkers, engine=task.engine)


@dataclass
class _Plan:
    condition: Condition
    walkers: int
    steps: int
    reason: str
    halted_before: bool = False


def plan_exploration(history: Sequence[ExplorationResult | ExplorationRecord | ExplorationSummary
                                       | dict[str, Any]],
                     config: CampaignConfig, iteration: int,
                     lammps_available: bool = True) -> list[ExplorationTask]:
    """The exploration tasks of ``iteration`` (see the module docstring for the rules)."""
    past = [h if isinstance(h, ExplorationSummary) else summarize(h) for h in history]
    past = [h for h in past if h.iteration < iteration]
    md_past = [h for h in past if h.family == "md"]
    return (_md_tasks(md_past, config, iteration, lammps_available)
            + kmc_tasks([h for h in past if h.family == "kmc"], md_past, config, iteration))


def _md_tasks(past: list[ExplorationSummary], config: CampaignConfig, iteration: int,
              lammps_available: bool) -> list[ExplorationTask]:
    settings = config.exploration
    engine = _engine(settings.engine, lammps_available)
    n_atoms = settings.target_atoms
    if not past:
        plans = [_Plan(c, settings.walkers, settings.steps, "start")
                 for c in _base_conditions(config)]
        return _tasks(plans, config, iteration, engine, n_atoms)

    latest = max(h.iteration for h in past)
    last = [h for h in past if h.iteration == latest]
    quiet = _quiet_streak(past)
    if quiet:
        plans = _quiet_plans(config, quiet)
        if quiet >= SIZE_GROWTH_AFTER_QUIET:
            n_atoms = settings.target_atoms * 2
    else:
        plans = _halt_plans(config, last)
    return _tasks(plans, config, iteration, engine, n_atoms)


def kmc_tasks(kmc_past: list[ExplorationSummary], md_past: list[ExplorationSummary],
              config: CampaignConfig, iteration: int) -> list[ExplorationTask]:
    """The kMC tasks of ``iteration`` (module docstring, last paragraph)."""
    settings = config.exploration.kmc
    if settings.schedule == "off":
        return []
    if settings.schedule == "after_md_quiet" and not kmc_past:
        md_iterations = {h.iteration for h in md_past}
        if not any(not any(h.halted for h in md_past if h.iteration == it)
                   for it in md_iterations):
            return []
        reason = "MD quiet: kMC for rare events"
    else:
        reason = "kMC scheduled"
    quiet = _quiet_streak(kmc_past)
    max_steps = settings.max_steps * min(MAX_STEP_FACTOR, 2 ** quiet)
    if quiet:
        reason = f"kMC quiet x{quiet}: more steps"
    elif kmc_past:
        reason = "kMC halted: rerun through the learned region"
    return [ExplorationTask(
        name=f"it{iteration:03d}_kmc{walker}_T{settings.temperature:g}", engine="kmc",
        temperature=settings.temperature, steps=max_steps,
        seed=_seed(config.seed, -1, walker), structure_index=walker,
        iteration=iteration, reason=reason, walkers=settings.tasks)
        for walker in range(settings.tasks)]


def _engine(setting: str, lammps_available: bool) -> Literal["ase", "lammps"]:
    if setting == "auto":
        return "lammps" if lammps_available else "ase"
    return "lammps" if setting == "lammps" else "ase"


def _pressures(config: CampaignConfig) -> list[float | None]:
    if config.exploration.ensemble == "npt":
        return list(config.exploration.pressures_gpa)
    return [None]


def _base_conditions(config: CampaignConfig) -> list[Condition]:
    return [(float(t), None, p) for t in config.exploration.temperatures
            for p in _pressures(config)]


def melting_point(elements: Sequence[str]) -> float | None:
    """Lowest known melting point when every element is a metal, else None."""
    if any(e in NON_METALS for e in elements):
        return None
    known = [MELTING_POINT_K[e] for e in elements if e in MELTING_POINT_K]
    return float(min(known)) if known else None


def _quiet_streak(past: list[ExplorationSummary]) -> int:
    """Consecutive latest iterations in which nothing halted."""
    streak = 0
    for iteration in sorted({h.iteration for h in past}, reverse=True):
        if any(h.halted for h in past if h.iteration == iteration):
            break
        streak += 1
    return streak


def _quiet_plans(config: CampaignConfig, quiet: int) -> list[_Plan]:
    settings = config.exploration
    steps = settings.steps * min(MAX_STEP_FACTOR, 2 ** quiet)
    conditions = _base_conditions(config)
    t_max = max(settings.temperatures)
    hotter = t_max * HOTTER_FACTOR ** quiet
    t_melt = melting_point(config.elements)
    if t_melt is not None:
        hotter = min(hotter, MELT_CAP_FACTOR * t_melt)
    pressures = _pressures(config)
    conditions += [(round(hotter, 3), None, p) for p in pressures]
    reason = f"quiet x{quiet}: longer and hotter"
    if t_melt is not None and MELT_RAMP_FACTOR * t_melt > t_max:
        conditions.append((float(t_max), round(MELT_RAMP_FACTOR * t_melt, 3), None))
    npt_pressures = sorted({*settings.pressures_gpa, max(settings.pressures_gpa) + EXTRA_PRESSURE_GPA})
    conditions += [(float(t_max), None, float(p)) for p in npt_pressures]
    return [_Plan(c, settings.walkers, steps, reason) for c in _unique(conditions)]


def _halt_plans(config: CampaignConfig, last: list[ExplorationSummary]) -> list[_Plan]:
    settings = config.exploration
    runs: dict[Condition, list[ExplorationSummary]] = {}
    for h in last:
        runs.setdefault(h.condition, []).append(h)
    halting = {c for c, hs in runs.items() if any(h.halted for h in hs)}
    npt_only = (all(c[2] is not None for c in halting)
                and any(c[2] is None for c in runs if c not in halting))
    plans: list[_Plan] = []
    for condition, hs in runs.items():
        walkers_before = max(len(hs), max(h.walkers for h in hs))
        steps_before = max(h.steps for h in hs)
        if condition in halting:
            plans.append(_Plan(condition, min(settings.max_walkers, 2 * walkers_before),
                               steps_before, "halted here: more walkers", halted_before=True))
        elif npt_only and condition[2] is None:
            plans.append(_Plan(condition, 1, steps_before, "NVT quiet while NPT halts"))
        else:
            steps = min(settings.steps * MAX_STEP_FACTOR, 2 * steps_before)
            plans.append(_Plan(condition, settings.walkers, steps, "quiet here: longer"))
    for condition in _base_conditions(config):
        if condition not in runs:
            plans.append(_Plan(condition, settings.walkers, settings.steps, "configured"))
    if npt_only:
        t_halt = max(c[0] for c in halting)
        p_max = max(c[2] for c in halting if c[2] is not None)
        extra = (t_halt, None, p_max + EXTRA_PRESSURE_GPA)
        if extra not in runs:
            plans.append(_Plan(extra, settings.walkers, settings.steps,
                               "NPT halts: higher pressure", halted_before=True))
    return plans


def _unique(conditions: list[Condition]) -> list[Condition]:
    seen: list[Condition] = []
    for c in conditions:
        if c not in seen:
            seen.append(c)
    return seen


def _tasks(plans: list[_Plan], config: CampaignConfig, iteration: int,
           engine: Literal["ase", "lammps"], n_atoms: int) -> list[ExplorationTask]:
    settings = config.exploration
    plans = sorted(plans, key=lambda p: not p.halted_before)  # stable: halting first
    tasks: list[ExplorationTask] = []
    for plan in plans:
        t_start, t_end, pressure = plan.condition
        for walker in range(plan.walkers):
            if len(tasks) >= settings.max_tasks:
                return tasks
            index = len(tasks)
            label = f"T{t_start:g}" + (f"-{t_end:g}" if t_end is not None else "")
            label += f"_P{pressure:g}" if pressure is not None else "_nvt"
            tasks.append(ExplorationTask(
                name=f"it{iteration:03d}_{index:03d}_{label}_w{walker}",
                engine=engine, temperature=t_start, temperature_end=t_end,
                pressure_gpa=pressure, steps=plan.steps, timestep_fs=settings.timestep_fs,
                seed=_seed(config.seed, iteration, index), structure_index=walker,
                iteration=iteration, n_atoms=n_atoms, reason=plan.reason,
                walkers=plan.walkers))
    return tasks


def _seed(campaign_seed: int, iteration: int, index: int) -> int:
    digest = hashlib.sha256(f"{campaign_seed}:{iteration}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % 2_000_000_000
