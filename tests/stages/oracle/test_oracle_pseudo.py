"""Pseudopotential precedence, checksums and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pyacemaker.config import CampaignConfig
from pyacemaker.stages.oracle.base import OracleConfigError, make_oracle
from pyacemaker.stages.oracle.pseudo import (
    DEBIAN_PSEUDO_DIR,
    check_functionals,
    resolve_pseudopotential,
    sha256_of,
)

SI = DEBIAN_PSEUDO_DIR / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"


def test_precedence_explicit_then_pseudo_dir_then_debian(tmp_path: Path) -> None:
    pseudo_dir = tmp_path / "sssp"
    pseudo_dir.mkdir()
    shutil.copy(DEBIAN_PSEUDO_DIR / "Si.pbe-rrkj.UPF", pseudo_dir / "si_pbe_v1.uspp.F.UPF")
    explicit = tmp_path / "my_si.UPF"
    shutil.copy(SI, explicit)

    chosen = resolve_pseudopotential("Si", {"Si": explicit}, pseudo_dir)
    assert (chosen.source, chosen.path) == ("explicit", explicit.resolve())
    chosen = resolve_pseudopotential("Si", {}, pseudo_dir)
    assert (chosen.source, chosen.path.name) == ("pseudo_dir", "si_pbe_v1.uspp.F.UPF")
    assert chosen.kind == "NC"
    chosen = resolve_pseudopotential("Si", {}, None)
    assert (chosen.source, chosen.path) == ("debian", SI)
    assert chosen.sha256 == sha256_of(SI) and chosen.kind == "US" and chosen.z_valence == 4.0


def test_element_without_any_pseudo_names_element_and_places(tmp_path: Path) -> None:
    with pytest.raises(OracleConfigError) as error:
        make_oracle(CampaignConfig(elements=["Al"], oracle={"qe": {"pseudo_dir": tmp_path}}))
    message = str(error.value)
    assert "'Al'" in message and str(tmp_path) in message and str(DEBIAN_PSEUDO_DIR) in message
    assert "oracle.qe.pseudopotentials.Al" in message


def test_missing_explicit_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(OracleConfigError, match="oracle.qe.pseudopotentials.Si: file not found"):
        resolve_pseudopotential("Si", {"Si": tmp_path / "gone.UPF"}, None)


def test_mixed_functionals_refused() -> None:
    pbe = resolve_pseudopotential("Si", {}, None)
    lda = resolve_pseudopotential("Si", {"Si": DEBIAN_PSEUDO_DIR / "Si.pz-vbc.UPF"}, None)
    check_functionals([pbe, resolve_pseudopotential("Cu", {}, None)])  # PBE spelled two ways
    with pytest.raises(OracleConfigError, match="mix exchange-correlation"):
        check_functionals([pbe, lda])


def test_missing_pw_executable_is_a_configuration_error(tmp_path: Path) -> None:
    from ase.build import bulk

    from pyacemaker.config import ProgramSettings

    oracle = make_oracle(CampaignConfig(elements=["Si"]),
                         ProgramSettings(pw=str(tmp_path / "no-such-pw.x")))
    with pytest.raises(OracleConfigError, match="programs.pw: cannot start"):
        oracle.label(bulk("Si", "diamond", a=5.43), tmp_path / "work")
