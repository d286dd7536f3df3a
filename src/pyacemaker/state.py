"""Campaign progress, persisted atomically after every stage transition.

The state file is ``<campaign dir>/state.json``. It is written to a temporary file in
the same folder, fsync'ed, then renamed over the old one: a kill at any moment leaves
either the old or the new state, never a torn file.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pyacemaker.layout import iteration_dir

STATE_FILE = "state.json"

StageStatus = Literal["pending", "running", "done", "failed", "skipped"]


class StateError(RuntimeError):
    """The campaign folder's state cannot be used (corrupt, or from another config)."""


class PotentialRecord(BaseModel):
    """Paths and metrics of one fitted potential (paths relative to the campaign dir)."""

    # Undeclared keys of records written by older versions still load (and are kept).
    model_config = ConfigDict(extra="allow")

    iteration: int
    yaml: str
    yace: str | None = None
    asi: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    elements: list[str] = Field(default_factory=list)
    cutoff: float | None = Field(None, description="A, the fit's radial cutoff")
    reference_energies: dict[str, float] = Field(
        default_factory=dict, description="eV per element subtracted from the labels")
    baseline: dict[str, Any] | None = Field(
        None, description="the explicit pair baseline of delta learning (None: none)")
    dataset: str | None = Field(None, description="the training set the fit read")
    mode: str | None = Field(None, description="full fit, or warm start from a previous one")
    inputs_hash: str | None = Field(None, description="of dataset + input.yaml + argv (reuse)")
    deployed: bool = Field(True, description="False: worse than the potential it would "
                           "have replaced on the validation set; kept for the record only")
    choice: str = Field("", description="why it was (not) deployed")


class StageRecord(BaseModel):
    name: str
    status: StageStatus = "pending"
    started: str | None = None
    finished: str | None = None
    message: str = ""


class WorkflowState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config_fingerprint: str
    iteration: int = 0
    stage: str = "start"
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    potential: PotentialRecord | None = None
    potentials: list[PotentialRecord] = Field(default_factory=list)
    dataset: str | None = None  # unused; kept so that state.json files of older campaigns load
    dft_calls: int = 0
    reference_energies: dict[str, float] = Field(
        default_factory=dict, description="eV per element, fixed at the first fit")
    last_full_refit: int | None = None
    elapsed_s: float = Field(0.0, description="wall time of earlier runs of this campaign")
    validation: dict[int, str] = Field(
        default_factory=dict, description="iteration -> 'GO' or 'NO-GO (reasons)'")
    halts: dict[int, int] = Field(default_factory=dict, description="iteration -> halts found")
    frames: dict[int, int] = Field(
        default_factory=dict, description="iteration -> exploration frames above gamma_lower")
    finished: bool = False
    stop_reason: str | None = None
    created: str = Field(default_factory=lambda: _now())
    updated: str = Field(default_factory=lambda: _now())

    def iteration_dir(self, root: Path, iteration: int | None = None) -> Path:
        it = self.iteration if iteration is None else iteration
        folder = iteration_dir(root, it)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def mark(self, stage: str, status: StageStatus, message: str = "") -> None:
        key = f"{self.iteration:03d}:{stage}"
        record = self.stages.setdefault(key, StageRecord(name=stage))
        record.status = status
        record.message = message
        if status == "running":
            record.started = _now()
        elif status in ("done", "failed", "skipped"):
            record.finished = _now()
        self.stage = stage

    def stages_done(self, iteration: int | None = None) -> frozenset[str]:
        """Names of the stages finished in ``iteration`` (default: the current one)."""
        prefix = f"{self.iteration if iteration is None else iteration:03d}:"
        return frozenset(key[len(prefix):] for key, record in self.stages.items()
                         if key.startswith(prefix) and record.status == "done")

    def status_of(self, stage: str, iteration: int | None = None) -> StageStatus:
        it = self.iteration if iteration is None else iteration
        record = self.stages.get(f"{it:03d}:{stage}")
        return record.status if record else "pending"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new content only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_state(state: WorkflowState, campaign_dir: Path) -> None:
    state.updated = _now()
    atomic_write_text(Path(campaign_dir) / STATE_FILE, state.model_dump_json(indent=2))


def load_state(campaign_dir: Path) -> WorkflowState | None:
    """The saved state, or None for a fresh folder. Corrupt files raise StateError."""
    path = Path(campaign_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        return WorkflowState.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError) as exc:
        raise StateError(f"{path}: unreadable campaign state: {exc}") from exc


def open_state(campaign_dir: Path, config_fingerprint: str, force: bool = False) -> WorkflowState:
    """Resume the state in ``campaign_dir`` or start a new one.

    A state written for a different configuration (other elements or oracle settings)
    is refused unless ``force``; then the old file is kept as ``state.json.bak``.
    """
    campaign_dir = Path(campaign_dir)
    state = load_state(campaign_dir)
    if state is None:
        state = WorkflowState(config_fingerprint=config_fingerprint)
        save_state(state, campaign_dir)
        return state
    if state.config_fingerprint != config_fingerprint:
        if not force:
            raise StateError(
                f"{campaign_dir / STATE_FILE}: this campaign folder was started with a different "
                "configuration (elements or oracle settings changed), so its labels would not "
                "match. Use another --workdir, or pass --force to start over (the old state is "
                "kept as state.json.bak and the data lake is kept)."
            )
        os.replace(campaign_dir / STATE_FILE, campaign_dir / (STATE_FILE + ".bak"))
        state = WorkflowState(config_fingerprint=config_fingerprint)
        save_state(state, campaign_dir)
    return state
