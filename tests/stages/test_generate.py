"""Structure generation: cold-start cells and candidates around a halted frame."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write
from ase.neighborlist import neighbor_list

from pyacemaker.config import CampaignConfig
from pyacemaker.datastore import structure_fingerprint
from pyacemaker.stages.coldstart import VARIED_RATTLES, hold_out_tier, is_ground_state_property
from pyacemaker.stages.halt_candidates import candidates_around
from pyacemaker.stages.generate import (
    GenerationError,
    atomic_radius,
    initial_structures,
    kmc_start_structures,
    too_close,
)


def min_distance(atoms: Atoms) -> float:
    _, _, d = neighbor_list("ijd", atoms, 6.0)
    return float(d.min())


def test_from_one_element_alone() -> None:
    structures = initial_structures(CampaignConfig(elements=["Cu"]), 60, np.random.default_rng(0))
    assert len(structures) == 60
    assert all(set(a.get_chemical_symbols()) == {"Cu"} for a in structures)
    assert all(a.info["provenance"] == "coldstart" and a.info["iteration"] == 0
               for a in structures)
    assert all(len(a) <= 16 and a.pbc.all() for a in structures)
    assert all(min_distance(a) > 0.7 * 2 * atomic_radius("Cu") for a in structures)
    kinds = [a.info["generator"].split("+", 1)[1] for a in structures]
    # first what the gate checks on the ground state, in order
    # (one atom in fcc Cu's primitive cell: no optical displacement)
    assert kinds[:26] == (["ground"] + [f"eos{f:.2f}" for f in (0.92, 0.96, 1.04, 1.08)]
                          + [f"elastic{c}{m:+.2f}" for c in (1, 4)
                             for m in (-0.02, -0.01, 0.01, 0.02)]
                          + ["rattle0.03", "rattle0.10", "vacancy", "hot", "surface100",
                             "surface111"]
                          + [f"elastic{c}{m:+.2f}" for c in (1, 4) for m in (-0.03, 0.03)]
                          + [f"tetragonal+0.0{m}" for m in (1, 2, 3)]), kinds
    assert all(a.info["generator"].startswith("Cu-reference") for a in structures[:26])
    assert [is_ground_state_property(a.info["generator"]) for a in structures[:26]] == (
        [True] * 13 + [False] * 6 + [True] * 7)
    # then X and L displacements (no optical mode at Gamma), transverse ones, the wide EOS
    assert kinds[26:41] == ["phononX", "phononL-along", "phononL-across", "phononL-t1+",
                            "phononL-t1-", "phononL-t2+", "phononL-t2-", "phononX-y",
                            "phononX-x-"] + [
        f"eos{f:.2f}" for f in (0.80, 0.86, 1.16, 1.25, 1.33, 1.40)], kinds
    # then eight rattled conventional cells at volumes near V0 (varied environments)
    assert [k[:6] for k in kinds[41:49]] == ["varied"] * 8, kinds
    assert all(len(a) == 8 for a in structures[41:49])  # fcc Cu's conventional cell x 2
    assert [hold_out_tier(a.info["generator"]) for a in structures[41:49]] == [0] * 8
    # then five rattled crystals made for the validation set (always held out)
    assert kinds[49:54] == [f"heldout{k}" for k in range(5)], kinds
    assert [hold_out_tier(a.info["generator"]) for a in structures[49:54]] == [-1] * 5
    assert [hold_out_tier(a.info["generator"]) for a in structures[26:35]] == [1] * 9
    assert [is_ground_state_property(a.info["generator"]) for a in structures[26:]] == (
        [False] * 9 + [True] * 6 + [False] * 19)
    ground = structures[0]
    eos = [a.get_volume() / len(a) / (ground.get_volume() / len(ground))
           for a in structures[1:5]]
    assert np.allclose(eos, (0.92, 0.96, 1.04, 1.08))
    # no duplicate prototype: the reference crystal is fcc, so there is no "Cu-fcc" base
    generators = {a.info["generator"].split("+")[0] for a in structures}
    assert "Cu-fcc" not in generators and "Cu-bcc" in generators
    assert {"strain", "vacancy"} <= set(Counter(kinds)), kinds
    volumes = [a.get_volume() / len(a) for a in structures if "surface" not in a.info["generator"]]
    assert 9.0 < np.median(volumes) < 14.0  # around fcc Cu's 11.8 A^3/atom
    assert len({structure_fingerprint(a) for a in structures}) == 60  # all distinct


def ground_volume(structures: list[Atoms]) -> float:
    return structures[0].get_volume()


def test_bulk_only_cold_start_has_no_slab() -> None:
    config = CampaignConfig(elements=["Si"], active_learning={"cold_start_surfaces": False})
    structures = initial_structures(config, 53, np.random.default_rng(0))
    kinds = [a.info["generator"].split("+", 1)[1] for a in structures]
    assert len(structures) == 53 and not any("surface" in k for k in kinds), kinds
    assert kinds[40:48] == [f"varied{r:.2f}v{v:.2f}" for r, v in VARIED_RATTLES], kinds
    assert [len(a) for a in structures[40:48]] == [8] * 8
    assert np.allclose([a.get_volume() / 4 / ground_volume(structures) for a in
                        structures[40:48]], [v for _, v in VARIED_RATTLES])
    assert kinds[48:53] == [f"heldout{k}" for k in range(5)], kinds
    assert kinds[13:17] == ["rattle0.03", "rattle0.10", "vacancy", "hot"]
    # one atom moved 0.03 A in the cells commensurate with Gamma, X and L
    assert kinds[24:28] == ["phononG", "phononX", "phononL-along", "phononL-across"], kinds
    assert [len(a) for a in structures[24:28]] == [2, 8, 4, 4]
    ground, optical = structures[0], structures[24]
    moved = np.linalg.norm(optical.positions - ground.positions, axis=1)
    assert np.allclose(sorted(moved), [0.0, 0.03])
    assert not any(is_ground_state_property(a.info["generator"]) for a in structures[24:34])
    # then transverse to q: in the L cell both ways along two directions normal to b1
    doubled = ground.repeat((2, 1, 1))
    b1 = np.linalg.inv(np.array(ground.cell)).T[0]
    shifts = [a.positions[0] - doubled.positions[0] for a in structures[28:32]]
    assert np.allclose([np.dot(s, b1) for s in shifts], 0.0)
    assert np.allclose([np.linalg.norm(s) for s in shifts], 0.03)
    assert np.allclose(shifts[0], -shifts[1]) and np.allclose(shifts[2], -shifts[3])
    # then the EOS out to the ends of the gate's scan, weighted like the rest of it
    wide = (0.80, 0.86, 1.16, 1.25, 1.33, 1.40)
    assert kinds[34:40] == [f"eos{f:.2f}" for f in wide], kinds
    assert all(is_ground_state_property(a.info["generator"]) for a in structures[34:40])
    assert np.allclose([a.get_volume() / ground.get_volume() for a in structures[34:40]], wide)
    tetragonal = structures[21:24]
    assert [k[:10] for k in kinds[21:24]] == ["tetragonal"] * 3
    # e_xx = -e_yy: volume kept to first order (1 - m^2)
    assert np.allclose([a.get_volume() / ground.get_volume() for a in tetragonal],
                       [1 - m * m for m in (0.01, 0.02, 0.03)])
    with_slabs = initial_structures(CampaignConfig(elements=["Si"]), 40,
                                    np.random.default_rng(0))
    assert sum("surface" in a.info["generator"] for a in with_slabs) >= 2


def test_binary_gets_prototypes_alloys_and_both_elements() -> None:
    # hcp Ti's property cells alone are ~60 (four strain components): then the prototypes
    structures = initial_structures(CampaignConfig(elements=["Ti", "O"]), 75,
                                    np.random.default_rng(1))
    generators = {a.info["generator"].split("+")[0] for a in structures}
    assert {"TiO-rocksalt", "TiO-cesiumchloride", "TiO-zincblende", "O2-dimer",
            "Ti-reference"} <= generators
    assert any(set(a.get_chemical_symbols()) == {"Ti", "O"} for a in structures)
    assert not any(too_close(a) for a in structures)


def test_generation_is_deterministic_given_the_generator() -> None:
    config = CampaignConfig(elements=["Si"])
    a = initial_structures(config, 24, np.random.default_rng(5))
    b = initial_structures(config, 24, np.random.default_rng(5))
    c = initial_structures(config, 24, np.random.default_rng(6))  # other rattles
    assert all(np.allclose(x.positions, y.positions) for x, y in zip(a, b))
    assert not all(np.allclose(x.positions, y.positions) for x, y in zip(a, c))


def test_from_seed_files(tmp_path: Path) -> None:
    seed = bulk("Cu", "fcc", a=3.61, cubic=True)
    write(tmp_path / "POSCAR", seed, format="vasp")
    config = CampaignConfig(elements=["Cu"], seed_structures=[tmp_path / "POSCAR"])
    structures = initial_structures(config, 6, np.random.default_rng(0))
    assert len(structures) == 6
    assert np.allclose(structures[0].cell.array, seed.cell.array)  # the seed itself first
    assert all(a.info["generator"].startswith("seed:POSCAR") for a in structures)
    assert not np.allclose(structures[1].positions, seed.positions)


def test_bad_seed_files_are_named(tmp_path: Path) -> None:
    missing = CampaignConfig(elements=["Cu"], seed_structures=[tmp_path / "nope.cif"])
    with pytest.raises(GenerationError, match="nope.cif"):
        initial_structures(missing, 3, np.random.default_rng(0))
    corrupt = tmp_path / "broken.cif"
    corrupt.write_text("data_x\n_cell_length_a ???\nloop_\n")
    with pytest.raises(GenerationError, match="(cannot read|no structure in) .*broken.cif"):
        initial_structures(CampaignConfig(elements=["Cu"], seed_structures=[corrupt]), 3,
                           np.random.default_rng(0))
    garbage = tmp_path / "POSCAR"
    garbage.write_text("not a structure\n1.0\nabc\n")
    with pytest.raises(GenerationError, match="cannot read .*POSCAR"):
        initial_structures(CampaignConfig(elements=["Cu"], seed_structures=[garbage]), 3,
                           np.random.default_rng(0))
    write(tmp_path / "ni.xyz", bulk("Ni", "fcc", a=3.5, cubic=True), format="extxyz")
    wrong = CampaignConfig(elements=["Cu"], seed_structures=[tmp_path / "ni.xyz"])
    with pytest.raises(GenerationError, match=r"\['Ni'\]"):
        initial_structures(wrong, 3, np.random.default_rng(0))


def halted_frame() -> Atoms:
    frame = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))
    frame.rattle(0.05, seed=3)
    gamma = np.ones(len(frame))
    gamma[13] = 8.0
    frame.set_array("gamma", gamma)
    frame.info.update(provenance="md_halt", source_task="it002_004_T1200_nvt_w0",
                      gamma_max=8.0, iteration=2)
    return frame


def test_candidates_around_perturb_the_high_gamma_region() -> None:
    frame = halted_frame()
    cutoff = 4.0
    candidates = candidates_around(frame, 6, np.random.default_rng(0), cutoff)
    assert len(candidates) == 6
    region = frame.get_distances(13, range(len(frame)), mic=True) <= cutoff
    assert 5 < region.sum() < len(frame)
    for k, candidate in enumerate(candidates):
        assert candidate.info["provenance"] == "perturbation"
        assert candidate.info["source_task"] == "it002_004_T1200_nvt_w0"
        assert candidate.info["gamma_max"] == 8.0
        assert "gamma" not in candidate.arrays
        assert not too_close(candidate)
        if k % 2 == 0:  # rattles only: atoms outside the region stay put
            moved = np.linalg.norm(candidate.positions - frame.positions, axis=1)
            assert np.all(moved[~region] == 0) and np.all(moved[region] > 0)
            assert np.allclose(candidate.cell.array, frame.cell.array)
        else:  # rattles plus a small cell strain
            assert not np.allclose(candidate.cell.array, frame.cell.array)
            ratio = candidate.get_volume() / frame.get_volume()
            assert 0.95 < ratio < 1.05


def test_candidates_without_per_atom_gamma_perturb_everything() -> None:
    frame = halted_frame()
    del frame.arrays["gamma"]
    candidate = candidates_around(frame, 1, np.random.default_rng(2), 4.0)[0]
    moved = np.linalg.norm(candidate.positions - frame.positions, axis=1)
    assert np.all(moved > 0)


def test_candidates_around_a_large_frame_are_embedded_clusters() -> None:
    frame = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((6, 6, 6))  # 864 atoms, 21.6 A
    frame.rattle(0.03, seed=4)
    gamma = np.full(len(frame), 0.8)
    gamma[100], gamma[700] = 9.0, 6.0  # two distant uncertain atoms
    frame.set_array("gamma", gamma)
    frame.info.update(provenance="md_halt", source_task="big", gamma_max=9.0, iteration=3)
    cutoff = 4.0
    candidates = candidates_around(frame, 4, np.random.default_rng(0), cutoff)
    assert len(candidates) == 4
    boxes = [c for c in candidates if c.info["provenance"] == "embedding"]
    perturbed = [c for c in candidates if c.info["provenance"] == "perturbation"]
    assert len(boxes) == 2 and len(perturbed) == 2
    for box in boxes + perturbed:
        assert 10 < len(box) < 200 < len(frame)  # DFT-sized, not the whole frame
        assert box.info["source_task"] == "big" and box.info["iteration"] == 3
        assert sum(box.info["core_mask"]) >= 1 and len(box.info["core_mask"]) == len(box)
        assert not too_close(box)
    assert abs(min_distance(boxes[0]) - min_distance(frame)) < 0.3  # neighbourhood kept


def test_kmc_start_cells_have_one_vacancy_and_are_deterministic() -> None:
    config = CampaignConfig(elements=["Cu"])
    cell = kmc_start_structures(config)[0]
    assert len(cell) == 31 and cell.info["provenance"] == "kmc_start"
    assert np.allclose(cell.cell.lengths(), 2 * bulk("Cu", cubic=True).cell.lengths())
    assert structure_fingerprint(cell) == structure_fingerprint(kmc_start_structures(config)[0])
    alloy = kmc_start_structures(CampaignConfig(elements=["Cu", "Ni"]))[0]
    assert set(alloy.get_chemical_symbols()) == {"Cu", "Ni"}
    assert alloy.info["generator"] == "random-fcc-alloy+vacancy"
    none = CampaignConfig(elements=["Cu"], exploration={"kmc": {"defect": "none",
                                                                "start_atoms": 64}})
    assert len(kmc_start_structures(none)[0]) == 72  # 3x3x2: the first repeat with >= 64
