"""`pyacemaker report` on a small real campaign, checked in headless chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pyacemaker.cli import main
from pyacemaker.release import load_validation
from stages.validate.campaign_factory import make_cu_campaign, well_trained_cu_potential
from stages.validate.headless_browser import check_page, screenshot

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SECTIONS = ("Learning curves", "Fits", "DFT calls and exploration halts per iteration",
            "Validation checks", "Errors and parity", "Phonons", "Equation of state",
            "Born criteria", "Extrapolation grade", "DFT healing log",
            "Workflow monitoring (Parsl)")


@pytest.fixture(scope="module")
def reported_campaign(tmp_path_factory) -> Path:
    potential = well_trained_cu_potential(tmp_path_factory.getbasetemp() / "cu_ace_well_trained")
    folder = make_cu_campaign(tmp_path_factory.getbasetemp() / "cu_campaign", potential)
    assert main(["report", "--workdir", str(folder)]) == 0
    return folder


@pytest.mark.slow
def test_report_is_complete_and_self_contained(reported_campaign):
    html = (reported_campaign / "report.html").read_text()
    for section in SECTIONS:
        assert section in html, section
    assert "Validation: GO" in html
    assert "potential vs oracle emt" in html  # reference phonons through the oracle
    # offline: no external resource of any kind
    for marker in ("http://", "https://", "<script src", "<link rel=\"stylesheet\""):
        assert marker not in html
    validation = load_validation(reported_campaign)
    assert validation.errors.set_name == "fixed validation set (never fitted)"
    assert validation.errors.overall.n_structures == 12
    assert "label_structure" in html and "fit_potential" in html  # real Parsl monitoring db
    assert ">light<" in html and "wall_time_s" in html  # execution layer's executor summary
    assert "more_smearing" in html and "scf not converged" in html  # healing log


@pytest.mark.slow
def test_report_renders_in_headless_chromium(reported_campaign):
    report = reported_campaign / "report.html"
    page = check_page(report)
    assert page.console_lines == [], page.console_lines
    assert page.script_errors == []
    assert {image["alt"] for image in page.images} == {
        "learning curves", "DFT calls and halts", "parity plots", "phonon bands",
        "equation of state", "gamma"}
    assert page.broken_images == [], page.broken_images
    assert all(image["width"] > 200 and image["height"] > 100 for image in page.images)
    shot = screenshot(report, ARTIFACTS / "report.png")
    assert shot.stat().st_size > 10_000


def test_page_check_sees_broken_plots_and_script_errors(tmp_path):
    """The browser check itself must catch what it claims to catch."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="bad" src="data:image/png;base64,AA">'
                    "<script>notDefinedAnywhere();</script></body></html>")
    result = check_page(page)
    assert [image["alt"] for image in result.broken_images] == ["bad"]
    assert any("notDefinedAnywhere" in line for line in result.console_lines)


def test_report_of_a_folder_without_campaign_names_it(tmp_path, capsys):
    assert main(["report", "--workdir", str(tmp_path)]) == 2
    assert f"{tmp_path}: no campaign here" in capsys.readouterr().err


@pytest.mark.slow
def test_report_with_a_corrupt_validation_file_says_which(reported_campaign, tmp_path_factory,
                                                          capsys):
    source = reported_campaign
    folder = tmp_path_factory.mktemp("corrupt")
    for name in ("state.json", "campaign.yaml"):
        shutil.copy(source / name, folder / name)
    shutil.copy(source / "data.db", folder / "data.db")
    (folder / "validation").mkdir()
    (folder / "validation" / "validation.json").write_text("{not json")
    assert main(["report", "--workdir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "validation/validation.json: unreadable validation report" in err
    assert (folder / "data.db").stat().st_size > 0  # nothing computed was touched


@pytest.mark.slow
def test_report_refuses_a_config_from_another_campaign(reported_campaign, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text("name: other\nelements: [Ni]\noracle: {kind: emt}\n")
    assert main(["report", "--workdir", str(reported_campaign), "--config", str(other)]) == 2
    assert "not the configuration the campaign" in capsys.readouterr().err
