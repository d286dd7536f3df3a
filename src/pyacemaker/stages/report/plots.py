"""Matplotlib figures of the report, each returned as a base64 PNG data URI."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from pyacemaker.stages.report.campaign_data import IterationRow  # noqa: E402
from pyacemaker.stages.validate.eos import EOSResult  # noqa: E402
from pyacemaker.stages.validate.errors import ErrorResult  # noqa: E402
from pyacemaker.stages.validate.phonons import PhononResult  # noqa: E402
from pyacemaker.state import PotentialRecord  # noqa: E402


def to_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def learning_curves(potentials: Sequence[PotentialRecord],
                    validation_errors: dict[int, tuple[float, float]]) -> str:
    """Energy and force RMSE vs iteration (fit's test split, and the validation's held-out
    set when per-iteration reports exist) and vs training-set size."""
    figure, (ax_e, ax_f, ax_n) = plt.subplots(1, 3, figsize=(12, 3.4),
                                              gridspec_kw={"wspace": 0.45})
    iterations = [p.iteration for p in potentials]
    sizes = [p.metrics.get("n_structures", np.nan) for p in potentials]
    energy = [p.metrics.get("energy_rmse_mev_per_atom", np.nan) for p in potentials]
    force = [p.metrics.get("force_rmse_ev_per_a", np.nan) for p in potentials]
    ax_e.plot(iterations, energy, "o-", label="fit test split")
    ax_f.plot(iterations, force, "s-", label="fit test split")
    if validation_errors:
        its = sorted(validation_errors)
        ax_e.plot(its, [validation_errors[i][0] for i in its], "o:", label="validation")
        ax_f.plot(its, [validation_errors[i][1] for i in its], "s:", label="validation")
    ax_e.set(xlabel="iteration", ylabel="energy RMSE (meV/atom)")
    ax_f.set(xlabel="iteration", ylabel="force RMSE (eV/Å)")
    ax_n.plot(sizes, energy, "o-", label="energy (meV/atom)")
    ax_n.plot(sizes, np.array(force) * 1000, "s--", label="forces (meV/Å)")
    ax_n.set(xlabel="training structures", ylabel="RMSE")
    for ax in (ax_e, ax_f, ax_n):
        ax.legend(fontsize=7)
    for ax in (ax_e, ax_f):
        ax.xaxis.get_major_locator().set_params(integer=True)
    return to_data_uri(figure)


def dft_calls_and_halts(rows: Sequence[IterationRow]) -> str:
    figure, ax = plt.subplots(figsize=(6, 3.2))
    x = np.array([r.iteration for r in rows])
    ax.bar(x - 0.2, [r.labelled for r in rows], width=0.4, label="DFT labels")
    ax.bar(x + 0.2, [r.halts or 0 for r in rows], width=0.4, label="exploration halts")
    ax.bar(x - 0.2, [r.quarantined for r in rows], width=0.4, bottom=[r.labelled for r in rows],
           label="quarantined", color="C3")
    ax.set_xlabel("iteration")
    ax.set_ylabel("count")
    ax.set_xticks(x)
    ax.legend(fontsize=7)
    return to_data_uri(figure)


def parity(errors: ErrorResult) -> str:
    figure, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(9, 4))
    data = errors.parity
    labels = np.array(data.provenance)
    ref, pred = np.array(data.energy_ref_per_atom), np.array(data.energy_pred_per_atom)
    for label in sorted(set(labels)):
        mask = labels == label
        ax_e.scatter(ref[mask], pred[mask], s=12, label=label)
    for ax, (a, b) in ((ax_e, (ref, pred)), (ax_f, (data.force_ref, data.force_pred))):
        low, high = float(np.min([a, b])), float(np.max([a, b]))
        ax.plot([low, high], [low, high], "k-", lw=0.8)
    ax_f.scatter(data.force_ref, data.force_pred, s=3, alpha=0.4)
    ax_e.set(xlabel="reference energy (eV/atom)", ylabel="predicted (eV/atom)",
             title=f"energy, RMSE {errors.overall.energy_rmse_mev_per_atom:.2f} meV/atom")
    ax_f.set(xlabel="reference force component (eV/Å)", ylabel="predicted (eV/Å)",
             title=f"forces, RMSE {errors.overall.force_rmse_ev_per_a:.3f} eV/Å")
    ax_e.legend(fontsize=7)
    return to_data_uri(figure)


def phonon_bands_dos(phonons: PhononResult) -> str:
    figure, (ax_b, ax_d) = plt.subplots(1, 2, figsize=(9, 4), sharey=True,
                                        gridspec_kw={"width_ratios": [3, 1]})
    bands = np.array(phonons.band_frequencies_thz)
    ax_b.plot(phonons.band_x, bands, "C0-", lw=1)
    ax_b.axhline(0, color="k", lw=0.5)
    for x in phonons.band_special_x:
        ax_b.axvline(x, color="grey", lw=0.5)
    ticks: list[float] = []
    labels: list[str] = []
    for x, label in zip(phonons.band_special_x, phonons.band_special_labels, strict=True):
        label = "Γ" if label == "G" else label
        if ticks and abs(x - ticks[-1]) < 1e-9:  # a break in the path: "K|U"
            labels[-1] += "|" + label
        else:
            ticks.append(x)
            labels.append(label)
    ax_b.set_xticks(ticks)
    ax_b.set_xticklabels(labels)
    ax_b.set_xlim(phonons.band_x[0], phonons.band_x[-1])
    ax_b.set_ylabel("frequency (THz)")
    ax_b.set_title(f"{phonons.label}: "
                   + ("dynamically stable" if phonons.dynamically_stable
                      else f"IMAGINARY modes ({phonons.n_imaginary_qpoints} q-points)"))
    ax_d.plot(phonons.dos, phonons.dos_frequencies_thz, "C0-")
    ax_d.set_xlabel("DOS")
    return to_data_uri(figure)


def eos_curve(eos: EOSResult) -> str:
    figure, (ax_e, ax_p) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax_e.plot(eos.volumes_per_atom, eos.energies_per_atom, "o-", ms=3, label="potential")
    if eos.reference_volumes_per_atom:
        ax_e.plot(eos.reference_volumes_per_atom, eos.reference_energies_per_atom, "kx",
                  label=eos.reference_source or "reference")
    if eos.fit is not None:
        ax_e.axvline(eos.fit.v0_per_atom, color="grey", lw=0.5)
        title = f"{eos.label}: V0 {eos.fit.v0_per_atom:.2f} Å³, B0 {eos.fit.b0_gpa:.0f} GPa"
    else:
        title = f"{eos.label}: NO Birch-Murnaghan fit"
    ax_e.set(xlabel="volume (Å³/atom)", ylabel="energy (eV/atom)", title=title)
    ax_e.legend(fontsize=7)
    ax_p.plot(eos.volumes_per_atom, eos.pressures_gpa, "o-", ms=3)
    ax_p.axhline(0, color="k", lw=0.5)
    ax_p.set(xlabel="volume (Å³/atom)", ylabel="pressure (GPa)",
             title="monotonic" if eos.pressure_monotonic else "NOT monotonic")
    return to_data_uri(figure)


def gamma_distribution(gamma_by_provenance: dict[str, list[float]]) -> str:
    figure, ax = plt.subplots(figsize=(6, 3.2))
    values = [v for vs in gamma_by_provenance.values() for v in vs if v > 0]
    bins = np.logspace(np.log10(min(values)), np.log10(max(values)) + 1e-9, 30) if values else 10
    for label, gammas in sorted(gamma_by_provenance.items()):
        ax.hist([g for g in gammas if g > 0], bins=bins, alpha=0.6, label=label)
    ax.set_xscale("log")
    ax.set(xlabel="max extrapolation grade γ of the structure", ylabel="structures")
    ax.legend(fontsize=7)
    return to_data_uri(figure)
