"""Many explorations at once through Parsl's md executor (threads and HTEX workers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ase.build import bulk

from pyacemaker.config import CampaignConfig, SiteConfig, StageResources
from pyacemaker.execution import Engine
from pyacemaker.execution.exploring import explore_many
from pyacemaker.stages.explore.result import ExplorationTask


@pytest.mark.parametrize("kind", ["threads", pytest.param("htex", marks=pytest.mark.slow)])
def test_explore_many_yields_every_outcome_and_keeps_failures_apart(
        cu_ace_potential, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    site = SiteConfig(local_executor=kind)
    site.resources["md"] = StageResources(max_parallel_tasks=2, mpi_ranks=1)
    config = CampaignConfig(elements=["Cu"])
    pool = [bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2)),
            bulk("Ni", "fcc", a=3.5, cubic=True)]
    tasks = [
        ExplorationTask(name="cold_lmp", engine="lammps", temperature=300, steps=200, seed=1),
        ExplorationTask(name="hot_lmp", engine="lammps", temperature=6000, steps=3000, seed=2),
        ExplorationTask(name="cold_ase", engine="ase", temperature=300, steps=30, seed=3),
        ExplorationTask(name="wrong_species", engine="lammps", steps=100, structure_index=1),
    ]
    with Engine(site, tmp_path / "run") as engine:
        outcomes = {o.task.name: o for o in explore_many(engine, tasks, pool,
                                                         cu_ace_potential.record, config,
                                                         tmp_path / "explore")}
    assert set(outcomes) == {t.name for t in tasks}
    assert not outcomes["cold_lmp"].result.halted
    assert outcomes["hot_lmp"].result.halted
    assert any(f.info["provenance"] == "md_halt" for f in outcomes["hot_lmp"].result.frames)
    assert outcomes["cold_ase"].result.steps_done == 30
    failed = outcomes["wrong_species"]
    assert not failed.ok and "['Ni']" in failed.error
    for name in ("cold_lmp", "hot_lmp", "cold_ase"):
        assert (tmp_path / "explore" / name / "exploration.json").is_file()
