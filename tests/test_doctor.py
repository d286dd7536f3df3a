"""`pyacemaker doctor`: real checks on this machine (pw.x SCF, LAMMPS plugin, imports), and
each kind of problem reported as MISSING with its fix and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyacemaker.config import CampaignConfig, load_campaign, load_site
from pyacemaker.doctor import run_doctor
from pyacemaker.stages.oracle import pseudo
from pyacemaker.stages.oracle.pseudo import sha256_of

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "pyacemaker.cli"]
SI_PSEUDO = Path("/usr/share/espresso/pseudo/Si.pbe-nl-rrkjus_psl.1.0.0.UPF")


def doctor(*args: str, cwd: Path = REPO,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "doctor", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def rows(output: str) -> dict[str, str]:
    """CHECK name -> its table line (the columns are fixed by the header line)."""
    lines = output.splitlines()
    header = next(line for line in lines if line.strip().startswith("STATUS"))
    name_at, detail_at = header.index("CHECK"), header.index("DETAIL")
    return {line[name_at:detail_at].strip(): line for line in lines
            if line.split() and line.split()[0] in ("OK", "MISSING", "WARN")}


def test_everything_the_demo_needs_is_here(tmp_path: Path) -> None:
    out = doctor(str(REPO / "examples" / "si-qe.yaml"), "--site", "local",
                 "--workdir", str(tmp_path / "w"))
    assert out.returncode == 0, out.stdout + out.stderr
    table = rows(out.stdout)
    for name in ("pw.x SCF Si", "pseudopotential Si", "LAMMPS + ML-PACE",
                 "TensorFlow + pacemaker", "pyeonclient (kMC)", "work folder", "free disk"):
        assert table[name].startswith("  OK"), (name, out.stdout)
    assert sha256_of(SI_PSEUDO) in table["pseudopotential Si"]  # the file's checksum shown
    assert "E = -" in table["pw.x SCF Si"] and "eV" in table["pw.x SCF Si"]
    assert "everything the run needs is here" in out.stdout
    assert "checking Quantum ESPRESSO" in out.stderr  # progress while it works


def test_pseudopotential_without_a_file_is_missing_with_the_package(tmp_path: Path) -> None:
    # Debian ships no PBE pseudopotential for Al (only LDA): nothing to resolve.
    config = tmp_path / "al.yaml"
    config.write_text("elements: [Al]\noracle: {kind: qe}\n")
    out = doctor(str(config), "--site", "local", "--workdir", str(tmp_path / "w"))
    assert out.returncode == 1
    line = rows(out.stdout)["pseudopotential Al"]
    assert line.startswith("  MISSING")
    assert "fix: apt-get install quantum-espresso-data" in out.stdout
    assert "oracle.qe.pseudopotentials.Al" in out.stdout
    assert "1 missing" in out.stdout


def test_debian_pseudopotentials_not_installed(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    """As on a machine without quantum-espresso-data: its folder does not exist."""
    monkeypatch.setattr(pseudo, "DEBIAN_PSEUDO_DIR", tmp_path / "no-such-dir")
    checks = run_doctor(load_site("local"), load_campaign(REPO / "examples" / "si-qe.yaml"),
                        tmp_path, quick=True)
    found = {c.name: c for c in checks}["pseudopotential Si"]
    assert found.status == "MISSING"
    assert "quantum-espresso-data" in found.fix
    assert not any(c.name.startswith("pw.x SCF") for c in checks)  # no SCF without the file


def test_missing_program_and_unwritable_folder(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("name: broken\nprograms: {pw: pw-does-not-exist.x}\n")
    out = doctor("--site", str(site), "--workdir", "/proc/pyacemaker-doctor", "--quick")
    assert out.returncode == 1
    table = rows(out.stdout)
    assert table["pw.x"].startswith("  MISSING") and "pw-does-not-exist.x" in table["pw.x"]
    assert table["work folder"].startswith("  MISSING") and "/proc" in table["work folder"]


def test_scheduler_commands_missing_on_a_machine_without_slurm(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # nothing on PATH: no sbatch, no pw.x
    out = doctor("--site", "cluster", "--workdir", str(tmp_path / "w"), "--quick", env=env)
    assert out.returncode == 1
    line = rows(out.stdout)["scheduler sbatch"]
    assert line.startswith("  MISSING")
    assert "fix: apt-get install slurm-wlm" in out.stdout


def test_emt_campaign_needs_no_quantum_espresso(tmp_path: Path) -> None:
    checks = run_doctor(load_site("local"), CampaignConfig(elements=["Cu"],
                        oracle={"kind": "emt"}), tmp_path, quick=True)
    assert not any("pw.x" in c.name or "pseudopotential" in c.name for c in checks)
    assert all(c.status != "MISSING" for c in checks), [c for c in checks if c.status != "OK"]
