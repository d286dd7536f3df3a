"""The version of each tool inside its image, read once per image and recorded.

A resumed campaign compares these with what it recorded when it started: a different
pw.x in the image changes every new label, so the difference must be seen, not found
later in the data."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pyacemaker.programs import ContainerRuntime, Launch, run_program
from pyacemaker.site_config import ProgramSettings, Tool

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 300.0
# (argv inside the image, pattern whose first group is the version)
_PROBES: dict[str, tuple[str, str]] = {
    "qe": ("pw.x", r"Program PWSCF v\.(\S+)"),
    "pacemaker": ("pacemaker/pyace", r"pacemaker/pyace version:\s*(\S+)"),
    "lammps-ace": ("LAMMPS", r"Simulator - (.+?)\s*$"),
    "eon": ("eonclient", r"(\S.*?)\s*$"),
    "teacher": ("python", r"Python (\S+)"),
}


def probe_argv(tool: Tool, programs: ProgramSettings) -> list[str]:
    if tool == "qe":  # pw.x prints its banner, then stops on the empty input
        return ["sh", "-c", f"echo | {programs.pw}"]
    if tool == "pacemaker":
        return [programs.pacemaker, "--version"]
    if tool == "lammps-ace":
        return [programs.lmp or "lmp", "-h"]
    if tool == "teacher":
        return [programs.teacher_python or "python3", "--version"]
    return [programs.eonclient, "--version"]


def tool_versions(tool: Tool, runtime: ContainerRuntime, image: str,
                  programs: ProgramSettings, folder: Path) -> dict[str, str]:
    """``{program: version}`` of ``tool`` inside ``image``; an unreadable version is
    recorded as ``unknown (probe status N)`` (compared like any other value)."""
    name, pattern = _PROBES[tool]
    launch = Launch(container_runtime=runtime, image=image)
    folder.mkdir(parents=True, exist_ok=True)
    # check=False: pw.x ends with an error status on the empty input, after its banner
    result = run_program(probe_argv(tool, programs), folder, launch=launch,
                         timeout_s=PROBE_TIMEOUT_S, check=False)
    text = result.stdout() + "\n" + result.stderr()
    match = re.search(pattern, text, flags=re.MULTILINE)
    if match:
        return {name: match.group(1)}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # the output itself (pids, times) would differ on every run and refuse every resume
    log.warning("%s: no version of %s found in %s (status %d): %s", image, name,
                folder, result.returncode, lines[-1][:200] if lines else "no output")
    return {name: f"unknown (probe status {result.returncode})"}
