"""ASE engine: MD with pyace's calculator and its active set (per-atom gamma each call).

Same contract as the LAMMPS engine: gamma is checked every ``gamma_every`` steps (pyace
computes it on every force call at no real extra cost), frames with max gamma above
``gamma_lower`` are kept, and the run stops at the first check above ``gamma_upper``.
NVT uses a Langevin thermostat (target temperature updated along a ramp), NPT a
Berendsen barostat: exploration needs visited configurations, not exact ensembles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.mixing import SumCalculator
from ase.md.langevin import Langevin
from ase.md.md import MolecularDynamics
from ase.md.nptberendsen import NPTBerendsen
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

from pyacemaker.stages.baseline import PairBaseline
from pyacemaker.stages.explore.lammps import ThermoRow, md_steps
from pyacemaker.stages.explore.result import ExplorationTask

# Thermostat / barostat relaxation times in units of the time step (LAMMPS's usual choice).
THERMOSTAT_DAMP_STEPS = 100
BAROSTAT_DAMP_STEPS = 1000
TYPICAL_COMPRESSIBILITY_PER_GPA = 1.0 / 100.0  # bulk modulus ~100 GPa; Berendsen only


@dataclass
class AseOutcome:
    thermo: list[ThermoRow]
    halt: tuple[int, float] | None
    frames: list[Atoms]
    final: Atoms


def ace_calculator(potential_yaml: Path, active_set: Path | None,
                   baseline: PairBaseline | None = None) -> tuple[Calculator, Calculator]:
    """(calculator for MD, the pyace calculator whose results hold per-atom gamma)."""
    from pyace import PyACECalculator

    ace = PyACECalculator(str(potential_yaml))
    if active_set is not None:
        ace.set_active_set(str(active_set))
    if baseline is None:
        return ace, ace
    return SumCalculator([ace, baseline.calculator()]), ace


def _dynamics(atoms: Atoms, task: ExplorationTask, rng: np.random.Generator) -> MolecularDynamics:
    dt = task.timestep_fs * units.fs
    if task.pressure_gpa is None:
        return Langevin(atoms, timestep=dt, temperature_K=task.temperature,
                        friction=1.0 / (THERMOSTAT_DAMP_STEPS * dt), fixcm=False, rng=rng)
    return NPTBerendsen(atoms, timestep=dt, temperature_K=task.temperature,
                        pressure_au=task.pressure_gpa * units.GPa,
                        taut=THERMOSTAT_DAMP_STEPS * dt, taup=BAROSTAT_DAMP_STEPS * dt,
                        compressibility_au=TYPICAL_COMPRESSIBILITY_PER_GPA / units.GPa)


def _target_temperature(task: ExplorationTask, step: int, total: int) -> float:
    if task.temperature_end is None:
        return task.temperature
    return task.temperature + (task.temperature_end - task.temperature) * step / total


def run_ase_md(task: ExplorationTask, start: Atoms, potential_yaml: Path,
               active_set: Path | None, gamma_lower: float, gamma_upper: float,
               gamma_every: int = 10, baseline: PairBaseline | None = None) -> AseOutcome:
    """Run the task's MD in process; ``active_set=None`` switches the watchdog off."""
    atoms = start.copy()
    atoms.calc, ace = ace_calculator(potential_yaml, active_set, baseline)
    rng = np.random.default_rng(task.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=task.temperature, rng=rng)
    Stationary(atoms)  # (no ZeroRotation: meaningless in a periodic cell)
    dynamics = _dynamics(atoms, task, rng)
    total = md_steps(task, gamma_every)
    thermo: list[ThermoRow] = []
    frames: list[Atoms] = []
    halt: tuple[int, float] | None = None
    step = 0
    while True:
        energy = atoms.get_potential_energy()
        gamma = np.asarray(ace.results["gamma"]) if active_set is not None else None
        max_gamma = float(gamma.max()) if gamma is not None else None
        pressure = (float(-atoms.get_stress(include_ideal_gas=True)[:3].mean() / units.bar)
                    if task.pressure_gpa is not None else float("nan"))
        thermo.append(ThermoRow(step=step, energy=float(energy),
                                temperature=float(atoms.get_temperature()), pressure=pressure,
                                volume=float(atoms.get_volume()), max_gamma=max_gamma))
        if max_gamma is not None and max_gamma >= gamma_lower:
            frames.append(_snapshot(atoms, gamma, step))
        if max_gamma is not None and max_gamma > gamma_upper:
            halt = (step, max_gamma)
            break
        if step >= total:
            break
        if hasattr(dynamics, "set_temperature"):
            dynamics.set_temperature(temperature_K=_target_temperature(task, step, total))
        dynamics.run(gamma_every)
        step += gamma_every
    return AseOutcome(thermo=thermo, halt=halt, frames=frames, final=_snapshot(atoms, None, step))


def _snapshot(atoms: Atoms, gamma: np.ndarray | None, step: int) -> Atoms:
    frame = Atoms(atoms.get_chemical_symbols(), positions=atoms.get_positions(wrap=True),
                  cell=atoms.cell.array.copy(), pbc=atoms.pbc.copy())
    if gamma is not None:
        frame.set_array("gamma", gamma.astype(float).copy())
    frame.info["step"] = step
    return frame
