"""pacemaker's input.yaml from the campaign's training settings."""

from __future__ import annotations

from itertools import combinations_with_replacement
from typing import Any

from pyacemaker.config import TrainingSettings, WeightingSettings

Bond = tuple[str, str]


def bond_keys(elements: list[str]) -> list[tuple[str, str]]:
    """Every unordered element pair, self-pairs included: Cu-Ni gives CuCu, CuNi, NiNi."""
    return list(combinations_with_replacement(sorted(elements), 2))


def pacemaker_input(elements: list[str], settings: TrainingSettings, dataset: str,
                    max_iterations: int, seed: int = 42,
                    inner_radii: dict[Bond, float] | None = None,
                    test_dataset: str | None = None) -> dict[str, Any]:
    """pacemaker's input.yaml as a dict. Every bond is listed explicitly.

    ``inner_radii`` (zbl_core without ``inner_cutoff``): r_in of the ZBL core per bond
    (:func:`~pyacemaker.stages.train.dataset.inner_core_radii`). Without them pacemaker's
    ``repulsion: auto`` places the core after the fit at the train split's shortest distance.
    """
    cutoff = settings.cutoff
    bond = {"radbase": "SBessel", "radparameters": [5.25], "rcut": cutoff, "dcut": 0.01,
            "NameOfCutoffFunction": "cos"}
    baseline = settings.baseline
    bonds: dict[str, Any] = {}
    for a, b in bond_keys(elements):
        bonds[f"{a} {b}"] = dict(bond)
        r_in = baseline.inner_cutoff or (inner_radii or {}).get((a, b))
        if baseline.kind == "zbl_core" and r_in is not None:
            bonds[f"{a} {b}"].update(zbl_core_block(r_in))
    orders = {"nradmax_by_orders": list(settings.nradmax_by_orders),
              "lmax_by_orders": list(settings.lmax_by_orders)}
    functions: dict[str, Any] = {
        "number_of_functions_per_element": settings.number_of_functions_per_element,
        "UNARY": dict(orders), "BINARY": dict(orders), "ALL": dict(orders),
    }
    fit: dict[str, Any] = {
        "loss": {"kappa": settings.kappa, "L1_coeffs": settings.l1_coefficients,
                 "L2_coeffs": settings.l2_coefficients},
        "optimizer": "BFGS",
        "maxiter": max_iterations,
    }
    if settings.loss_plateau is not None:
        fit["min_relative_train_loss_per_iter"] = settings.loss_plateau
        fit["early_stopping_patience"] = settings.plateau_patience
    if baseline.kind == "zbl_core" and baseline.inner_cutoff is None and not inner_radii:
        fit["repulsion"] = "auto"
    if settings.weighting.kind == "energy_based":
        fit["weighting"] = energy_based_weighting(settings.weighting, seed)
    if settings.ladder_step:
        fit["ladder_step"] = settings.ladder_step
        fit["ladder_type"] = "power_order"
    data: dict[str, Any] = {"filename": dataset}
    if test_dataset is not None:  # a split made by split_test_set
        data["test_filename"] = test_dataset
    elif settings.test_fraction > 0:
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


def zbl_core_block(r_in: float) -> dict[str, Any]:
    """A bond's ZBL inner core: ACE above r_in, ZBL below r_in - 0.1 A."""
    return {"r_in": float(r_in), "delta_in": 0.1, "inner_cutoff_type": "zbl",
            "core-repulsion": [1.0, 1.0]}


def energy_based_weighting(settings: WeightingSettings, seed: int) -> dict[str, Any]:
    """pacemaker's ``fit: weighting:`` block for its EnergyBasedWeightingPolicy."""
    block: dict[str, Any] = {
        "type": "EnergyBasedWeightingPolicy", "DElow": settings.de_low, "DEup": settings.de_up,
        "DE": settings.de, "DF": settings.df, "energy": settings.energy, "seed": seed,
    }
    if settings.wlow is not None:
        block["wlow"] = settings.wlow
    return block
