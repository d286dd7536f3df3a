"""Refit a campaign's training data with variants of its training settings, and validate each.

    .venv/bin/python bench/fit_variants.py --campaign campaigns/si-qe [--iteration 0]
        [--reference bench/data/si_pbe_reference.json] [--out bench/out/fit_variants]
        [--variant NAME:key=value,key=value ...]

Each variant starts from the campaign's own ``training`` settings (its campaign.yaml) and
overrides keys of them (values parsed as YAML: ``cutoff=6.0``,
``lmax_by_orders=[0,3,3,2]``); ``--variant base:`` refits with the settings unchanged,
and ``seed=N`` (pacemaker's seed) shows the scatter between fits of the same data. The data are the campaign's
``iter_NNN/fit/train.pckl.gzip`` of ``--iteration`` (what that fit saw). Every fit runs
pacemaker for real (sequentially: fits on 2 cores are timed against each other), then
``pyacemaker validate`` judges it against ``--reference`` (converged PBE by default; a
campaign's ``validation/dft_reference/<crystal>/reference.json`` for its own DFT values).
Prints one row per variant: B0, Cij, the worst phonon, training errors, fit time.
This is how the tables of docs/training.md ("Basis size, convergence and held-out cells")
were made.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from pyacemaker.config import load_campaign
from pyacemaker.programs import ProgramFailed
from pyacemaker.stages.train.fit import fit_potential
from pyacemaker.stages.train.outputs import FitFailed

HERE = Path(__file__).resolve().parent
PBE_REFERENCE = HERE / "data" / "si_pbe_reference.json"
COLUMNS = ("B0", "C11", "C12", "C44", "phonons")


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    name, _, body = text.partition(":")
    overrides: dict[str, Any] = {}
    for item in filter(None, _split_top_level(body)):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text}: '{item}' is not key=value")
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def _split_top_level(body: str) -> list[str]:
    """Split on commas outside brackets (``lmax_by_orders=[0,3,3,2],cutoff=6``)."""
    parts, depth, current = [], 0, ""
    for char in body:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _nested_update(target: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for dotted, value in overrides.items():
        node = target
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return target


def row_of(report: dict[str, Any]) -> dict[str, str]:
    """Signed relative deviations of the moduli, and the worst phonon, from validation.json."""
    cells: dict[str, str] = {}
    for check in report["checks"]:
        name = check["name"]
        for column in COLUMNS[:-1]:
            if name.endswith(f": {column}") and check.get("value") is not None:
                sign = _sign(check.get("message", ""))
                cells[column] = f"{sign}{100 * check['value']:.1f} %"
        if ": phonons vs" in name and check.get("value") is not None:
            cells["phonons"] = f"{100 * check['value']:.1f} %"
    return cells


def _sign(message: str) -> str:
    """The sign of value - reference from the gate's ``...C44: 77.1 GPa vs 75.9 GPa (...)``."""
    found = re.search(r"([-+\d.eE]+) \S+ vs ([-+\d.eE]+) ", message)
    if not found:
        return ""
    return "-" if float(found.group(1)) < float(found.group(2)) else "+"


def _errors(metrics: dict[str, float]) -> str:
    return (f"{metrics.get('train_energy_rmse_mev_per_atom', float('nan')):.2f} / "
            f"{1000 * metrics.get('train_force_rmse_ev_per_a', float('nan')):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", type=Path, required=True)
    parser.add_argument("--iteration", type=int, default=0)
    parser.add_argument("--reference", type=Path, default=PBE_REFERENCE)
    parser.add_argument("--dataset", type=Path, help="fit these data instead (a pacemaker "
                        "pickle with its .meta.json, e.g. the campaign's plus extra labels)")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "fit_variants")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:k=v,...")
    args = parser.parse_args()
    config_file = args.campaign / "campaign.yaml"
    dataset = args.dataset or (args.campaign / f"iter_{args.iteration:03d}" / "fit"
                               / "train.pckl.gzip")
    for needed in (config_file, dataset, args.reference):
        if not needed.is_file():
            raise SystemExit(f"not found: {needed}")
    raw = yaml.safe_load(config_file.read_text())
    rows = []
    for name, overrides in map(parse_variant, args.variant or ["base:"]):
        seed = int(overrides.pop("seed", raw.get("seed", 42)))  # pacemaker's, not a setting
        variant = _nested_update(copy.deepcopy(raw), {
            f"training.{k}": v for k, v in overrides.items()})
        variant_file = args.out / name / "campaign.yaml"
        variant_file.parent.mkdir(parents=True, exist_ok=True)
        variant_file.write_text(yaml.safe_dump(variant))
        config = load_campaign(variant_file)
        # as the campaign fits once it has a validation set: every training row is fitted
        # (a test split of 3 of the cold start's 33 cells takes its few varied environments)
        training = config.training.model_copy(update={"test_fraction": 0.0})
        print(f"== {name}: {overrides or 'the campaign settings'}", flush=True)
        try:
            record = fit_potential(dataset, config.elements, training,
                                   args.out / name / "fit", seed=seed)
        except (FitFailed, ProgramFailed) as exc:  # e.g. fewer atoms than basis functions
            print(f"   failed: {str(exc).splitlines()[0]}", flush=True)
            rows.append((name, {"B0": "fit failed"}, {}))
            continue
        validated = subprocess.run(
            [sys.executable, "-m", "pyacemaker.cli", "validate", record.yaml, "--config",
             str(variant_file), "--reference", str(args.reference), "--output",
             str(args.out / name / "validation")], capture_output=True, text=True)
        if validated.returncode not in (0, 4):  # 4: NO-GO
            raise SystemExit(validated.stdout + validated.stderr)
        report = json.loads((args.out / name / "validation" / "validation.json").read_text())
        metrics = record.metrics
        rows.append((name, row_of(report), metrics))
        print(f"   {row_of(report)}  train E/F {_errors(metrics)}  "
              f"{metrics.get('fit_time_s', 0):.0f} s", flush=True)
    print(f"\n| fit | {' | '.join(COLUMNS)} | train E / F (meV/atom, meV/A) | fit s |")
    print(f"|---|{'---|' * len(COLUMNS)}---|---|")
    for name, cells, metrics in rows:
        print(f"| {name} | {' | '.join(cells.get(c, '-') for c in COLUMNS)} | "
              f"{_errors(metrics)} | {metrics.get('fit_time_s', 0):.0f} |")


if __name__ == "__main__":
    main()
