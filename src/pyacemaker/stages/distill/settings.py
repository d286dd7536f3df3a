"""The distillation YAML (``pyacemaker distill CONFIG.yaml``): the teacher, its MD
exploration and the batch labelling. Strict pydantic models like the campaign's; errors
name the file and the field (:func:`load_distill`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from ase.data import atomic_numbers
from pydantic import Field, field_validator, model_validator

from pyacemaker.config import TrainingSettings
from pyacemaker.config_base import ConfigError, StrictModel

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class TeacherSettings(StrictModel):
    """Which foundation model labels, and how it is loaded in the teacher environment."""

    model: str = Field(
        "chgnet", description="chgnet (CHGNet 0.3.0 from the chgnet wheel, or `weights`), "
        "or any ASE calculator of the teacher environment as module:factory, e.g. "
        "mace.calculators:MACECalculator.")
    weights: Path | None = Field(
        None, description="Weight file of the teacher; its sha256 goes with every label. "
        "chgnet: a CHGNet checkpoint (None: the wheel's 0.3.0 weights).")
    weights_kwarg: str | None = Field(
        None, description="module:factory only: the keyword that receives `weights` "
        "(e.g. model_paths for MACECalculator); None: the path is only hashed.")
    kwargs: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="module:factory only: its keyword arguments.")
    batch_size: int = Field(16, gt=0, description="Structures per batched evaluation "
                            "(CHGNet: collated graphs).")
    device: str = Field("cpu", description="torch device of chgnet: cpu, cuda.")
    timeout_s: float = Field(3600.0, gt=0, description="Wall-time limit of one teacher run "
                             "(one chunk, or one MD exploration).")

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        if model != "chgnet" and not _FACTORY.match(model):
            raise ValueError(f"{model!r} is neither 'chgnet' nor an ASE calculator factory "
                             "written module:factory (e.g. ase.calculators.emt:EMT)")
        return model

    @model_validator(mode="after")
    def _weights_kwarg_needs_factory(self) -> TeacherSettings:
        if self.model == "chgnet" and (self.weights_kwarg or self.kwargs):
            raise ValueError("weights_kwarg and kwargs are for a module:factory teacher; "
                             "chgnet takes only weights")
        return self


class TeacherMDSettings(StrictModel):
    """Teacher-driven NVT MD (ASE Langevin) from the start structures."""

    temperatures_K: list[float] = Field([300.0, 900.0], min_length=1,
                                        description="One set of walkers per temperature.")
    walkers: int = Field(2, gt=0, description="Walkers per temperature (start structures "
                         "taken in turn).")
    steps: int = Field(200, gt=0, description="MD steps of each walker.")
    snapshot_interval: int = Field(10, gt=0, description="Steps between snapshots.")
    timestep_fs: float = Field(2.0, gt=0, le=10)
    friction_per_fs: float = Field(0.02, gt=0)
    seed: int = 0

    @field_validator("temperatures_K")
    @classmethod
    def _positive(cls, temperatures: list[float]) -> list[float]:
        if any(t <= 0 for t in temperatures):
            raise ValueError(f"temperatures must be > 0 K, got {temperatures}")
        return temperatures

    @model_validator(mode="after")
    def _interval_fits(self) -> TeacherMDSettings:
        if self.snapshot_interval > self.steps:
            raise ValueError(f"snapshot_interval ({self.snapshot_interval}) is longer than "
                             f"steps ({self.steps}): no snapshot would be taken")
        return self


class LabellingSettings(StrictModel):
    chunk_size: int = Field(32, gt=0, description="Structures per teacher call: the unit "
                            "of memory, of progress and of resumption after a kill.")
    max_chunks_in_flight: int | None = Field(
        None, gt=0, description="Chunks submitted at once; None: the site's "
        "resources.teacher max_parallel_tasks x max_blocks.")


def _base_training() -> TrainingSettings:
    # data is cheap (the teacher labels thousands): a larger basis than a campaign's
    return TrainingSettings(number_of_functions_per_element=128)


class DistillConfig(StrictModel):
    elements: list[str] = Field(..., min_length=1)
    start_structures: list[Path] = Field(
        default_factory=list, description="Files ASE reads (extxyz, cif, POSCAR ...), every "
        "frame a start structure; empty: the conventional bulk cell of each element.")
    start_supercell: list[int] = Field([1, 1, 1], min_length=3, max_length=3)
    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    md: TeacherMDSettings = Field(default_factory=TeacherMDSettings)
    labelling: LabellingSettings = Field(default_factory=LabellingSettings)
    held_out_fraction: float = Field(0.1, gt=0, lt=1, description="Share of the labelled "
                                     "structures kept out of the base fit (its test set).")
    fit_base: bool = Field(True, description="Fit the base ACE on the teacher's labels "
                           "after labelling (resources.train).")
    training: TrainingSettings = Field(default_factory=_base_training, description="The "
                                       "base ACE fit (the campaign's training section).")
    mode: Literal["distill"] = "distill"

    @field_validator("elements")
    @classmethod
    def _elements_exist(cls, elements: list[str]) -> list[str]:
        unknown = [e for e in elements if e not in atomic_numbers]
        if unknown:
            raise ValueError(f"unknown element(s) {unknown}")
        return elements


def load_distill(path: str | Path) -> DistillConfig:
    """Read and check a distillation YAML; relative files are relative to it."""
    from pyacemaker.config import _read_yaml, _validate  # the campaign's error wording

    path = Path(path)
    config: DistillConfig = _validate(DistillConfig, _read_yaml(path), path)
    base = path.resolve().parent
    starts = [p if p.is_absolute() else base / p for p in config.start_structures]
    for i, start in enumerate(starts):
        if not start.is_file():
            raise ConfigError(f"{path}: start_structures.{i}: file not found: {start}")
    config.start_structures = starts
    weights = config.teacher.weights
    if weights is not None:
        weights = weights if weights.is_absolute() else base / weights
        if not weights.is_file():
            raise ConfigError(f"{path}: teacher.weights: file not found: {weights}")
        config.teacher.weights = weights
    return config
