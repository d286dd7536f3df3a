"""Seed structure files, checked when the campaign YAML is loaded.

A seed that ASE cannot read, or with two atoms on top of each other, used to be found only
after Parsl had started and the folder had been written (a quarantined cold start with its
reason in the data lake only, or an empty reason). :func:`check_seed_files` runs inside
``load_campaign``, before anything is written or started, and raises ``ConfigError`` naming
the field, the file and what is wrong.

Too close: atoms ``i`` and ``j`` closer than ``max(oracle.qe.min_interatomic_distance,
0.5 * (r_i + r_j))`` with ``r`` ASE's covalent radii, over minimum-image distances
(``ase.neighborlist``: periodic images included, an atom and its own image too). The first
term is what the oracle refuses before any calculation (EMT and QE both), so a seed that
passes here is never quarantined for its geometry; the second catches pairs at half a bond
length or less (Cu-Cu 1.32 A, bond 2.55 A; H-H 0.31 A, bond 0.74 A): no real structure has
them, even compressed, and a label of such a pair would teach the fit a fake repulsion.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from ase.io import read
from ase.neighborlist import neighbor_list

from pyacemaker.config import ConfigError

if TYPE_CHECKING:
    from pyacemaker.config import CampaignConfig

COVALENT_FRACTION = 0.5  # of the sum of the two covalent radii; see the module docstring


def check_seed_files(config_path: Path, config: CampaignConfig) -> None:
    """Raise ConfigError for the first seed file that cannot be a cold-start structure."""
    min_distance = config.oracle.qe.min_interatomic_distance
    for index, path in enumerate(config.seed_structures):
        where = f"{config_path}: seed_structures.{index}: {path}"
        for k, atoms in enumerate(read_seed(where, path)):
            frame = f"{where} (structure {k})"
            foreign = sorted(set(atoms.get_chemical_symbols()) - set(config.elements))
            if foreign:
                raise ConfigError(f"{frame}: element(s) {foreign} are not in elements "
                                  f"{list(config.elements)}")
            problem = geometry_problem(atoms, min_distance)
            if problem:
                raise ConfigError(f"{frame}: {problem}")


def read_seed(where: str, path: Path) -> list[Atoms]:
    """Every frame of a seed file as ``ase.io.read`` sees it (as generate.py reads it)."""
    try:
        frames = read(path, index=":")
    except Exception as exc:  # noqa: BLE001 - ASE raises many types for a bad file
        detail = str(exc) or "no message"
        raise ConfigError(f"{where}: ASE cannot read it ({type(exc).__name__}: {detail}); "
                          "give a structure file ASE reads (cif, POSCAR, extxyz ...), with "
                          "the usual extension") from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise ConfigError(f"{where}: the file holds no structure")
    return frames


def geometry_problem(atoms: Atoms, min_distance: float) -> str | None:
    """Why ``atoms`` cannot be labelled, or None: no atoms, bad positions or cell, or the
    closest pair under its limit (indices, symbols, distance)."""
    if len(atoms) == 0:
        return "the structure has no atoms"
    if not np.all(np.isfinite(atoms.positions)):
        return "non-finite atomic positions"
    if atoms.pbc.all() and abs(atoms.cell.volume) < 1e-6:
        return "periodic, but its cell has zero volume (no lattice in the file?)"
    radii = covalent_radii[atoms.numbers]
    cutoff = max(min_distance, COVALENT_FRACTION * 2 * float(radii.max()))
    i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
    if len(d) == 0:
        return None
    limit = np.maximum(min_distance, COVALENT_FRACTION * (radii[i] + radii[j]))
    bad = np.flatnonzero(d < limit)
    if len(bad) == 0:
        return None
    k = bad[np.argmin(d[bad] / limit[bad])]
    a, b = sorted((int(i[k]), int(j[k])))
    pair = (f"atom {a} ({atoms[a].symbol}) and its own periodic image (the cell is too small)"
            if a == b else f"atoms {a} ({atoms[a].symbol}) and {b} ({atoms[b].symbol})")
    return (f"{pair} are {d[k]:.3f} A apart (minimum image), closer than {limit[k]:.2f} A "
            f"= max(oracle.qe.min_interatomic_distance {min_distance} A, "
            f"{COVALENT_FRACTION} x the sum of their covalent radii): fix the file "
            "(wrong units, a duplicated atom?)")
