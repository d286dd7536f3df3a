"""Harmonic transition-state-theory rates and the kinetic Monte Carlo step (residence time)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOLTZMANN_EV_PER_K = 8.617333262e-5


def htst_rate(barrier_ev: float, prefactor_per_s: float, temperature_k: float) -> float:
    """k = nu * exp(-Ea / kB T), in 1/s."""
    if temperature_k <= 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature_k}")
    return prefactor_per_s * math.exp(-barrier_ev / (BOLTZMANN_EV_PER_K * temperature_k))


def kmc_step(rates: Sequence[float], rng: np.random.Generator) -> tuple[int, float]:
    """Choose a process with probability k_i / R and draw the residence time.

    Returns (index of the chosen process, time increment in s) with
    dt = -ln(u) / R, u uniform in (0, 1], R the total escape rate.
    """
    rates_arr = np.asarray(rates, dtype=float)
    if rates_arr.size == 0:
        raise ValueError("no process to choose from: the process table is empty")
    if np.any(rates_arr < 0) or not np.all(np.isfinite(rates_arr)):
        raise ValueError(f"rates must be finite and >= 0, got {rates_arr}")
    total = float(rates_arr.sum())
    if total <= 0:
        raise ValueError("the total escape rate is zero: no process can fire")
    cumulative = np.cumsum(rates_arr)
    chosen = int(np.searchsorted(cumulative, rng.uniform(0.0, total), side="right"))
    chosen = min(chosen, rates_arr.size - 1)
    u = 1.0 - rng.uniform(0.0, 1.0)  # in (0, 1]
    return chosen, -math.log(u) / total
