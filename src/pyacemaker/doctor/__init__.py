"""``pyacemaker doctor``: in seconds, everything a site and a campaign need, checked for real.

pw.x runs a tiny SCF with the pseudopotential the campaign would use, LAMMPS loads the
ML-PACE plugin, TensorFlow/pacemaker and pyeonclient import, the container runtime and
images, the scheduler's commands, the work folder and free disk. The table says OK, MISSING
(the run needs it: exit 1) or WARN (an optional part: the run goes on without it), with a
one-line fix under each problem. ``make setup`` ends with it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from pyacemaker.config import CampaignConfig, SiteConfig, Tool
from pyacemaker.doctor.checks import (
    SETUP_FIX,
    Check,
    check_command,
    check_container,
    check_lammps,
    check_pseudopotentials,
    check_python_import,
    check_scf,
    check_scheduler,
    check_workdir,
)
from pyacemaker.programs import resolve_executable

__all__ = ["Check", "run_doctor", "format_report", "system_files"]
Progress = Callable[[str], None]


def _qe_checks(config: CampaignConfig, site: SiteConfig, quick: bool) -> list[Check]:
    from pyacemaker.execution.engine import launch_for

    native = site.container.runtime == "none"
    checks = [check_command(site.programs.pw, "pw.x")] if native else []
    dft = site.resources["dft"]
    uses_mpirun = dft.mpi_launcher == "mpirun" and dft.mpi_ranks > 1
    if native and (uses_mpirun or "qe" in site.programs.mpirun):
        checks.append(check_command(site.programs.mpirun.get("qe", "mpirun"), "MPI for pw.x",
                                    required=uses_mpirun))
    checks += check_pseudopotentials(config)
    if not quick and all(c.status == "OK" for c in checks):
        checks += check_scf(config, site, launch_for(site, "dft").with_ranks(1))
    return checks


def _fit_checks(site: SiteConfig, quick: bool) -> list[Check]:
    if site.container.runtime != "none":
        return []  # pacemaker runs in its image (checked with the images)
    checks = []
    for program in (site.programs.pacemaker, "pace_activeset", "pace_yaml2yace"):
        checks.append(check_command(resolve_executable(program), program))
    if quick:
        return checks
    checks.append(check_python_import(
        "tensorflow, tensorpotential, pyace", "TensorFlow + pacemaker",
        "make setup (the venv's pinned stack, constraints.txt)"))
    return checks


def _needed_images(config: CampaignConfig) -> list[Tool]:
    tools: list[Tool] = ["pacemaker", "lammps-ace"]
    return (["qe"] if config.oracle.kind == "qe" else []) + tools


def run_doctor(site: SiteConfig, config: CampaignConfig, workdir: Path,
               progress: Progress | None = None, quick: bool = False) -> list[Check]:
    """Every check for ``site`` and ``config`` (a campaign in ``workdir``), in table order.
    ``quick`` only resolves files and programs (no SCF, no imports, no LAMMPS run)."""
    say = progress or (lambda _line: None)
    groups: list[tuple[str, Callable[[], list[Check]]]] = [
        ("work folder and disk", lambda: check_workdir(workdir)),
        ("scheduler", lambda: check_scheduler(site)),
        ("containers", lambda: check_container(site, _needed_images(config))),
    ]
    if config.oracle.kind == "qe":
        groups.append(("Quantum ESPRESSO", lambda: _qe_checks(config, site, quick)))
    groups.append(("pacemaker", lambda: _fit_checks(site, quick)))
    if not quick:
        groups.append(("LAMMPS", lambda: [
            check_lammps(site, config.exploration.engine == "lammps")]))
    if not quick and config.exploration.kmc.schedule != "off":
        groups.append(("eOn", lambda: [check_python_import(
            "pyeonclient", "pyeonclient (kMC)", SETUP_FIX)]))
    groups.append(("optional programs", lambda: [
        check_command("ph.x", "ph.x (DFPT phonon references)", required=False),
        check_command("chromium", "chromium (report screenshot check)", required=False),
        check_command("debootstrap", "debootstrap (builds the QE image)", required=False),
    ]))
    checks: list[Check] = []
    for title, run in groups:
        say(f"checking {title} ...")
        checks += run()
    return checks


def format_report(checks: list[Check], header: str) -> str:
    width = max(len(c.name) for c in checks) + 2
    lines = [header, f"  {'STATUS':<8} {'CHECK':<{width}} DETAIL"]
    for check in checks:
        lines.append(f"  {check.status:<8} {check.name:<{width}} {check.detail}")
        if check.status != "OK" and check.fix:
            lines.append(f"  {'':<8} {'':<{width}} fix: {check.fix}")
    missing = sum(c.status == "MISSING" for c in checks)
    warnings = sum(c.status == "WARN" for c in checks)
    verdict = (f"{missing} missing: the run cannot start until they are fixed" if missing
               else "everything the run needs is here")
    lines.append(f"{verdict}; {warnings} warning(s)")
    return "\n".join(lines)


def system_files(checks: list[Check]) -> list[Path]:
    """The files outside the Python environment that the checks resolved (pw.x, the
    pseudopotentials, ch-run ...): what the project's Debian package list must provide."""
    environment = Path(sys.prefix).resolve()
    return [path for check in checks for path in check.paths
            if not path.resolve().is_relative_to(environment)]
