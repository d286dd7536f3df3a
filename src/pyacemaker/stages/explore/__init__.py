"""Exploration engines (MD in LAMMPS or ASE, aKMC with eOn) sharing one halt contract.

Every engine returns an :class:`ExplorationResult`: whether the run halted on
extrapolation (max gamma above the upper threshold), at which step, the max-gamma
history, and the extracted frames as ASE Atoms (the halted frame plus frames above the
lower threshold), each with ``info`` keys ``provenance`` (md_halt / kmc_halt / md_frame),
``gamma_max``, ``source_task`` and ``iteration``.
"""

from pyacemaker.stages.explore.result import ExplorationResult, ExplorationTask

__all__ = ["ExplorationResult", "ExplorationTask"]
