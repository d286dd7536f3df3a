"""Bad seed structures are refused when the YAML is loaded, before Parsl starts or the
folder is written; a cold start the oracle refuses entirely names the reasons and does
not leave the folder stuck."""

from __future__ import annotations

from pathlib import Path

import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write

from pyacemaker.config import ConfigError, load_campaign, load_site
from pyacemaker.stages.oracle.base import LabelOutcome

from tiny_campaign import NO_PACEMAKER_SITE as SITE
from tiny_campaign import run_cli



def campaign_yaml(folder: Path, seed: Path, n: int = 3) -> Path:
    path = folder / "campaign.yaml"
    path.write_text(f"name: seeds\nelements: [Cu]\noracle: {{kind: emt}}\n"
                    f"seed_structures: [{seed.name}]\n"
                    f"active_learning: {{initial_structures: {n}, max_dft_calls: {4 * n}}}\n"
                    "validation: {validate_every_iteration: false}\n")
    (folder / "site.yaml").write_text(SITE)
    return path


def two_atoms_apart(path: Path, distance: float) -> Path:
    cell = bulk("Cu", "fcc", a=3.61, cubic=True)
    cell.positions[1] = cell.positions[0] + [distance, 0.0, 0.0]
    write(path, cell, format="extxyz")
    return path


def test_random_bytes_are_refused_at_load_naming_the_reader_error(tmp_path: Path) -> None:
    seed = tmp_path / "seed.cif"
    seed.write_bytes(bytes(range(256)) * 4)
    workdir = tmp_path / "w"
    out = run_cli("run", str(campaign_yaml(tmp_path, seed)), "--site",
                  str(tmp_path / "site.yaml"), "--workdir", str(workdir))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert f"seed_structures.0: {seed}: ASE cannot read it" in out.stderr
    assert "no message" in out.stderr or "Error" in out.stderr  # never an empty reason
    assert not workdir.exists()  # nothing written, Parsl never started


def test_atoms_0_1_A_apart_are_refused_at_load(tmp_path: Path) -> None:
    seed = two_atoms_apart(tmp_path / "seed.extxyz", 0.1)
    workdir = tmp_path / "w"
    config = campaign_yaml(tmp_path, seed)
    out = run_cli("run", str(config), "--site", str(tmp_path / "site.yaml"),
                  "--workdir", str(workdir))
    assert out.returncode == 2
    assert str(seed) in out.stderr
    assert "atoms 0 (Cu) and 1 (Cu) are 0.100 A apart" in out.stderr
    assert not (workdir / "state.json").exists() and not workdir.exists()
    # fixed seed file, same command: the campaign starts and labels it
    write(seed, bulk("Cu", "fcc", a=3.61, cubic=True), format="extxyz")
    fixed = run_cli("run", str(config), "--site", str(tmp_path / "site.yaml"),
                    "--workdir", str(workdir))
    assert "label: 3 converged" in fixed.stdout, fixed.stdout + fixed.stderr
    assert "stopped in iteration 0, stage 'fit'" in fixed.stdout  # the site has no pacemaker


def test_minimum_image_and_foreign_elements_are_refused(tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.cif"
    write(tiny, bulk("Cu", "fcc", a=1.2))  # an atom 0.85 A from its own periodic images
    with pytest.raises(ConfigError, match=r"atom 0 \(Cu\) and its own periodic image .* "
                       r"0\.849 A apart"):
        load_campaign(campaign_yaml(tmp_path, tiny))
    across = tmp_path / "across.extxyz"  # 0.2 A apart through the periodic boundary only
    write(across, Atoms("Cu2", positions=[[0.1, 1, 1], [3.9, 1, 1]], cell=[4, 4, 4],
                        pbc=True), format="extxyz")
    with pytest.raises(ConfigError, match=r"atoms 0 \(Cu\) and 1 \(Cu\) are 0\.200 A apart"):
        load_campaign(campaign_yaml(tmp_path, across))
    silver = tmp_path / "ag.extxyz"
    write(silver, bulk("Ag", "fcc", a=4.09), format="extxyz")
    with pytest.raises(ConfigError, match=r"element\(s\) \['Ag'\] are not in elements"):
        load_campaign(campaign_yaml(tmp_path, silver))
    good = two_atoms_apart(tmp_path / "good.extxyz", 2.2)  # compressed, but a crystal
    assert load_campaign(campaign_yaml(tmp_path, good)).seed_structures == [good]


class RefusingOracle:
    """Quarantines every structure, as QE does when no SCF converges."""

    name = "refusing"

    def estimate_cost(self, structures: object, done: object = ()) -> None:
        return None

    def label(self, atoms: Atoms, workdir: Path, launch: object = None) -> LabelOutcome:
        return LabelOutcome("quarantined", None, "scf_not_converged: after 6 healing "
                            "attempts", [], {"name": "refusing"})


def test_a_refused_cold_start_names_its_reasons_and_regenerates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyacemaker.campaign import Campaign
    from pyacemaker.datastore import ColdStartRejected
    from pyacemaker.stages.oracle import base
    from pyacemaker.stages.train.outputs import FitFailed

    seed = tmp_path / "seed.extxyz"
    write(seed, bulk("Cu", "fcc", a=3.61, cubic=True), format="extxyz")
    config_path = campaign_yaml(tmp_path, seed, n=2)
    site = load_site(tmp_path / "site.yaml")
    workdir = tmp_path / "w"
    with monkeypatch.context() as patch:
        patch.setattr(base, "make_oracle", lambda config, programs=None: RefusingOracle())
        campaign = Campaign.open(load_campaign(config_path), site, workdir)
        with pytest.raises(ColdStartRejected, match="2 x 'scf_not_converged: after 6 "
                           "healing attempts'"):
            campaign.run()
    assert campaign.state.status_of("generate") == "pending"  # not stuck on the old seeds
    assert campaign.state.status_of("label") == "failed"
    # the user fixes the seed file (here: another lattice constant) and runs again
    write(seed, bulk("Cu", "fcc", a=3.58, cubic=True), format="extxyz")
    campaign = Campaign.open(load_campaign(config_path), site, workdir)
    with pytest.raises(FitFailed):  # the test site has no pacemaker: stops at the fit
        campaign.run()
    assert campaign.state.status_of("generate") == "done"
    assert campaign.state.status_of("label") == "done"
    assert campaign.datastore.count(status="labelled") >= 1  # from the fixed seed
    assert campaign.datastore.count(status="quarantined") == 2  # the old rows are kept
