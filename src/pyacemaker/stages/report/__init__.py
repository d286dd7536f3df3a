"""The campaign's single self-contained HTML report (plots embedded as PNG data URIs)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from pyacemaker.config import CampaignConfig
from pyacemaker.datastore import DataStore
from pyacemaker.stages.report import plots
from pyacemaker.stages.report.campaign_data import (
    CampaignData,
    collect_datastore,
    collect_kmc,
    collect_monitoring,
)
from pyacemaker.stages.validate import ValidationReport
from pyacemaker.stages.validate.elastic import ElasticResult
from pyacemaker.state import PotentialRecord, WorkflowState

__all__ = ["build_report"]

STYLE = """
body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}
h1{margin-bottom:0} h2{border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:2px 8px;
text-align:right} th{background:#f3f3f3} td.l,th.l{text-align:left}
.go{background:#d8f5d0;border:2px solid #3a3;padding:.6em} .nogo{background:#fde0e0;
border:2px solid #c33;padding:.6em} .ok{color:#282} .bad{color:#c22;font-weight:bold}
img{max-width:100%} .note{color:#666;font-style:italic}
"""


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    def cell(tag: str, i: int, value: Any) -> str:
        if isinstance(value, float):
            value = "–" if not np.isfinite(value) else f"{value:.4g}"
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(uri: str, alt: str) -> str:
    return f'<p><img class="plot" src="{uri}" alt="{escape(alt)}"></p>'


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _verdict(validation: ValidationReport) -> str:
    if validation.passed:
        return ('<div class="go"><b>Validation: GO</b>: every check passed '
                f"({len(validation.checks)} checks).</div>")
    reasons = "".join(f"<li>{escape(r)}</li>" for r in validation.reasons)
    return f'<div class="nogo"><b>Validation: NO-GO</b><ul>{reasons}</ul></div>'


def _checks(validation: ValidationReport) -> str:
    rows = [[c.name, "pass" if c.passed else "FAIL", c.message] for c in validation.checks]
    html = _table(["check", "result", "detail"], rows, left=3)
    return html.replace("<td>FAIL</td>", '<td class="bad">FAIL</td>').replace(
        "<td>pass</td>", '<td class="ok">pass</td>')


def _elastic(elastic: ElasticResult, reference: ElasticResult | None) -> str:
    c = np.array(elastic.c_gpa)
    rows = [[f"{i + 1}"] + [float(v) for v in c[i]] for i in range(6)]
    parts = [f"<h3>{escape(elastic.label)}: {escape(elastic.crystal_system)} "
             f"{escape(elastic.spacegroup)}</h3>",
             _table(["C (GPa)"] + [str(j) for j in range(1, 7)], rows)]
    named = elastic.named()
    ref = reference.named() if reference else {}
    parts.append(_table(["modulus", "potential (GPa)", "reference (GPa)"],
                        [[k, v, ref.get(k, float("nan"))] for k, v in named.items()]))
    born = [[b.expression, b.value, "holds" if b.satisfied else "VIOLATED"]
            for b in elastic.born_criteria]
    verdict = "stable" if elastic.born_stable else "UNSTABLE"
    parts.append(f"<p>Born criteria ({escape(elastic.crystal_system)}): <b>{verdict}</b></p>")
    parts.append(_table(["criterion", "value (GPa)", ""], born))
    parts.append(_note(f"Voigt/Reuss/Hill: B = {elastic.bulk_voigt:.1f}/{elastic.bulk_reuss:.1f}/"
                       f"{elastic.bulk_hill:.1f} GPa, G = {elastic.shear_voigt:.1f}/"
                       f"{elastic.shear_reuss:.1f}/{elastic.shear_hill:.1f} GPa"))
    return "".join(parts)


def _errors_section(validation: ValidationReport) -> str:
    errors = validation.errors
    if errors is None:
        return _note("No held-out structures: errors not computed.")
    rows = []
    for label, m in [("all", errors.overall)] + list(errors.per_provenance.items()):
        rows.append([label, m.n_structures, m.energy_rmse_mev_per_atom,
                     m.energy_mae_mev_per_atom, m.force_rmse_ev_per_a, m.force_mae_ev_per_a,
                     m.stress_rmse_gpa if m.stress_rmse_gpa is not None else float("nan")])
    return (f"<p>On the {escape(errors.set_name)}.</p>"
            + _table(["provenance", "structures", "E RMSE (meV/at)", "E MAE (meV/at)",
                      "F RMSE (eV/Å)", "F MAE (eV/Å)", "stress RMSE (GPa)"], rows)
            + _figure(plots.parity(errors), "parity plots"))


def _healing(data: CampaignData) -> str:
    h = data.healing
    text = (f"<p>{h.structures_healed} structures labelled after healing, "
            f"{h.structures_quarantined} quarantined, {h.attempts} healing steps in all.</p>")
    if h.strategies:
        text += _table(["healing step", "times"], [[k, v] for k, v in h.strategies.items()])
    if h.quarantine_reasons:
        text += _table(["quarantine reason", "structures"],
                       [[k, v] for k, v in h.quarantine_reasons.items()])
    return text


def _kmc_section(workdir: Path) -> list[str]:
    rows = collect_kmc(workdir)
    if not rows:
        return []
    return ["<h2>kMC exploration</h2>",
            _note("Adaptive kMC tasks (eOn saddle searches); a halt stops the task at the "
                  "first force call above gamma_upper. Residence check: mean drawn "
                  "residence time over the mean of 1/R, 1 within about 1/sqrt(steps)."),
            _table(["iteration", "task", "outcome", "kMC steps", "simulated time (s)",
                    "barriers (eV)", "max gamma", "residence check"],
                   [[r.iteration, r.task, "HALTED" if r.halted else "passed", r.steps,
                     "–" if r.simulated_time_s is None else f"{r.simulated_time_s:.3g}",
                     _barriers(r.barriers_ev), f"{r.max_gamma:.2f}",
                     "–" if r.residence_ratio is None else f"{r.residence_ratio:.2f}"]
                    for r in rows]),
            _note("Process tables: one row per state searched (equivalent states share "
                  "it); processes as barrier x symmetry copies, prefactor."),
            _table(["iteration", "task", "state", "kMC steps from it", "searches",
                    "confidence", "processes", "total escape rate (1/s)"],
                   [[r.iteration, r.task, k, t.get("visits", "–"), t.get("searches", "–"),
                     f"{t.get('confidence', 0.0):.2f}", _orbits(t.get("orbits", [])),
                     f"{t.get('total_rate', 0.0):.3g}"]
                    for r in rows for k, t in enumerate(r.tables)])]


def _barriers(barriers: list[float]) -> str:
    shown = ", ".join(f"{b:.3f}" for b in barriers[:12])
    return (shown + f" ... ({len(barriers)} steps)") if len(barriers) > 12 else shown or "–"


def _orbits(orbits: list[dict]) -> str:
    return "; ".join(f"{o['barrier']:.3f} eV x{o['multiplicity']} ({o['prefactor']:.2g}/s)"
                     for o in sorted(orbits, key=lambda o: o["barrier"])) or "none found"


def _monitoring(workdir: Path) -> str:
    data = collect_monitoring(workdir)
    if data is None:
        return _note("No Parsl monitoring database (monitoring.db) in this campaign.")
    parts = [_note(f"From {data.source}, read after the run.")]
    if data.overview:
        keys = list(data.overview)
        parts.append(_table(keys, [[data.overview[k] for k in keys]], left=0))
    if data.executors:
        columns = ["executor", "tasks", "succeeded", "failed", "retried", "mean_try_s",
                   "max_try_s", "blocks"]
        parts.append(_table(columns, [[e.get(c, "") for c in columns] for e in data.executors]))
    parts.append(_table(["app", "tasks", "failed tries", "mean (s)", "max (s)"],
                        [[r.app, r.tasks, r.failed_tries,
                          float("nan") if r.mean_s is None else r.mean_s,
                          float("nan") if r.max_s is None else r.max_s] for r in data.apps]))
    return "".join(parts)


def _fits_section(potentials: list[PotentialRecord]) -> list[str]:
    """Every fit, scored on the fixed validation set; the ones not deployed say why."""
    if not potentials:
        return []
    nan = float("nan")
    rows = [[p.iteration, p.mode or "", p.metrics.get("n_structures", nan),
             p.metrics.get("validation_energy_spread_mev_per_atom", nan),
             p.metrics.get("validation_force_rmse_ev_per_a", nan),
             "yes" if p.deployed else "NO", p.choice] for p in potentials]
    return ["<h2>Fits</h2>",
            _note("Each fit scored on the campaign's fixed validation set (never fitted); "
                  "a fit worse than the potential it would replace is kept for the record "
                  "and not deployed."),
            _table(["iteration", "mode", "structures", "val. E spread (meV/atom)",
                    "val. F RMSE (eV/A)", "deployed", "why"], rows)]


def build_report(workdir: Path, config: CampaignConfig, state: WorkflowState,
                 validation: ValidationReport,
                 history: dict[int, ValidationReport] | None = None) -> str:
    """The report's HTML text for the campaign in ``workdir``."""
    workdir = Path(workdir)
    store = DataStore(workdir / "data.db")
    data = collect_datastore(store, state)
    history = history or {}
    potentials = state.potentials or ([state.potential] if state.potential else [])
    val_errors = {it: (r.errors.overall.energy_rmse_mev_per_atom,
                       r.errors.overall.force_rmse_ev_per_a)
                  for it, r in history.items() if r.errors is not None}
    body = [f"<h1>pyacemaker report: {escape(config.name)} ({escape('-'.join(config.elements))})"
            "</h1>",
            _note(f"state updated {state.updated}; validation of iteration "
                  f"{validation.iteration} at {validation.created}; potential "
                  f"{validation.potential}"),
            _verdict(validation),
            "<h2>Campaign</h2>",
            _table(["iterations", "DFT calls", "labelled", "finished", "stop reason"],
                   [[state.iteration, state.dft_calls, sum(data.provenance_counts.values()),
                     str(state.finished), state.stop_reason or ""]]),
            _table(["provenance", "labelled structures"],
                   [[k, v] for k, v in sorted(data.provenance_counts.items())]),
            "<h2>Learning curves</h2>"]
    body.append(_figure(plots.learning_curves(potentials, val_errors), "learning curves")
                if potentials else _note("No potential fitted yet."))
    body += _fits_section(potentials)
    body.append("<h2>DFT calls and exploration halts per iteration</h2>")
    body.append(_figure(plots.dft_calls_and_halts(data.iterations), "DFT calls and halts")
                if data.iterations else _note("No iterations recorded."))
    body.append(_table(["iteration", "labelled", "quarantined", "halts", "dataset size"],
                       [[r.iteration, r.labelled, r.quarantined,
                         "–" if r.halts is None else r.halts, r.dataset_size]
                        for r in data.iterations]))
    body += _kmc_section(workdir)
    body += ["<h2>Validation checks</h2>", _checks(validation),
             "<h2>Errors and parity</h2>", _errors_section(validation)]
    for crystal in validation.crystals:
        body.append(f"<h2>{escape(crystal.label)}</h2>")
        if crystal.phonons is not None:
            body.append("<h3>Phonons</h3>")
            body.append(_figure(plots.phonon_bands_dos(crystal.phonons), "phonon bands"))
        if crystal.phonon_comparison is not None:
            comparison = crystal.phonon_comparison
            body.append(f"<p>Frequencies (THz) at the special q-points, potential vs "
                        f"{escape(comparison.reference)} ({comparison.supercell[0]}^3 "
                        "supercell):</p>")
            body.append(_table(["q", "potential", "reference"], [
                [q, " ".join(f"{v:.2f}" for v in f), " ".join(f"{v:.2f}" for v in r)]
                for q, f, r in zip(comparison.q_labels, comparison.frequencies_thz,
                                   comparison.reference_frequencies_thz, strict=True)], left=3))
        if crystal.eos is not None:
            body.append("<h3>Equation of state</h3>")
            body.append(_figure(plots.eos_curve(crystal.eos), "equation of state"))
        if crystal.elastic is not None:
            body.append(_elastic(crystal.elastic, crystal.reference_elastic))
        body.append(_note("timings (s): " + ", ".join(
            f"{k} {v:.1f}" for k, v in crystal.timings_s.items())))
    body.append("<h2>Extrapolation grade γ</h2>")
    body.append(_figure(plots.gamma_distribution(data.gamma_by_provenance), "gamma")
                if any(data.gamma_by_provenance.values())
                else _note("No structure carries a gamma_max."))
    body += ["<h2>DFT healing log</h2>", _healing(data),
             "<h2>Workflow monitoring (Parsl)</h2>", _monitoring(workdir)]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>pyacemaker report: {escape(config.name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
