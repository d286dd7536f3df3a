"""Distillation without the teacher (milliseconds): the settings and their errors, the
teacher's command lines and site routing, the chunk plan (de-duplication, reuse, refusal)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ase.build import bulk
from ase.io import write

from pyacemaker.config import ConfigError, ContainerSettings, SiteConfig, load_site
from pyacemaker.execution import launch_for
from pyacemaker.stages.distill import teacher as teacher_module
from pyacemaker.stages.distill.chunks import ChunkPlanMismatch, plan_chunks, progress_line
from pyacemaker.stages.distill.settings import TeacherSettings, load_distill
from pyacemaker.stages.distill.teacher import (
    RUNNER, TeacherEnvironmentMissing, label_argv, teacher_python)

REPO = Path(__file__).resolve().parents[3]


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "distill.yaml"
    path.write_text(text)
    return path


def test_defaults_and_relative_files(tmp_path: Path) -> None:
    write(tmp_path / "start.extxyz", bulk("Si", cubic=True))
    config = load_distill(config_file(tmp_path, "elements: [Si]\n"
                                      "start_structures: [start.extxyz]\n"))
    assert config.teacher.model == "chgnet" and config.labelling.chunk_size == 32
    assert config.start_structures == [tmp_path / "start.extxyz"]


def test_shipped_example_loads() -> None:
    config = load_distill(REPO / "examples" / "distill" / "si-chgnet.yaml")
    assert config.teacher.model == "chgnet" and config.fit_base
    assert config.training.number_of_functions_per_element == 64


@pytest.mark.parametrize(("text", "field", "words"), [
    ("elements: [Si]\nteacher: {batch_sise: 4}\n", "teacher.batch_sise", "unknown key"),
    ("elements: [Si]\nteacher: {model: mace}\n", "teacher.model", "module:factory"),
    ("elements: [Si]\nteacher: {weights_kwarg: x}\n", "teacher", "module:factory"),
    ("elements: [Si]\nmd: {steps: 5, snapshot_interval: 10}\n", "md", "no snapshot"),
    ("elements: [Si]\nmd: {temperatures_K: [300, -5]}\n", "md.temperatures_K", "> 0 K"),
    ("elements: [Si]\nlabelling: {chunk_size: 0}\n", "labelling.chunk_size", "greater"),
    ("elements: [Xx]\n", "elements", "unknown element"),
])
def test_errors_name_the_field(tmp_path: Path, text: str, field: str, words: str) -> None:
    path = config_file(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_distill(path)
    message = str(err.value)
    assert str(path) in message and f"{field}:" in message and words in message, message


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    path = config_file(tmp_path, "elements: [Si]\nteacher: {weights: none.pth.tar}\n")
    with pytest.raises(ConfigError, match="teacher.weights: file not found"):
        load_distill(path)


def test_shipped_sites_have_a_teacher_class() -> None:
    for name in ("local", "cluster", "pbs"):
        site = load_site(REPO / "site_configs" / f"{name}.yaml")
        assert site.resources["teacher"].mpi_launcher == "none"


def test_teacher_runs_in_the_sites_teacher_image(tmp_path: Path) -> None:
    site = SiteConfig(scheduler="slurm", partition="gpu")
    site.container = ContainerSettings(runtime="apptainer", binds=["/scratch"],
                                       images={"teacher": "/images/teacher.sif"})
    python = teacher_python(site.programs.teacher_python, in_container=True)
    argv = label_argv(python, TeacherSettings(), Path("/scratch/c/input.extxyz"),
                      Path("/scratch/c/labels.extxyz"))
    wrapped = launch_for(site, "teacher").wrap(argv, Path("/scratch/c"))
    assert wrapped[:7] == ["apptainer", "exec", "--cleanenv", "--bind", "/scratch",
                           "--pwd", "/scratch/c"]
    assert wrapped[7:11] == ["/images/teacher.sif", "python3", str(RUNNER), "label"]
    site.container = ContainerSettings(runtime="apptainer", images={"qe": "/images/qe.sif"})
    with pytest.raises(ValueError, match="no entry for 'teacher'"):
        launch_for(site, "teacher")


def test_missing_teacher_environment_says_how_to_make_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(teacher_module.TEACHER_PYTHON_ENV, raising=False)
    monkeypatch.setattr(teacher_module, "CHECKOUT", tmp_path)
    with pytest.raises(TeacherEnvironmentMissing, match="make setup-teacher"):
        teacher_python(None)
    assert teacher_python("/opt/teacher/bin/python") == "/opt/teacher/bin/python"


def test_plan_deduplicates_keeps_its_files_and_refuses_other_input(tmp_path: Path) -> None:
    frames = []
    for seed in range(7):
        atoms = bulk("Si", cubic=True)
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms)
    frames.append(frames[2].copy())  # a duplicate is labelled once
    source = tmp_path / "snapshots.extxyz"
    write(source, frames, format="extxyz")
    plan = plan_chunks(source, tmp_path / "labels", chunk_size=3)
    assert [c.size for c in plan.chunks] == [3, 3, 1] and plan.duplicates == 1
    mtimes = [os.stat(c.input).st_mtime_ns for c in plan.chunks]
    again = plan_chunks(source, tmp_path / "labels", chunk_size=3)
    assert again == plan
    assert [os.stat(c.input).st_mtime_ns for c in again.chunks] == mtimes
    manifest = json.loads((tmp_path / "labels" / "manifest.json").read_text())
    assert manifest["chunks"] == [["chunk_0000", 3], ["chunk_0001", 3], ["chunk_0002", 1]]
    with pytest.raises(ChunkPlanMismatch, match="chunk size 3"):
        plan_chunks(source, tmp_path / "labels", chunk_size=4)


def test_progress_line_counts_this_runs_teacher_work(tmp_path: Path) -> None:
    source = tmp_path / "s.extxyz"
    write(source, [bulk("Si", cubic=True).repeat((1, 1, n)) for n in (1, 2, 3, 4)])
    plan = plan_chunks(source, tmp_path / "labels", chunk_size=2)
    line = progress_line(plan, plan.chunks[0], 1, 2, 2, 4.0, relabelled=True)
    assert line == ("[teacher] chunk 1/2 (chunk_0000, 2 structures labelled): 2/4 "
                    "structures, 0.50/s, ~4 s left")
    resumed = progress_line(plan, plan.chunks[1], 2, 4, 0, 0.1, relabelled=False)
    assert "already labelled, streamed in" in resumed and "s left" not in resumed
