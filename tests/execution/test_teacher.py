"""The teacher for real: CHGNet in .venv-teacher (make setup-teacher) as an external
program on the local site's teacher executor. Batched labels equal CHGNet's own ASE
calculator's; teacher MD writes snapshots; a kill during batch labelling resumes without
relabelling a finished chunk."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write

from pyacemaker.config import load_site
from pyacemaker.datastore import DataStore
from pyacemaker.execution.engine import Engine
from pyacemaker.execution.teaching import CALLS_LOG, explore_with_teacher
from pyacemaker.programs import run_program
from pyacemaker.stages.distill.settings import DistillConfig, TeacherSettings
from pyacemaker.stages.distill.teacher import (
    CHECKOUT, RUNNER, TEACHER_ENV, TeacherEnvironmentMissing, label_argv, teacher_python)

REPO = Path(__file__).resolve().parents[2]
CHGNET_WEIGHTS = "chgnet/pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar"


@pytest.fixture(scope="module")
def python() -> str:
    try:
        return teacher_python(None)
    except TeacherEnvironmentMissing as exc:
        pytest.fail(f"{exc} (make test runs make setup-teacher)")


def rattled(n: int, amplitude: float = 0.08) -> list:
    frames = []
    for seed in range(n):
        atoms = bulk("Si", cubic=True)
        atoms.rattle(amplitude, seed=seed)
        frames.append(atoms)
    return frames


def weights_sha256() -> str:
    path = next((CHECKOUT / ".venv-teacher" / "lib").glob(f"python3.11/site-packages/"
                                                          f"{CHGNET_WEIGHTS}"))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_batched_chgnet_labels_equal_its_calculator(python: str, tmp_path: Path) -> None:
    source = tmp_path / "chunk.extxyz"
    write(source, rattled(4), format="extxyz")
    runs = {}
    for name, model in (("batched", "chgnet"),
                        ("calculator", "chgnet.model.dynamics:CHGNetCalculator")):
        output = tmp_path / name / "labels.extxyz"
        argv = label_argv(python, TeacherSettings(model=model, batch_size=3), source, output)
        run_program(argv, tmp_path / name, timeout_s=600, env=TEACHER_ENV)
        runs[name] = read(output, index=":")
        assert not list(output.parent.glob("*.tmp.*"))  # written atomically
    report = json.loads((tmp_path / "batched" / "labels.extxyz.json").read_text())
    assert report["teacher_model"] == "CHGNet 0.3.0 (chgnet 0.4.2)"
    assert report["teacher_sha256"] == weights_sha256()
    for batched, single in zip(runs["batched"], runs["calculator"]):
        assert batched.info["teacher_sha256"] == report["teacher_sha256"]
        assert -5.6 < batched.get_potential_energy() / len(batched) < -5.0
        assert batched.get_potential_energy() == pytest.approx(
            single.get_potential_energy(), abs=1e-3)
        assert np.abs(batched.get_forces() - single.get_forces()).max() < 1e-3
        assert np.abs(batched.get_stress() - single.get_stress()).max() < 1e-4
    assert "torch" not in sys.modules  # the teacher is never imported here


@pytest.mark.slow
def test_teacher_md_on_the_teacher_executor(python: str, tmp_path: Path) -> None:
    config = DistillConfig.model_validate({
        "elements": ["Si"], "md": {"temperatures_K": [300, 1500], "walkers": 1, "steps": 10,
                                   "snapshot_interval": 5, "timestep_fs": 1.0}})
    site = load_site(REPO / "site_configs" / "local.yaml")
    site.resources["teacher"].max_parallel_tasks = 2
    with Engine(site, tmp_path / "parsl") as engine:
        snapshots = explore_with_teacher(engine, config, tmp_path / "md")
    frames = read(snapshots, index=":")
    assert len(frames) == 4
    assert sorted({a.info["temperature_K"] for a in frames}) == [300.0, 1500.0]
    assert {a.info["md_step"] for a in frames} == {5, 10}
    moved = [np.abs(a.positions - bulk("Si", cubic=True).positions).max() for a in frames]
    assert min(moved) > 1e-3
    calls = (tmp_path / "md" / CALLS_LOG).read_text().splitlines()
    assert len(calls) == 2 and all(json.loads(c)["command"] == "md" for c in calls)
    report = json.loads((tmp_path / "md" / "md_T300" / "snapshots.extxyz.json").read_text())
    assert report["teacher_sha256"] == weights_sha256() and report["snapshots"] == 2


def _driver(config: Path, workdir: Path) -> subprocess.Popen[bytes]:
    """``pyacemaker distill`` with a relative --workdir (the teacher runs elsewhere)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pyacemaker.cli", "distill", str(config),
         "--site", "local", "--workdir", workdir.name],
        stdout=open(workdir / "driver.out", "ab"), stderr=subprocess.STDOUT,
        cwd=workdir.parent)


@pytest.mark.slow
def test_kill_during_labelling_resumes_without_relabelling(python: str,
                                                          tmp_path: Path) -> None:
    workdir = tmp_path / "distill"
    (workdir / "teacher_md").mkdir(parents=True)
    write(workdir / "teacher_md" / "snapshots.extxyz", rattled(20), format="extxyz")
    config = tmp_path / "distill.yaml"
    config.write_text("elements: [Si]\nteacher: {batch_size: 4}\n"
                      "labelling: {chunk_size: 4, max_chunks_in_flight: 1}\n"
                      "fit_base: false\n")
    labels = workdir / "teacher_labels"
    driver = _driver(config, workdir)
    deadline = time.monotonic() + 240
    calls_log = labels / CALLS_LOG

    def started() -> int:
        return len(calls_log.read_text().splitlines()) if calls_log.is_file() else 0

    # two chunks in the lake and the third one's teacher run started: kill it mid-chunk
    while len(list(labels.glob("chunk_*/ingested.json"))) < 2 or started() < 3:
        assert driver.poll() is None, (workdir / "driver.out").read_text()
        assert time.monotonic() < deadline, "two chunks not labelled in 240 s"
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)  # no handler, no clean-up
    driver.wait()
    time.sleep(1.0)  # the runner in flight gets SIGTERM as its parent died
    labelled_before = {p.parent.name for p in labels.glob("chunk_*/labels.extxyz")}
    rows_before = {p.parent.name: json.loads(p.read_text())["row_ids"]
                   for p in labels.glob("chunk_*/ingested.json")}
    mtimes_before = {p.parent.name: os.stat(p).st_mtime_ns
                     for p in labels.glob("chunk_*/labels.extxyz")}
    calls_before = (labels / CALLS_LOG).read_text().splitlines()
    assert 2 <= len(rows_before) < 5
    # a chunk was in flight (it could only have finished in the last 0.1 s)
    assert len(calls_before) - len(labelled_before) in (0, 1)
    assert not [line for line in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                                text=True).stdout.splitlines()
                if str(labels) in line], "a teacher run outlived its killed driver"

    driver = _driver(config, workdir)
    assert driver.wait(timeout=300) == 0, (workdir / "driver.out").read_text()
    out = (workdir / "driver.out").read_text()
    assert f"resuming: {len(rows_before)}/5 chunks already done" in out
    calls = (labels / CALLS_LOG).read_text().splitlines()
    inputs = [Path(json.loads(line)["input"]).parent.name for line in calls]
    for name in labelled_before:
        assert inputs.count(name) == 1, f"{name} was labelled again"
        assert os.stat(labels / name / "labels.extxyz").st_mtime_ns == mtimes_before[name]
    assert len(calls) == len(calls_before) + 5 - len(labelled_before)
    lake = DataStore(workdir / "data.db")
    for name, ids in rows_before.items():
        assert json.loads((labels / name / "ingested.json").read_text())["row_ids"] == ids
        chunks = [next(lake.rows(id=row_id)).teacher_chunk for row_id in ids]
        assert chunks == [int(name.split("_")[1])] * 4
    rows = list(lake.rows(provenance="teacher"))
    assert len(rows) == 20 and lake.count() == 20
    assert {r.teacher_sha256 for r in rows} == {weights_sha256()}
    assert {r.teacher_model for r in rows} == {"CHGNet 0.3.0 (chgnet 0.4.2)"}
    assert all(r.status == "labelled" and r.forces.shape == (8, 3) for r in rows)
    assert RUNNER.is_file()


def test_failing_teacher_leaves_the_chunk_to_redo(python: str, tmp_path: Path) -> None:
    """A teacher that cannot load fails the labelling with its output; nothing is in the
    lake and the chunk has no labels (a rerun labels it)."""
    from pyacemaker.execution.teaching import label_with_teacher
    from pyacemaker.programs import ProgramFailed

    source = tmp_path / "structures.extxyz"
    write(source, rattled(3), format="extxyz")
    config = DistillConfig.model_validate({"elements": ["Si"], "fit_base": False,
                                           "teacher": {"model": "no_such_module:Teacher"}})
    lake = DataStore(tmp_path / "data.db")
    with Engine(load_site(REPO / "site_configs" / "local.yaml"), tmp_path / "parsl") as engine:
        with pytest.raises(ProgramFailed, match="No module named 'no_such_module'"):
            label_with_teacher(engine, config, source, tmp_path / "labels", lake)
    chunk = tmp_path / "labels" / "chunk_0000"
    assert (chunk / "input.extxyz").is_file() and not (chunk / "labels.extxyz").exists()
    assert not list(chunk.glob("*.tmp.*")) and lake.count() == 0
