"""pyacemaker installed as a user would (`pip install .`, not editable) and run from the
user's own folder: the LAMMPS ML-PACE plugin that `make setup` built is found, the shipped
sites load by name, and a small EMT campaign runs with the default site."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pyacemaker.stages.explore.lammps import installed_plugin_path

REPO = Path(__file__).resolve().parents[1]
TINY_EMT_CAMPAIGN = {
    "name": "cu-user", "elements": ["Cu"], "oracle": {"kind": "emt"},
    "training": {"number_of_functions_per_element": 8, "max_iterations": 20},
    "active_learning": {"initial_structures": 12, "max_dft_calls": 12},
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-editable install of this checkout into a folder of its own."""
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("src", "parsl_configs", "site_configs"):
        shutil.copytree(REPO / part, source / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    target = work / "target"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)],
                   check=True, timeout=600, capture_output=True)
    return target


def run_installed(target: Path, argv: list[str], cwd: Path,
                  timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(target))
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def test_plugin_and_sites_found_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    probe = ("import json, pyacemaker; from pyacemaker.stages.explore.lammps import "
             "find_pace_plugin; from pyacemaker.sites import resolve_site; print(json.dumps("
             "[pyacemaker.__file__, str(find_pace_plugin()), str(resolve_site('cluster'))]))")
    out = run_installed(installed, ["-c", probe], tmp_path)
    assert out.returncode == 0, out.stderr
    module, plugin, site = json.loads(out.stdout)
    assert Path(module).is_relative_to(installed)  # the installed copy, not the checkout
    assert Path(plugin) == installed_plugin_path().resolve()
    assert Path(site) == installed / "site_configs" / "cluster.yaml"


def test_doctor_from_a_users_folder(installed: Path, tmp_path: Path) -> None:
    out = run_installed(installed, ["-m", "pyacemaker.cli", "doctor", "--quick"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"site 'local' ({installed / 'site_configs' / 'local.yaml'})" in out.stdout


@pytest.mark.slow
def test_run_in_a_users_folder_with_the_default_site(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "cu.yaml").write_text(yaml.safe_dump(TINY_EMT_CAMPAIGN))
    out = run_installed(installed, ["-m", "pyacemaker.cli", "run", "cu.yaml"], tmp_path,
                        timeout_s=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "on site 'local'" in out.stdout
    assert "budget: max_dft_calls=12" in out.stdout
    state = json.loads((tmp_path / "campaigns" / "cu-user" / "state.json").read_text())
    assert state["finished"] and state["dft_calls"] == 12
