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
from pyacemaker.stages.validate.checks import (
    Check,
    born_check,
    dft_eos_checks,
    elastic_comparisons,
    eos_checks,
    error_checks,
    phonon_check,
    phonon_comparison_check,
)
from pyacemaker.stages.validate.crystal import CalculatorFactory, relax_crystal
from pyacemaker.stages.validate.elastic import ElasticResult, compute_elastic
from pyacemaker.stages.validate.eos import (
    EOSFit,
    EOSResult,
    compute_eos,
)
from pyacemaker.stages.validate.errors import ErrorResult, compute_errors
from pyacemaker.stages.validate.phonon_reference import (
    PhononComparison,
    compare_frequencies,
    compare_phonons,
)
from pyacemaker.stages.validate.reference import CrystalReference, compute_reference
from pyacemaker.stages.validate.phonons import PhononResult, compute_phonons
from pyacemaker.stages.validate.special_points import special_point_frequencies

log = logging.getLogger(__name__)
VALIDATION_FILE = "validation.json"
# What a broken potential makes the property calculations raise (non-finite energies, a fit
# or a relaxation that cannot converge, a singular matrix): a NO-GO line. Anything else
# (TypeError, AttributeError, KeyError ...) is a bug in our own code and propagates.
POTENTIAL_FAILURES: tuple[type[Exception], ...] = (
    ValueError, ArithmeticError, RuntimeError, np.linalg.LinAlgError)


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
                      references: dict[str, CrystalReference] | None = None,
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
    reference = (references or {}).get(label)
    if reference is None and reference_factory is not None:
        reference_calc = reference_factory()
        try:
            reference = _timed(timings, "reference", compute_reference, crystal,
                               reference_calc, settings, f"{type(reference_calc).__name__} "
                               "reference", "", False)
        except POTENTIAL_FAILURES as exc:
            checks.append(Check(name=f"{label}: reference", passed=False,
                                message=f"{label}: the reference calculator failed: {exc}"))
    source = "configured reference values"
    reference_moduli = dict(settings.reference_moduli_gpa)
    reference_eos: tuple[EOSFit, list[float], list[float]] | None = None
    if reference is not None:
        source = reference.source
        result.reference_elastic = reference.elastic
        reference_moduli = reference.elastic.named()
        reference_eos = (reference.eos, reference.eos_volumes_per_atom,
                         reference.eos_energies_per_atom)
        if reference.phonons is not None:
            checks += _phonons_vs_reference(label, relaxed, calc_factory, reference, settings,
                                            result, timings)

    try:
        result.phonons = _timed(
            timings, "phonons", compute_phonons, relaxed, calc_factory(),
            settings.phonon_supercell, settings.phonon_displacement, settings.phonon_mesh,
            tolerance_thz=settings.imaginary_tolerance_thz,
            gamma_tolerance_thz=settings.imaginary_tolerance_gamma_thz,
            gamma_radius=settings.gamma_radius)
        checks.append(phonon_check(label, result.phonons, settings))
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
            checks.append(phonon_comparison_check(label, result.phonon_comparison,
                                                   settings.phonon_rel_tol))
        except POTENTIAL_FAILURES as exc:
            checks.append(Check(name=f"{label}: phonons vs {name}", passed=False,
                                message=f"{label}: reference phonons failed: {exc}"))
    try:
        result.elastic = _timed(timings, "elastic", compute_elastic, relaxed, calc_factory(),
                                settings.elastic_max_strain, settings.elastic_strain_points)
        checks.append(born_check(label, result.elastic))
        checks += elastic_comparisons(label, result.elastic, reference_moduli,
                                       settings.elastic_rel_tol, source)
        if reference is not None and settings.reference_moduli_gpa:  # the user's values too
            checks += elastic_comparisons(label, result.elastic, settings.reference_moduli_gpa,
                                          settings.elastic_rel_tol,
                                          "configured reference values")
    except POTENTIAL_FAILURES as exc:
        checks.append(Check(name=f"{label}: elastic", passed=False,
                            message=f"{label}: elastic constants failed: {exc}"))
    try:
        result.eos = _timed(
            timings, "eos", compute_eos, relaxed, calc_factory(), settings.eos_fit_volume_range,
            scan=settings.eos_scan_volumes, scan_points=settings.eos_points)
        reference_fit = reference_eos[0] if reference_eos is not None else None
        if reference_eos is not None:
            reference_fit, volumes, energies = reference_eos
            result.eos.reference, result.eos.reference_source = reference_fit, source
            result.eos.reference_volumes_per_atom = volumes
            result.eos.reference_energies_per_atom = energies
        checks += eos_checks(label, result.eos, settings, reference_fit,
                              reference_moduli.get("B0"), source)
        checks += dft_eos_checks(label, result.eos, relaxed, labelled, settings,
                                  reference_energies)
    except POTENTIAL_FAILURES as exc:
        checks.append(Check(name=f"{label}: EOS", passed=False,
                            message=f"{label}: equation of state failed: {exc}"))
    result.timings_s = timings
    return result, checks


def _phonons_vs_reference(label: str, relaxed: Atoms, calc_factory: CalculatorFactory,
                          reference: CrystalReference, settings: ValidationSettings,
                          result: CrystalValidation, timings: dict[str, float]) -> list[Check]:
    """The potential's special-point frequencies (on its own relaxed crystal, the same
    supercell and displacement) against the reference's."""
    assert reference.phonons is not None
    ref = reference.phonons
    try:
        names, mine = _timed(timings, "phonons at special points", special_point_frequencies,
                             relaxed, calc_factory(), ref.supercell, ref.displacement)
    except POTENTIAL_FAILURES as exc:
        return [Check(name=f"{label}: phonons vs {reference.source}", passed=False,
                      message=f"{label}: phonons at the special points failed: {exc}")]
    # a reference may hold more points (older ones: every special point of a supercell)
    ref_by_name = dict(zip(ref.q_labels, ref.frequencies_thz, strict=True))
    if not set(names) <= set(ref_by_name):
        raise ValueError(f"{label}: special points {names} are not all in the reference's "
                         f"{ref.q_labels}: the potential relaxed to another lattice type")
    result.phonon_comparison = compare_frequencies(label, reference.source, ref.supercell,
                                                   names, mine,
                                                   [ref_by_name[n] for n in names])
    return [phonon_comparison_check(label, result.phonon_comparison, settings.phonon_rel_tol)]


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
    references: dict[str, CrystalReference] | None = None,
    reference_failures: dict[str, str] | None = None,
) -> ValidationReport:
    """Judge the potential that ``calc_factory()`` returns.

    ``crystals``: structures to relax and test (phonons, elastic, EOS). ``held_out``:
    labelled structures the potential was not fitted to (errors). ``reference_factory``:
    a calculator to compare elastic constants and EOS with (e.g. the EMT oracle).
    ``labelled``: the campaign's labelled data, searched for DFT EOS points.
    ``phonon_reference``: (name, factory) of a calculator (e.g. the DFT oracle) whose
    phonons at the special q-points the potential's are compared with.
    ``references``: precomputed reference properties per crystal label (the campaign's
    cached DFT references, ``reference.py``); they replace ``reference_factory`` for that
    crystal. ``reference_failures``: crystals whose reference could not be computed, with
    why (a failed check each: no GO without the comparison).
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
                                                   reference_energies, phonon_reference,
                                                   references)
        checks += crystal_checks
        if result is not None:
            results.append(result)
    for label, why in (reference_failures or {}).items():
        checks.append(Check(name=f"{label}: DFT reference", passed=False,
                            message=f"{label}: no DFT reference to compare with: {why}"))
    errors = None
    if held_out:
        try:
            errors = compute_errors(held_out, calc_factory(), held_out_name, reference_energies)
            checks += error_checks(errors, settings)
        except POTENTIAL_FAILURES as exc:
            checks.append(Check(name="errors", passed=False,
                                message=f"errors on the {held_out_name} failed: {exc}"))
    else:
        checks.append(Check(name="errors", passed=True,
                            message="no held-out structures: errors not checked"))
    reasons = [c.message for c in checks if not c.passed]
    if references:
        reference = ", ".join(sorted({r.source for r in references.values()}))
    elif reference_factory is not None:
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
