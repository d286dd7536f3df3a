"""One small finished EMT campaign, shared by the tests of resuming, --force and moving.

Built once per test session with the CLI, as a user runs it (cold start only: 16 EMT
labels, one small pacemaker fit, the gate and the report; it stops on max_dft_calls), in
the session's temporary folder. Tests work on their own ``cp -r`` of it, so it stays as the
run left it. Real programs throughout: no part of pyacemaker is replaced.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "pyacemaker.cli"]
LOCAL_SITE = REPO / "site_configs" / "local.yaml"
# a site whose pacemaker does not exist: a run stops in seconds at its first fit
NO_PACEMAKER_SITE = """\
name: no-pacemaker
scheduler: local
local_executor: threads
resources:
  dft: {max_parallel_tasks: 2}
  train: {max_parallel_tasks: 1}
  md: {max_parallel_tasks: 1}
  light: {max_parallel_tasks: 1}
container: {runtime: none}
monitoring: {enabled: false}
programs: {pacemaker: /nonexistent/pacemaker}
"""
CAMPAIGN: dict[str, Any] = {
    "name": "cu-tiny",
    "elements": ["Cu"],
    "oracle": {"kind": "emt"},
    "training": {"cutoff": 5.0, "number_of_functions_per_element": 8, "max_iterations": 20,
                 "warm_start_iterations": 10},
    "exploration": {"engine": "ase", "temperatures": [800], "steps": 60, "target_atoms": 8,
                    "walkers": 1, "max_tasks": 1, "kmc": {"schedule": "off"}},
    "active_learning": {"initial_structures": 16, "max_candidates_per_iteration": 4,
                        "max_iterations": 1, "max_dft_calls": 16},
    "validation": {"phonon_supercell": 2, "phonon_mesh": 4, "eos_points": 7},
}


def run_cli(*args: str | Path, cwd: Path = REPO,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def write_config(path: Path, **changes: Any) -> Path:
    """CAMPAIGN with dotted-path changes (``training__cutoff=4.0``: '__' for '.')."""
    config = copy.deepcopy(CAMPAIGN)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        section = config
        for key in parents:
            section = section.setdefault(key, {})
        section[leaf] = value
    path.write_text(yaml.safe_dump(config))
    return path


def site_without_pacemaker(path: Path) -> Path:
    """The local site with ``false`` as pacemaker: a run stops at once in its first fit
    (what the --force tests need: everything up to the labels, quickly)."""
    site = yaml.safe_load(LOCAL_SITE.read_text())
    site.setdefault("programs", {})["pacemaker"] = "false"
    path.write_text(yaml.safe_dump(site))
    return path


def finished_campaign(factory: pytest.TempPathFactory) -> Path:
    """The session's finished campaign folder (built by the first caller)."""
    root = factory.getbasetemp() / "tiny_campaign"
    folder = root / "cu-tiny"
    if not (root / "done").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        out = run_cli("run", write_config(root / "cu-tiny.yaml"), "--site", LOCAL_SITE,
                      "--workdir", folder)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        (root / "done").write_text(out.stdout)
    return folder


def copy_of(folder: Path, target: Path) -> Path:
    """``cp -r folder target`` (what a user does)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-r", str(folder), str(target)], check=True)
    return target


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` with its size and mtime: equal iff nothing was touched."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}
