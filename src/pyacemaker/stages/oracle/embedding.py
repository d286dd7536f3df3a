"""Periodic embedding: a small DFT box around the uncertain atoms of a large snapshot.

The atoms around selected centers (high-gamma atoms) are cut out of the snapshot and put in
an orthogonal periodic box with vacuum padding. "Core" atoms are those within ``core_radius``
of a center; every atom within ``cutoff`` of a core atom is kept as "buffer", so each core
atom sees exactly its neighbourhood in the snapshot within the ACE cutoff. The box is the
cluster's extent plus ``padding`` (default: the cutoff) along each axis, so no periodic image
of any atom comes within ``padding`` of a core atom: core forces are the ones to trust, buffer
forces are not (``info["core_mask"]``).

When the snapshot itself is smaller than such a box, it is returned whole (its own
periodicity is exact, every atom is core).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.geometry import find_mic
from ase.neighborlist import neighbor_list

INHERITED_INFO = ("iteration", "gamma_max", "source_task")


@dataclass
class EmbeddedCluster:
    atoms: Atoms  # periodic box; info["core_mask"], info["provenance"] == "embedding"
    core_mask: np.ndarray
    source_indices: np.ndarray  # index in the snapshot of each atom of the box
    centers: list[int]
    method: str  # "cluster" (cut and padded) or "host" (the snapshot itself was small enough)


def _perpendicular_widths(atoms: Atoms) -> np.ndarray:
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    return np.array([volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
                     for k in range(3)])


def embed_cluster(snapshot: Atoms, centers: list[int], cutoff: float,
                  core_radius: float = 0.0, padding: float | None = None) -> EmbeddedCluster:
    """Cut the atoms around ``centers`` out of ``snapshot`` into a padded periodic box."""
    if not centers:
        raise ValueError("embed_cluster needs at least one center atom")
    if any(not 0 <= c < len(snapshot) for c in centers):
        raise ValueError(f"center indices {centers} out of range for {len(snapshot)} atoms")
    padding = cutoff if padding is None else padding
    if padding < cutoff:
        raise ValueError(f"padding {padding} A is below the cutoff {cutoff} A: periodic images "
                         "would enter the core atoms' cutoff spheres")
    reach = core_radius + cutoff
    if snapshot.pbc.all() and np.all(_perpendicular_widths(snapshot) <= 2 * reach + padding):
        return _whole_host(snapshot, centers)

    positions, sources, core = _collect(snapshot, centers, core_radius, reach)
    low, high = positions.min(axis=0), positions.max(axis=0)
    lengths = np.maximum(high - low + padding, cutoff + padding)
    shifted = positions - (low + high) / 2 + lengths / 2
    box = Atoms(snapshot.numbers[sources], positions=shifted, cell=np.diag(lengths), pbc=True)
    _inherit_info(box, snapshot, core)
    return EmbeddedCluster(box, core, sources, list(centers), "cluster")


def _collect(snapshot: Atoms, centers: list[int], core_radius: float,
             reach: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (one periodic image each), snapshot indices and core flags of the atoms
    within ``reach`` of any center, centers unwrapped next to the first one."""
    cell = snapshot.cell.array
    pbc = snapshot.pbc
    origin = snapshot.positions[centers[0]]
    i_list, j_list, s_list = neighbor_list("ijS", snapshot, reach)
    picked: dict[tuple[int, int, int, int], tuple[np.ndarray, bool]] = {}
    for center in centers:
        to_center = snapshot.positions[center] - origin
        if pbc.any():
            to_center = find_mic(to_center[None, :], cell, pbc)[0][0]
        center_pos = origin + to_center
        lattice_shift = center_pos - snapshot.positions[center]
        shift_int = (np.rint(np.linalg.solve(cell.T, lattice_shift)).astype(int)
                     if pbc.any() else np.zeros(3, dtype=int))
        mine = i_list == center
        candidates = [(center, np.zeros(3, dtype=int))] + [
            (int(j), s.astype(int)) for j, s in zip(j_list[mine], s_list[mine])]
        for j, s in candidates:
            image = s + shift_int
            position = snapshot.positions[j] + image @ cell
            key = (j, int(image[0]), int(image[1]), int(image[2]))
            is_core = bool(np.linalg.norm(position - center_pos) <= core_radius + 1e-9)
            previous = picked.get(key)
            picked[key] = (position, is_core or (previous is not None and previous[1]))
    keys = sorted(picked)
    positions = np.array([picked[k][0] for k in keys])
    sources = np.array([k[0] for k in keys])
    core = np.array([picked[k][1] for k in keys])
    return positions, sources, core


def _whole_host(snapshot: Atoms, centers: list[int]) -> EmbeddedCluster:
    box = snapshot.copy()
    box.calc = None
    core = np.ones(len(box), dtype=bool)
    _inherit_info(box, snapshot, core)
    return EmbeddedCluster(box, core, np.arange(len(box)), list(centers), "host")


def _inherit_info(box: Atoms, snapshot: Atoms, core: np.ndarray) -> None:
    box.info = {k: snapshot.info[k] for k in INHERITED_INFO if k in snapshot.info}
    box.info["provenance"] = "embedding"
    box.info["core_mask"] = [bool(c) for c in core]


def group_centers(snapshot: Atoms, centers: list[int], max_separation: float) -> list[list[int]]:
    """Centers closer than ``max_separation`` (minimum image) share one cluster."""
    groups: list[list[int]] = []
    for center in centers:
        joined = None
        for group in groups:
            distances = snapshot.get_distances(center, group, mic=snapshot.pbc.any())
            if np.min(distances) <= max_separation:
                joined = group
                break
        if joined is None:
            groups.append([center])
        else:
            joined.append(center)
    return groups


def embed_uncertain_atoms(snapshot: Atoms, gamma: np.ndarray, threshold: float, cutoff: float,
                          core_radius: float = 0.0, padding: float | None = None,
                          max_clusters: int = 4) -> list[EmbeddedCluster]:
    """One embedded box per group of atoms whose per-atom gamma exceeds ``threshold``,
    the groups with the highest gamma first."""
    gamma = np.asarray(gamma, dtype=float)
    centers = [int(i) for i in np.argsort(-gamma) if gamma[i] > threshold]
    groups = group_centers(snapshot, centers, max_separation=2 * cutoff)[:max_clusters]
    return [embed_cluster(snapshot, group, cutoff, core_radius, padding) for group in groups]
