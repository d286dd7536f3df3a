"""Config changes on resume: execution settings accepted and logged, physics refused with
the fields named, --force starting over without losing anything and reusing valid labels.

The classification tests take milliseconds; the others work on copies of one small
finished EMT campaign (tests/tiny_campaign.py) through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pyacemaker.config import CampaignConfig, ConfigError
from pyacemaker.config_changes import (
    EXECUTION,
    PHYSICS,
    Change,
    classify,
    compare_with_folder,
    diff,
    known_fingerprints,
    legacy_fingerprint,
    rule_for,
    settings_of,
)
from pyacemaker.datastore import DataStore
from pyacemaker.release import campaign_config
from pyacemaker.resume import DERIVED, SUPERSEDED_DIR, supersede
from pyacemaker.state import STATE_FILE, WorkflowState, load_state, save_state
from tiny_campaign import (copy_of, finished_campaign, run_cli, site_without_pacemaker,
                           snapshot, write_config)


def dump(**changes: object) -> dict:
    config = CampaignConfig(elements=["Cu"]).model_dump(mode="json")
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        section = config
        for key in parents:
            section = section[key]
        section[leaf] = value
    return config


# ------------------------------------------------------------------ the table
def test_every_config_field_has_an_explicit_rule() -> None:
    missing = [path for path in settings_of(dump()) if rule_for(path) is None]
    assert not missing, f"add these to config_changes.RULES: {missing}"


@pytest.mark.parametrize("path, kind, changes_labels", [
    ("oracle.qe.timeout_s", EXECUTION, False),
    ("oracle.qe.max_healing_attempts", EXECUTION, False),
    ("oracle.qe.kspacing", PHYSICS, True),
    ("oracle.kind", PHYSICS, True),
    ("oracle.qe.pseudopotentials", PHYSICS, True),
    ("elements", PHYSICS, True),
    ("training.cutoff", PHYSICS, False),
    ("training.baseline.inner_cutoff", PHYSICS, False),
    ("training.weighting.de", PHYSICS, False),
    ("training.timeout_s", EXECUTION, False),
    ("training.max_iterations", EXECUTION, False),
    ("exploration.temperatures", PHYSICS, False),
    ("exploration.steps", EXECUTION, False),
    ("exploration.kmc.tasks", EXECUTION, False),
    ("active_learning.max_iterations", EXECUTION, False),
    ("active_learning.max_dft_calls", EXECUTION, False),
    ("active_learning.gamma_upper", PHYSICS, False),
    ("validation.elastic_rel_tol", EXECUTION, False),
    ("validation.elastic_max_strain", PHYSICS, False),  # changes the DFT references
    ("validation.structures", PHYSICS, False),
    # not in the table: physics, and the labels are not trusted either
    ("brand_new_section.knob", PHYSICS, True),
    ("exploration.new_knob", PHYSICS, True),
])
def test_classification(path: str, kind: str, changes_labels: bool) -> None:
    assert classify(path) == kind
    assert Change(path, 1, 2).changes_labels is changes_labels


def test_unknown_fields_default_to_physics() -> None:
    assert rule_for("brand_new") is None and classify("brand_new") == PHYSICS
    assert classify("training.some_future_setting") == PHYSICS  # the section's rule
    assert rule_for("exploration.new_knob") is None  # exploration has no section default


def test_diff_names_every_changed_field_with_old_and_new() -> None:
    changes = diff(dump(), dump(training__cutoff=4.0, oracle__qe__timeout_s=7200.0,
                            elements=["Cu"], name="other"))
    assert [str(c) for c in changes] == [
        "name: campaign -> other", "oracle.qe.timeout_s: 3600.0 -> 7200.0",
        "training.cutoff: 5.0 -> 4.0"]
    assert [c.kind for c in changes] == [EXECUTION, EXECUTION, PHYSICS]
    assert diff(dump(elements=["Cu", "Ni"]), dump(elements=["Ni", "Cu"])) == []  # order


def test_fingerprint_leaves_execution_settings_out() -> None:
    base = CampaignConfig.model_validate(dump())
    assert CampaignConfig.model_validate(
        dump(oracle__qe__timeout_s=7200.0, active_learning__max_iterations=50)
    ).fingerprint() == base.fingerprint()
    assert CampaignConfig.model_validate(dump(training__cutoff=4.0)).fingerprint() \
        != base.fingerprint()
    # state files of older versions (elements + the whole oracle section) still match
    assert legacy_fingerprint(dump()) in known_fingerprints(base)


def test_folder_without_config_copy_is_judged_by_fingerprint(tmp_path: Path) -> None:
    config = CampaignConfig.model_validate(dump())
    assert not compare_with_folder(tmp_path, config, legacy_fingerprint(dump())).refused
    other = compare_with_folder(tmp_path, config, "0123456789abcdef")
    assert other.refused and other.changes_labels and "0123456789abcdef" in other.describe()


def test_supersede_twice_in_one_second_makes_two_folders(tmp_path: Path) -> None:
    names = []
    for n in range(2):
        save_state(WorkflowState(config_fingerprint=f"f{n}"), tmp_path)
        (tmp_path / "iter_000").mkdir()
        (tmp_path / "campaign.log").write_text("kept")
        names.append(supersede(tmp_path).name)
    assert names[0] != names[1]
    folders = sorted((tmp_path / SUPERSEDED_DIR).iterdir())
    assert [load_state(f).config_fingerprint for f in folders] == ["f0", "f1"]  # type: ignore
    assert (tmp_path / "campaign.log").is_file()  # the log of every run stays
    assert "validation" in DERIVED and "report.html" in DERIVED and "data.db*" in DERIVED


# ------------------------------------------------------------------ real campaigns
@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return finished_campaign(tmp_path_factory)


def labelled_fingerprints(db: Path) -> set[str]:
    return {row.fingerprint for row in DataStore(db).rows(status="labelled")}


@pytest.mark.slow
def test_timeout_change_resumes_without_force_and_is_logged(campaign: Path,
                                                             tmp_path: Path) -> None:
    folder = copy_of(campaign, tmp_path / "cu")
    before = load_state(folder)
    out = run_cli("run", write_config(tmp_path / "c.yaml", oracle__qe={"timeout_s": 7200}),
                  "--site", "local", "--workdir", folder)
    assert out.returncode == 0, out.stderr
    assert "oracle.qe.timeout_s: 3600.0 -> 7200.0 (execution setting, accepted)" in out.stdout
    assert "campaign already finished" in out.stdout
    after = load_state(folder)
    assert after is not None and before is not None
    assert after.config_fingerprint == before.config_fingerprint  # timeouts are not hashed
    assert after.potentials == before.potentials
    assert not (folder / SUPERSEDED_DIR).exists()
    assert yaml.safe_load((folder / "campaign.yaml").read_text())["oracle"]["qe"][
        "timeout_s"] == 7200


@pytest.mark.slow
def test_cutoff_change_with_continue_is_refused_naming_the_field(campaign: Path,
                                                                 tmp_path: Path) -> None:
    folder = copy_of(campaign, tmp_path / "cu")
    before = snapshot(folder)
    out = run_cli("run", write_config(tmp_path / "c.yaml", training__cutoff=4.0), "--site",
                  "local", "--workdir", folder, "--continue")
    assert out.returncode == 2
    assert "training.cutoff: 5.0 -> 4.0" in out.stderr
    assert "--force" in out.stderr and "superseded" in out.stderr
    assert "so no structure is labelled again" in out.stderr  # what --force would do
    touched = {k for k, v in snapshot(folder).items() if before.get(k) != v
               and not k.startswith(".")}  # the driver's lock file
    assert touched <= {"campaign.log"}, touched  # state, data and config copy untouched
    # the same config file is refused by report/package too, by name
    with pytest.raises(ConfigError, match="training.cutoff: 5.0 -> 4.0"):
        campaign_config(folder, tmp_path / "c.yaml")


@pytest.mark.slow
def test_force_twice_keeps_both_superseded_folders_and_all_labels(campaign: Path,
                                                                  tmp_path: Path) -> None:
    folder = copy_of(campaign, tmp_path / "cu")
    site = site_without_pacemaker(tmp_path / "site.yaml")
    original = labelled_fingerprints(folder / "data.db")
    runs = []
    for kspacing in (0.3, 0.25):  # oracle physics: the labels cannot be reused
        out = run_cli("run", write_config(tmp_path / "c.yaml", oracle__qe={
            "kspacing": kspacing}), "--site", site, "--workdir", folder, "--force")
        assert out.returncode == 1, out.stdout[-3000:]  # stops in the fit (no pacemaker)
        assert "the new data lake starts empty; the old labels are in superseded/" \
            in out.stdout
        runs.append(out.stdout)
    first, second = sorted((folder / SUPERSEDED_DIR).iterdir())
    assert first.name != second.name
    # the finished campaign, whole: its state, labels, fits and reports
    old_state = load_state(first)
    assert old_state is not None and old_state.finished and old_state.potential is not None
    assert Path(old_state.potential.yaml).is_relative_to(first.resolve())
    assert labelled_fingerprints(first / "data.db") == original
    for name in ("campaign.yaml", "iter_000", "validation", "report.html",
                 "start_structures.extxyz"):
        assert (first / name).exists(), name
    # the first forced run's own labels, and the second run's
    assert len(labelled_fingerprints(second / "data.db")) == 16
    assert len(labelled_fingerprints(folder / "data.db")) == 16
    assert yaml.safe_load((second / "campaign.yaml").read_text())["oracle"]["qe"][
        "kspacing"] == 0.3
    assert not list(folder.rglob("*.bak"))  # nothing set aside by the old .bak logic
    assert f"superseded/{first.name}/data.db" in runs[0]
    assert f"superseded/{second.name}/data.db" in runs[1]


@pytest.mark.slow
def test_training_change_under_force_reuses_the_labels(campaign: Path,
                                                       tmp_path: Path) -> None:
    folder = copy_of(campaign, tmp_path / "cu")
    old = DataStore(folder / "data.db")
    counts, original = old.provenance_counts(), labelled_fingerprints(folder / "data.db")
    out = run_cli("run", write_config(tmp_path / "c.yaml", training__cutoff=4.0), "--site",
                  site_without_pacemaker(tmp_path / "site.yaml"), "--workdir", folder,
                  "--force")
    assert out.returncode == 1, out.stdout[-3000:]  # stops in the fit (no pacemaker)
    (superseded,) = (folder / SUPERSEDED_DIR).iterdir()
    assert f"16 labelled structures reused from superseded/{superseded.name}/data.db" \
        in out.stdout
    store = DataStore(folder / "data.db")
    rows = list(store.rows(status="labelled"))
    assert {row.fingerprint for row in rows} == original
    assert store.provenance_counts() == counts
    assert {row.get("reused_from") for row in rows} == {f"superseded/{superseded.name}"}
    assert store.count(status="candidate") == 0
    # the oracle was called 0 times: the label stage had nothing to do
    state = load_state(folder)
    assert state is not None and state.iteration == 0
    assert state.stages["000:generate"].message.endswith("(0 new in the data lake)")
    assert state.stages["000:label"].message == "nothing to label"
    assert not (folder / "iter_000" / "label").exists()
    # the new fit was set up with the new cutoff
    assert yaml.safe_load((folder / "iter_000/fit/input.yaml").read_text())["cutoff"] == 4.0
    assert labelled_fingerprints(superseded / "data.db") == original
    assert (superseded / STATE_FILE).is_file()
