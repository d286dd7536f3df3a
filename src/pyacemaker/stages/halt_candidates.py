"""Candidates around a frame where exploration halted: DFT-sized structures near it.

:func:`candidates_around` cuts the high-gamma region out and embeds it in small periodic
boxes (the oracle's embedding), and adds local perturbations (rattles near the high-gamma
atoms, cell strains). Deterministic given the ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from pyacemaker.stages.generate import rattled, strained, too_close
from pyacemaker.stages.oracle.embedding import embed_uncertain_atoms

EMBED_GAMMA_FRACTION = 0.5  # atoms above this x max gamma (and > 1) are cluster centres


def candidate_pool(frames: list[Atoms], max_whole_atoms: int, cutoff: float,
                   rng: np.random.Generator, per_frame: int = 3) -> list[Atoms]:
    """What D-optimality chooses from: each frame itself when it is DFT-sized (at most
    ``max_whole_atoms``; larger frames reach DFT only as embedded cut-outs), plus
    ``per_frame`` candidates around it."""
    pool: list[Atoms] = []
    for frame in frames:
        if len(frame) <= max_whole_atoms:
            pool.append(frame)
        pool.extend(candidates_around(frame, per_frame, rng, cutoff))
    return pool


def candidates_around(frame: Atoms, n: int, rng: np.random.Generator,
                      cutoff: float) -> list[Atoms]:
    """``n`` DFT-sized structures near ``frame`` (a halted / high-gamma MD frame).

    With per-atom ``gamma`` on the frame, the high-gamma atoms are cut out with everything
    within ``cutoff`` and embedded in small periodic boxes (the oracle's
    :func:`~pyacemaker.stages.oracle.embedding.embed_uncertain_atoms`; provenance
    ``embedding``, ``info["core_mask"]`` marks the atoms whose forces are exact). The rest
    of the budget goes to local perturbations (provenance ``perturbation``): rattles of the
    atoms near the uncertain ones, every other one with a small cell strain. A frame too
    small to cut from is perturbed as a whole around its highest-gamma atom; a frame
    without per-atom gamma is perturbed everywhere. All carry the frame's ``source_task``,
    ``gamma_max`` and ``iteration``.
    """
    if n < 1:
        return []
    gamma = frame.arrays.get("gamma")
    if gamma is None:
        return _perturbations([(frame, np.ones(len(frame), dtype=bool))], frame, n, rng)
    threshold = max(1.0, EMBED_GAMMA_FRACTION * float(np.max(gamma)))
    clusters = embed_uncertain_atoms(frame, gamma, threshold, cutoff, max_clusters=n)
    boxes = [c for c in clusters if c.method == "cluster"]
    out: list[Atoms] = []
    for cluster in boxes:
        box = cluster.atoms
        box.info["parent_provenance"] = frame.info.get("provenance", "")
        out.append(box)
    if boxes:
        sources = [(c.atoms, _near(c.atoms, c.core_mask, cutoff / 2)) for c in boxes]
    else:  # the frame is already DFT-sized: perturb it around its uncertain atoms
        sources = [(frame, high_gamma_region(frame, cutoff))]
    return out + _perturbations(sources, frame, n - len(out), rng)


def _near(atoms: Atoms, core: np.ndarray, radius: float) -> np.ndarray:
    """Atoms within ``radius`` of any core atom (the box is cut out: no minimum image)."""
    core_positions = atoms.positions[np.asarray(core, dtype=bool)]
    distances = np.linalg.norm(atoms.positions[:, None, :] - core_positions[None], axis=-1)
    return distances.min(axis=1) <= radius


def _perturbations(sources: list[tuple[Atoms, np.ndarray]], frame: Atoms, n: int,
                   rng: np.random.Generator) -> list[Atoms]:
    out: list[Atoms] = []
    attempts = 0
    while len(out) < n and attempts < 20 * max(n, 1):
        source, mask = sources[attempts % len(sources)]
        attempts += 1
        candidate = rattled(source, rng, amplitude=float(rng.uniform(0.02, 0.08)), mask=mask)
        if len(out) % 2 == 1:
            candidate = strained(candidate, rng, volume=0.03, shear=0.015)
        candidate.arrays.pop("gamma", None)
        if too_close(candidate):
            continue
        core_mask = source.info.get("core_mask")
        _inherit(candidate, frame, "perturbation")
        if core_mask is not None:
            candidate.info["core_mask"] = list(core_mask)
        out.append(candidate)
    return out


def high_gamma_region(frame: Atoms, cutoff: float) -> np.ndarray:
    """Atoms within ``cutoff`` of the highest-gamma atom (all atoms without gamma)."""
    gamma = frame.arrays.get("gamma")
    if gamma is None:
        return np.ones(len(frame), dtype=bool)
    centre = int(np.argmax(gamma))
    distances = frame.get_distances(centre, range(len(frame)), mic=True)
    return distances <= cutoff


def _inherit(candidate: Atoms, frame: Atoms, provenance: str) -> None:
    candidate.calc = None
    candidate.info = {
        "provenance": provenance,
        "source_task": frame.info.get("source_task", ""),
        "gamma_max": frame.info.get("gamma_max", float("nan")),
        "iteration": frame.info.get("iteration", 0),
        "parent_provenance": frame.info.get("provenance", ""),
    }
