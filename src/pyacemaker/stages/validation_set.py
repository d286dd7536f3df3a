"""The campaign's fixed validation set: labelled structures held out of every fit.

Before each fit, a fixed fraction (``validation.validation_fraction``) of the iteration's
labelled structures is marked ``split=validation`` in the data lake and the rest
``split=train`` (a halted frame itself, ``*_halt``, is never held out: it is what the
iteration has to learn; the candidates cut out around it may be; the cold start's
property cells are held out only when nothing else is left, see ``hold_out_tier``); a
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
    n_new = min(max(want - have, 0), len(eligible))
    rng = np.random.default_rng([seed, iteration, 104729])
    # the cold start's property cells are what B0, Cij and the phonons are learned from (a
    # few each): held out only when nothing else is left, the phonon cells last
    tiers = [sorted(row.id for row in eligible
                    if hold_out_tier(str(row.get("generator") or "")) == tier)
             for tier in range(3)]
    # next to property cells the others are the fit's only varied environments (a cold
    # start's rattled, defect and hot cells): at most half of them go while tiers remain
    limits = [len(tiers[0]) // 2 if tiers[1] or tiers[2] else len(tiers[0]),
              len(tiers[1]), len(tiers[2])]
    chosen: list[int] = []
    for ids, limit in zip(tiers, limits, strict=True):
        take = min(n_new - len(chosen), limit)
        chosen += [int(i) for i in rng.choice(ids, size=take, replace=False)] if take else []
    if len(chosen) < n_new:  # the rest of the others, when the property cells ran out
        rest = sorted(set(tiers[0]) - set(chosen))
        chosen += [int(i) for i in rng.choice(rest, size=n_new - len(chosen), replace=False)]
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
