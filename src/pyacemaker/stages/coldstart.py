"""The cold start's first structures: what the gate will check, for each ground state.

For the reference crystal of each element (ASE's reference state: fcc Cu, diamond Si ...),
in this order, small and symmetric where possible (k-point cost):

* the crystal itself (primitive cell in the standard orientation);
* an EOS series, V/V0 = 0.92, 0.96, 1.04, 1.08;
* the elastic strains the gate uses: a normal and a shear component (plus the c-axis ones
  for non-cubic cells) at +-1 % and +-2 %;
* the conventional cell (at least 8 atoms) rattled at 0.03 and 0.10 A;
* a vacancy in it, rattled 0.03 A;
* (100) and (111) slabs of at most ``max_atoms`` atoms;
* a hot, liquid-like snapshot: 0.2 A rattle (0.15 A if that puts atoms too close);
* cubic cells: the strains at +-3 % and the volume-conserving tetragonal strain
  (e_xx = -e_yy: C11 - C12 alone) at 1, 2 and 3 %;
* one atom moved 0.03 A in the smallest cells commensurate with Gamma, X and L, also
  transverse to q (:func:`phonon_displacements`): the forces give the force constants the
  phonon check compares, and with the forces of the sheared cells the internal strain,
  hence the relaxed-ion C44;
* the EOS out to the ends of the gate's scan, V/V0 = 0.80, 0.86, 1.16, 1.25, 1.33, 1.40;
* eight more conventional cells rattled 0.05-0.15 A at V/V0 0.97-1.03 (``varied``): the
  strained 2-atom cells hold two equivalent atoms each, and without these the 93 atoms of
  a Si cold start span the B-projections of 64 functions with singular values down to
  1e-17 of the largest: MD gamma of 1e5 at once, and no room for 128 functions (the Si
  demo's, which with these cells have the phonons within 2.1 % of converged PBE where 64
  functions scatter 5-25 %; docs/training.md);
* five copies of the crystal rattled 0.05 A (2 atoms for Si: cheap), kind ``heldout``:
  always put in the campaign's validation set (``hold_out_tier`` -1), so the cold start's
  fit is judged on at least ``validation.min_validation_structures`` (5) near-equilibrium
  structures without holding out a property cell.

Deterministic strains; the rattles draw from the given generator. The rest of the budget
goes to other prototypes and random variations (``generate.py``).

The crystal, EOS and strain cells are the *ground-state property cells*
(:func:`is_ground_state_property`): the fit weights them up
(``training.weighting.ground_state_factor``), since B0, Cij and the phonons are learned
from them. Their energy differences are ~1 meV/atom at 1 % strain,
so the labels must be consistent to much better than that across cell shapes
(``bench/label_consistency.py``, docs/training.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import spglib
from ase import Atoms
from ase.build import surface

from pyacemaker.stages.validate.elastic import (
    crystal_system,
    standard_cell,
    strained,
    voigt_strained,
)

EOS_FACTORS = (0.92, 0.96, 1.04, 1.08)
# out to and past the ends of the gate's EOS scan (V/V0 0.75-1.35): the fitted pressure
# turns over where the data end (measured on Si: at ~1.15 with data to 1.08, at 1.25 with
# data to 1.25, monotonic over the scan with data to 1.40)
WIDE_EOS_FACTORS = (0.80, 0.86, 1.16, 1.25, 1.33, 1.40)
ELASTIC_STRAINS = (-0.02, -0.01, 0.01, 0.02)
CUBIC_EXTRA_STRAINS = (-0.03, 0.03)  # cubic cells have 2 strain components, not 4
TETRAGONAL_STRAINS = (0.01, 0.02, 0.03)
PHONON_DISPLACEMENT_A = 0.03
GROUND_STATE_KINDS = ("ground", "eos", "elastic", "tetragonal")
PHONON_KIND = "phonon"
RATTLES_A = (0.03, 0.10)
# (rattle A, V/V0) of the varied cells: environments for the fit and the active set
VARIED_RATTLES = ((0.05, 1.00), (0.07, 0.97), (0.12, 1.03), (0.15, 1.00),
                  (0.08, 1.02), (0.10, 0.98), (0.06, 1.00), (0.13, 0.99))
VARIED_KIND = "varied"
HELDOUT_KIND = "heldout"
HELDOUT_CELLS = 5
HELDOUT_RATTLE_A = 0.05
HOT_RATTLES_A = (0.20, 0.15)
SURFACES = ((1, 0, 0), (1, 1, 1))
SLAB_VACUUM = 6.0
MIN_SUPERCELL_ATOMS = 8


def conventional_cell(atoms: Atoms) -> Atoms:
    lattice, positions, numbers = spglib.standardize_cell(
        (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers), to_primitive=False,
        symprec=1e-3)
    return Atoms(numbers=numbers, cell=lattice, scaled_positions=positions, pbc=True)


def _grown(atoms: Atoms, target: int) -> Atoms:
    repeat = [1, 1, 1]
    while len(atoms) * int(np.prod(repeat)) < target:
        lengths = atoms.cell.lengths() * repeat
        repeat[int(np.argmin(lengths))] += 1
    return atoms.repeat(repeat)


def _scaled(atoms: Atoms, volume_factor: float) -> Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell.array * volume_factor ** (1 / 3), scale_atoms=True)
    return out


def is_ground_state_property(generator: str) -> bool:
    """Whether a structure's ``generator`` tag (``Si-reference+elastic4+0.01``) names a
    ground-state property cell (see the module docstring)."""
    base, _, kind = generator.partition("+")
    return base.endswith("-reference") and kind.startswith(GROUND_STATE_KINDS)


def hold_out_tier(generator: str) -> int:
    """Whether a labelled structure may be held out of the fits (validation set, test
    split): -1 always held out (a cold start's ``heldout`` cell), 1 never (a ground-state
    property cell or a phonon displacement cell: what B0, Cij and the phonons are learned
    from, a few cells per modulus or q-point), 0 any other structure."""
    base, _, kind = generator.partition("+")
    if not base.endswith("-reference"):
        return 0
    if kind.startswith(HELDOUT_KIND):
        return -1
    return 1 if kind.startswith((*GROUND_STATE_KINDS, PHONON_KIND)) else 0


def tetragonal_strained(atoms: Atoms, magnitude: float) -> Atoms:
    """e_xx = +magnitude, e_yy = -magnitude: volume kept to first order, energy
    V (C11 - C12) magnitude^2 in a cubic crystal."""
    return strained(atoms, np.diag([magnitude, -magnitude, 0.0]))


def _rattled(atoms: Atoms, rng: np.random.Generator, sigma: float) -> Atoms:
    out = atoms.copy()
    out.positions += rng.normal(0.0, sigma, (len(out), 3))
    return out


def low_index_slab(atoms: Atoms, miller: tuple[int, int, int], max_atoms: int) -> Atoms | None:
    """A periodic slab (vacuum along c) of 4, 3 or 2 layers, the thickest within
    ``max_atoms``; None when none fits."""
    for layers in (4, 3, 2):
        try:
            out = surface(atoms, miller, layers, vacuum=SLAB_VACUUM / 2, periodic=True)
        except (ValueError, np.linalg.LinAlgError):
            return None
        if len(out) <= max_atoms:
            out.pbc = True
            return out
    return None


def property_structures(ground: Atoms, rng: np.random.Generator, max_atoms: int,
                        too_close: Callable[[Atoms], bool], surfaces: bool = True
                        ) -> list[tuple[str, Atoms]]:
    """(kind, structure) pairs for the ground state ``ground``; see the module docstring."""
    primitive = standard_cell(ground)
    system, _ = crystal_system(primitive)
    out: list[tuple[str, Atoms]] = [("ground", primitive.copy())]
    out += [(f"eos{factor:.2f}", _scaled(primitive, factor)) for factor in EOS_FACTORS]
    components = (0, 3) if system == "cubic" else (0, 2, 3, 5)
    out += [(f"elastic{voigt + 1}{magnitude:+.2f}", voigt_strained(primitive, voigt, magnitude))
            for voigt in components for magnitude in ELASTIC_STRAINS]
    bulk_cell = _grown(conventional_cell(primitive), MIN_SUPERCELL_ATOMS)
    if len(bulk_cell) <= max_atoms:
        out += [(f"rattle{sigma:.2f}", _rattled(bulk_cell, rng, sigma)) for sigma in RATTLES_A]
        vacancy = bulk_cell.copy()
        del vacancy[0]
        out.append(("vacancy", _rattled(vacancy, rng, 0.03)))
        for sigma in HOT_RATTLES_A:
            hot = _rattled(bulk_cell, rng, sigma)
            if not too_close(hot):
                out.append(("hot", hot))
                break
    for miller in SURFACES if surfaces else ():
        slab = low_index_slab(conventional_cell(primitive), miller, max_atoms)
        if slab is not None:
            out.append((f"surface{''.join(map(str, miller))}", _rattled(slab, rng, 0.02)))
    # cheap refinements of the strain data last, so a small budget keeps the defect cells
    if system == "cubic":
        out += [(f"elastic{voigt + 1}{magnitude:+.2f}",
                 voigt_strained(primitive, voigt, magnitude))
                for voigt in components for magnitude in CUBIC_EXTRA_STRAINS]
        out += [(f"tetragonal{magnitude:+.2f}", tetragonal_strained(primitive, magnitude))
                for magnitude in TETRAGONAL_STRAINS]
    out += phonon_displacements(primitive, max_atoms)
    out += [(f"eos{factor:.2f}", _scaled(primitive, factor)) for factor in WIDE_EOS_FACTORS]
    if len(bulk_cell) <= max_atoms:
        for sigma, volume in VARIED_RATTLES:
            varied = _rattled(_scaled(bulk_cell, volume), rng, sigma)
            if not too_close(varied):
                out.append((f"{VARIED_KIND}{sigma:.2f}v{volume:.2f}", varied))
    return out + [(f"{HELDOUT_KIND}{k}", _rattled(primitive, rng, HELDOUT_RATTLE_A))
                  for k in range(HELDOUT_CELLS)]


def phonon_displacements(primitive: Atoms, max_atoms: int) -> list[tuple[str, Atoms]]:
    """One atom moved ``PHONON_DISPLACEMENT_A`` in the smallest cells commensurate with the
    special points of the gate's phonon check: the primitive cell (Gamma; only with more
    than one atom), the conventional cell (X in cubic crystals) and the primitive cell
    doubled along a1 (L in fcc-based ones), the last along and across a1.

    Then the transverse modes, the softest and what a fit gets least right: in the doubled
    cell (q along b1) the atom moved both ways along two directions normal to b1, in the
    conventional cell along y and back along x. Measured on the Si demo's cold start
    (docs/training.md): the TA(L) and TA(X) frequencies 4.8-6.6 % off converged PBE with
    these six cells against 6.9-7.6 % without, over two fit seeds."""
    along = primitive.cell[0] / np.linalg.norm(primitive.cell[0])
    across = np.cross(along, [0.0, 0.0, 1.0])
    if np.linalg.norm(across) < 1e-6:
        across = np.cross(along, [0.0, 1.0, 0.0])
    across /= np.linalg.norm(across)
    q_direction = np.linalg.inv(np.array(primitive.cell)).T[0]
    q_direction /= np.linalg.norm(q_direction)
    transverse1 = primitive.cell[1] / np.linalg.norm(primitive.cell[1])  # a2 is normal to b1
    transverse2 = np.cross(q_direction, transverse1)
    transverse2 /= np.linalg.norm(transverse2)
    x, y = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    cells = [(f"{PHONON_KIND}G", primitive, x)] if len(primitive) > 1 else []
    conventional = conventional_cell(primitive)
    has_x_cell = len(conventional) > len(primitive)
    if has_x_cell:
        cells.append((f"{PHONON_KIND}X", conventional, x))
    doubled = primitive.repeat((2, 1, 1))
    cells += [(f"{PHONON_KIND}L-along", doubled, along),
              (f"{PHONON_KIND}L-across", doubled, across)]
    cells += [(f"{PHONON_KIND}L-t{k}{sign}", doubled, (1 if sign == "+" else -1) * direction)
              for k, direction in ((1, transverse1), (2, transverse2)) for sign in "+-"]
    if has_x_cell:
        cells += [(f"{PHONON_KIND}X-y", conventional, y), (f"{PHONON_KIND}X-x-", conventional, -x)]
    out = []
    for kind, cell, direction in cells:
        if len(cell) > max_atoms:
            continue
        moved = cell.copy()
        moved.positions[0] += PHONON_DISPLACEMENT_A * direction
        out.append((kind, moved))
    return out
