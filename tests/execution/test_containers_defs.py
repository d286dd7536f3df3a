"""The Apptainer definition files parse (spython reads Singularity recipes) and meet the
project's rules: a pinned public base image, labels with versions, a %post, a %runscript
and a %test, and pip pins that agree with constraints.txt. A broken file fails CI here.
`make containers` says plainly that apptainer is missing instead of failing obscurely."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from spython.main.parse.parsers import SingularityParser

REPO = Path(__file__).resolve().parents[2]
DEFINITIONS = sorted((REPO / "containers").glob("*.def"))
TOOLS = {"qe", "lammps-ace", "pacemaker", "eon"}


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def sections(text: str) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^%(\w+)", line)
        if match:
            current = match[1]
            found[current] = []
        elif current:
            found[current].append(line)
    return {name: "\n".join(body).strip() for name, body in found.items()}


def problems(path: Path) -> list[str]:
    """Everything wrong with one definition file (empty: fine)."""
    text = path.read_text()
    recipe = SingularityParser(str(path)).recipe["spython-base"]
    issues = []
    if not re.search(r"^Bootstrap:\s*docker\s*$", text, re.M):
        issues.append("header: expected 'Bootstrap: docker' (a public base image)")
    if not recipe.fromHeader:
        issues.append("header: no 'From:' image")
    elif not re.search(r":\S*\d", recipe.fromHeader) or recipe.fromHeader.endswith(":latest"):
        issues.append(f"From: {recipe.fromHeader!r} is not pinned to a dated/versioned tag")
    labels = dict(label.split(None, 1) for label in recipe.labels if " " in label)
    if "org.opencontainers.image.title" not in labels:
        issues.append("%labels: no org.opencontainers.image.title")
    if not any(key.endswith("_VERSION") for key in labels):
        issues.append("%labels: no <TOOL>_VERSION label")
    if not recipe.install:
        issues.append("%post: empty")
    if not recipe.cmd:
        issues.append("%runscript: missing")
    if not sections(text).get("test"):
        issues.append("%test: missing or empty")
    pins = constraint_pins()
    post = sections(text).get("post", "")
    for name, version in re.findall(r'"([A-Za-z0-9_.\-]+)==([^"\s]+)"', post):
        want = pins.get(name.lower().replace("_", "-"))
        if want and want != version:
            issues.append(f"%post: {name}=={version} but constraints.txt pins {want}")
    return issues


def test_one_definition_per_tool() -> None:
    assert {p.stem for p in DEFINITIONS} == TOOLS


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_definition_parses_and_follows_the_rules(path: Path) -> None:
    assert problems(path) == []


def test_a_broken_definition_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "broken.def"
    broken.write_text('Bootstrap: docker\nFrom: debian:latest\n%post\n'
                      '    pip install "python-ace==0.3.0"\n')
    found = problems(broken)
    assert any("not pinned" in p for p in found)
    assert any("%test" in p for p in found) and any("%runscript" in p for p in found)
    assert any("constraints.txt pins 0.4.0rc1" in p for p in found)


def test_make_containers_says_apptainer_is_absent(tmp_path: Path) -> None:
    env = dict(os.environ, PATH="/usr/bin:/bin", CONTAINER_OUT=str(tmp_path))
    for runtime in ("apptainer", "singularity"):
        assert subprocess.run(["which", runtime], capture_output=True, env=env).returncode != 0
    result = subprocess.run(["make", "-s", "containers"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "apptainer (or singularity) is not installed on this machine" in result.stdout
    assert "charliecloud" in result.stdout  # and what does work here
    assert list(tmp_path.iterdir()) == []  # nothing half-built
