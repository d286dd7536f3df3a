"""A campaign folder can be copied or moved: status, report, package and validate work in
the new place and never touch the old one (paths in state and records are relative).

Real runs: copies of one small finished EMT campaign (tests/tiny_campaign.py), the real
CLI on them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pyacemaker.stages.package import read_manifest
from pyacemaker.state import STATE_FILE, PotentialRecord, WorkflowState, load_state, save_state
from tiny_campaign import copy_of, finished_campaign, run_cli, snapshot

RECORD = Path("iter_000/fit/potential_record.json")
POTENTIAL = "iter_000/fit/output_potential.yaml"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return finished_campaign(tmp_path_factory)


def use_everywhere(folder: Path, dist: Path) -> None:
    """status, validate --workdir, report and package on ``folder``: each works, and
    what they print and write names files inside ``folder``."""
    status = run_cli("status", "--workdir", folder)
    assert status.returncode == 0, status.stderr
    assert f"current potential: {folder.resolve() / POTENTIAL}" in status.stdout
    assert "16 labelled" in status.stdout
    validate = run_cli("validate", "--workdir", folder)
    assert validate.returncode in (0, 4), validate.stderr  # a verdict, GO or NO-GO
    assert "validation of iteration 0" in validate.stdout
    report = run_cli("report", "--workdir", folder)
    assert report.returncode == 0, report.stderr
    assert str(folder / "report.html") in report.stdout
    package = run_cli("package", "--workdir", folder, "--force", "--dist", dist)
    assert package.returncode == 0, package.stderr
    manifest = read_manifest(next(dist.glob("*.zip")))
    assert manifest.limits_of_validity.cutoff_a == 5.0
    assert manifest.training_set.size == 16
    validation = json.loads((folder / "validation" / "validation.json").read_text())
    assert validation["potential"] == POTENTIAL  # relative to the folder


def stored_paths(folder: Path) -> str:
    """The text of every file that records paths (state, fit record, validation)."""
    files = [folder / STATE_FILE, folder / RECORD, *sorted(folder.glob("validation/*.json"))]
    return "\n".join(f.read_text() for f in files)


@pytest.mark.slow
def test_copied_campaign_works_and_leaves_the_original_alone(campaign: Path,
                                                             tmp_path: Path) -> None:
    original = copy_of(campaign, tmp_path / "original" / "cu")
    before = snapshot(original)
    copy = copy_of(original, tmp_path / "elsewhere" / "cu-copy")
    assert str(original) not in stored_paths(copy)  # nothing points back
    use_everywhere(copy, tmp_path / "dist")
    assert snapshot(original) == before  # not one file of the original touched
    assert str(original) not in stored_paths(copy)


@pytest.mark.slow
def test_moved_campaign_works_where_it_is_now(campaign: Path, tmp_path: Path) -> None:
    old = copy_of(campaign, tmp_path / "old" / "cu")
    new = tmp_path / "new" / "cu-moved"
    new.parent.mkdir()
    subprocess.run(["mv", str(old), str(new)], check=True)
    use_everywhere(new, tmp_path / "dist")
    assert not old.exists()  # nothing was written at the old place


@pytest.mark.slow
def test_absolute_paths_of_older_versions_are_found_after_a_move(campaign: Path,
                                                                 tmp_path: Path) -> None:
    old = copy_of(campaign, tmp_path / "old" / "cu")
    # as versions before relative paths wrote them: absolute, into the old place
    state = json.loads((old / STATE_FILE).read_text())
    for record in [state["potential"], *state["potentials"]]:
        for key in ("yaml", "yace", "asi", "dataset"):
            record[key] = str(old.resolve() / record[key])
    (old / STATE_FILE).write_text(json.dumps(state))
    record = json.loads((old / RECORD).read_text())
    record["yaml"] = str(old.resolve() / POTENTIAL)
    (old / RECORD).write_text(json.dumps(record))
    new = tmp_path / "new" / "cu-renamed"
    new.parent.mkdir()
    subprocess.run(["mv", str(old), str(new)], check=True)
    loaded = load_state(new)
    assert loaded is not None and loaded.potential is not None
    assert loaded.potential.yaml == str(new.resolve() / POTENTIAL)
    from pyacemaker.stages.train import load_record

    assert load_record(new / RECORD.parent).yaml == str(new.resolve() / POTENTIAL)
    status = run_cli("status", "--workdir", new)
    assert f"current potential: {new.resolve() / POTENTIAL}" in status.stdout
    # resuming rewrites the state in the relative form
    run = run_cli("run", new / "campaign.yaml", "--site", "local", "--workdir", new)
    assert run.returncode == 0 and "campaign already finished" in run.stdout, run.stderr
    assert json.loads((new / STATE_FILE).read_text())["potential"]["yaml"] == POTENTIAL
    assert not old.exists()


def test_paths_are_stored_relative_and_outside_ones_kept(tmp_path: Path) -> None:
    folder = tmp_path / "cu"
    fit = folder / "iter_001" / "fit"
    fit.mkdir(parents=True)
    (fit / "pot.yaml").write_text("x")
    record = PotentialRecord(iteration=1, yaml=str(fit / "pot.yaml"),
                             asi=str(tmp_path / "elsewhere.asi"))
    save_state(WorkflowState(config_fingerprint="x", potential=record,
                             potentials=[record]), folder)
    stored = json.loads((folder / STATE_FILE).read_text())["potential"]
    assert stored["yaml"] == "iter_001/fit/pot.yaml"  # inside the folder: relative
    assert stored["asi"] == str(tmp_path / "elsewhere.asi")  # outside: as given
    loaded = load_state(folder)
    assert loaded is not None and loaded.potential is not None
    assert loaded.potential.yaml == str(fit.resolve() / "pot.yaml")
    assert loaded.potential.asi == str(tmp_path / "elsewhere.asi")
