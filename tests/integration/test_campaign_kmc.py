"""kMC in the loop, for real: EMT oracle, pacemaker fits, pyace + pyeonclient aKMC.

A Cu campaign with a kMC task in every iteration (a 31-atom vacancy cell, dimer saddle
searches): the cold-start potential has seen no saddle, so kMC halts; the halt and the
candidates around it are labelled and fitted; a later iteration reruns the
same kMC task (same start, same seed) through that region without halting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyacemaker.campaign import Campaign
from pyacemaker.config import load_campaign, load_site

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

KMC = {"schedule": "always", "tasks": 1, "max_steps": 2, "searches_per_state": 4,
       "gamma_lower": 2.0, "gamma_upper": 5.0}
CAMPAIGN = {
    "name": "cu-kmc-loop-test",
    "elements": ["Cu"],
    "oracle": {"kind": "emt"},
    "training": {"number_of_functions_per_element": 15, "max_iterations": 80,
                 "warm_start_iterations": 40, "full_refit_every": 2},
    "exploration": {"engine": "ase", "temperatures": [300], "steps": 200, "target_atoms": 32,
                    "walkers": 1, "max_tasks": 1, "kmc": KMC},
    # 24: the cold start's property set of fcc Cu (19 cells, 13 of them one-atom EOS and
    # strain cells) and a few defect/prototype cells; 16 left too few atomic environments
    # for the vacancy hop to be learned within 5 iterations
    "active_learning": {"initial_structures": 24, "max_candidates_per_iteration": 12,
                        "max_iterations": 5},
}


@pytest.fixture(scope="module")
def kmc_campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    folder = tmp_path_factory.mktemp("kmc-campaign")
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(CAMPAIGN))
    campaign = Campaign.open(load_campaign(path), load_site(REPO / "site_configs" / "local.yaml"),
                             folder / "run")
    campaign.run()
    return campaign


def kmc_records(campaign: Campaign) -> list[dict[str, Any]]:
    records = []
    for path in sorted(campaign.workdir.glob("iter_*/explore/summary.json")):
        records += [r for r in json.loads(path.read_text()) if r["task"]["engine"] == "kmc"]
    return records


def test_a_kmc_halt_is_learned_and_the_rerun_passes(kmc_campaign: Campaign) -> None:
    records = kmc_records(kmc_campaign)
    iterations = [r["task"]["iteration"] for r in records]
    assert iterations == list(range(1, kmc_campaign.state.iteration + 1))  # one per iteration
    halted = [r for r in records if r["halted"]]
    assert halted, "no kMC task halted"
    first = halted[0]
    assert first["max_gamma"] > KMC["gamma_upper"]
    passed = [r for r in records if not r["halted"] and r["task"]["iteration"] > first["task"]["iteration"]]
    assert passed, f"kMC still halts after learning: {[(r['task']['iteration'], r['message']) for r in records]}"
    rerun = passed[0]
    # the same task: same seed and start cell, so the same region is searched again
    assert rerun["task"]["seed"] == first["task"]["seed"]
    assert rerun["task"]["structure_index"] == first["task"]["structure_index"]
    assert rerun["steps_done"] == rerun["task"]["steps"]
    assert rerun["max_gamma"] <= KMC["gamma_upper"]
    log = json.loads((kmc_campaign.workdir / f"iter_{rerun['task']['iteration']:03d}" / "explore"
                      / rerun["task"]["name"] / "kmc_log.json").read_text())
    assert len(log["steps"]) == rerun["steps_done"] and log["simulated_time_s"] > 0
    barriers = [step["barrier"] for step in log["steps"]]
    assert all(0.0 < b < KMC.get("max_barrier", 3.0) for b in barriers), barriers


def test_kmc_halts_reach_the_training_set(kmc_campaign: Campaign) -> None:
    """Each halted iteration labelled kMC-derived structures (the halt itself or candidates
    cut or perturbed from it) and the refit that followed trained on them."""
    state = kmc_campaign.state
    rows = kmc_campaign.datastore.rows(status="labelled")
    by_iteration: dict[int, list[str]] = {}
    for row in rows:
        if "_kmc" in (row.get("source_task") or ""):
            by_iteration.setdefault(int(row.get("iteration")), []).append(row.get("provenance"))
    for record in (r for r in kmc_records(kmc_campaign) if r["halted"]):
        provenances = by_iteration.get(record["task"]["iteration"], [])
        assert provenances, f"nothing from the kMC halt of iteration {record['task']['iteration']}"
        fitted = [p for p in state.potentials if p.iteration == record["task"]["iteration"]]
        previous = [p for p in state.potentials if p.iteration < record["task"]["iteration"]][-1]
        assert fitted and fitted[-1].metrics["n_structures"] > previous.metrics["n_structures"]


def test_the_stop_reason_accounts_for_kmc(kmc_campaign: Campaign) -> None:
    state = kmc_campaign.state
    assert state.finished and state.stop_reason
    if state.stop_reason.startswith("converged"):
        last = [r for r in kmc_records(kmc_campaign) if r["task"]["iteration"] == state.iteration]
        assert last and not any(r["halted"] for r in last)


def test_a_finished_campaign_goes_on_with_continue(kmc_campaign: Campaign,
                                                  tmp_path: Path) -> None:
    """`run --continue` after raising max_iterations: one more iteration, kMC still on
    (longer after a quiet kMC iteration); without it the finished campaign is left alone."""
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(kmc_campaign.workdir, workdir)
    before = kmc_campaign.state
    raised = {**CAMPAIGN, "active_learning": {**CAMPAIGN["active_learning"],
                                              "max_iterations": before.iteration + 1}}
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(raised))
    site = load_site(REPO / "site_configs" / "local.yaml")
    left_alone = Campaign.open(load_campaign(path), site, workdir).run()
    assert left_alone.finished and left_alone.iteration == before.iteration
    went_on = Campaign.open(load_campaign(path), site, workdir)
    state = went_on.run(continue_finished=True)
    if before.stop_reason.startswith("converged"):  # still converged: stops at once
        assert state.finished and state.iteration == before.iteration
        assert state.stop_reason.startswith("converged")
        return
    assert state.finished and state.iteration == before.iteration + 1
    records = kmc_records(went_on)
    last, previous = records[-1], records[-2]
    assert last["task"]["iteration"] == before.iteration + 1
    factor = 1 if previous["halted"] else 2
    assert last["task"]["steps"] >= factor * KMC["max_steps"]


def test_the_report_shows_the_kmc_runs(kmc_campaign: Campaign) -> None:
    html = (kmc_campaign.workdir / "report.html").read_text()
    assert "<h2>kMC exploration</h2>" in html
    for record in kmc_records(kmc_campaign):
        assert f"<td>{record['task']['name']}</td><td>{'HALTED' if record['halted'] else 'passed'}" \
            in html
