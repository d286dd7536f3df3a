"""pacemaker's helpers and eonclient run in their tool's image on a container site.

The image here is the small QE image (the only one a fresh machine builds), named as the
site's pacemaker and eon image: it has no pace_activeset, pace_yaml2yace or eonclient, so a
helper that really ran through ``ch-run`` in it fails with charliecloud's "can't execve"
from inside the image, while the same helper run on the host would have found the program
(it is in the venv). The argv in the error carries the container prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyacemaker.config import CampaignConfig, ContainerSettings, SiteConfig
from pyacemaker.execution import Engine, launch_for
from pyacemaker.execution.exploring import run_context
from pyacemaker.programs import ProgramFailed, run_program
from pyacemaker.stages.explore.kmc import kmc_task
from pyacemaker.stages.explore.result import ExplorationTask
from pyacemaker.stages.train.fit import build_active_set, write_yace
from pyacemaker.state import PotentialRecord

pytestmark = pytest.mark.timeout(300)


def tool_site(image: Path) -> SiteConfig:
    return SiteConfig(local_executor="threads", container=ContainerSettings(
        runtime="charliecloud",
        images={"pacemaker": str(image), "eon": str(image), "lammps-ace": str(image)}))


def ran_inside(error: ProgramFailed, image: Path, program: str) -> None:
    argv = error.result.argv
    assert argv[0] == "ch-run" and str(image) in argv, argv
    assert argv[argv.index("--") + 1] == program, argv
    assert "execve" in error.result.stderr() and program in error.result.stderr()


def test_pace_helpers_run_in_the_pacemaker_image(qe_image: Path, tmp_path: Path) -> None:
    tools = launch_for(tool_site(qe_image), "train", "pacemaker").with_ranks(1)
    (tmp_path / "output_potential.yaml").write_text("elements: [Si]\n")
    (tmp_path / "fitting_data_info.pckl.gzip").write_bytes(b"")
    with pytest.raises(ProgramFailed) as yace:
        write_yace(tmp_path, launch=tools)
    ran_inside(yace.value, qe_image, "pace_yaml2yace")
    with pytest.raises(ProgramFailed) as active_set:
        build_active_set(tmp_path / "output_potential.yaml",
                         tmp_path / "fitting_data_info.pckl.gzip", tmp_path, launch=tools)
    ran_inside(active_set.value, qe_image, "pace_activeset")


def test_eonclient_and_lammps_get_their_images_from_the_site(qe_image: Path,
                                                             tmp_path: Path) -> None:
    config = CampaignConfig(elements=["Cu"], exploration={"kmc": {"engine": "eonclient"}})
    tasks = [ExplorationTask(name="md", engine="lammps"),
             kmc_task("kmc", config.exploration.kmc)]
    record = PotentialRecord(iteration=0, yaml=str(tmp_path / "p.yaml"))
    with Engine(tool_site(qe_image), tmp_path / "run") as engine:
        context = run_context(engine, tasks, record, config)
    assert context.eon_launch is not None and context.md_launch is not None
    for launch in (context.eon_launch, context.md_launch):
        prefix = launch.container_prefix(tmp_path)
        assert prefix[0] == "ch-run" and str(qe_image) in prefix
    assert context.lmp is not None  # the image's LAMMPS, not the host's plugin
    result = run_program(["eonclient"], tmp_path, launch=context.eon_launch, check=False)
    assert not result.ok and "execve" in result.stderr()
