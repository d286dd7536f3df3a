"""The pyacemaker command line as a user meets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "pyacemaker.cli"]


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_help_explains_the_commands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for word in ("run", "status", "resume", "--workdir"):
        assert word in out.stdout


def test_config_typo_is_reported_with_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("elements: [Cu]\nactive_learning:\n  max_iteration: 3\n")
    out = run_cli("run", str(bad), "--site", str(REPO / "site_configs/local.yaml"),
                  "--workdir", str(tmp_path / "w"))
    assert out.returncode == 2
    assert str(bad) in out.stderr
    assert "active_learning.max_iteration: unknown key" in out.stderr
    assert not (tmp_path / "w" / "state.json").exists()  # nothing started


def test_status_of_an_empty_folder(tmp_path: Path) -> None:
    out = run_cli("status", "--workdir", str(tmp_path))
    assert out.returncode == 1
    assert "no campaign here" in out.stdout


def test_failing_stage_is_reported_and_work_is_kept(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    # EMT knows no Si: the oracle refuses the whole batch (a configuration error)
    config.write_text("elements: [Si]\noracle: {kind: emt}\n"
                      "active_learning: {initial_structures: 4}\n")
    workdir = tmp_path / "w"
    out = run_cli("run", str(config), "--site", str(REPO / "site_configs/local.yaml"),
                  "--workdir", str(workdir))
    assert out.returncode == 1
    assert "stopped in iteration 0, stage 'label'" in out.stdout
    assert "Si" in out.stdout and "run the same command again to resume" in out.stdout
    status = run_cli("status", "--workdir", str(workdir))
    assert "4 candidates" in status.stdout  # the generated structures were kept
