"""The project's Debian package list provides every system file the code reads at run time.

A package installed by hand (or left over on a reused machine) would hide a missing line of
scripts/apt-packages.txt from every other test. Here each system file that pyacemaker
resolves (through ``pyacemaker doctor``'s own resolution: pw.x, the pseudopotentials, ch-run,
the scheduler commands ...) is asked ``dpkg -S`` for its owner, and that owner must be a
listed package or reached from one through Depends / Pre-Depends (never a Recommends, which
``make setup`` does not install).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from pyacemaker.config import CampaignConfig, SiteConfig, load_campaign, load_site
from pyacemaker.doctor import run_doctor, system_files
from pyacemaker.sites import shipped_sites

REPO = Path(__file__).resolve().parents[1]
APT_LIST = REPO / "scripts" / "apt-packages.txt"
# Elements the QE tests and benchmarks label with Debian's pseudopotentials.
QE_TEST_ELEMENTS = ["Si", "Ge", "Cu"]
# Started by scripts/slurm_cluster.sh for the SLURM/Torque tests, not resolved by the package.
SCRIPT_PROGRAMS = ["slurmctld", "slurmd", "munged"]


def listed_packages(text: str) -> dict[str, list[str]]:
    packages = {}
    for line in text.splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            packages[fields[0]] = fields[1:]
    return packages


@cache
def _provides() -> dict[str, set[str]]:
    """Virtual package -> installed packages that provide it."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Provides}\n"],
                         capture_output=True, text=True, check=True).stdout
    provided: dict[str, set[str]] = {}
    for line in out.splitlines():
        package, _, provides = line.partition("\t")
        for name in _names(provides):
            provided.setdefault(name, set()).add(package)
    return provided


def _names(field: str) -> list[str]:
    """Package names of a Depends-style field (versions, arch qualifiers, | alternatives)."""
    names = []
    for alternative in re.split(r"[,|]", field):
        name = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alternative).strip().split(":")[0]
        if name:
            names.append(name)
    return names


@cache
def _depends(package: str) -> tuple[str, ...]:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}, ${Pre-Depends}", package],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return ()
    names: list[str] = []
    for name in _names(done.stdout):
        names += [name, *sorted(_provides().get(name, ()))]
    return tuple(names)


def depends_closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        package = todo.pop()
        if package not in seen:
            seen.add(package)
            todo += _depends(package)
    return seen


def owner(path: Path) -> str | None:
    """The package whose files include ``path`` (or the file it links to), by dpkg -S."""
    for candidate in (path, path.resolve()):
        done = subprocess.run(["dpkg", "-S", str(candidate)], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout.split(":")[0].split(",")[0].strip()
    return None


def unprovided(files: list[Path], apt_list_text: str) -> dict[Path, str]:
    """Files whose owning package the list does not install (file -> why)."""
    closure = depends_closure(list(listed_packages(apt_list_text)))
    problems = {}
    for path in files:
        package = owner(path)
        if package is None:
            problems[path] = "no Debian package owns it (installed by hand?)"
        elif package not in closure:
            problems[path] = (f"owned by {package}, which scripts/apt-packages.txt neither lists "
                              "nor pulls in as a Depends")
    return problems


def resolved_system_files() -> list[Path]:
    configs = [load_campaign(p) for p in sorted((REPO / "examples").glob("*.yaml"))]
    configs += [CampaignConfig(elements=[element]) for element in QE_TEST_ELEMENTS]
    sites = [load_site(path) for path in shipped_sites().values()]
    # the container path the tests take (tests/execution/test_containers_qe.py)
    sites.append(SiteConfig(container={"runtime": "charliecloud", "images": {
        "qe": str(REPO / "build" / "containers" / "qe")}}))
    files: list[Path] = []
    for site in sites:
        for config in configs:
            files += system_files(run_doctor(site, config, REPO / "campaigns", quick=True))
    files += [Path(found) for name in SCRIPT_PROGRAMS if (found := shutil.which(name))]
    return sorted(set(files))


@pytest.fixture(scope="module")
def system_file_list() -> list[Path]:
    files = resolved_system_files()
    names = {p.name for p in files}
    # The resolution found the things the suite depends on (else the test proves nothing).
    assert {"pw.x", "ch-run", "chromium", "debootstrap", "sbatch", "qsub",
            "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"} <= names, names
    return files


def test_every_system_file_comes_from_a_listed_package(system_file_list: list[Path]) -> None:
    problems = unprovided(system_file_list, APT_LIST.read_text())
    assert not problems, "\n".join(f"{path}: {why}" for path, why in problems.items())


def test_dropping_quantum_espresso_data_from_the_list_is_caught(
        system_file_list: list[Path]) -> None:
    text = "\n".join(line for line in APT_LIST.read_text().splitlines()
                     if not line.startswith("quantum-espresso-data"))
    problems = unprovided(system_file_list, text)
    pseudo = Path("/usr/share/espresso/pseudo/Si.pbe-nl-rrkjus_psl.1.0.0.UPF")
    assert pseudo in problems and "quantum-espresso-data" in problems[pseudo]


def test_probes_of_the_list_are_present() -> None:
    """What setup.sh checks by content (files, commands) is there after make setup."""
    for package, probes in listed_packages(APT_LIST.read_text()).items():
        for probe in probes:
            present = Path(probe).exists() if probe.startswith("/") else shutil.which(probe)
            assert present, f"{package}: probe {probe} missing"
            if probe.startswith("/"):  # a metapackage (slurm-wlm) proves itself by a Depends
                assert owner(Path(probe)) in depends_closure([package]), \
                    f"{probe} does not come from {package}"
