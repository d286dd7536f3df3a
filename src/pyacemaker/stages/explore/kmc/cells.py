"""Slabs and clusters for eOn: embedded in a periodic box with vacuum.

pyeonclient accepts only fully periodic cells (``matter_from_ase: mixed PBC is not
supported``). A structure that is not periodic along an axis is centred in a box with
``vacuum`` on each side along that axis and made periodic: with vacuum wider than the
potential's cutoff the images do not interact, so the physics is the slab's or the
cluster's. Fixed atoms (ASE ``FixAtoms``) stay as given.
"""

from __future__ import annotations

from ase import Atoms


def embed_in_box(atoms: Atoms, vacuum: float) -> tuple[Atoms, list[str]]:
    """A fully periodic copy of ``atoms`` and a sentence saying what was done (if anything)."""
    if atoms.pbc.all():
        return atoms, []
    embedded = atoms.copy()
    open_axes = [axis for axis in range(3) if not atoms.pbc[axis]]
    embedded.center(vacuum=vacuum, axis=open_axes)
    embedded.pbc = True
    pbc = "[" + ", ".join("T" if p else "F" for p in atoms.pbc) + "]"
    axes = ", ".join("xyz"[axis] for axis in open_axes)
    return embedded, [f"pbc {pbc}: embedded in a periodic box with {vacuum:g} A of vacuum "
                      f"on each side along {axes}"]
