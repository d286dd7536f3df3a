"""The fixed validation set: assigned once per labelled row, never fitted, grown per iteration."""

from __future__ import annotations

from pathlib import Path

from ace_fixtures import cu_training_structures

from pyacemaker.datastore import DataStore, structure_fingerprint
from pyacemaker.stages.train import export_training_set, read_training_structures
from pyacemaker.stages.validation_set import (
    VALIDATION,
    assign_splits,
    training_structures,
    validation_structures,
)


def store_with(tmp_path: Path, iterations: dict[int, int]) -> DataStore:
    store = DataStore(tmp_path / "data.db")
    structures = iter(cu_training_structures())
    for iteration, n in iterations.items():
        for _ in range(n):
            atoms = next(structures)
            atoms.info["iteration"] = iteration
            store.add(atoms)
    return store


def test_a_fraction_of_each_iteration_is_held_out_and_never_moves(tmp_path: Path) -> None:
    store = store_with(tmp_path, {0: 20, 1: 6})
    chosen = assign_splits(store, 0, 0.15, seed=42)
    assert len(chosen) == 3  # floor(0.15 * 20 + 0.5)
    assert assign_splits(store, 0, 0.15, seed=42) == []  # assigned once
    assert len(assign_splits(store, 1, 0.15, seed=42)) == 1
    assert len(validation_structures(store)) == 4
    assert len(training_structures(store)) == 22
    held = {row.id for row in store.rows(split=VALIDATION)}
    assert set(chosen) <= held
    # more labels in iteration 1 later (a resumed labelling): the share is topped up only
    for atoms in cu_training_structures(seed=3)[20:34]:
        atoms.info["iteration"] = 1
        store.add(atoms)
    assign_splits(store, 1, 0.15, seed=42)
    assert held <= {row.id for row in store.rows(split=VALIDATION)}
    assert store.count(split=VALIDATION, iteration=1) == round(0.15 * store.count(iteration=1))


def test_the_choice_is_reproducible_and_zero_disables_it(tmp_path: Path) -> None:
    one = assign_splits(store_with(tmp_path / "a", {0: 20}), 0, 0.15, seed=7)
    two = assign_splits(store_with(tmp_path / "b", {0: 20}), 0, 0.15, seed=7)
    assert one == two
    off = store_with(tmp_path / "c", {0: 20})
    assert assign_splits(off, 0, 0.0, seed=7) == [] and not validation_structures(off)


def test_the_training_set_export_leaves_the_validation_set_out(tmp_path: Path) -> None:
    store = store_with(tmp_path, {0: 20})
    assign_splits(store, 0, 0.25, seed=1)
    dataset = export_training_set(store, tmp_path / "d.pckl.gzip", {"Cu": 0.0})
    exported = read_training_structures(dataset)
    assert len(exported) == 15
    held = {structure_fingerprint(a) for a in validation_structures(store)}
    assert len(held) == 5 and not held & {structure_fingerprint(a) for a in exported}


def test_a_halted_frame_is_never_held_out(tmp_path: Path) -> None:
    store = DataStore(tmp_path / "data.db")
    for k, atoms in enumerate(cu_training_structures()[:10]):
        atoms.info.update(iteration=1, provenance="kmc_halt" if k < 9 else "halt_cluster")
        store.add(atoms)
    chosen = assign_splits(store, 1, 0.5, seed=3)
    assert len(chosen) == 1  # only the cut-out may go; the nine halts train
    assert store.get_atoms(chosen[0]).info["provenance"] == "halt_cluster"



def test_ground_state_property_cells_are_weighted_up(tmp_path: Path) -> None:
    import pandas as pd

    store = DataStore(tmp_path / "data.db")
    for k, atoms in enumerate(cu_training_structures()[:12]):
        kind = f"elastic1+0.0{k}" if k < 8 else f"rattle0.0{k}"
        atoms.info.update(iteration=0, generator=f"Cu-reference+{kind}")
        store.add(atoms)
    assert store.get_atoms(1).info["generator"] == "Cu-reference+elastic1+0.00"  # kept
    dataset = export_training_set(store, tmp_path / "d.pckl.gzip", {"Cu": 0.0},
                                  ground_state_factor=10.0)
    frame = pd.read_pickle(dataset, compression="gzip")
    assert sorted(frame["w_factor"]) == [1.0] * 4 + [10.0] * 8  # pacemaker's weight factor

def test_property_cells_are_never_held_out(tmp_path: Path) -> None:
    store = DataStore(tmp_path / "data.db")
    kinds = [f"elastic1+0.0{k}" for k in range(12)] + ["phononX", "phononL-along"] + [
        f"rattle0.0{k}" for k in range(4)]
    for kind, atoms in zip(kinds, cu_training_structures()[:18], strict=True):
        atoms.info.update(iteration=0, generator=f"Cu-reference+{kind}")
        store.add(atoms)
    # 6 wanted: only half of the 4 ordinary cells go (the fit's only varied environments
    # next to the property cells); no strain or phonon cell, whatever the fraction
    chosen = assign_splits(store, 0, 0.34, seed=5)
    held = sorted(store.get_atoms(i).info["generator"].split("+")[1][:6] for i in chosen)
    assert held == ["rattle"] * 2
    # and pacemaker's own test split never takes a property cell
    from pyacemaker.stages.train.dataset import split_test_set

    dataset = export_training_set(store, tmp_path / "d.pckl.gzip", {"Cu": 0.0})
    assert split_test_set(dataset, tmp_path / "train.pckl.gzip", tmp_path / "test.pckl.gzip",
                          0.5, seed=1) == 2  # int(12 * 0.5) = 6 wanted, the 2 rattled ones
