"""Saddle searches and minimizations on eOn's client library (pyeonclient), in process.

One search: kick the epicentre and its neighbours, follow the lowest curvature mode
uphill (improved dimer or Lanczos) to a first-order saddle, then minimize on both sides
of the saddle; the side that is not the reactant is the product. Only the user's fixed
atoms (ASE FixAtoms, which eOn honours) are held: pinning one atom of a periodic cell
lets the rest of the crystal drift around it (the pinned atom then seems to hop);
instead, in a cell without fixed atoms, the kick carries no net translation, eOn removes
the net force, and structures are compared modulo a rigid translation.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.geometry import find_mic

from pyacemaker.config import KMCConfig
from pyacemaker.stages.explore.kmc.identity import fixed_mask, same_sites
from pyacemaker.stages.explore.kmc.prefactor import PrefactorError, vineyard_prefactor
from pyacemaker.stages.explore.kmc.processes import same_structure
from pyacemaker.stages.explore.kmc.rates import htst_rate
from pyacemaker.stages.explore.kmc.watchdog import GammaWatchdog

MINIMIZATION_OFFSET = 0.2  # A, step off the saddle before minimizing to each side
PREFACTOR_DUMPS = ("freqs.dat", "hessian.dat")


class KMCHalt(Exception):
    """The potential extrapolated (gamma above the upper threshold) during a search."""

    def __init__(self, frame: Atoms, where: str):
        super().__init__(f"extrapolation halt during {where}: max gamma "
                         f"{frame.info.get('gamma_max', float('nan')):.2f}")
        self.frame = frame
        self.where = where


@dataclass
class SearchOutcome:
    status: str  # "good" or the reason the search was discarded
    barrier: float | None = None
    prefactor: float | None = None
    saddle: Atoms | None = None
    product: Atoms | None = None
    product_energy: float | None = None

    @property
    def good(self) -> bool:
        return self.status == "good"


def relax_across_saddle(saddle: Atoms, negative_mode: np.ndarray, reactant: Atoms,
                        barrier: float,
                        relax: Callable[[Atoms], tuple[Atoms, float]]) -> SearchOutcome:
    """Minimize half a step to each side of the saddle along its negative-curvature mode;
    a process needs one side to be the reactant and the other a different minimum (not
    the reactant's own sites with atoms relabelled). The outcome has no prefactor yet
    (the engines get it differently)."""
    negative_mode = negative_mode * ~fixed_mask(saddle)[:, None]
    sides = []
    for sign in (+1.0, -1.0):
        side = saddle.copy()
        side.positions = saddle.positions + sign * MINIMIZATION_OFFSET * negative_mode
        sides.append(relax(side))
    is_reactant = [same_structure(s, reactant) for s, _ in sides]
    if is_reactant.count(True) != 1:
        return SearchOutcome(status="not_connected", barrier=barrier)
    product, product_energy = sides[1] if is_reactant[0] else sides[0]
    if same_sites(product, reactant):
        return SearchOutcome(status="no_change", barrier=barrier)
    return SearchOutcome(status="good", barrier=barrier, saddle=saddle, product=product,
                         product_energy=product_energy)


@contextmanager
def native_output_to(log_file: Path) -> Iterator[None]:
    """Send the C++ client's stdout/stderr chatter to a file (it ignores ``quiet``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            _flush_c_streams()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _flush_c_streams() -> None:
    """Flush the C library's stdio buffers (the client prints through them)."""
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


def eon_parameters(settings: KMCConfig, temperature: float, seed: int) -> object:
    import pyeonclient as eon

    params = eon.Parameters()
    params.quiet = True
    params.write_log = False
    params.temperature = temperature
    params.random_seed = seed
    params.saddle_minmode_method = settings.search_method
    params.saddle_converged_force = settings.converged_force
    params.saddle_max_iterations = settings.max_search_iterations
    # saddle_max_energy stays at eOn's 20 eV: the dimer's first steps may climb far above
    # the final saddle; barriers above max_barrier are discarded after convergence.
    params.opt_converged_force = settings.converged_force
    params.prefactor_filter_scheme = "cutoff"  # the "fraction" filter fails on bulk cells
    return params


class InProcessSearcher:
    """Relaxations and saddle searches with an ASE calculator inside eOn's client library."""

    def __init__(self, calculator: Calculator, settings: KMCConfig, temperature: float,
                 seed: int, log_file: Path, zero_modes: int = 3):
        import pyeonclient as eon

        self.eon = eon
        self.calculator = calculator
        self.settings = settings
        self.temperature = temperature
        self.log_file = log_file
        self.params = eon_parameters(settings, temperature, seed)
        self.potential = eon.potential_from_ase(calculator, self.params)
        self.zero_modes = zero_modes  # rigid-body modes left out of the prefactor
        self._minimum_modes: dict[bytes, np.ndarray] = {}

    # ------------------------------------------------------------------ helpers
    def _matter(self, atoms: Atoms) -> object:
        return self.eon.matter_from_ase(atoms, self.potential, self.params)

    def _atoms(self, matter: object, like: Atoms) -> Atoms:
        atoms = like.copy()
        atoms.calc = None
        atoms.positions = np.array(matter.positions)
        return atoms

    def _guarded(self, where: str, call):  # noqa: ANN001, ANN202
        """Run a native call; a watchdog halt inside it becomes a KMCHalt."""
        watchdog = self.calculator if isinstance(self.calculator, GammaWatchdog) else None
        try:
            with native_output_to(self.log_file):
                value = call()
        except RuntimeError:
            if watchdog is not None and watchdog.halt_frame is not None:
                raise KMCHalt(watchdog.halt_frame, where) from None
            raise
        if watchdog is not None and watchdog.halt_frame is not None:
            raise KMCHalt(watchdog.halt_frame, where)
        return value

    # ------------------------------------------------------------------ public
    def relax(self, atoms: Atoms) -> tuple[Atoms, float]:
        matter = self._matter(atoms)
        relaxed, _converged = self._guarded("minimization", lambda: matter.relax(quiet=True))
        return self._atoms(relaxed, atoms), float(relaxed.potential_energy)

    def search(self, reactant: Atoms, energy: float,
               displacement: np.ndarray) -> SearchOutcome:
        eon = self.eon
        start = self._matter(reactant)
        start.positions = reactant.positions + displacement
        mode = displacement / np.linalg.norm(displacement)
        saddle_matter, status = self._guarded(
            "saddle search",
            lambda: eon.min_mode_saddle_search(start, mode, energy, self.params, self.potential,
                                               inplace=True))
        if status != eon.SaddleStatus.GOOD:
            return SearchOutcome(status=str(status).split(".")[-1].lower())
        barrier = float(saddle_matter.potential_energy) - energy
        if barrier <= 0 or barrier > self.settings.max_barrier:
            return SearchOutcome(status="barrier_out_of_range", barrier=barrier)
        saddle = self._atoms(saddle_matter, reactant)

        negative_mode = self._saddle_mode(saddle_matter, reactant, saddle, energy)
        outcome = relax_across_saddle(saddle, negative_mode, reactant, barrier, self.relax)
        if not outcome.good:
            return outcome
        assert outcome.product is not None
        prefactor = self._prefactor(reactant, saddle, outcome.product)
        if prefactor is None:
            return SearchOutcome(status="bad_prefactor", barrier=barrier)
        return replace(outcome, prefactor=prefactor)

    def _saddle_mode(self, saddle_matter: object, reactant: Atoms, saddle: Atoms,
                     energy: float) -> np.ndarray:
        """Unit lowest-curvature mode at a converged saddle.

        A min-mode search restarted at the saddle converges at once and exposes its
        eigenvector; the saddle -> reactant direction is the initial guess.
        """
        guess, _ = find_mic(reactant.positions - saddle.positions, reactant.cell, reactant.pbc)
        guess /= np.linalg.norm(guess)
        search = self.eon.MinModeSaddleSearch(saddle_matter, guess, energy, self.params,
                                              self.potential)
        self._guarded("saddle mode", search.run)
        mode = np.array(search.eigenvector, dtype=float).reshape(-1, 3)
        norm = np.linalg.norm(mode)
        return mode / norm if norm > 0 else guess

    def _prefactor(self, reactant: Atoms, saddle: Atoms, product: Atoms) -> float | None:
        """The setting's prefactor, or Vineyard's from the free atoms' Hessians."""
        if self.settings.prefactor != "computed":
            return float(self.settings.prefactor)
        key = reactant.positions.round(6).tobytes()
        if key not in self._minimum_modes:
            self._minimum_modes[key] = self._hessian_eigenvalues(reactant, "minimum")
        try:
            return vineyard_prefactor(self._minimum_modes[key],
                                      self._hessian_eigenvalues(saddle, "saddle"),
                                      self.zero_modes)
        except PrefactorError:
            return None

    def _hessian_eigenvalues(self, atoms: Atoms, where: str) -> np.ndarray:
        """Mass-weighted finite-difference Hessian eigenvalues (eOn), free atoms only."""
        matter = self._matter(atoms)
        free = np.flatnonzero(~fixed_mask(atoms)).astype(np.int64)
        started = time.time()
        try:
            hessian = self.eon.Hessian(self.params, matter)
            return np.array(self._guarded(f"prefactor (Hessian at the {where})",
                                          lambda: hessian.get_freqs(matter, free)))
        finally:  # eOn may dump these into the process's working directory: not ours
            for dump in map(Path, PREFACTOR_DUMPS):
                if dump.is_file() and dump.stat().st_mtime >= started - 1:
                    dump.unlink(missing_ok=True)

    def rate(self, barrier: float, prefactor: float) -> float:
        return htst_rate(barrier, prefactor, self.temperature)
