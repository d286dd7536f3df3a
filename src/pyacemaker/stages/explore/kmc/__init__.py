"""Adaptive kinetic Monte Carlo exploration with eOn, halting on ACE extrapolation.

Entry point: :func:`run_kmc`. Engines: ``inprocess`` (eOn's client library, pyeonclient,
driven from here) and ``eonclient`` (each saddle search an eOn client job evaluating ACE
through the generated ``pace_driver.py``). See docs/kmc.md.
"""

from __future__ import annotations

from pathlib import Path

from ase import Atoms
from ase.calculators.calculator import Calculator

from pyacemaker.config import KMCConfig
from pyacemaker.programs import Launch
from pyacemaker.stages.explore.kmc.cells import embed_in_box
from pyacemaker.stages.explore.kmc.engine import AKMC, KMCRun
from pyacemaker.stages.explore.kmc.prefactor import rigid_body_modes
from pyacemaker.stages.explore.kmc.search import InProcessSearcher
from pyacemaker.stages.explore.kmc.watchdog import GammaWatchdog, ace_watchdog
from pyacemaker.stages.explore.result import ExplorationResult, ExplorationTask
from pyacemaker.state import PotentialRecord

__all__ = ["KMCRun", "kmc_task", "run_akmc", "run_kmc"]


def run_kmc(task: ExplorationTask, start: Atoms, potential: PotentialRecord | None,
            settings: KMCConfig, workdir: Path, calculator: Calculator | None = None,
            launch: Launch | None = None) -> ExplorationResult:
    """Run one aKMC task from ``start``; halts when an ACE force call extrapolates.
    ``launch``: how the eonclient engine starts eonclient (the site's eon image)."""
    return run_akmc(task, start, potential, settings, workdir, calculator, launch).result


def kmc_task(name: str, settings: KMCConfig, **fields: object) -> ExplorationTask:
    """A kMC task at the settings' temperature and length (``fields`` override them)."""
    values: dict[str, object] = {"temperature": settings.temperature,
                                 "steps": settings.max_steps, **fields}
    return ExplorationTask(name=name, engine="kmc", **values)  # type: ignore[arg-type]


def run_akmc(task: ExplorationTask, start: Atoms, potential: PotentialRecord | None,
             settings: KMCConfig, workdir: Path,
             calculator: Calculator | None = None, launch: Launch | None = None) -> KMCRun:
    """:func:`run_kmc` with the full record: steps, process tables, states, clock."""
    if task.engine != "kmc":
        raise ValueError(f"task {task.name!r} has engine {task.engine!r}, not 'kmc'")
    if (potential is None) == (calculator is None):
        raise ValueError("run_kmc needs exactly one of potential (ACE) or calculator")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    temperature = float(task.temperature)
    zero_modes = rigid_body_modes(start)
    start, notes = embed_in_box(start, settings.vacuum)
    if settings.engine == "eonclient":
        from pyacemaker.stages.explore.kmc.eonclient import EonClientSearcher

        if potential is None:
            raise ValueError("kmc engine 'eonclient' evaluates ACE through pace_driver.py: "
                             "it needs a potential record, not a Python calculator")
        with EonClientSearcher(potential, settings, temperature, task.seed, workdir,
                               launch) as searcher:
            return AKMC(task, searcher, settings, workdir, None, notes).run(start)
    if potential is not None:
        watchdog = ace_watchdog(potential, settings.gamma_lower, settings.gamma_upper)
    else:
        assert calculator is not None
        watchdog = GammaWatchdog(calculator, None, settings.gamma_lower, settings.gamma_upper)
    searcher = InProcessSearcher(watchdog, settings, temperature, task.seed,
                                 workdir / "eon_client.log", zero_modes)
    return AKMC(task, searcher, settings, workdir, watchdog, notes).run(start)
