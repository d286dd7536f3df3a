"""Command lines of the teacher runner (``teacher_runner.py``, run by path in the teacher
environment) and where that environment is. Nothing here imports torch or the teacher."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pyacemaker.stages.distill.settings import TeacherMDSettings, TeacherSettings

RUNNER = Path(__file__).with_name("teacher_runner.py")
CHECKOUT = Path(__file__).resolve().parents[4]
TEACHER_PYTHON_ENV = "PYACEMAKER_TEACHER_PYTHON"
# The teacher's Python must not see the main venv's packages (3.12 wheels in a 3.11
# interpreter): an HTEX worker exports the driver's PYTHONPATH (parsl_configs.common).
TEACHER_ENV = {"PYTHONPATH": "", "PYTHONNOUSERSITE": "1"}


class TeacherEnvironmentMissing(RuntimeError):
    """No teacher Python to run; the message says how to make one."""


def teacher_python(configured: str | None, in_container: bool = False) -> str:
    """The site's ``programs.teacher_python``, else $PYACEMAKER_TEACHER_PYTHON, else this
    checkout's ``.venv-teacher/bin/python`` (``make setup-teacher``)."""
    if configured:
        return configured
    if os.environ.get(TEACHER_PYTHON_ENV):
        return os.environ[TEACHER_PYTHON_ENV]
    if in_container:
        return "python3"
    local = CHECKOUT / ".venv-teacher" / "bin" / "python"
    if not local.is_file():
        raise TeacherEnvironmentMissing(
            f"no teacher environment: {local} does not exist; run 'make setup-teacher', or "
            f"name the teacher's Python in the site YAML (programs.teacher_python) or in "
            f"${TEACHER_PYTHON_ENV}")
    return str(local)


def teacher_options(teacher: TeacherSettings) -> list[str]:
    options = ["--teacher", teacher.model, "--batch-size", str(teacher.batch_size),
               "--device", teacher.device]
    if teacher.weights is not None:
        options += ["--weights", str(teacher.weights)]
    if teacher.weights_kwarg:
        options += ["--weights-kwarg", teacher.weights_kwarg]
    if teacher.kwargs:
        options += ["--kwargs", json.dumps(teacher.kwargs, sort_keys=True)]
    return options


def label_argv(python: str, teacher: TeacherSettings, source: Path, output: Path,
               calls_log: Path | None = None) -> list[str]:
    argv = [python, str(RUNNER), "label", "--input", str(source), "--output", str(output),
            *teacher_options(teacher)]
    return argv + (["--calls-log", str(calls_log)] if calls_log else [])


def md_argv(python: str, teacher: TeacherSettings, md: TeacherMDSettings,
            temperature: float, seed: int, source: Path, output: Path,
            calls_log: Path | None = None) -> list[str]:
    argv = [python, str(RUNNER), "md", "--input", str(source), "--output", str(output),
            "--temperatures", f"{temperature:g}", "--walkers", str(md.walkers),
            "--steps", str(md.steps), "--interval", str(md.snapshot_interval),
            "--timestep-fs", str(md.timestep_fs), "--friction-per-fs", str(md.friction_per_fs),
            "--seed", str(seed), *teacher_options(teacher)]
    return argv + (["--calls-log", str(calls_log)] if calls_log else [])


def read_report(output: Path) -> dict[str, object]:
    """The runner's report next to its output (``OUT.json``): teacher name, sha256 ..."""
    report: dict[str, object] = json.loads(output.with_name(output.name + ".json").read_text())
    return report
