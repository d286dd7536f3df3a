"""Structure generation: starting structures for a campaign, candidates around a halt.

* :func:`initial_structures` makes small, DFT-sized cells from the elements alone (ASE's
  reference states and common prototypes at a volume estimated from the elements, binary
  prototypes and random alloys for several elements) or from the user's seed files, then
  varies them: strains, rattles, vacancies, supercells and surface slabs.
* candidates around a halted frame are in :mod:`pyacemaker.stages.halt_candidates`.

Everything is deterministic given the ``numpy.random.Generator``.
"""

from __future__ import annotations

from functools import lru_cache
from collections.abc import Iterator
from itertools import combinations, islice
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii, reference_states
from ase.io import read
from ase.neighborlist import neighbor_list

from pyacemaker.config import CampaignConfig
from pyacemaker.stages.coldstart import low_index_slab, property_structures

MAX_ATOMS = 16  # cold-start cells stay cheap for DFT
MIN_DISTANCE_FRACTION = 0.7  # reject cells with a pair closer than this x expected bond
SINGLE_PROTOTYPES = ("fcc", "bcc", "hcp", "sc", "diamond")
BINARY_PROTOTYPES = ("rocksalt", "cesiumchloride", "zincblende")
# Variation amplitudes: isotropic volume strain, shear, rattle (A).
VOLUME_STRAIN = 0.08
SHEAR_STRAIN = 0.03
RATTLE_RANGE = (0.02, 0.12)
MAX_PROPOSALS_PER_PICK = 10  # a base giving no acceptable cell this often is dropped


class GenerationError(ValueError):
    """Structures cannot be generated from the given input (names the file or element)."""


# --------------------------------------------------------------------------- sizes


@lru_cache(maxsize=None)
def atomic_radius(symbol: str) -> float:
    """Half the nearest-neighbour distance of the element's reference solid, else its
    covalent radius."""
    reference = _reference_bulk(symbol)
    if reference is not None:
        i, d = neighbor_list("id", reference, 6.0)
        if len(d):
            return float(d.min()) / 2
    return float(covalent_radii[atomic_numbers[symbol]])


def _reference_bulk(symbol: str) -> Atoms | None:
    state = reference_states[atomic_numbers[symbol]]
    if not state or state.get("symmetry") not in (*SINGLE_PROTOTYPES, "bct"):
        return None
    try:
        return bulk(symbol)
    except (ValueError, KeyError, RuntimeError):
        return None


def _prototype(symbol: str, kind: str, radius: float) -> Atoms:
    """Single-element prototype with nearest-neighbour distance 2*radius."""
    nn = 2 * radius
    if kind == "fcc":
        return bulk(symbol, "fcc", a=nn * np.sqrt(2))
    if kind == "bcc":
        return bulk(symbol, "bcc", a=nn * 2 / np.sqrt(3))
    if kind == "hcp":
        return bulk(symbol, "hcp", a=nn, c=nn * np.sqrt(8 / 3))
    if kind == "sc":
        return bulk(symbol, "sc", a=nn)
    if kind == "diamond":
        return bulk(symbol, "diamond", a=nn * 4 / np.sqrt(3))
    raise ValueError(f"unknown prototype {kind!r}")


def _binary_prototype(a: str, b: str, kind: str, bond: float) -> Atoms:
    if kind == "rocksalt":
        return bulk(f"{a}{b}", "rocksalt", a=2 * bond)
    if kind == "cesiumchloride":
        return bulk(f"{a}{b}", "cesiumchloride", a=2 * bond / np.sqrt(3))
    if kind == "zincblende":
        return bulk(f"{a}{b}", "zincblende", a=4 * bond / np.sqrt(3))
    raise ValueError(f"unknown binary prototype {kind!r}")


def base_structures(elements: list[str], rng: np.random.Generator) -> list[Atoms]:
    """Unvaried starting cells, most relevant first: reference solids (or a dimer in a box
    for diatomic elements), binary prototypes, random alloys, then other prototypes."""
    radius = {e: atomic_radius(e) for e in elements}
    first: list[Atoms] = []
    later: list[Atoms] = []
    for element in elements:
        reference = _reference_bulk(element)
        if reference is not None:
            first.append(_tag(reference, f"{element}-reference"))
        state = reference_states[atomic_numbers[element]] or {}
        if state.get("symmetry") == "diatom":
            first.append(_tag(_dimer_in_box(element, float(state["d"])), f"{element}2-dimer"))
        for kind in SINGLE_PROTOTYPES:
            if reference is not None and state.get("symmetry") == kind:
                continue  # the reference crystal already is this prototype
            later.append(_tag(_prototype(element, kind, radius[element]), f"{element}-{kind}"))
    for a, b in combinations(elements, 2):
        bond = radius[a] + radius[b]
        for kind in BINARY_PROTOTYPES:
            first.append(_tag(_binary_prototype(a, b, kind, bond), f"{a}{b}-{kind}"))
    if len(elements) > 1:
        mean_radius = float(np.mean(list(radius.values())))
        for kind, repeat in (("fcc", (2, 2, 1)), ("bcc", (2, 2, 2))):
            host = _prototype(elements[0], kind, mean_radius).repeat(repeat)
            alloy = host.copy()
            alloy.set_chemical_symbols(list(rng.choice(elements, size=len(alloy))))
            first.append(_tag(alloy, f"random-{kind}-alloy"))
    return first + later


def _dimer_in_box(symbol: str, bond: float, box: float = 7.0) -> Atoms:
    return Atoms(f"{symbol}2", positions=[[0, 0, 0], [bond, 0, 0]], cell=[box] * 3, pbc=True)


def _tag(atoms: Atoms, generator: str) -> Atoms:
    atoms.info["generator"] = generator
    return atoms


# --------------------------------------------------------------------------- variations


def strained(atoms: Atoms, rng: np.random.Generator, volume: float = VOLUME_STRAIN,
             shear: float = SHEAR_STRAIN) -> Atoms:
    """Random isotropic volume change (up to +-volume) plus a small symmetric shear."""
    out = atoms.copy()
    scale = (1 + rng.uniform(-volume, volume)) ** (1 / 3)
    deform = np.eye(3) * scale
    off = rng.uniform(-shear, shear, (3, 3))
    deform += (off + off.T) / 2 * (1 - np.eye(3))
    out.set_cell(atoms.cell.array @ deform, scale_atoms=True)
    return out


def rattled(atoms: Atoms, rng: np.random.Generator, amplitude: float | None = None,
            mask: np.ndarray | None = None) -> Atoms:
    """Gaussian displacements; ``mask`` limits them to some atoms."""
    out = atoms.copy()
    sigma = amplitude if amplitude is not None else rng.uniform(*RATTLE_RANGE)
    shift = rng.normal(0.0, sigma, (len(out), 3))
    if mask is not None:
        shift[~mask] = 0.0
    out.positions += shift
    return out


def with_vacancy(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    cell = atoms if len(atoms) >= 8 else atoms.repeat(_repeat_for(atoms, 8))
    out = cell.copy()
    del out[int(rng.integers(len(out)))]
    return out


def supercell(atoms: Atoms, target: int) -> Atoms:
    return atoms.repeat(_repeat_for(atoms, target))


def conventional_supercell(atoms: Atoms, max_atoms: int, symprec: float = 0.2) -> Atoms:
    """``atoms`` (strains and rattles kept) in the cell its conventional one would have,
    when that has at most ``max_atoms`` atoms; else ``atoms`` as it is. An 8-atom cubic Si
    cell gets a 4x4x4 k-mesh at kspacing 0.3 where the primitive cell repeated (2, 2, 1)
    gets 4x4x7: half the k-points for the same atoms."""
    import spglib
    from ase.build import make_supercell

    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    standard = spglib.standardize_cell(cell, to_primitive=False, symprec=symprec)
    if standard is None:
        return atoms
    matrix = standard[0] @ np.linalg.inv(atoms.cell.array)  # rows: new vectors in old ones
    integer = np.round(matrix)
    det = round(abs(np.linalg.det(integer)))
    if not np.allclose(matrix, integer, atol=0.05) or det <= 1 or det * len(atoms) > max_atoms:
        return atoms
    return make_supercell(atoms, integer.astype(int))


def _repeat_for(atoms: Atoms, target: int) -> tuple[int, int, int]:
    """Smallest repeat of the shortest cell vectors reaching ``target`` atoms."""
    repeat = [1, 1, 1]
    lengths = atoms.cell.lengths()
    while len(atoms) * int(np.prod(repeat)) < target:
        k = int(np.argmin([lengths[i] * repeat[i] for i in range(3)]))
        repeat[k] += 1
    return (repeat[0], repeat[1], repeat[2])


def slab(atoms: Atoms, rng: np.random.Generator, max_atoms: int = MAX_ATOMS) -> Atoms | None:
    """A low-index surface slab (periodic, vacuum along c) of at most ``max_atoms``."""
    miller = [(1, 0, 0), (1, 1, 0), (1, 1, 1)][int(rng.integers(3))]
    return low_index_slab(atoms, miller, max_atoms)


def _variants(base: Atoms, rng: np.random.Generator, max_atoms: int,
              surfaces: bool = True) -> Iterator[tuple[str, Atoms]]:
    """Endless variations of ``base``: cycles through the kinds with fresh random draws."""
    while True:
        yield from _variant_round(base, rng, max_atoms, surfaces)


def _variant_round(base: Atoms, rng: np.random.Generator, max_atoms: int,
                   surfaces: bool) -> Iterator[tuple[str, Atoms]]:
    yield "strain", strained(base, rng)
    yield "rattle", rattled(strained(base, rng, volume=0.03, shear=0.01), rng)
    if len(base) * 2 <= max_atoms:
        yield "supercell+rattle", rattled(supercell(base, min(max_atoms, 2 * len(base))), rng)
    vacancy = with_vacancy(base, rng)
    if len(vacancy) <= max_atoms:
        yield "vacancy", rattled(vacancy, rng, amplitude=0.03)
    surface_cell = slab(base, rng, max_atoms) if surfaces else None
    if surface_cell is not None:
        yield "surface", rattled(surface_cell, rng, amplitude=0.03)


def too_close(atoms: Atoms, fraction: float = MIN_DISTANCE_FRACTION) -> bool:
    """True when some pair is closer than ``fraction`` x the sum of the atoms' radii."""
    symbols = atoms.get_chemical_symbols()
    radius = {s: atomic_radius(s) for s in set(symbols)}
    cutoff = 2 * max(radius.values())
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    if len(d) == 0:
        return False
    expected = np.array([radius[symbols[a]] + radius[symbols[b]] for a, b in zip(i, j)])
    return bool(np.any(d < fraction * expected))


# --------------------------------------------------------------------------- public API


def read_seed_structures(paths: list[Path]) -> list[Atoms]:
    """Every frame of every seed file; a missing or unreadable file is named."""
    structures: list[Atoms] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise GenerationError(f"seed_structures: file not found: {path}")
        try:
            frames = read(path, index=":")
        except Exception as exc:  # ASE raises many types for corrupt files
            raise GenerationError(f"seed_structures: cannot read {path}: {exc}") from exc
        if not frames:
            raise GenerationError(f"seed_structures: no structure in {path}")
        for k, atoms in enumerate(frames):
            atoms.calc = None
            atoms.info["generator"] = f"seed:{path.name}#{k}"
            structures.append(atoms)
    return structures


def initial_structures(config: CampaignConfig, n: int, rng: np.random.Generator,
                       max_atoms: int = MAX_ATOMS) -> list[Atoms]:
    """``n`` distinct small structures to label first (provenance ``coldstart``).

    From ``config.seed_structures`` when given (each seed kept once unvaried), otherwise
    from ``config.elements`` alone: first what the gate checks on each element's reference
    crystal (its EOS, elastic strains, rattled cells, a vacancy, surfaces, a hot snapshot:
    ``coldstart.py``). Then strains, rattles, supercells, vacancies and surface slabs of
    the bases in turn (other prototypes after the reference crystals), rejecting cells with
    too-close atoms. No slab when ``active_learning.cold_start_surfaces`` is off.
    """
    if n < 1:
        return []
    surfaces = config.active_learning.cold_start_surfaces
    if config.seed_structures:
        bases = read_seed_structures(config.seed_structures)
        foreign = sorted({s for b in bases for s in b.get_chemical_symbols()} - set(config.elements))
        if foreign:
            raise GenerationError(f"seed_structures contain element(s) {foreign} that are not "
                                  f"in elements {config.elements}")
        out: list[Atoms] = [b.copy() for b in bases[:n]]
    else:
        bases = base_structures(list(config.elements), rng)
        out = _ground_state_sets(bases, rng, max_atoms, surfaces)[:n]
    # Round-robin: each round gives every base one more variant, so a small budget still
    # covers all bases (most relevant first).
    variants = [_variants(base, rng, max_atoms, surfaces) for base in bases]
    while len(out) < n and variants:
        for base, generator in zip(list(bases), list(variants)):
            candidate = None
            for kind, proposal in islice(generator, MAX_PROPOSALS_PER_PICK):
                if len(proposal) <= max_atoms or config.seed_structures:
                    if not too_close(proposal):
                        candidate = proposal
                        break
            if candidate is None:
                variants.remove(generator)
                bases.remove(base)
                continue
            candidate.info["generator"] = f"{base.info.get('generator', '')}+{kind}"
            out.append(candidate)
            if len(out) >= n:
                break
    for atoms in out:
        atoms.info.update(provenance="coldstart", iteration=0)
    return out[:n]


def _ground_state_sets(bases: list[Atoms], rng: np.random.Generator, max_atoms: int,
                       surfaces: bool) -> list[Atoms]:
    """The property-aware structures of every element's reference crystal
    (``coldstart.py``), interleaved across elements so a small budget covers each."""
    sets = []
    for base in bases:
        generator = base.info.get("generator", "")
        if generator.endswith("-reference"):
            tagged = []
            for kind, atoms in property_structures(base, rng, max_atoms, too_close,
                                                   surfaces):
                atoms.info["generator"] = f"{generator}+{kind}"
                tagged.append(atoms)
            sets.append(tagged)
    longest = max((len(s) for s in sets), default=0)
    return [s[k] for k in range(longest) for s in sets if k < len(s)]


def kmc_start_structures(config: CampaignConfig) -> list[Atoms]:
    """Start cells for kMC tasks (provenance ``kmc_start``): the most relevant base
    structure (a seed, else the reference crystal, conventional cell when it has one)
    repeated to ``exploration.kmc.start_atoms`` atoms, with one atom removed near the
    centre when ``defect: vacancy``. Deterministic, so every kMC task of a campaign starts
    from the same state and a rerun revisits the region a halt came from."""
    settings = config.exploration.kmc
    if config.seed_structures:
        bases = [b for b in read_seed_structures(config.seed_structures) if b.pbc.all()]
        if not bases:
            raise GenerationError("kmc start: no fully periodic seed structure to make a "
                                  "defect cell from")
    else:
        bases = base_structures(list(config.elements), np.random.default_rng(config.seed))
    # the base with most of the campaign's elements, a random alloy before an ordered
    # prototype (diffusion in an alloy is the usual kMC question), else the first
    base = max(bases, key=lambda b: (len(set(b.get_chemical_symbols())),
                                     b.info.get("generator", "").startswith("random-")))
    base = _conventional(base)
    cell = supercell(base, settings.start_atoms)
    cell.info.clear()
    if settings.defect == "vacancy":
        centre = cell.cell.cartesian_positions([0.5, 0.5, 0.5])
        del cell[int(np.argmin(np.linalg.norm(cell.positions - centre, axis=1)))]
    cell.info.update(provenance="kmc_start", generator=f"{base.info.get('generator', '')}"
                     f"+{settings.defect}")
    return [cell]


def _conventional(atoms: Atoms) -> Atoms:
    """The conventional (cubic/orthorhombic) cell of a one-atom primitive crystal, so that
    the supercell is compact; other cells as they are."""
    generator = atoms.info.get("generator", "")
    if len(atoms) == 1 and generator.endswith("-reference"):
        symbol = atoms.get_chemical_symbols()[0]
        for options in ({"cubic": True}, {"orthorhombic": True}):
            try:
                out = bulk(symbol, **options)
            except (ValueError, KeyError, RuntimeError):
                continue
            out.info["generator"] = generator
            return out
    return atoms
