"""pacemaker's input.yaml from the campaign's training settings."""

from __future__ import annotations

from itertools import combinations_with_replacement
from typing import Any

from pyacemaker.config import TrainingSettings


def bond_keys(elements: list[str]) -> list[tuple[str, str]]:
    """Every unordered element pair, self-pairs included: Cu-Ni gives CuCu, CuNi, NiNi."""
    return list(combinations_with_replacement(sorted(elements), 2))


def pacemaker_input(elements: list[str], settings: TrainingSettings, dataset: str,
                    max_iterations: int, seed: int = 42) -> dict[str, Any]:
    """pacemaker's input.yaml as a dict. Every bond is listed explicitly."""
    cutoff = settings.cutoff
    bond = {"radbase": "SBessel", "radparameters": [5.25], "rcut": cutoff, "dcut": 0.01,
            "NameOfCutoffFunction": "cos"}
    bonds: dict[str, Any] = {}
    for a, b in bond_keys(elements):
        bonds[f"{a} {b}"] = dict(bond)
    baseline = settings.baseline
    if baseline.kind == "zbl_core" and baseline.inner_cutoff is not None:
        for spec in bonds.values():
            spec.update(r_in=baseline.inner_cutoff, delta_in=0.1, inner_cutoff_type="zbl",
                        **{"core-repulsion": [1.0, 1.0]})
    functions: dict[str, Any] = {
        "number_of_functions_per_element": settings.number_of_functions_per_element,
        "UNARY": {"nradmax_by_orders": [15, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]},
        "BINARY": {"nradmax_by_orders": [15, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]},
        "ALL": {"nradmax_by_orders": [15, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]},
    }
    fit: dict[str, Any] = {
        "loss": {"kappa": settings.kappa, "L1_coeffs": 1e-8, "L2_coeffs": 1e-8},
        "optimizer": "BFGS",
        "maxiter": max_iterations,
    }
    if baseline.kind == "zbl_core" and baseline.inner_cutoff is None:
        fit["repulsion"] = "auto"
    if settings.ladder_step:
        fit["ladder_step"] = settings.ladder_step
        fit["ladder_type"] = "power_order"
    data: dict[str, Any] = {"filename": dataset}
    if settings.test_fraction > 0:
        data["test_size"] = settings.test_fraction
    return {
        "cutoff": cutoff,
        "seed": seed,
        "metadata": {"origin": "pyacemaker"},
        "potential": {
            "deltaSplineBins": 0.001,
            "elements": sorted(elements),
            "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                                   "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
            "bonds": bonds,
            "functions": functions,
        },
        "data": data,
        "fit": fit,
        "backend": {"evaluator": "tensorpot", "batch_size": 100, "display_step": 50},
    }
