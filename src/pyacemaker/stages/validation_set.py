"""The campaign's fixed validation set: labelled structures held out of every fit.

Before each fit, a fixed fraction (``validation.validation_fraction``) of the iteration's
labelled structures is marked ``split=validation`` in the data lake and the rest
``split=train`` (a halted frame itself, ``*_halt``, is never held out: it is what the
iteration has to learn; the candidates cut out around it may be; the cold start's
property cells, ``hold_out_tier`` > 0, never are: the gate checks their properties
against DFT); a
row is assigned once and never moves, so a structure that any fit saw is never in the
validation set, and errors on it are comparable across iterations. Rows of
campaigns started before the split existed carry no split and count as training data.
The gate's error targets and the best-so-far rule (``stages/train/best.py``) use this set.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms

from pyacemaker.datastore import DataStore
from pyacemaker.stages.coldstart import hold_out_tier

VALIDATION = "validation"
TRAIN = "train"


def assign_splits(store: DataStore, iteration: int, fraction: float, seed: int) -> list[int]:
    """Give this iteration's unassigned labelled rows their split; returns the row ids
    newly put into the validation set (the same ones whatever order rows came in)."""
    rows = [row for row in store.rows(status="labelled")
            if int(row.get("iteration") or 0) == iteration]
    unassigned = sorted(row.id for row in rows if row.get("split") is None)
    if not unassigned:
        return []
    # the halted frame itself is what the iteration must learn: never held out
    eligible = [row for row in rows if row.get("split") is None
                and not str(row.get("provenance") or "").endswith("_halt")]
    have = sum(1 for row in rows if row.get("split") == VALIDATION)
    want = math.floor(fraction * len(rows) + 0.5) if fraction > 0 else 0
    # the cold start's property cells (EOS, strains, phonon displacements: a few per
    # modulus or q-point) are what B0, Cij and the phonons are learned from, and the gate
    # checks those properties against DFT itself: never held out. Measured on the Si demo's
    # cold start: holding out 3 strain cells (one the largest tetragonal strain) left C11 -26 %,
    # C12 +36 % where the same fit with them gives -8 % / +11 % (docs/training.md)
    tiers = {row.id: hold_out_tier(str(row.get("generator") or "")) for row in eligible}
    chosen = sorted(i for i, tier in tiers.items() if tier < 0)  # made to be held out
    ordinary = sorted(i for i, tier in tiers.items() if tier == 0)
    n_new = min(max(want - have - len(chosen), 0), len(ordinary))
    rng = np.random.default_rng([seed, iteration, 104729])
    # next to property cells the others are the fit's only varied environments (a cold
    # start's rattled, defect and hot cells): at most half of them go then
    if len(ordinary) + len(chosen) < len(eligible):
        n_new = min(n_new, len(ordinary) // 2)
    chosen += [int(i) for i in rng.choice(ordinary, size=n_new, replace=False)] if n_new else []
    chosen.sort()
    store.set_split(chosen, VALIDATION)
    store.set_split(sorted(set(unassigned) - set(chosen)), TRAIN)
    return chosen


def validation_structures(store: DataStore) -> list[Atoms]:
    return store.atoms(status="labelled", split=VALIDATION)


def training_structures(store: DataStore) -> list[Atoms]:
    """Every labelled structure not in the validation set."""
    return [DataStore.row_to_atoms(row) for row in store.rows(status="labelled")
            if row.get("split") != VALIDATION]
