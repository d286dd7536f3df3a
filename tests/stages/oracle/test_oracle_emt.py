"""The EMT reference oracle: same interface, labelled as EMT (never DFT)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pyacemaker.config import CampaignConfig
from pyacemaker.stages.oracle.base import OracleConfigError, make_oracle


def test_emt_labels_match_ase_emt_and_say_emt(tmp_path) -> None:
    oracle = make_oracle(CampaignConfig(elements=["Cu"], oracle={"kind": "emt"}))
    atoms = bulk("Cu", "fcc", a=3.6).repeat(2)
    atoms.rattle(0.05, seed=1)
    outcome = oracle.label(atoms, tmp_path)
    assert oracle.name == "emt" and outcome.status == "converged"
    assert outcome.oracle["name"] == "emt"
    assert "NOT DFT" in outcome.oracle["method"] and "EMT" in outcome.reason
    reference = atoms.copy()
    reference.calc = EMT()
    assert outcome.atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy())
    np.testing.assert_allclose(outcome.atoms.get_forces(), reference.get_forces())
    np.testing.assert_allclose(outcome.atoms.get_stress(), reference.get_stress())
    assert outcome.attempts[0]["outcome"] == "converged"


def test_emt_quarantines_overlapping_atoms(tmp_path) -> None:
    oracle = make_oracle(CampaignConfig(elements=["Cu"], oracle={"kind": "emt"}))
    atoms = bulk("Cu", "fcc", a=3.6).repeat(2)
    atoms.positions[1] = atoms.positions[0] + [0.05, 0, 0]
    outcome = oracle.label(atoms, tmp_path)
    assert outcome.status == "quarantined" and outcome.atoms is None
    assert outcome.reason.startswith("unphysical") and "0.050 A" in outcome.reason


def test_emt_refuses_elements_it_has_no_parameters_for() -> None:
    with pytest.raises(OracleConfigError, match=r"EMT has no parameters for \['Si'\]"):
        make_oracle(CampaignConfig(elements=["Cu", "Si"], oracle={"kind": "emt"}))
