"""Explicit pair baselines for delta learning: ZBL and Lennard-Jones.

One functional form, two deployments: :meth:`PairBaseline.calculator` (ASE) and
:meth:`PairBaseline.lammps_commands` (a ``hybrid/overlay`` partner of ``pace``). The
formulas are LAMMPS's own, so both give the same numbers:

* ``zbl``: ``pair_style zbl inner outer``, the universal ZBL screened Coulomb repulsion
  plus LAMMPS's polynomial switch that brings energy, force and curvature to zero at
  ``outer`` (a constant shift applies at all r < outer, as in LAMMPS);
* ``lj``: ``pair_style lj/cut 2.5*sigma`` with ``pair_modify shift yes``.

The ACE model is fitted to (label - baseline); at run time the baseline is added back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list

from pyacemaker.config import BaselineSettings

# LAMMPS pair_zbl constants (metal units: qqr2e = 14.399645 eV*A/e^2)
ZBL_COULOMB = 14.399645
ZBL_A0 = 0.46850
ZBL_POWER = 0.23
ZBL_C = np.array([0.02817, 0.28022, 0.50986, 0.18175])
ZBL_D = np.array([0.20162, 0.40290, 0.94229, 3.19980])
# The delta-ZBL switch starts at this fraction of its outer cutoff.
ZBL_SWITCH_START_FRACTION = 0.5
LJ_CUTOFF_IN_SIGMA = 2.5


@dataclass(frozen=True)
class PairBaseline:
    """A pair potential with concrete parameters (serialisable with :meth:`to_dict`)."""

    kind: Literal["zbl", "lj"]
    elements: tuple[str, ...]
    cutoff: float
    inner: float = 0.0  # zbl: start of the switching region
    epsilon: float = 0.0  # lj
    sigma: float = 0.0  # lj

    # ------------------------------------------------------------------ pair terms
    def pair_energy_derivative(self, r: np.ndarray, zi: np.ndarray,
                               zj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """phi(r) and dphi/dr for pairs at distances ``r`` (all < cutoff)."""
        if self.kind == "lj":
            return self._lj(r)
        return self._zbl_switched(r, zi, zj)

    def _lj(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        def energy(x: np.ndarray | float) -> Any:
            s6 = (self.sigma / x) ** 6
            return 4 * self.epsilon * (s6 * s6 - s6)

        s6 = (self.sigma / r) ** 6
        de = 4 * self.epsilon * (-12 * s6 * s6 + 6 * s6) / r
        return energy(r) - energy(self.cutoff), de

    @staticmethod
    def _zbl_raw(r: np.ndarray, zi: np.ndarray,
                 zj: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unswitched ZBL energy and its first and second derivatives."""
        inv_a = (zi ** ZBL_POWER + zj ** ZBL_POWER) / ZBL_A0
        zz = ZBL_COULOMB * zi * zj
        r = np.asarray(r, dtype=float)
        rates = np.multiply.outer(inv_a, ZBL_D)  # (n, 4)
        exps = ZBL_C * np.exp(-rates * r[..., None])
        s = exps.sum(-1)
        s1 = -(exps * rates).sum(-1)
        s2 = (exps * rates ** 2).sum(-1)
        e = zz * s / r
        de = zz * (s1 / r - s / r ** 2)
        d2e = zz * (s2 / r - 2 * s1 / r ** 2 + 2 * s / r ** 3)
        return e, de, d2e

    def _zbl_switched(self, r: np.ndarray, zi: np.ndarray,
                      zj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rc = np.full_like(r, self.cutoff)
        fc, fcp, fcpp = self._zbl_raw(rc, zi, zj)
        tc = self.cutoff - self.inner
        swa = (-3 * fcp + tc * fcpp) / tc ** 2
        swb = (2 * fcp - tc * fcpp) / tc ** 3
        swc = -fc + tc / 2 * fcp - tc ** 2 / 12 * fcpp
        e, de, _ = self._zbl_raw(r, zi, zj)
        t = np.clip(r - self.inner, 0.0, None)
        e = e + swc + t ** 3 * (swa / 3 + swb * t / 4)
        de = de + t ** 2 * (swa + swb * t)
        return e, de

    # ------------------------------------------------------------------ structures
    def energy_forces_stress(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
        """Total energy, forces and (periodic cells only) stress in ASE's Voigt order."""
        i, j, d, vec = neighbor_list("ijdD", atoms, self.cutoff)
        forces = np.zeros((len(atoms), 3))
        stress = None
        if len(d) == 0:
            energy = 0.0
            virial = np.zeros((3, 3))
        else:
            z = atoms.get_atomic_numbers().astype(float)
            phi, dphi = self.pair_energy_derivative(d, z[i], z[j])
            energy = 0.5 * float(phi.sum())
            pair_forces = (dphi / d)[:, None] * vec  # on atom i from its neighbour j
            np.add.at(forces, i, pair_forces)
            virial = 0.5 * pair_forces.T @ vec
        if atoms.pbc.all():
            full = virial / atoms.get_volume()
            stress = full[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        return energy, forces, stress

    def energy_and_forces(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        energy, forces, _ = self.energy_forces_stress(atoms)
        return energy, forces

    def calculator(self) -> PairBaselineCalculator:
        return PairBaselineCalculator(self)

    # ------------------------------------------------------------------ LAMMPS
    def lammps_pair_style(self) -> str:
        """The sub-style with arguments, for ``pair_style hybrid/overlay <ace> <this>``."""
        if self.kind == "zbl":
            return f"zbl {self.inner:.10g} {self.cutoff:.10g}"
        return f"lj/cut {self.cutoff:.10g}"

    def lammps_pair_coeffs(self, type_elements: list[str], hybrid: bool = True) -> list[str]:
        """``pair_coeff`` (and ``pair_modify``) lines; LAMMPS type k+1 is type_elements[k]."""
        name = self.lammps_pair_style().split()[0] + " " if hybrid else ""
        lines = []
        if self.kind == "zbl":
            for a in range(len(type_elements)):
                for b in range(a, len(type_elements)):
                    za = atomic_numbers[type_elements[a]]
                    zb = atomic_numbers[type_elements[b]]
                    lines.append(f"pair_coeff {a + 1} {b + 1} {name}{za:.1f} {zb:.1f}")
        else:
            lines.append(f"pair_coeff * * {name}{self.epsilon:.10g} {self.sigma:.10g}")
            lines.append("pair_modify pair lj/cut shift yes" if hybrid else "pair_modify shift yes")
        return lines

    def lammps_commands(self, type_elements: list[str], ace_pair_style: str,
                        ace_pair_coeff: str) -> list[str]:
        """Full pair set-up: ACE overlaid with this baseline.

        ``ace_pair_style`` e.g. ``"pace/extrapolation"``, ``ace_pair_coeff`` e.g.
        ``"* * pace/extrapolation pot.yaml pot.asi Cu"`` (already with the sub-style name).
        """
        return [f"pair_style hybrid/overlay {ace_pair_style} {self.lammps_pair_style()}",
                f"pair_coeff {ace_pair_coeff}", *self.lammps_pair_coeffs(type_elements)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["elements"] = list(self.elements)
        return data


def baseline_from_dict(data: dict[str, Any]) -> PairBaseline:
    data = dict(data)
    data["elements"] = tuple(data["elements"])
    return PairBaseline(**data)


def baseline_from_settings(settings: BaselineSettings, elements: list[str],
                           shortest_distance: float) -> PairBaseline:
    """Concrete baseline for ``settings.kind`` in (delta_zbl, delta_lj).

    delta_zbl: the switch ends at ``settings.inner_cutoff`` or, when unset, at the shortest
    interatomic distance of the training data, and starts at half of that.
    """
    species = tuple(sorted(elements))
    if settings.kind == "delta_lj":
        return PairBaseline("lj", species, cutoff=LJ_CUTOFF_IN_SIGMA * settings.lj_sigma,
                            epsilon=settings.lj_epsilon, sigma=settings.lj_sigma)
    if settings.kind != "delta_zbl":
        raise ValueError(f"training.baseline.kind {settings.kind!r} has no explicit pair baseline")
    outer = settings.inner_cutoff
    if outer is None:
        if not np.isfinite(shortest_distance):
            raise ValueError("training.baseline.inner_cutoff must be set: the training data "
                             "has no interatomic distances to take it from")
        outer = float(np.floor(shortest_distance * 100) / 100)
    return PairBaseline("zbl", species, cutoff=outer, inner=ZBL_SWITCH_START_FRACTION * outer)


class PairBaselineCalculator(Calculator):
    """ASE calculator of a :class:`PairBaseline`."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, baseline: PairBaseline, **kwargs: Any):
        super().__init__(**kwargs)
        self.baseline = baseline

    def calculate(self, atoms: Atoms | None = None, properties: Any = None,
                  system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        energy, forces, stress = self.baseline.energy_forces_stress(self.atoms)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if stress is not None:
            self.results["stress"] = stress


class ReferenceEnergyCalculator(Calculator):
    """A constant energy per atom of each element (no forces): adds reference energies back."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, reference_energies: dict[str, float], **kwargs: Any):
        super().__init__(**kwargs)
        self.reference_energies = dict(reference_energies)

    def calculate(self, atoms: Atoms | None = None, properties: Any = None,
                  system_changes: Any = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        symbols = self.atoms.get_chemical_symbols()
        missing = sorted(set(symbols) - set(self.reference_energies))
        if missing:
            raise ValueError(f"no reference energy for element(s) {missing}")
        energy = float(sum(self.reference_energies[s] for s in symbols))
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": np.zeros((len(symbols), 3)), "stress": np.zeros(6)}
