"""Elastic constants from strain-stress fits, Born stability and Voigt-Reuss-Hill moduli.

Each of the six Voigt strains is applied at +/- several magnitudes (ions relaxed at fixed
cell when the cell has more than one atom), and the stress is fitted linearly: column j of
C is d(sigma)/d(epsilon_j). ASE's stress is (1/V) dE/d(epsilon), so no sign flip is needed.
The tensor is then averaged over the components the crystal's Laue class makes equal, and
the Born criteria of that class are checked (Mouhat & Coudert, PRB 90, 224104 (2014)).
"""

from __future__ import annotations

import numpy as np
import spglib
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.optimize import BFGS
from pydantic import BaseModel, Field

VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
INDEPENDENT = {
    "cubic": ("C11", "C12", "C44"),
    "hexagonal": ("C11", "C12", "C13", "C33", "C44"),
    "tetragonal": ("C11", "C12", "C13", "C33", "C44", "C66"),
    "orthorhombic": ("C11", "C22", "C33", "C12", "C13", "C23", "C44", "C55", "C66"),
}


class BornCriterion(BaseModel):
    expression: str
    value: float
    satisfied: bool


class ElasticResult(BaseModel):
    label: str
    crystal_system: str
    spacegroup: str
    c_gpa: list[list[float]] = Field(description="6x6 Voigt stiffness, GPa (symmetrized)")
    raw_c_gpa: list[list[float]] = Field(description="6x6 before symmetry averaging")
    symmetry_deviation_gpa: float = Field(
        description="Largest change made by the symmetry averaging (a quality signal).")
    born_criteria: list[BornCriterion]
    bulk_voigt: float
    bulk_reuss: float
    bulk_hill: float
    shear_voigt: float
    shear_reuss: float
    shear_hill: float

    @property
    def born_stable(self) -> bool:
        return all(c.satisfied for c in self.born_criteria)

    def named(self) -> dict[str, float]:
        """The symmetry-independent Cij of the crystal system, B and G (Hill), in GPa."""
        c = np.asarray(self.c_gpa)
        every = tuple(f"C{i + 1}{j + 1}" for i in range(6) for j in range(i, 6))
        names = INDEPENDENT.get(self.crystal_system, every)
        values = {name: float(c[int(name[1]) - 1, int(name[2]) - 1]) for name in names}
        values.update(B=self.bulk_hill, G=self.shear_hill)
        return values


def crystal_system(atoms: Atoms, symprec: float = 1e-3) -> tuple[str, str]:
    cell = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if dataset is None:
        return "triclinic", "P1 (1)"
    number = dataset.number
    bounds = ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
              (167, "trigonal"), (194, "hexagonal"), (230, "cubic"))
    system = next(name for top, name in bounds if number <= top)
    return system, f"{dataset.international} ({number})"


def strained(atoms: Atoms, strain: np.ndarray) -> Atoms:
    """``atoms`` deformed by the symmetric strain tensor ``strain``, atoms carried along."""
    deformed = atoms.copy()
    deformed.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    return deformed


def voigt_strained(atoms: Atoms, voigt: int, magnitude: float) -> Atoms:
    strain = np.zeros((3, 3))
    i, j = VOIGT_PAIRS[voigt]
    if i == j:
        strain[i, i] = magnitude
    else:  # engineering shear strain gamma = 2 * epsilon_ij
        strain[i, j] = strain[j, i] = magnitude / 2
    return strained(atoms, strain)


def _stress(atoms: Atoms, calc: Calculator, relax_ions: bool) -> np.ndarray:
    atoms.calc = calc
    if relax_ions:
        BFGS(atoms, logfile=None).run(fmax=1e-4, steps=200)
    return atoms.get_stress(voigt=True).copy()


def stiffness_from_strains(atoms: Atoms, calc: Calculator, max_strain: float = 0.01,
                           points: int = 4,
                           columns: tuple[int, ...] = (0, 1, 2, 3, 4, 5)) -> np.ndarray:
    """Raw 6x6 stiffness (eV/A^3) from linear stress-strain fits, for the strain
    components ``columns`` (Voigt indices; the other columns stay zero)."""
    magnitudes = np.linspace(-max_strain, max_strain, 2 * (points // 2) + 1)
    magnitudes = magnitudes[np.abs(magnitudes) > 1e-12]
    relax_ions = len(atoms) > 1
    c = np.zeros((6, 6))
    for voigt in columns:
        stresses = np.array([_stress(voigt_strained(atoms, voigt, m), calc, relax_ions)
                             for m in magnitudes])
        c[:, voigt] = np.polyfit(magnitudes, stresses, 1)[0]
    return c


def _symmetrize(c: np.ndarray, system: str) -> np.ndarray:
    """Average components the Laue class makes equal; zero those it makes vanish."""
    c = (c + c.T) / 2
    if system == "cubic":
        c11, c12, c44 = (np.mean(c[[0, 1, 2], [0, 1, 2]]), np.mean(c[[1, 0, 0], [2, 2, 1]]),
                         np.mean(c[[3, 4, 5], [3, 4, 5]]))
        out = np.zeros((6, 6))
        out[:3, :3] = c12
        out[[0, 1, 2], [0, 1, 2]] = c11
        out[[3, 4, 5], [3, 4, 5]] = c44
        return out
    if system in ("hexagonal", "tetragonal"):
        out = np.zeros((6, 6))
        c11, c33 = (c[0, 0] + c[1, 1]) / 2, c[2, 2]
        c12, c13 = c[0, 1], (c[0, 2] + c[1, 2]) / 2
        c44, c66 = (c[3, 3] + c[4, 4]) / 2, c[5, 5]
        if system == "hexagonal":
            c66 = (c11 - c12) / 2
        out[0, 0] = out[1, 1] = c11
        out[2, 2] = c33
        out[0, 1] = out[1, 0] = c12
        out[0, 2] = out[2, 0] = out[1, 2] = out[2, 1] = c13
        out[3, 3] = out[4, 4] = c44
        out[5, 5] = c66
        return out
    if system == "orthorhombic":
        out = np.zeros((6, 6))
        out[:3, :3] = c[:3, :3]
        out[[3, 4, 5], [3, 4, 5]] = c[[3, 4, 5], [3, 4, 5]]
        return out
    return c


def born_criteria(c: np.ndarray, system: str) -> list[BornCriterion]:
    """Necessary and sufficient stability conditions (GPa) for the crystal system."""
    def crit(expression: str, value: float) -> BornCriterion:
        return BornCriterion(expression=expression, value=float(value), satisfied=value > 0)

    if system == "cubic":
        c11, c12, c44 = c[0, 0], c[0, 1], c[3, 3]
        return [crit("C11 - C12 > 0", c11 - c12), crit("C11 + 2 C12 > 0", c11 + 2 * c12),
                crit("C44 > 0", c44)]
    if system in ("hexagonal", "tetragonal"):
        c11, c12, c13, c33, c44, c66 = c[0, 0], c[0, 1], c[0, 2], c[2, 2], c[3, 3], c[5, 5]
        return [crit("C11 - |C12| > 0", c11 - abs(c12)),
                crit("C33 (C11 + C12) - 2 C13^2 > 0", c33 * (c11 + c12) - 2 * c13 ** 2),
                crit("C44 > 0", c44), crit("C66 > 0", c66)]
    # Any crystal: stiffness positive definite (all leading minors / eigenvalues > 0).
    eigenvalues = np.linalg.eigvalsh((c + c.T) / 2)
    return [crit("smallest eigenvalue of C > 0", eigenvalues.min())]


def _moduli(c: np.ndarray) -> tuple[float, float, float, float]:
    bulk_v = (c[0, 0] + c[1, 1] + c[2, 2] + 2 * (c[0, 1] + c[1, 2] + c[0, 2])) / 9
    shear_v = ((c[0, 0] + c[1, 1] + c[2, 2]) - (c[0, 1] + c[1, 2] + c[0, 2])
               + 3 * (c[3, 3] + c[4, 4] + c[5, 5])) / 15
    try:
        s = np.linalg.inv(c)
        bulk_r = 1 / (s[0, 0] + s[1, 1] + s[2, 2] + 2 * (s[0, 1] + s[1, 2] + s[0, 2]))
        shear_r = 15 / (4 * (s[0, 0] + s[1, 1] + s[2, 2]) - 4 * (s[0, 1] + s[1, 2] + s[0, 2])
                        + 3 * (s[3, 3] + s[4, 4] + s[5, 5]))
    except np.linalg.LinAlgError:
        bulk_r = shear_r = float("nan")
    return float(bulk_v), float(bulk_r), float(shear_v), float(shear_r)


def _cubic_from_two_columns(raw: np.ndarray) -> tuple[np.ndarray, float]:
    """Cubic C from the measured columns 1 and 4 (Voigt, 1-based) of ``raw``: C11, C12
    (mean of the two transverse responses) and C44; and the largest deviation from cubic
    symmetry among the measured entries."""
    c11, c12, c44 = raw[0, 0], (raw[1, 0] + raw[2, 0]) / 2, raw[3, 3]
    c = np.zeros((6, 6))
    c[:3, :3] = c12
    c[[0, 1, 2], [0, 1, 2]] = c11
    c[[3, 4, 5], [3, 4, 5]] = c44
    deviation = max(abs(raw[1, 0] - raw[2, 0]) / 2, *np.abs(raw[3:, 0]),
                    *np.abs(raw[:3, 3]), *np.abs(raw[4:, 3]))
    return c, float(deviation)


def standard_cell(atoms: Atoms, symprec: float = 1e-3) -> Atoms:
    """The primitive cell in spglib's standard orientation (conventional axes along x, y,
    z): Cij come out in the frame the Born criteria are written for, with the fewest atoms
    (a strained diamond cell relaxes 2 atoms, not 8)."""
    standard = spglib.standardize_cell((atoms.cell.array, atoms.get_scaled_positions(),
                                        atoms.numbers), to_primitive=True, symprec=symprec)
    if standard is None:
        return atoms.copy()
    lattice, positions, numbers = standard
    cell = Atoms(numbers=numbers, cell=lattice, scaled_positions=positions, pbc=True)
    cell.info.update(atoms.info)
    return cell


def compute_elastic(atoms: Atoms, calc: Calculator, max_strain: float = 0.01,
                    points: int = 4) -> ElasticResult:
    """Elastic tensor of the (relaxed) crystal ``atoms`` with ``calc``."""
    system, spacegroup = crystal_system(atoms)
    atoms = standard_cell(atoms)
    if system == "cubic":  # C11, C12 from one normal strain, C44 from one shear
        raw = stiffness_from_strains(atoms, calc, max_strain, points, columns=(0, 3))
        c, deviation = _cubic_from_two_columns(raw / units.GPa)
        raw = raw / units.GPa
    else:
        raw = stiffness_from_strains(atoms, calc, max_strain, points) / units.GPa
        c = _symmetrize(raw, system)
        deviation = float(np.abs(c - raw).max())
    bulk_v, bulk_r, shear_v, shear_r = _moduli(c)
    return ElasticResult(
        label=atoms.info.get("label", atoms.get_chemical_formula()),
        crystal_system=system, spacegroup=spacegroup,
        c_gpa=c.round(3).tolist(), raw_c_gpa=raw.round(3).tolist(),
        symmetry_deviation_gpa=deviation,
        born_criteria=born_criteria(c, system),
        bulk_voigt=bulk_v, bulk_reuss=bulk_r, bulk_hill=(bulk_v + bulk_r) / 2,
        shear_voigt=shear_v, shear_reuss=shear_r, shear_hill=(shear_v + shear_r) / 2,
    )
