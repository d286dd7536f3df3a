"""The quality gate: run the validations and give a Go/No-Go verdict with reasons.

Any calculator ASE knows can be judged (EMT, an ACE via pyace, a DFT calculator). A
computation that crashes on a bad potential is itself a failed check, never a crash of the
gate: a potential is called GO only if every check ran and passed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np
from ase import Atoms
from pydantic import BaseModel, Field

from pyacemaker.config import ValidationSettings
from pyacemaker.stages.validate.crystal import CalculatorFactory, relax_crystal
from pyacemaker.stages.validate.elastic import ElasticResult, compute_elastic
from pyacemaker.stages.validate.eos import (
    EOSFit,
    EOSResult,
    compute_eos,
    fit_birch_murnaghan,
    fit_eos,
    reference_eos_from_labels,
)
from pyacemaker.stages.validate.errors import ErrorResult, compute_errors
from pyacemaker.stages.validate.phonon_reference import PhononComparison, compare_phonons
from pyacemaker.stages.validate.phonons import PhononResult, compute_phonons

log = logging.getLogger(__name__)
VALIDATION_FILE = "validation.json"
# What a broken potential makes the property calculations raise (non-finite energies, a fit
# or a relaxation that cannot converge, a singular matrix): a NO-GO line. Anything else
# (TypeError, AttributeError, KeyError ...) is a bug in our own code and propagates.
POTENTIAL_FAILURES: tuple[type[Exception], ...] = (
    ValueError, ArithmeticError, RuntimeError, np.linalg.LinAlgError)


class Check(BaseModel):
    name: str
    passed: bool
    message: str
    value: float | None = None
    threshold: float | None = None


class CrystalValidation(BaseModel):
    label: str
    formula: str
    cell: list[list[float]] = Field(description="Relaxed cell, A")
    volume_per_atom: float
    phonons: PhononResult | None = None
    phonon_comparison: PhononComparison | None = None
    elastic: ElasticResult | None = None
    reference_elastic: ElasticResult | None = None
    eos: EOSResult | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)


class ValidationReport(BaseModel):
    potential: str = ""
    iteration: int | None = None
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(
        timespec="seconds"))
    verdict: Literal["GO", "NO-GO"]
    reasons: list[str] = Field(description="Messages of the failed checks.")
    checks: list[Check]
    crystals: list[CrystalValidation]
    errors: ErrorResult | None = None
    reference: str = Field("", description="What elastic/EOS values were compared with.")
    settings: dict[str, Any] = Field(default_factory=dict)
    computed_by: str = Field("", description="host:pid of the process that ran the gate.")

    @property
    def passed(self) -> bool:
        return self.verdict == "GO"

    def metrics(self) -> dict[str, float]:
        """Flat numbers for the manifest and learning curves."""
        values: dict[str, float] = {}
        if self.errors is not None:
            for key, value in self.errors.overall.model_dump().items():
                if isinstance(value, float):
                    values[key] = value
        for crystal in self.crystals:
            if crystal.elastic is not None:
                for name, value in crystal.elastic.named().items():
                    values[f"{crystal.label}:{name}_gpa"] = round(value, 3)
            if crystal.eos is not None and crystal.eos.fit is not None:
                values[f"{crystal.label}:B0_gpa"] = round(crystal.eos.fit.b0_gpa, 3)
                values[f"{crystal.label}:V0_a3_per_atom"] = round(crystal.eos.fit.v0_per_atom, 4)
            if crystal.phonons is not None:
                values[f"{crystal.label}:min_phonon_thz"] = round(
                    crystal.phonons.min_frequency_thz, 4)
        return values


def _relative(value: float, reference: float) -> float:
    return abs(value - reference) / max(abs(reference), 1e-12)


def _compare(name: str, value: float, reference: float, tolerance: float,
             unit: str, source: str) -> Check:
    rel = _relative(value, reference)
    return Check(name=name, passed=bool(rel <= tolerance), value=rel, threshold=tolerance,
                 message=f"{name}: {value:.4g} {unit} vs {reference:.4g} {unit} ({source}), "
                         f"{100 * rel:.1f}% off (limit {100 * tolerance:.0f}%)")


def _elastic_comparisons(label: str, elastic: ElasticResult, reference: dict[str, float],
                         tolerance: float, source: str) -> list[Check]:
    mine = elastic.named()
    largest = max((abs(v) for v in reference.values()), default=0.0)
    checks = []
    for name, ref_value in reference.items():
        if name == "B0" or name not in mine or abs(ref_value) < 0.05 * largest:
            continue  # components zero by symmetry carry no information
        checks.append(_compare(f"{label}: {name}", mine[name], ref_value, tolerance, "GPa",
                               source))
    return checks


def _phonon_check(label: str, phonons: PhononResult, settings: ValidationSettings) -> Check:
    if phonons.dynamically_stable:
        return Check(name=f"{label}: phonons", passed=True, value=phonons.min_frequency_thz,
                     threshold=-settings.imaginary_tolerance_thz,
                     message=f"{label}: no imaginary phonon modes (lowest "
                             f"{phonons.min_frequency_thz:.3f} THz)")
    worst = phonons.imaginary_modes[0]
    where = worst.q_label or np.round(worst.q_scaled, 3).tolist()
    return Check(name=f"{label}: phonons", passed=False, value=worst.frequency_thz,
                 threshold=-settings.imaginary_tolerance_thz,
                 message=f"{label}: dynamically unstable: imaginary modes at "
                         f"{phonons.n_imaginary_qpoints} q-points, worst {worst.frequency_thz:.2f}"
                         f" THz at q={where}")


def _born_check(label: str, elastic: ElasticResult) -> Check:
    failed = [c for c in elastic.born_criteria if not c.satisfied]
    if not failed:
        return Check(name=f"{label}: Born stability", passed=True,
                     message=f"{label}: mechanically stable ({elastic.crystal_system} Born "
                             "criteria hold)")
    text = "; ".join(f"{c.expression} is {c.value:.1f} GPa" for c in failed)
    return Check(name=f"{label}: Born stability", passed=False, value=failed[0].value,
                 threshold=0.0,
                 message=f"{label}: mechanically unstable ({elastic.crystal_system}): {text}")


def _eos_checks(label: str, eos: EOSResult, settings: ValidationSettings,
                reference: EOSFit | None, reference_b0: float | None, source: str) -> list[Check]:
    checks = [
        Check(name=f"{label}: EOS minima", passed=eos.n_local_minima == 1,
              value=eos.n_local_minima, threshold=1,
              message=f"{label}: E(V) has {eos.n_local_minima} local minima between "
                      f"V/V0 = {settings.eos_scan_volumes[0]} and {settings.eos_scan_volumes[1]}"
                      " (expected exactly 1)"),
        Check(name=f"{label}: EOS pressure", passed=eos.pressure_monotonic,
              message=f"{label}: pressure "
                      + ("falls monotonically with volume" if eos.pressure_monotonic
                         else "is not monotonic in volume (spurious wiggles)")),
    ]
    if eos.fit is None:
        return checks + [Check(name=f"{label}: EOS fit", passed=False,
                               message=f"{label}: no Birch-Murnaghan fit of E(V) near the "
                                       f"relaxed volume: {eos.fit_error}")]
    checks.append(
        Check(name=f"{label}: B0 > 0", passed=eos.fit.b0_gpa > 0, value=eos.fit.b0_gpa,
              threshold=0.0, message=f"{label}: Birch-Murnaghan B0 = {eos.fit.b0_gpa:.1f} GPa"))
    if reference is not None:
        checks.append(_compare(f"{label}: V0", eos.fit.v0_per_atom, reference.v0_per_atom,
                               settings.v0_rel_tol, "A^3/atom", source))
        reference_b0 = reference.b0_gpa
    if reference_b0 is not None:
        checks.append(_compare(f"{label}: B0", eos.fit.b0_gpa, reference_b0,
                               settings.b0_rel_tol, "GPa", source))
    return checks


def _dft_eos_checks(label: str, eos: EOSResult, relaxed: Atoms, labelled: Sequence[Atoms],
                    settings: ValidationSettings,
                    reference_energies: dict[str, float]) -> list[Check]:
    volumes, energies = reference_eos_from_labels(relaxed, labelled)
    if len(volumes) < 5 or eos.fit is None:
        return []
    shift = sum(reference_energies.get(s, 0.0) for s in relaxed.get_chemical_symbols())
    energies = [e - shift / len(relaxed) for e in energies]
    try:
        dft = fit_birch_murnaghan(volumes, energies)
    except ValueError:  # the labelled volumes do not bracket a minimum: nothing to compare
        return []
    eos.reference, eos.reference_source = dft, "oracle labels"
    eos.reference_volumes_per_atom, eos.reference_energies_per_atom = volumes, energies
    delta = abs(eos.fit.e0_per_atom - dft.e0_per_atom) * 1000
    return [
        Check(name=f"{label}: E0 vs labels", passed=delta <= settings.e0_tol_mev_per_atom,
              value=delta, threshold=settings.e0_tol_mev_per_atom,
              message=f"{label}: EOS minimum energy {delta:.1f} meV/atom from the fit to the "
                      f"oracle's labels (limit {settings.e0_tol_mev_per_atom} meV/atom)"),
        _compare(f"{label}: V0 vs labels", eos.fit.v0_per_atom, dft.v0_per_atom,
                 settings.v0_rel_tol, "A^3/atom", "oracle labels"),
        _compare(f"{label}: B0 vs labels", eos.fit.b0_gpa, dft.b0_gpa, settings.b0_rel_tol,
                 "GPa", "oracle labels"),
    ]


def _error_checks(errors: ErrorResult, settings: ValidationSettings) -> list[Check]:
    overall = errors.overall
    if overall.n_structures < settings.min_validation_structures:
        return [Check(name="errors", passed=False, value=float(overall.n_structures),
                      threshold=float(settings.min_validation_structures),
                      message=f"the {errors.set_name} has {overall.n_structures} structures, "
                      f"fewer than validation.min_validation_structures="
                      f"{settings.min_validation_structures}: the error targets are not "
                      "judged (label more, or raise validation.validation_fraction)")]
    targets = [("energy RMSE", overall.energy_rmse_mev_per_atom,
                settings.energy_rmse_mev_per_atom, "meV/atom"),
               ("force RMSE", overall.force_rmse_ev_per_a, settings.force_rmse_ev_per_a, "eV/A")]
    if overall.stress_rmse_gpa is not None:
        targets.append(("stress RMSE", overall.stress_rmse_gpa, settings.stress_rmse_gpa, "GPa"))
    return [Check(name=name, passed=value <= limit, value=value, threshold=limit,
                  message=f"{name} on the {errors.set_name} ({overall.n_structures} structures):"
                          f" {value:.3g} {unit} (target <= {limit:g})")
            for name, value, limit, unit in targets]


def _phonon_comparison_check(label: str, comparison: PhononComparison,
                             tolerance: float) -> Check:
    rel = comparison.max_relative_difference
    return Check(name=f"{label}: phonons vs {comparison.reference}", passed=rel <= tolerance,
                 value=rel, threshold=tolerance,
                 message=f"{label}: phonon frequencies at the special q-points differ from "
                         f"{comparison.reference}'s by up to {100 * rel:.1f}% (at "
                         f"{comparison.worst_q}; limit {100 * tolerance:.0f}%)")


def _timed(timings: dict[str, float], key: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    start = time.perf_counter()
    try:
        return func(*args, **kwargs)
    finally:
        timings[key] = round(time.perf_counter() - start, 3)


def _validate_crystal(crystal: Atoms, calc_factory: CalculatorFactory,
                      settings: ValidationSettings,
                      reference_factory: CalculatorFactory | None,
                      labelled: Sequence[Atoms], reference_energies: dict[str, float],
                      phonon_reference: tuple[str, CalculatorFactory] | None = None,
                      ) -> tuple[CrystalValidation | None, list[Check]]:
    label = crystal.info.get("label", crystal.get_chemical_formula())
    timings: dict[str, float] = {}
    checks: list[Check] = []
    try:
        relaxed = (_timed(timings, "relax", relax_crystal, crystal, calc_factory(),
                          settings.relax_fmax) if settings.relax else crystal.copy())
    except POTENTIAL_FAILURES as exc:  # a broken potential blew up: a verdict
        return None, [Check(name=f"{label}: relaxation", passed=False,
                            message=f"{label}: relaxation with the potential failed: {exc}")]
    relaxed.info["label"] = label
    result = CrystalValidation(label=label, formula=relaxed.get_chemical_formula(),
                               cell=relaxed.cell.array.round(6).tolist(),
                               volume_per_atom=relaxed.get_volume() / len(relaxed))
    source = "configured reference values"
    reference_moduli = dict(settings.reference_moduli_gpa)
    reference_fit: EOSFit | None = None
    reference_calc = reference_factory() if reference_factory is not None else None
    reference_eos: tuple[EOSFit, list[float], list[float]] | None = None
    if reference_calc is not None:
        source = f"{type(reference_calc).__name__} reference"
        try:
            ref_relaxed = relax_crystal(crystal, reference_calc, settings.relax_fmax)
            ref_relaxed.info["label"] = label
            result.reference_elastic = _timed(
                timings, "reference elastic", compute_elastic, ref_relaxed, reference_calc,
                settings.elastic_max_strain, settings.elastic_strain_points)
            reference_moduli = result.reference_elastic.named()
            reference_eos = fit_eos(ref_relaxed, reference_calc, settings.eos_fit_volume_range)
        except POTENTIAL_FAILURES as exc:
            checks.append(Check(name=f"{label}: reference", passed=False,
                                message=f"{label}: the reference calculator failed: {exc}"))

    try:
        result.phonons = _timed(
            timings, "phonons", compute_phonons, relaxed, calc_factory(),
            settings.phonon_supercell, settings.phonon_displacement, settings.phonon_mesh,
            tolerance_thz=settings.imaginary_tolerance_thz,
            gamma_tolerance_thz=settings.imaginary_tolerance_gamma_thz,
            gamma_radius=settings.gamma_radius)
        checks.append(_phonon_check(label, result.phonons, settings))
    except POTENTIAL_FAILURES as exc:
        checks.append(Check(name=f"{label}: phonons", passed=False,
                            message=f"{label}: phonon calculation failed: {exc}"))
    if phonon_reference is not None:
        name, factory = phonon_reference
        try:
            result.phonon_comparison = _timed(
                timings, "reference phonons", compare_phonons, relaxed, calc_factory(),
                factory(), settings.phonon_reference_supercell, settings.phonon_displacement,
                reference_name=name)
            checks.append(_phonon_comparison_check(label, result.phonon_comparison,
                                                   settings.phonon_rel_tol))
        except POTENTIAL_FAILURES as exc:
            checks.append(Check(name=f"{label}: phonons vs {name}", passed=False,
                                message=f"{label}: reference phonons failed: {exc}"))
    try:
        result.elastic = _timed(timings, "elastic", compute_elastic, relaxed, calc_factory(),
                                settings.elastic_max_strain, settings.elastic_strain_points)
        checks.append(_born_check(label, result.elastic))
        checks += _elastic_comparisons(label, result.elastic, reference_moduli,
                                       settings.elastic_rel_tol, source)
    except POTENTIAL_FAILURES as exc:
        checks.append(Check(name=f"{label}: elastic", passed=False,
                            message=f"{label}: elastic constants failed: {exc}"))
    try:
        result.eos = _timed(
            timings, "eos", compute_eos, relaxed, calc_factory(), settings.eos_fit_volume_range,
            scan=settings.eos_scan_volumes, scan_points=settings.eos_points)
        if reference_eos is not None:
            reference_fit, volumes, energies = reference_eos
            result.eos.reference, result.eos.reference_source = reference_fit, source
            result.eos.reference_volumes_per_atom = volumes
            result.eos.reference_energies_per_atom = energies
        checks += _eos_checks(label, result.eos, settings, reference_fit,
                              reference_moduli.get("B0"), source)
        checks += _dft_eos_checks(label, result.eos, relaxed, labelled, settings,
                                  reference_energies)
    except POTENTIAL_FAILURES as exc:
        checks.append(Check(name=f"{label}: EOS", passed=False,
                            message=f"{label}: equation of state failed: {exc}"))
    result.timings_s = timings
    return result, checks


def validate_potential(
    calc_factory: CalculatorFactory,
    crystals: Sequence[Atoms],
    settings: ValidationSettings | None = None,
    held_out: Sequence[Atoms] = (),
    held_out_name: str = "held-out test set",
    reference_factory: CalculatorFactory | None = None,
    labelled: Sequence[Atoms] = (),
    reference_energies: dict[str, float] | None = None,
    potential: str = "",
    iteration: int | None = None,
    phonon_reference: tuple[str, CalculatorFactory] | None = None,
) -> ValidationReport:
    """Judge the potential that ``calc_factory()`` returns.

    ``crystals``: structures to relax and test (phonons, elastic, EOS). ``held_out``:
    labelled structures the potential was not fitted to (errors). ``reference_factory``:
    a calculator to compare elastic constants and EOS with (e.g. the EMT oracle).
    ``labelled``: the campaign's labelled data, searched for DFT EOS points.
    ``phonon_reference``: (name, factory) of a calculator (e.g. the DFT oracle) whose
    phonons at the special q-points the potential's are compared with.
    """
    settings = settings or ValidationSettings()
    reference_energies = reference_energies or {}
    checks: list[Check] = []
    results: list[CrystalValidation] = []
    if not crystals:
        checks.append(Check(name="crystals", passed=False,
                            message="no crystal to validate on (validation.structures empty)"))
    for crystal in crystals:
        result, crystal_checks = _validate_crystal(crystal, calc_factory, settings,
                                                   reference_factory, labelled,
                                                   reference_energies, phonon_reference)
        checks += crystal_checks
        if result is not None:
            results.append(result)
    errors = None
    if held_out:
        try:
            errors = compute_errors(held_out, calc_factory(), held_out_name, reference_energies)
            checks += _error_checks(errors, settings)
        except POTENTIAL_FAILURES as exc:
            checks.append(Check(name="errors", passed=False,
                                message=f"errors on the {held_out_name} failed: {exc}"))
    else:
        checks.append(Check(name="errors", passed=True,
                            message="no held-out structures: errors not checked"))
    reasons = [c.message for c in checks if not c.passed]
    if reference_factory is not None:
        reference = f"{type(reference_factory()).__name__} calculator"
    else:
        reference = "configured reference values" if settings.reference_moduli_gpa else "none"
    report = ValidationReport(
        potential=potential, iteration=iteration, verdict="NO-GO" if reasons else "GO",
        reasons=reasons, checks=checks, crystals=results, errors=errors, reference=reference,
        settings=settings.model_dump(mode="json"))
    log.info("validation of %s: %s%s", potential or "potential", report.verdict,
             "".join(f"\n  - {r}" for r in reasons))
    return report
