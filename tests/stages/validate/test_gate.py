"""The quality gate on real calculators: EMT, a real pacemaker fit, a broken fit, and
crystals known to be dynamically unstable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.eos import EquationOfState

from pyacemaker.config import ValidationSettings
from pyacemaker.stages.validate import validate_potential
from pyacemaker.stages.validate.crystal import (
    ValidationInputError,
    default_crystals,
    load_crystals,
)
from pyacemaker.stages.validate.elastic import compute_elastic
from pyacemaker.stages.validate.phonons import compute_phonons

FAST = ValidationSettings(phonon_supercell=3, phonon_mesh=8, eos_points=21)


def energy_curvature_moduli(a0: float) -> dict[str, float]:
    """EMT's C11, C12, C44 and B of fcc Cu from energy-strain curvatures: a method
    independent of the stress-strain fits under test."""
    cell = bulk("Cu", "fcc", a=a0, cubic=True)
    volume = cell.get_volume()

    def curvature(strain_of: callable) -> float:
        steps = np.linspace(-0.006, 0.006, 7)
        energies = []
        for x in steps:
            strained = cell.copy()
            strained.set_cell(cell.cell.array @ (np.eye(3) + strain_of(x)), scale_atoms=True)
            strained.calc = EMT()
            energies.append(strained.get_potential_energy())
        return 2 * np.polyfit(steps, energies, 2)[0] / volume / units.GPa

    c11 = curvature(lambda x: np.diag([x, 0, 0]))  # E/V = C11 x^2 / 2
    shear = curvature(lambda x: np.array([[0, x / 2, 0], [x / 2, 0, 0], [0, 0, 0]]))
    hydro = curvature(lambda x: np.eye(3) * x)  # E/V = 9 B x^2 / 2
    return {"C11": c11, "C44": shear, "B": hydro / 9, "C12": (hydro / 3 - c11) / 2}


def emt_equilibrium() -> tuple[float, float]:
    volumes, energies = [], []
    for a in np.linspace(3.50, 3.70, 9):
        atoms = bulk("Cu", "fcc", a=a)
        atoms.calc = EMT()
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    v0, _, b0 = EquationOfState(volumes, energies).fit()
    return (4 * v0) ** (1 / 3), b0 / units.GPa


def test_emt_fcc_cu_matches_emts_own_constants_and_passes():
    a0, b0 = emt_equilibrium()
    independent = energy_curvature_moduli(a0)
    report = validate_potential(EMT, default_crystals(["Cu"]), FAST, reference_factory=EMT)
    assert report.verdict == "GO", report.reasons
    crystal = report.crystals[0]
    moduli = crystal.elastic.named()
    for name in ("C11", "C12", "C44", "B"):
        assert moduli[name] == pytest.approx(independent[name], rel=0.10), name
    assert crystal.eos.fit.b0_gpa == pytest.approx(b0, rel=0.10)
    assert crystal.elastic.crystal_system == "cubic" and crystal.elastic.born_stable
    assert crystal.phonons.dynamically_stable
    assert crystal.phonons.n_displacements == 1  # fcc: one symmetry-distinct displacement
    names = {c.name for c in report.checks}
    assert {"Cu fcc: C11", "Cu fcc: C12", "Cu fcc: C44", "Cu fcc: B0"} <= names


def test_bcc_cu_is_flagged_dynamically_and_mechanically_unstable():
    bcc = bulk("Cu", "bcc", a=2.87)
    bcc.info["label"] = "Cu bcc"
    report = validate_potential(EMT, [bcc], FAST)
    assert report.verdict == "NO-GO"
    phonons = report.crystals[0].phonons
    assert not phonons.dynamically_stable
    assert phonons.min_frequency_thz < -0.5
    assert any("Cu bcc: dynamically unstable: imaginary modes" in r for r in report.reasons)
    assert any("C11 - C12 > 0" in r for r in report.reasons)  # the Bain-path instability


def test_uniaxially_compressed_fcc_has_imaginary_modes():
    squeezed = bulk("Cu", "fcc", a=3.6, cubic=True)
    squeezed.set_cell(squeezed.cell.array @ np.diag([1, 1, 0.8]), scale_atoms=True)
    phonons = compute_phonons(squeezed, EMT(), supercell=2, mesh=6)
    assert not phonons.dynamically_stable
    assert all(mode.frequency_thz < -0.05 for mode in phonons.imaginary_modes)


def test_hcp_elastic_tensor_has_hexagonal_symmetry():
    hcp = bulk("Cu", "hcp", a=2.55, c=4.16)
    elastic = compute_elastic(hcp, EMT())
    c = np.array(elastic.c_gpa)
    raw = np.array(elastic.raw_c_gpa)
    assert elastic.crystal_system == "hexagonal"
    assert set(elastic.named()) == {"C11", "C12", "C13", "C33", "C44", "B", "G"}
    # C66 = (C11 - C12) / 2 is imposed; the raw fit must agree with it on its own
    assert raw[5, 5] == pytest.approx((c[0, 0] - c[0, 1]) / 2, rel=0.05)
    assert elastic.symmetry_deviation_gpa < 0.05 * c[0, 0]


@pytest.mark.slow
def test_real_ace_fit_passes_and_its_errors_match_pacemakers(cu_ace_well_trained):
    from pyacemaker.stages.train import total_energy_calculator

    record = cu_ace_well_trained.record
    held_out = [cu_ace_well_trained.training_structures[int(name)]
                for name in _pacemaker_test_names(Path(record.yaml).parent)]
    report = validate_potential(lambda: total_energy_calculator(record), default_crystals(["Cu"]),
                                FAST, held_out=held_out, reference_factory=EMT)
    assert report.verdict == "GO", report.reasons
    moduli = report.crystals[0].elastic.named()
    reference = report.crystals[0].reference_elastic.named()
    for name in ("C11", "C12", "C44", "B"):
        assert moduli[name] == pytest.approx(reference[name], rel=0.10)
    errors = report.errors.overall
    assert errors.energy_rmse_mev_per_atom == pytest.approx(
        record.metrics["test_energy_rmse_mev_per_atom"], rel=1e-3, abs=1e-3)
    assert errors.force_rmse_ev_per_a == pytest.approx(
        record.metrics["test_force_rmse_ev_per_a"], rel=1e-3)
    assert set(report.errors.per_provenance) <= {"test_emt", "elastic_strain", "eos_range"}
    assert report.metrics()["Cu fcc:C11_gpa"] == pytest.approx(moduli["C11"], abs=1e-3)


def _pacemaker_test_names(fit_dir: Path) -> list[str]:
    import pandas as pd

    return list(pd.read_pickle(fit_dir / "test_data_info.pckl.gzip", compression="gzip")["name"])


def add_coefficient_noise(source: Path, target: Path, scale: float, seed: int = 0) -> Path:
    """A broken ACE: Gaussian noise on every radial and basis coefficient."""
    rng = np.random.default_rng(seed)
    data = yaml.safe_load(source.read_text())
    for block in data["species"]:
        radial = np.asarray(block["radcoefficients"])
        block["radcoefficients"] = (radial + scale * np.abs(radial).mean()
                                    * rng.normal(size=radial.shape)).tolist()
        for function in block["nbody"]:
            c = np.asarray(function["c"])
            function["c"] = (c + scale * np.abs(c).mean() * rng.normal(size=c.shape)).tolist()
    target.write_text(yaml.safe_dump(data))
    return target


@pytest.mark.slow
def test_ace_with_noisy_coefficients_fails_with_reasons(cu_ace_well_trained, tmp_path):
    from pyace import PyACECalculator

    from pyacemaker.datastore import labelled_copy

    broken = add_coefficient_noise(cu_ace_well_trained.yaml, tmp_path / "noisy.yaml", 0.2)
    held_out = []
    for atoms in cu_ace_well_trained.training_structures[:6]:
        probe = atoms.copy()
        probe.calc = EMT()
        shifted = labelled_copy(atoms, probe.get_potential_energy()
                                - len(atoms) * cu_ace_well_trained.reference_energies["Cu"],
                                probe.get_forces(), probe.get_stress())
        held_out.append(shifted)
    report = validate_potential(lambda: PyACECalculator(str(broken)), default_crystals(["Cu"]),
                                FAST, held_out=held_out, reference_factory=EMT)
    assert report.verdict == "NO-GO"
    failed = {c.name for c in report.checks if not c.passed}
    assert {"Cu fcc: C11", "energy RMSE"} <= failed, report.reasons
    assert any("% off (limit 10%)" in r for r in report.reasons)
    # reasons name the crystal or the error metric: specific, never a blanket failure
    assert all(r.startswith("Cu fcc: ") or "RMSE on the held-out" in r for r in report.reasons)


def test_missing_structure_file_is_named(tmp_path):
    with pytest.raises(ValidationInputError, match="no_such.cif"):
        load_crystals([tmp_path / "no_such.cif"])


def test_crash_of_a_computation_is_a_failed_check_not_a_crash():
    class Exploding(EMT):
        def calculate(self, *args, **kwargs):
            raise RuntimeError("potential evaluation exploded")

    report = validate_potential(Exploding, default_crystals(["Cu"]), FAST)
    assert report.verdict == "NO-GO"
    assert any("relaxation with the potential failed" in r and "exploded" in r
               for r in report.reasons)


def test_a_bug_in_our_code_is_not_a_no_go():
    """A TypeError is a programming error: it propagates with its traceback instead of
    becoming a NO-GO line that hides it."""
    class Buggy(EMT):
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            return self.results["energy"] + None  # the bug

    with pytest.raises(TypeError):
        validate_potential(Buggy, default_crystals(["Cu"]), FAST)


def test_phonons_compared_with_the_oracle_through_its_label_interface(tmp_path):
    """The reference-phonon path as a campaign runs it: the oracle (here the EMT oracle;
    pw.x the same way, one small-cell run per displacement) behind OracleCalculator."""
    from pyacemaker.config import CampaignConfig
    from pyacemaker.stages.oracle.base import make_oracle
    from pyacemaker.stages.validate.phonon_reference import OracleCalculator

    oracle = make_oracle(CampaignConfig(elements=["Cu"], oracle={"kind": "emt"}))
    settings = FAST.model_copy(update={"phonon_rel_tol": 0.02})
    reference = OracleCalculator(oracle, tmp_path / "good")
    good = validate_potential(EMT, default_crystals(["Cu"]), settings,
                              phonon_reference=("oracle emt", lambda: reference))
    comparison = good.crystals[0].phonon_comparison
    assert comparison.max_relative_difference < 1e-6  # same physics, same displacements
    assert comparison.q_labels[-1] == "G" and "X" in comparison.q_labels
    # fcc: L, X and G each in their smallest commensurate cell (2, 2 and 1 atoms), one
    # symmetry-distinct displacement in each: one oracle label per point
    assert reference.calls == len(comparison.q_labels) == 3
    assert good.verdict == "GO", good.reasons

    class SofterEMT(EMT):  # forces scaled by 0.8: frequencies ~10% lower
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            self.results["forces"] = self.results["forces"] * 0.8

    soft = validate_potential(SofterEMT, default_crystals(["Cu"]), settings, phonon_reference=(
        "oracle emt", lambda: OracleCalculator(oracle, tmp_path / "soft")))
    assert any("phonon frequencies at the special q-points differ from oracle emt's" in r
               for r in soft.reasons), soft.reasons
    assert 0.08 < soft.crystals[0].phonon_comparison.max_relative_difference < 0.12


def test_eos_without_a_minimum_keeps_its_scan_and_fails_the_fit_check():
    from ase.calculators.calculator import Calculator, all_changes

    class Collapsing(Calculator):  # energy falls with volume forever: no minimum to fit
        implemented_properties = ["energy", "forces", "stress"]

        def calculate(self, atoms=None, properties=None, system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            volume = self.atoms.get_volume()
            self.results = {"energy": 0.05 * volume, "forces": np.zeros((len(self.atoms), 3)),
                            "stress": -0.05 * np.array([1, 1, 1, 0, 0, 0.0])}

    crystal = bulk("Cu")
    crystal.info["label"] = "Cu fcc"
    report = validate_potential(Collapsing, [crystal], FAST.model_copy(update={"relax": False}))
    eos = report.crystals[0].eos
    assert eos.fit is None and eos.fit_error
    assert len(eos.energies_per_atom) == FAST.eos_points  # the scan is kept for the report
    assert any("no Birch-Murnaghan fit of E(V)" in r for r in report.reasons)


def test_the_labels_eos_check_fits_the_points_near_the_minimum() -> None:
    """The cold start labels the EOS out to V/V0 0.80 and 1.25 (the gate's scan); the
    'vs labels' checks fit the 0.92-1.08 series, as the gate's own fit is local."""
    from pyacemaker.stages.coldstart import EOS_FACTORS, WIDE_EOS_FACTORS

    crystal = bulk("Cu", "fcc", a=3.59)
    labelled = []
    for factor in (1.0, *EOS_FACTORS, *WIDE_EOS_FACTORS):
        scaled = crystal.copy()
        scaled.set_cell(crystal.cell.array * factor ** (1 / 3), scale_atoms=True)
        scaled.calc = EMT()
        scaled.get_potential_energy()
        labelled.append(scaled)
    report = validate_potential(EMT, [crystal], FAST, labelled=labelled)
    eos = report.crystals[0].eos
    assert len(eos.reference_volumes_per_atom) == 5 and eos.reference_source == "oracle labels"
    checks = {c.name: c for c in report.checks if "vs labels" in c.name}
    assert set(checks) == {"Cu: E0 vs labels", "Cu: V0 vs labels", "Cu: B0 vs labels"}
    assert all(c.passed for c in checks.values()), checks
