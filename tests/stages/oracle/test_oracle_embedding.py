"""Periodic embedding: geometry guarantees of the cut-out box."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.neighborlist import neighbor_list

from pyacemaker.stages.oracle.embedding import embed_cluster, embed_uncertain_atoms

CUTOFF = 4.0


@pytest.fixture(scope="module")
def snapshot():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((5, 5, 5))  # 500 atoms, 18 A box
    atoms.rattle(0.08, seed=7)
    atoms.info.update(iteration=3, source_task="md_T900", gamma_max=7.5)
    return atoms


def _neighbour_vectors(atoms, cutoff):
    """index -> sorted neighbour vectors within cutoff (periodic images included)."""
    i, d_vec = neighbor_list("iD", atoms, cutoff)
    return lambda index: np.array(sorted(map(tuple, np.round(d_vec[i == index], 6))))


@pytest.mark.parametrize("centers,core_radius", [([0], 0.0), ([0, 1, 5], 2.6), ([77], 3.0)])
def test_core_atoms_keep_their_full_cutoff_sphere(snapshot, centers, core_radius) -> None:
    cluster = embed_cluster(snapshot, centers, CUTOFF, core_radius=core_radius)
    box = cluster.atoms
    assert cluster.method == "cluster"
    assert box.pbc.all() and box.info["provenance"] == "embedding"
    assert box.info["core_mask"] == cluster.core_mask.tolist()
    assert box.info["iteration"] == 3 and box.info["source_task"] == "md_T900"
    core = np.flatnonzero(cluster.core_mask)
    assert set(centers) <= set(cluster.source_indices[core].tolist())
    assert len(box) < len(snapshot)
    host_vectors = _neighbour_vectors(snapshot, CUTOFF)
    box_vectors = _neighbour_vectors(box, CUTOFF)
    for k in core:
        in_host = host_vectors(cluster.source_indices[k])
        in_box = box_vectors(k)
        np.testing.assert_allclose(in_box, in_host, atol=1e-6)  # same neighbours, same vectors


def test_box_size_and_no_close_periodic_images(snapshot) -> None:
    padding = 5.0
    cluster = embed_cluster(snapshot, [10, 11], CUTOFF, core_radius=1.0, padding=padding)
    box = cluster.atoms
    lengths = box.cell.lengths()
    extent = np.ptp(box.positions, axis=0)
    assert np.all(lengths >= CUTOFF + padding - 1e-9)
    assert np.all(lengths >= extent + padding - 1e-9)
    assert np.allclose(box.cell.angles(), 90.0)
    # distances to every periodic image (not the atom itself in the home cell)
    core = np.flatnonzero(cluster.core_mask)
    for shift in np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1])).T.reshape(-1, 3):
        if not shift.any():
            continue
        images = box.positions + shift @ box.cell.array
        gaps = np.linalg.norm(box.positions[core, None, :] - images[None, :, :], axis=2)
        assert gaps.min() >= padding - 1e-9
    # the cut keeps the host's own interatomic distances (no atom doubled or squeezed)
    assert box.get_all_distances(mic=True)[np.triu_indices(len(box), 1)].min() > 2.0


def test_small_host_is_reused_whole(snapshot) -> None:
    small = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    cluster = embed_cluster(small, [0], CUTOFF)
    assert cluster.method == "host"
    assert len(cluster.atoms) == len(small) and all(cluster.atoms.info["core_mask"])
    np.testing.assert_allclose(cluster.atoms.cell.array, small.cell.array)


def test_uncertain_atoms_far_apart_give_separate_boxes(snapshot) -> None:
    gamma = np.zeros(len(snapshot))
    far = int(np.argmax(np.linalg.norm(snapshot.positions - snapshot.positions[0], axis=1)
                        * (np.linalg.norm(snapshot.positions - snapshot.positions[0], axis=1)
                           < 9.0)))
    gamma[[0, far]] = [9.0, 6.0]
    clusters = embed_uncertain_atoms(snapshot, gamma, threshold=5.0, cutoff=CUTOFF)
    assert [c.centers for c in clusters] == [[0], [far]]


def test_bad_requests_are_refused(snapshot) -> None:
    with pytest.raises(ValueError, match="padding"):
        embed_cluster(snapshot, [0], CUTOFF, padding=2.0)
    with pytest.raises(ValueError, match="out of range"):
        embed_cluster(snapshot, [10_000], CUTOFF)
