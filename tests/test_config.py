"""Config validation: defaults, typos, wrong types and missing files give named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyacemaker.config import ConfigError, load_campaign, load_site

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "campaign.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_elements_alone_is_a_valid_campaign(tmp_path: Path) -> None:
    cfg = load_campaign(write(tmp_path, "elements: [Si]\n"))
    assert cfg.elements == ["Si"]
    assert cfg.oracle.kind == "qe"
    assert cfg.training.baseline.kind == "zbl_core"
    assert cfg.active_learning.gamma_upper > cfg.active_learning.gamma_lower
    assert cfg.exploration.temperatures  # physics defaults present


@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("*.yaml")))
def test_shipped_examples_load(example: Path) -> None:
    assert load_campaign(example).elements


@pytest.mark.parametrize("site", sorted((REPO / "site_configs").glob("*.yaml")))
def test_shipped_sites_load(site: Path) -> None:
    cfg = load_site(site)
    assert set(cfg.resources) == {"dft", "train", "md", "light", "teacher"}


def test_typo_names_file_and_field_path(tmp_path: Path) -> None:
    path = write(tmp_path, "elements: [Cu]\ntraining:\n  cutof: 5.0\n")
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    message = str(err.value)
    assert str(path) in message
    assert "training.cutof" in message
    assert "unknown key" in message


def test_wrong_type_says_what_is_expected(tmp_path: Path) -> None:
    path = write(tmp_path, "elements: [Cu]\nexploration:\n  steps: many\n")
    with pytest.raises(ConfigError, match=r"exploration\.steps: .*integer.*'many'"):
        load_campaign(path)


def test_missing_required_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="elements: required field is missing"):
        load_campaign(write(tmp_path, "name: x\n"))


def test_unknown_element(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="elements: .*unknown chemical symbol.*Xx"):
        load_campaign(write(tmp_path, "elements: [Cu, Xx]\n"))


def test_inverted_gamma_thresholds(tmp_path: Path) -> None:
    text = "elements: [Cu]\nactive_learning: {gamma_lower: 6, gamma_upper: 3}\n"
    with pytest.raises(ConfigError, match="gamma_upper .* must be greater"):
        load_campaign(write(tmp_path, text))


def test_missing_seed_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "elements: [Cu]\nseed_structures: [nothere.cif]\n")
    with pytest.raises(ConfigError, match=r"seed_structures\.0: file not found: .*nothere\.cif"):
        load_campaign(path)


def test_missing_pseudopotential_file_is_named(tmp_path: Path) -> None:
    text = "elements: [Si]\noracle:\n  qe:\n    pseudopotentials: {Si: Si.missing.UPF}\n"
    with pytest.raises(ConfigError, match=r"pseudopotentials\.Si: file not found"):
        load_campaign(write(tmp_path, text))


def test_relative_paths_resolve_from_the_yaml_folder(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "a.xyz").write_text("1\n\nCu 0 0 0\n")
    cfg = load_campaign(write(tmp_path, "elements: [Cu]\nseed_structures: [seeds/a.xyz]\n"))
    assert cfg.seed_structures == [tmp_path / "seeds" / "a.xyz"]


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_campaign(write(tmp_path, "elements: [Cu\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_campaign(tmp_path / "absent.yaml")


def test_site_errors_name_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler: lsf\n", "site.yaml")
    with pytest.raises(ConfigError, match=r"(?s)site\.yaml.*scheduler: Input should be 'local'"):
        load_site(path)
    path = write(tmp_path, "resources:\n  dft: {walltime: 2h}\n", "site.yaml")
    with pytest.raises(ConfigError, match=r"resources\.dft\.walltime"):
        load_site(path)
    path = write(tmp_path, "scheduler: pbs\npartition: batch\n", "site.yaml")
    with pytest.raises(ConfigError, match="'partition' is a SLURM field"):
        load_site(path)


def test_site_fills_unlisted_stage_classes(tmp_path: Path) -> None:
    cfg = load_site(write(tmp_path, "resources:\n  dft: {mpi_ranks: 4}\n", "site.yaml"))
    assert cfg.resources["dft"].mpi_ranks == 4
    assert cfg.resources["md"].mpi_ranks == 1
