"""Container and MPI prefixes of a program's argv (no container runtime runs here for
apptainer/singularity: the argv is what we can check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyacemaker.config import ContainerSettings, SiteConfig, StageResources
from pyacemaker.execution import launch_for
from pyacemaker.programs import Launch


def cluster_site(runtime: str) -> SiteConfig:
    site = SiteConfig(scheduler="slurm", partition="compute")
    site.resources["dft"] = StageResources(mpi_ranks=8, mpi_launcher="srun")
    site.container = ContainerSettings(
        runtime=runtime, binds=["/scratch", "/data:/mnt/data"],
        images={"qe": "/images/qe.sif", "lammps-ace": "/images/lammps-ace.sif"})
    return site


@pytest.mark.parametrize("runtime", ["apptainer", "singularity"])
def test_apptainer_argv_host_launcher_outside(runtime: str) -> None:
    launch = launch_for(cluster_site(runtime), "dft")
    argv = launch.wrap(["pw.x", "-nk", "2", "-in", "pw.in"], Path("/scratch/t1"))
    assert argv == ["srun", "--ntasks", "8", "--cpus-per-task", "1",
                    runtime, "exec", "--cleanenv", "--bind", "/scratch,/data:/mnt/data",
                    "--pwd", "/scratch/t1", "/images/qe.sif",
                    "pw.x", "-nk", "2", "-in", "pw.in"]


def test_charliecloud_argv_binds_task_folder() -> None:
    launch = Launch(container_runtime="charliecloud", image="/img/qe", binds=("/scratch",))
    argv = launch.wrap(["pw.x"], Path("/work/t"))
    assert argv == ["ch-run", "--unset-env=LD_LIBRARY_PATH", "--unset-env=PYTHONPATH",
                    "-b", "/work:/work", "-b", "/scratch:/scratch",
                    "-c", "/work/t", "/img/qe", "--", "pw.x"]


def test_no_container_and_serial_run_is_the_bare_program() -> None:
    site = SiteConfig()
    assert launch_for(site, "dft").wrap(["pw.x"], Path("/t")) == ["pw.x"]
    site.resources["md"] = StageResources(mpi_ranks=4)
    site.programs.mpirun = {"lammps-ace": "/opt/mpich/bin/mpirun"}
    assert launch_for(site, "md").wrap(["lmp"], Path("/t"))[:3] == [
        "/opt/mpich/bin/mpirun", "-np", "4"]


def test_missing_image_is_a_named_error() -> None:
    site = cluster_site("apptainer")
    with pytest.raises(ValueError, match="container.images has no entry for 'pacemaker'"):
        launch_for(site, "train")
