"""DFT references of the validation crystals (real pw.x, cheap settings) and the gate
judging a potential against precomputed references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ase.build import bulk
from ase.io import read
from ase.calculators.emt import EMT

from pyacemaker.config import CampaignConfig, SiteConfig
from pyacemaker.execution import Engine
from pyacemaker.execution.references import dft_references
from pyacemaker.stages.validate import validate_potential
from pyacemaker.stages.validate.crystal import default_crystals
from pyacemaker.stages.validate.reference import (
    REFERENCE_DIR,
    cached_references,
    compute_reference,
    oracle_settings,
    reference_key,
)
from pyacemaker.validation_settings import ValidationSettings

CHEAP_SI = {"kspacing": 0.6, "ecutwfc": 20, "ecutrho": 160}
PROPERTIES = {"elastic_strain_points": 2, "reference_phonons": True,
              "phonon_reference_supercell": 2, "relax_fmax": 0.005}


def si_campaign(**qe: object) -> CampaignConfig:
    return CampaignConfig(elements=["Si"], oracle={"kind": "qe", "qe": {**CHEAP_SI, **qe}},
                          validation=PROPERTIES)


@pytest.mark.timeout(900)
def test_si_references_with_real_pw_x_are_computed_once_and_cached(tmp_path: Path) -> None:
    config = si_campaign()
    with Engine(SiteConfig(local_executor="threads"), tmp_path / "run") as engine:
        references, failures = dft_references(engine, config, tmp_path)
        assert failures == {}
        (reference,) = references.values()
        calls = sorted((tmp_path / REFERENCE_DIR).glob("*/*/calls/call_*"))
        pw_inputs = sorted((tmp_path / REFERENCE_DIR).glob("*/*/calls/call_*/*/pw.in"))
        again, _ = dft_references(engine, config, tmp_path)  # cached: no pw.x
        assert sorted((tmp_path / REFERENCE_DIR).glob("*/*/calls/call_*")) == calls
        assert again == references
    assert reference.label == "Si diamond" and "pw.x, 20/160 Ry, kspacing 0.6" in reference.source
    # PBE silicon (converged: a0 5.47 A, B0 88-89 GPa, C11 153, C12 57, C44 74-76 GPa);
    # these cheap settings are looser, but the physics must be there
    assert 19.5 < reference.volume_per_atom < 21.5
    moduli = reference.moduli()
    assert 70 < moduli["B0"] < 110 and 70 < moduli["B"] < 110
    assert 120 < moduli["C11"] < 190 and 35 < moduli["C12"] < 80 and 55 < moduli["C44"] < 95
    assert len(reference.eos_volumes_per_atom) >= 7
    phonons = dict(zip(reference.phonons.q_labels, reference.phonons.frequencies_thz,
                       strict=True))
    # PBE: optical mode at G ~15.3 THz, TA(X) ~4.4, TA(L) ~3.4 THz; each point from its
    # smallest commensurate cell: at most 4 atoms in any pw.x run
    assert list(phonons) == ["L", "X", "G"]
    assert 13 < max(phonons["G"]) < 17
    assert 3.5 < min(phonons["X"]) < 5.5 and 2.5 < min(phonons["L"]) < 4.5
    assert max(len(read(pw_in, format="espresso-in")) for pw_in in pw_inputs) <= 4
    saved = json.loads((tmp_path / REFERENCE_DIR / "Si_diamond" / "reference.json").read_text())
    assert saved["key"] == reference.key
    # another k-mesh is another DFT reference: not reused
    crystal = default_crystals(["Si"])[0]
    other = si_campaign(kspacing=0.5)
    assert reference_key(crystal, oracle_settings(other), other.validation, True) \
        != reference.key
    assert cached_references([crystal], other, tmp_path) == {}
    # a timeout is not a DFT setting: the same reference
    assert cached_references([crystal], si_campaign(timeout_s=10.0), tmp_path) == references


@pytest.mark.slow
def test_the_gate_fails_a_c44_20_percent_off_its_reference(cu_ace_well_trained) -> None:
    from pyacemaker.stages.train import total_energy_calculator

    settings = ValidationSettings(phonon_supercell=3, phonon_mesh=8, eos_points=21)
    crystal = default_crystals(["Cu"])[0]
    reference = compute_reference(crystal, EMT(), settings, "EMT (as if DFT)", key="",
                                  phonons=False)
    record = cu_ace_well_trained.record
    good = validate_potential(lambda: total_energy_calculator(record), [crystal], settings,
                              references={reference.label: reference})
    assert good.verdict == "GO", good.reasons
    c = [row[:] for row in reference.elastic.c_gpa]
    for i in (3, 4, 5):
        c[i][i] *= 1.2
    off = reference.model_copy(update={"elastic": reference.elastic.model_copy(
        update={"c_gpa": c})})
    bad = validate_potential(lambda: total_energy_calculator(record), [crystal], settings,
                             references={off.label: off})
    assert bad.verdict == "NO-GO"
    assert [r for r in bad.reasons if "C44" in r and "EMT (as if DFT)" in r], bad.reasons
    assert not [r for r in bad.reasons if "C11" in r or "C12" in r], bad.reasons


def test_a_reference_that_could_not_be_computed_is_a_failed_check() -> None:
    report = validate_potential(EMT, [bulk("Cu", "fcc", a=3.59)],
                                ValidationSettings(phonon_supercell=2, phonon_mesh=4,
                                                   eos_points=11),
                                reference_failures={"Cu fcc": "pw.x gave no label"})
    assert report.verdict == "NO-GO"
    assert "Cu fcc: no DFT reference to compare with: pw.x gave no label" in report.reasons


def test_a_reference_with_more_special_points_is_compared_where_both_have_them() -> None:
    """bench/data/si_pbe_reference.json holds K, L, U, W, X, G of a 2x2x2 supercell; the
    gate computes L, X, G (the commensurate ones) and compares those."""
    settings = ValidationSettings(phonon_supercell=2, phonon_mesh=4, eos_points=11,
                                  elastic_strain_points=2, reference_phonons=True)
    crystal = bulk("Cu", "fcc", a=3.59)
    reference = compute_reference(crystal, EMT(), settings, "EMT", key="", phonons=True)
    phonons = reference.phonons
    assert phonons.q_labels == ["L", "X", "G"]
    padded = phonons.model_copy(update={"q_labels": ["K", *phonons.q_labels],
                                        "frequencies_thz": [[99.0] * 3,
                                                            *phonons.frequencies_thz]})
    report = validate_potential(EMT, [crystal], settings, references={
        reference.label: reference.model_copy(update={"phonons": padded})})
    comparison = report.crystals[0].phonon_comparison
    assert comparison.q_labels == ["L", "X", "G"]
    assert comparison.max_relative_difference < 1e-3, comparison
