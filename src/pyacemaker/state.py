"""Campaign progress, persisted atomically after every stage transition.

The state file is ``<campaign dir>/state.json``. It is written to a temporary file in
the same folder, fsync'ed, then renamed over the old one: a kill at any moment leaves
either the old or the new state, never a torn file.

Paths in the file are relative to the campaign folder, so a copied or moved folder keeps
working (:func:`relative_path` on save, :func:`located_path` on load: in memory they are
absolute, in the folder the state was loaded from). Older versions stored absolute paths;
one that lies outside the current folder is looked for inside it by its tail (``/old/place/
cu/iter_001/fit/x.yaml`` -> ``<folder>/iter_001/fit/x.yaml``, the longest tail that exists),
so a folder moved or copied since still finds its own files, not the original's.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pyacemaker.images.record import ImageRecord
from pyacemaker.layout import iteration_dir

STATE_FILE = "state.json"
RECORD_PATHS = ("yaml", "yace", "asi", "dataset")  # the path fields of a PotentialRecord

StageStatus = Literal["pending", "running", "done", "failed", "skipped"]


class StateError(RuntimeError):
    """The campaign folder's state cannot be used (corrupt, or from another config)."""


class PotentialRecord(BaseModel):
    """Paths and metrics of one fitted potential (paths: absolute in memory, stored
    relative to the campaign folder in state.json and to the fit folder in
    potential_record.json)."""

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
    images: dict[str, ImageRecord] = Field(
        default_factory=dict, description="tool -> the container image it ran in (digest, "
        "versions): a resume with other images is refused (images/pinning.py)")
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


def relative_path(path: str | None, root: Path) -> str | None:
    """``path`` relative to ``root`` when it lies inside it, else unchanged."""
    if not path or not Path(path).is_absolute():
        return path
    for base in (Path(root).absolute(), Path(root).resolve()):
        try:
            return Path(path).relative_to(base).as_posix()
        except ValueError:
            continue
    return path


def located_path(path: str | None, root: Path) -> str | None:
    """The absolute path of a stored one: relative ones are under ``root``; an absolute one
    outside ``root`` (an older version's, written before the folder moved) is the same file
    inside ``root`` when its tail exists there, else unchanged."""
    if not path:
        return path
    root = Path(root).resolve()
    stored = Path(path)
    if not stored.is_absolute():
        return str(root / stored)
    if stored.is_relative_to(root):
        return path
    parts = stored.parts[1:]
    for start in range(len(parts)):
        candidate = root.joinpath(*parts[start:])
        if candidate.exists():
            return str(candidate)
    return path


def relative_record(record: PotentialRecord, root: Path) -> PotentialRecord:
    """A copy with the paths relative to ``root`` (as files store them)."""
    return record.model_copy(update={name: relative_path(getattr(record, name), root)
                                     for name in RECORD_PATHS})


def located_record(record: PotentialRecord, root: Path) -> PotentialRecord:
    """A copy with absolute paths, found from ``root`` (see :func:`located_path`)."""
    return record.model_copy(update={name: located_path(getattr(record, name), root)
                                     for name in RECORD_PATHS})


def save_state(state: WorkflowState, campaign_dir: Path) -> None:
    state.updated = _now()
    stored = state.model_copy(update={
        "potential": relative_record(state.potential, campaign_dir) if state.potential
        else None,
        "potentials": [relative_record(r, campaign_dir) for r in state.potentials]})
    atomic_write_text(Path(campaign_dir) / STATE_FILE, stored.model_dump_json(indent=2))


def load_state(campaign_dir: Path) -> WorkflowState | None:
    """The saved state with absolute paths in ``campaign_dir``, or None for a fresh
    folder. Corrupt files raise StateError."""
    path = Path(campaign_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        state = WorkflowState.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError) as exc:
        raise StateError(f"{path}: unreadable campaign state: {exc}") from exc
    if state.potential is not None:
        state.potential = located_record(state.potential, campaign_dir)
    state.potentials = [located_record(r, campaign_dir) for r in state.potentials]
    return state


def open_state(campaign_dir: Path, config_fingerprint: str, force: bool = False) -> WorkflowState:
    """Resume the state in ``campaign_dir`` or start a new one (by fingerprint alone; the
    driver compares field by field: ``resume.open_campaign_state``).

    A state written for another fingerprint is refused unless ``force``; then the old
    state, data lake and results move to ``superseded/<UTC time>/`` (resume.supersede).
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
                "configuration. Use another --workdir, or pass --force to start over (the old "
                "state, data lake and results move to superseded/<UTC time>/; nothing is "
                "deleted)."
            )
        from pyacemaker.resume import supersede

        supersede(campaign_dir)
        state = WorkflowState(config_fingerprint=config_fingerprint)
        save_state(state, campaign_dir)
    return state
