"""`make lammps-pace` (run by `make setup`) is cached: a second run is a quick no-op."""

from __future__ import annotations

from pathlib import Path

from pyacemaker.programs import run_program

REPO = Path(__file__).resolve().parents[3]


def test_plugin_build_is_recorded_and_skipped_when_inputs_match(tmp_path: Path) -> None:
    out = REPO / "build" / "lammps-pace"
    assert (out / "paceplugin.so").is_file(), "run 'make setup' first"
    stamp_before = (out / "inputs.sha256").read_text()
    result = run_program(["bash", str(REPO / "scripts" / "setup.d" / "lammps_pace.sh")],
                         tmp_path, timeout_s=120)
    assert "plugin up to date" in result.stdout()
    assert result.duration_s < 30
    assert (out / "inputs.sha256").read_text() == stamp_before
    downloads = {p.name for p in (out / "downloads").iterdir()}
    assert {"python_ace-0.4.0rc1.tar.gz", "lammps_20250204+dfsg.1.orig.tar.xz"} <= downloads
