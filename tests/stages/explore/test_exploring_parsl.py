"""Many explorations at once through Parsl's md executor (threads and HTEX workers)."""

from __future__ import annotations

from pyacemaker.stages.explore.kmc import kmc_task

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
        starts = {"lammps": pool, "ase": pool}
        outcomes = {o.task.name: o for o in explore_many(engine, tasks, starts,
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


def test_kmc_tasks_run_from_the_kmc_pool_in_their_own_process(
        cu_ace_potential, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """A kMC task next to an MD task on the threads executor: it starts from the kMC pool,
    and the eOn client's output redirection stays in its child process (the driver's
    stdout keeps working while it runs)."""
    import sys

    vacancy = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    del vacancy[0]
    config = CampaignConfig(elements=["Cu"], exploration={"kmc": {
        "max_steps": 1, "searches_per_state": 1, "gamma_lower": 50.0, "gamma_upper": 1000.0}})
    tasks = [ExplorationTask(name="md", engine="ase", temperature=300, steps=20, seed=3),
             kmc_task("kmc", config.exploration.kmc, seed=2, epicentres=(0,))]
    pool = [bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))]
    with Engine(SiteConfig(local_executor="threads"), tmp_path / "run") as engine:
        outcomes = {}
        for outcome in explore_many(engine, tasks, {"ase": pool, "kmc": [vacancy]},
                                    cu_ace_potential.record, config, tmp_path / "explore"):
            outcomes[outcome.task.name] = outcome
            print(f"driver saw {outcome.task.name}")
            sys.stdout.flush()
    assert outcomes["kmc"].ok, outcomes["kmc"].error
    kmc = outcomes["kmc"].result
    assert not kmc.halted and kmc.steps_done == 1, kmc.message
    assert (tmp_path / "explore" / "kmc" / "kmc_log.json").is_file()
    assert outcomes["md"].result.steps_done == 20
    out = capfd.readouterr().out
    assert "driver saw md" in out and "driver saw kmc" in out
    log = (tmp_path / "explore" / "kmc" / "eon_client.log").read_text()
    assert "driver saw" not in log
    with pytest.raises(ValueError, match="no start structures for engine 'kmc'"):
        list(explore_many(engine, tasks[1:], {"ase": pool}, cu_ace_potential.record, config,
                          tmp_path / "explore2"))
