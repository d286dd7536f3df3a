"""`pyacemaker validate POTENTIAL`: the gate on a potential file made outside a campaign."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from pyacemaker.cli import main

FAST_VALIDATION = {"phonon_supercell": 3, "phonon_mesh": 8, "eos_points": 21}


@pytest.fixture(scope="module")
def yace_file(cu_ace_well_trained, tmp_path_factory) -> Path:
    """The well-trained Cu fit as a .yace file handed over from elsewhere."""
    path = tmp_path_factory.mktemp("external") / "Cu.yace"
    shutil.copy(cu_ace_well_trained.yace, path)
    return path


def random_ace_file(folder: Path) -> Path:
    """A .ace file (pyace's C-tilde format; it holds Chebyshev radial bases, not the
    SBessel basis pacemaker fits by default) of an untrained Cu ACE: random coefficients."""
    import numpy as np
    from pyace import ACEBBasisSet, create_multispecies_basis_config

    config = create_multispecies_basis_config({
        "deltaSplineBins": 0.001, "elements": ["Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                               "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 5.0,
                          "dcut": 0.01, "NameOfCutoffFunction": "cos"}},
        "functions": {"ALL": {"nradmax_by_orders": [5, 2, 2], "lmax_by_orders": [0, 1, 1]}}})
    config.set_all_coeffs(np.random.default_rng(0).normal(0, 0.1,
                                                           len(config.get_all_coeffs())))
    path = folder / "untrained.ace"
    ACEBBasisSet(config).to_ACECTildeBasisSet().save(str(path))
    return path


def campaign_yaml(folder: Path) -> Path:
    path = folder / "cu.yaml"
    path.write_text(yaml.safe_dump({"elements": ["Cu"], "validation": FAST_VALIDATION}))
    return path


@pytest.mark.slow
def test_an_external_ace_file_passes_against_emt(yace_file: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    code = main(["validate", str(yace_file), "--config", str(campaign_yaml(tmp_path)),
                 "--oracle", "emt", "--output", str(out_dir)])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out
    assert "verdict: GO (reference: EMT" in out
    assert "DEBUG" not in out + captured.err  # Parsl's own lines stay in its runinfo log
    for name in ("C11", "C12", "C44", "B0"):  # potential vs reference, side by side
        assert f"Cu fcc: {name}: " in out, out
    report = json.loads((out_dir / "validation.json").read_text())
    assert report["verdict"] == "GO" and report["potential"].endswith("Cu.yace")


@pytest.mark.slow
def test_a_published_c44_the_potential_misses_is_a_no_go(
        yace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reference = tmp_path / "paper.yaml"
    reference.write_text("C44: 120.0\n")  # EMT Cu has ~90 GPa
    code = main(["validate", str(yace_file), "--config", str(campaign_yaml(tmp_path)),
                 "--reference", str(reference), "--output", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 4, out
    assert "verdict: NO-GO" in out and "C44" in out and "configured reference values" in out


def test_an_ace_file_is_read_and_judged(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ace = random_ace_file(tmp_path)
    code = main(["validate", str(ace), "--config", str(campaign_yaml(tmp_path)),
                 "--oracle", "emt", "--output", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 4 and "verdict: NO-GO (reference: EMT" in out, out
    report = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert report["crystals"] or any("relaxation" in r for r in report["reasons"])
    assert not any("cannot read" in r for r in report["reasons"])


def test_bad_inputs_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stray = logging.StreamHandler(sys.stderr)  # what pyace's import (basicConfig) adds
    logging.getLogger().addHandler(stray)
    assert main(["validate", str(tmp_path / "missing.yace"), "--elements", "Cu"]) == 2
    assert "potential file not found" in capsys.readouterr().err
    # the CLI's own logging replaced it: Parsl's DEBUG lines do not reach the terminal
    assert stray not in logging.getLogger().handlers
    assert logging.getLogger("parsl").getEffectiveLevel() >= logging.WARNING
    wrong = tmp_path / "pot.txt"
    wrong.write_text("x")
    assert main(["validate", str(wrong), "--elements", "Cu"]) == 2
    assert "expected a .yace, .yaml, .ace file" in capsys.readouterr().err
    potential = tmp_path / "p.yace"
    potential.write_text("x")
    assert main(["validate", str(potential), "--elements", "Cu", "--output",
                 str(tmp_path / "o1")]) == 2
    assert f"{potential}: pyace cannot read it" in capsys.readouterr().err
    assert main(["validate", str(potential)]) == 2
    assert "needs --elements" in capsys.readouterr().err
    garbage = tmp_path / "ref.yaml"
    garbage.write_text("- just\n- a list\n")
    assert main(["validate", str(potential), "--elements", "Cu", "--reference",
                 str(garbage), "--output", str(tmp_path / "o")]) == 2
    assert f"--reference {garbage}: expected" in capsys.readouterr().err
    assert main(["validate"]) == 2
    assert "needs a campaign (--workdir DIR) or a potential file" in capsys.readouterr().err
