"""The exploration-engine protocol: every engine the policy can name is registered, and
the driver's facts (start pools, convergence needs, step names) come from the engines."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from ase.build import bulk
from ase.io import write

from pyacemaker.config import CampaignConfig
from pyacemaker.stages.explore.engines import (
    ENGINES,
    KMC_START_FILE,
    START_POOL_FILE,
    engine_for,
)
from pyacemaker.stages.explore.result import Engine


def test_every_engine_name_of_a_task_is_registered() -> None:
    assert set(typing.get_args(Engine)) == set(ENGINES)


def test_unknown_engine_is_named() -> None:
    with pytest.raises(ValueError, match="unknown exploration engine 'nope'"):
        engine_for("nope")


@pytest.mark.parametrize("schedule, needed", [("off", False), ("after_md_quiet", True),
                                              ("always", True)])
def test_kmc_is_needed_before_convergence_when_scheduled(schedule: str, needed: bool) -> None:
    config = CampaignConfig(elements=["Cu"], exploration={"kmc": {"schedule": schedule}})
    assert engine_for("kmc").needed_before_convergence(config) is needed
    assert not engine_for("lammps").needed_before_convergence(config)
    assert not engine_for("ase").needed_before_convergence(config)


def test_start_pools(tmp_path: Path) -> None:
    config = CampaignConfig(elements=["Cu"], exploration={"kmc": {"start_atoms": 32}})
    write(tmp_path / START_POOL_FILE, [bulk("Cu"), bulk("Cu", cubic=True)], format="extxyz")
    assert [len(a) for a in engine_for("ase").start_structures(config, tmp_path)] == [1, 4]
    kmc = engine_for("kmc").start_structures(config, tmp_path)
    assert [len(a) for a in kmc] == [31]  # 2x2x2 conventional fcc minus a vacancy
    assert (tmp_path / KMC_START_FILE).is_file()  # made once, reused by every kMC task
    assert engine_for("kmc").step_unit == "kMC step" and engine_for("lammps").step_unit == "step"
