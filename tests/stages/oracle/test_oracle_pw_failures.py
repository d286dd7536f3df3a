"""pw.x 6.7 failure signatures, provoked for real, and how they are classified."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from oracle_helpers import qe_campaign, si2_rattled

from pyacemaker.programs import run_program
from pyacemaker.stages.oracle.outcome import PwOutput, classify
from pyacemaker.stages.oracle.parameters import default_parameters
from pyacemaker.stages.oracle.pseudo import (
    DEBIAN_PSEUDO_DIR,
    pseudo_mismatch,
    resolve_pseudopotential,
)
from pyacemaker.stages.oracle.qe import write_pw_input

SI_FILE = "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"


def _write_si2(tmp_path: Path, pseudo_dir: Path, extra: dict[str, Any] | None = None,
               pseudo_path: Path | None = None):
    settings = qe_campaign(["Si"]).oracle.qe
    choice = resolve_pseudopotential(
        "Si", {"Si": pseudo_path} if pseudo_path else {}, None)
    atoms = si2_rattled()
    params = default_parameters(atoms, settings, {"Si": choice})
    write_pw_input(tmp_path / "pw.in", atoms, params, {"Si": choice}, pseudo_dir,
                   tmp_path / "scratch", None, extra)
    return choice, params


def _run(tmp_path: Path, conv_thr: float):
    result = run_program(["pw.x", "-in", "pw.in"], tmp_path, timeout_s=120, check=False)
    output = PwOutput.parse(result.stdout(), 2)
    return result, output, classify(result, output, conv_thr, 50.0)


def _run_si2(tmp_path: Path, pseudo_dir: Path, extra: dict[str, Any] | None = None,
             pseudo_path: Path | None = None):
    choice, params = _write_si2(tmp_path, pseudo_dir, extra, pseudo_path)
    return (choice, params, *_run(tmp_path, params.conv_thr))


def test_missing_pseudopotential_is_bad_input(tmp_path: Path) -> None:
    empty = tmp_path / "nopseudo"
    empty.mkdir()
    _, params = _write_si2(tmp_path, empty)
    # a name that exists nowhere, so not even pw.x's system-directory fallback finds it
    text = (tmp_path / "pw.in").read_text().replace(SI_FILE, "Si.missing.UPF")
    (tmp_path / "pw.in").write_text(text)
    result, _, verdict = _run(tmp_path, params.conv_thr)
    assert result.returncode == 1
    assert verdict.outcome == "bad_input" and "readpp" in verdict.detail
    assert "Si.missing.UPF" in verdict.detail
    assert not verdict.recoverable


def test_silent_fallback_to_system_pseudo_is_caught(tmp_path: Path) -> None:
    # The intended file is a private copy (different bytes) that is NOT in pseudo_dir:
    # pw.x quietly reads Debian's file of the same name and exits 0.
    private = tmp_path / "mine" / SI_FILE
    private.parent.mkdir()
    private.write_text((DEBIAN_PSEUDO_DIR / SI_FILE).read_text() + "\n<!-- private copy -->\n")
    empty = tmp_path / "pseudo_dir"
    empty.mkdir()
    choice, _, result, output, verdict = _run_si2(tmp_path, empty, pseudo_path=private)
    assert result.returncode == 0 and verdict.outcome == "converged"
    assert output.pseudo_files == [str(DEBIAN_PSEUDO_DIR / SI_FILE)]
    problem = pseudo_mismatch(output.pseudo_files, [choice], tmp_path)
    assert problem is not None and "falls back silently" in problem
    assert pseudo_mismatch([str(private)], [choice], tmp_path) is None


def test_bad_namelist_key_is_bad_input(tmp_path: Path) -> None:
    staged = tmp_path / "pseudo"
    staged.mkdir()
    shutil.copy(DEBIAN_PSEUDO_DIR / SI_FILE, staged)
    *_, result, _, verdict = _run_si2(tmp_path, staged, {"electrons": {"mixing_betta": 0.3}})
    assert result.returncode == 1
    assert verdict.outcome == "bad_input" and "read_namelists" in verdict.detail


def test_scf_must_converge_false_trap_is_not_converged(tmp_path: Path) -> None:
    staged = tmp_path / "pseudo"
    staged.mkdir()
    shutil.copy(DEBIAN_PSEUDO_DIR / SI_FILE, staged)
    *_, result, output, verdict = _run_si2(
        tmp_path, staged, {"electrons": {"scf_must_converge": False, "electron_maxstep": 2}})
    assert result.returncode == 0 and output.forces is not None  # pw.x claims success
    assert verdict.outcome == "scf_not_converged"
    assert "above conv_thr" in verdict.detail


@pytest.mark.parametrize("outcome_args,expected", [
    ({"returncode": 137}, "crashed"), ({"returncode": -11}, "crashed"),
    ({"returncode": 2, "timed_out": True}, "walltime"),
])
def test_exit_status_classes(tmp_path: Path, outcome_args: dict[str, Any],
                             expected: str) -> None:
    from pyacemaker.programs import ProgramResult

    result = ProgramResult(argv=["pw.x"], workdir=str(tmp_path), duration_s=1.0, **outcome_args)
    assert classify(result, PwOutput(natoms=2), 1e-9, 50.0).outcome == expected
