"""The gate's checks: each compares one computed property with its limit or reference and
says, in a sentence, what it found."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from pydantic import BaseModel

from pyacemaker.config import ValidationSettings
from pyacemaker.stages.validate.elastic import ElasticResult
from pyacemaker.stages.validate.eos import (
    EOSFit,
    EOSResult,
    fit_birch_murnaghan,
    reference_eos_from_labels,
)
from pyacemaker.stages.validate.errors import ErrorResult
from pyacemaker.stages.validate.phonon_reference import PhononComparison
from pyacemaker.stages.validate.phonons import PhononResult

# the labelled EOS points within +-10 % of the lowest one (the cold start's 0.92-1.08
# series) are fitted for the "vs labels" checks; the wide cells (0.80-1.25) are left out
LABEL_EOS_MIN_WINDOW = 0.10


class Check(BaseModel):
    name: str
    passed: bool
    message: str
    value: float | None = None
    threshold: float | None = None


def relative(value: float, reference: float) -> float:
    return abs(value - reference) / max(abs(reference), 1e-12)


def compare(name: str, value: float, reference: float, tolerance: float,
             unit: str, source: str) -> Check:
    rel = relative(value, reference)
    return Check(name=name, passed=bool(rel <= tolerance), value=rel, threshold=tolerance,
                 message=f"{name}: {value:.4g} {unit} vs {reference:.4g} {unit} ({source}), "
                         f"{100 * rel:.1f}% off (limit {100 * tolerance:.0f}%)")


def elastic_comparisons(label: str, elastic: ElasticResult, reference: dict[str, float],
                         tolerance: float, source: str) -> list[Check]:
    mine = elastic.named()
    largest = max((abs(v) for v in reference.values()), default=0.0)
    checks = []
    for name, ref_value in reference.items():
        if name == "B0" or name not in mine or abs(ref_value) < 0.05 * largest:
            continue  # components zero by symmetry carry no information
        checks.append(compare(f"{label}: {name}", mine[name], ref_value, tolerance, "GPa",
                               source))
    return checks


def phonon_check(label: str, phonons: PhononResult, settings: ValidationSettings) -> Check:
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


def born_check(label: str, elastic: ElasticResult) -> Check:
    failed = [c for c in elastic.born_criteria if not c.satisfied]
    if not failed:
        return Check(name=f"{label}: Born stability", passed=True,
                     message=f"{label}: mechanically stable ({elastic.crystal_system} Born "
                             "criteria hold)")
    text = "; ".join(f"{c.expression} is {c.value:.1f} GPa" for c in failed)
    return Check(name=f"{label}: Born stability", passed=False, value=failed[0].value,
                 threshold=0.0,
                 message=f"{label}: mechanically unstable ({elastic.crystal_system}): {text}")


def eos_checks(label: str, eos: EOSResult, settings: ValidationSettings,
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
        checks.append(compare(f"{label}: V0", eos.fit.v0_per_atom, reference.v0_per_atom,
                               settings.v0_rel_tol, "A^3/atom", source))
        reference_b0 = reference.b0_gpa
    if reference_b0 is not None:
        checks.append(compare(f"{label}: B0", eos.fit.b0_gpa, reference_b0,
                               settings.b0_rel_tol, "GPa", source))
    return checks


def dft_eos_checks(label: str, eos: EOSResult, relaxed: Atoms, labelled: Sequence[Atoms],
                    settings: ValidationSettings,
                    reference_energies: dict[str, float]) -> list[Check]:
    volumes, energies = reference_eos_from_labels(relaxed, labelled)
    if volumes:  # the labels near the minimum: B0 of a fit out to V/V0 0.8-1.25 is another B0
        lowest = volumes[int(np.argmin(energies))]
        window = max(settings.eos_fit_volume_range, LABEL_EOS_MIN_WINDOW)
        near = [i for i, v in enumerate(volumes) if abs(v / lowest - 1) <= window + 1e-9]
        volumes, energies = [volumes[i] for i in near], [energies[i] for i in near]
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
        compare(f"{label}: V0 vs labels", eos.fit.v0_per_atom, dft.v0_per_atom,
                 settings.v0_rel_tol, "A^3/atom", "oracle labels"),
        compare(f"{label}: B0 vs labels", eos.fit.b0_gpa, dft.b0_gpa, settings.b0_rel_tol,
                 "GPa", "oracle labels"),
    ]


def error_checks(errors: ErrorResult, settings: ValidationSettings) -> list[Check]:
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


def phonon_comparison_check(label: str, comparison: PhononComparison,
                             tolerance: float) -> Check:
    rel = comparison.max_relative_difference
    return Check(name=f"{label}: phonons vs {comparison.reference}", passed=rel <= tolerance,
                 value=rel, threshold=tolerance,
                 message=f"{label}: phonon frequencies at the special q-points differ from "
                         f"{comparison.reference}'s by up to {100 * rel:.1f}% (at "
                         f"{comparison.worst_q}; limit {100 * tolerance:.0f}%)")
