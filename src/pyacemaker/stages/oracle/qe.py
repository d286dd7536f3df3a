"""Quantum ESPRESSO (pw.x) as the oracle: input, run, parse, heal.

One structure is labelled in its own folder::

    <workdir>/pseudo/            copies of the intended pseudopotentials (checked by sha256)
    <workdir>/scratch/           pw.x's outdir, shared by the attempts (restarts read it)
    <workdir>/attempt_01_initial/pw.in, stdout.txt, stderr.txt, result.json
    <workdir>/attempt_02_reduce_mixing/ ...

The scratch folder (wave functions) is deleted once the structure is settled.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io.espresso import write_espresso_in

from pyacemaker.config import DFTSettings
from pyacemaker.datastore import labelled_copy
from pyacemaker.programs import Launch, ProgramResult, run_program
from pyacemaker.stages.oracle.base import LabelOutcome, OracleConfigError, geometry_problem
from pyacemaker.stages.oracle.cost import CostEstimate, estimate
from pyacemaker.stages.oracle.healing import Healer, magnetic_ordering_problem
from pyacemaker.stages.oracle.outcome import Classification, PwOutput, classify
from pyacemaker.stages.oracle.parameters import (
    RunParameters,
    default_parameters,
    starting_moments,
)
from pyacemaker.stages.oracle.pseudo import (
    PseudoChoice,
    check_functionals,
    pseudo_mismatch,
    resolve_pseudopotential,
    sha256_of,
)

log = logging.getLogger(__name__)
PREFIX = "pwscf"
_VERSION = re.compile(r"Program PWSCF (v\.\S+)")


class PseudoMismatchError(OracleConfigError):
    """pw.x read a pseudopotential other than the intended one."""


@dataclass
class PwRun:
    """One pw.x run of one structure: what went in and what came out."""

    params: RunParameters
    folder: Path
    result: ProgramResult
    output: PwOutput
    classification: Classification
    version: str = "unknown"


def write_pw_input(path: Path, atoms: Atoms, params: RunParameters,
                   pseudos: dict[str, PseudoChoice], pseudo_dir: Path, outdir: Path,
                   moments: np.ndarray | None,
                   extra: dict[str, dict[str, Any]] | None = None) -> None:
    """pw.x input for an SCF with forces and stress, from an ASE Atoms. ``extra`` adds or
    overrides namelist keys (``{"electrons": {...}}``)."""
    calc_atoms = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions,
                       cell=atoms.cell, pbc=True)
    system: dict[str, Any] = {
        "ecutwfc": params.ecutwfc, "ecutrho": params.ecutrho,
        "occupations": "smearing", "smearing": params.smearing, "degauss": params.degauss,
    }
    if params.spin:
        system["nspin"] = 2
        moments = np.zeros(len(atoms)) if moments is None else moments
        if not np.any(moments):
            moments = np.full(len(atoms), 0.5)
        # pw.x 6.7 wants the starting magnetization as a fraction of the valence charge
        fractions = [np.clip(m / (pseudos[s].z_valence or 10.0), -1.0, 1.0)
                     for s, m in zip(calc_atoms.get_chemical_symbols(), moments)]
        calc_atoms.set_initial_magnetic_moments(np.round(fractions, 4))
    electrons: dict[str, Any] = {
        "conv_thr": params.conv_thr, "mixing_beta": params.mixing_beta,
        "mixing_mode": params.mixing_mode, "electron_maxstep": params.electron_maxstep,
        "diagonalization": params.diagonalization, "startingpot": params.startingpot,
    }
    if params.restart:  # pw.x resumes its own saved state; a starting potential would spoil it
        del electrons["startingpot"]
    control = {
        "calculation": "scf", "tprnfor": True, "tstress": True, "prefix": PREFIX,
        "pseudo_dir": str(pseudo_dir), "outdir": str(outdir),
        "restart_mode": "restart" if params.restart else "from_scratch",
        "max_seconds": params.max_seconds, "disk_io": "low",
    }
    namelists = {"control": control, "system": system, "electrons": electrons}
    for name, keys in (extra or {}).items():
        namelists.setdefault(name, {}).update(keys)
    kpts = None if params.kpts == (1, 1, 1) and len(atoms) > 16 else params.kpts
    with open(path, "w") as handle:
        write_espresso_in(handle, calc_atoms, input_data=namelists,
                          pseudopotentials={s: pseudos[s].path.name for s in pseudos},
                          kpts=kpts)


def k_pools(params: RunParameters) -> int:
    """k-point pools: one per rank when there are at least as many k-points as ranks."""
    nk = int(np.prod(params.kpts))
    return params.ranks if params.ranks > 1 and nk >= params.ranks else 1


@dataclass
class QEOracle:
    """Labels structures with pw.x, healing failed runs; see the module docstring."""

    settings: DFTSettings
    elements: list[str]
    pw_command: str = "pw.x"
    name: str = "qe"
    pseudos: dict[str, PseudoChoice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for element in self.elements:
            self.pseudos[element] = self._resolve(element)
        check_functionals(list(self.pseudos.values()))

    def _resolve(self, element: str) -> PseudoChoice:
        return resolve_pseudopotential(element, self.settings.pseudopotentials,
                                       self.settings.pseudo_dir)

    # ------------------------------------------------------------------ public
    def label(self, atoms: Atoms, workdir: Path, launch: Launch | None = None) -> LabelOutcome:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        problem = geometry_problem(atoms, self.settings.min_interatomic_distance)
        if problem is None and abs(atoms.cell.volume) < 1e-6:
            problem = ("bad_input: no cell; pw.x needs a periodic box (embed a cluster with "
                       "stages.oracle.embedding first)")
        if problem:
            return LabelOutcome("quarantined", None, problem, [], self.provenance({}, None))
        symbols = sorted(set(atoms.get_chemical_symbols()))
        try:
            pseudos = self._pseudos_for(symbols)
        except OracleConfigError as exc:
            if set(symbols) <= set(self.elements):
                raise
            return LabelOutcome("quarantined", None, f"bad_input: {exc}", [],
                                self.provenance({}, None))
        pseudo_dir = self._stage_pseudos(workdir, pseudos)
        launch = launch or Launch()
        ranks = launch.mpi_ranks if launch.mpi_launcher != "none" else 1
        params = default_parameters(atoms, self.settings, pseudos, ranks)
        moments = starting_moments(atoms, self.settings) if params.spin else None
        healer = Healer(list(self.settings.healing_strategies), self.settings.max_healing_attempts)
        attempts: list[dict[str, Any]] = []
        strategy = "initial"
        try:
            while True:
                run = self._run(atoms, params, pseudos, pseudo_dir, workdir,
                                len(attempts) + 1, strategy, launch, moments)
                attempts.append(self._attempt_record(len(attempts) + 1, strategy, run))
                if run.classification.outcome == "converged":
                    return self._converged(atoms, run, attempts, pseudos)
                scratch = workdir / "scratch" / f"{PREFIX}.save"
                step = healer.next_run(
                    params, run.classification,
                    density_saved=(scratch / "charge-density.dat").is_file(),
                    restart_saved=run.classification.outcome == "walltime"
                    and (scratch / "data-file-schema.xml").is_file(),
                    scf_error=run.output.scf_accuracy_ry)
                if step is None:
                    return LabelOutcome("quarantined", None, self._give_up_reason(
                        run, healer, attempts), attempts, self.provenance(pseudos, run))
                strategy, params = step
                log.info("%s: %s (%s); retrying with %s", workdir, run.classification.outcome,
                         run.classification.detail, strategy)
        finally:
            shutil.rmtree(workdir / "scratch", ignore_errors=True)

    def estimate_cost(self, structures: Sequence[Atoms],
                      done: Sequence[tuple[Atoms, float]] = ()) -> CostEstimate:
        # relative units: any fixed cutoff gives the same calibrated seconds
        return estimate(structures, self.settings.kspacing, self.settings.ecutwfc or 40.0, done)

    def provenance(self, pseudos: dict[str, PseudoChoice], run: PwRun | None) -> dict[str, Any]:
        return {
            "name": "qe",
            "method": "DFT (Quantum ESPRESSO pw.x)",
            "program": self.pw_command,
            "version": run.version if run else "unknown",
            "settings": run.params.summary() if run else {},
            "pseudopotentials": {s: c.record() for s, c in sorted(pseudos.items())},
        }

    # ------------------------------------------------------------------ steps
    def _pseudos_for(self, symbols: list[str]) -> dict[str, PseudoChoice]:
        pseudos = {}
        for symbol in symbols:
            choice = self.pseudos.get(symbol) or self._resolve(symbol)
            if not choice.path.is_file():
                raise OracleConfigError(
                    f"pseudopotential for {symbol} disappeared: {choice.path} not found")
            pseudos[symbol] = choice
        check_functionals(list(pseudos.values()))
        return pseudos

    @staticmethod
    def _stage_pseudos(workdir: Path, pseudos: dict[str, PseudoChoice]) -> Path:
        """Copies next to the run (also visible inside a container), verified by checksum."""
        folder = workdir / "pseudo"
        folder.mkdir(exist_ok=True)
        for choice in pseudos.values():
            target = folder / choice.path.name
            if not target.is_file() or sha256_of(target) != choice.sha256:
                shutil.copyfile(choice.path, target)
        return folder.resolve()

    def _run(self, atoms: Atoms, params: RunParameters, pseudos: dict[str, PseudoChoice],
             pseudo_dir: Path, workdir: Path, number: int, strategy: str, launch: Launch,
             moments: np.ndarray | None) -> PwRun:
        folder = workdir / f"attempt_{number:02d}_{strategy}"
        folder.mkdir(parents=True, exist_ok=True)
        outdir = (workdir / "scratch").resolve()
        outdir.mkdir(exist_ok=True)
        write_pw_input(folder / "pw.in", atoms, params, pseudos, pseudo_dir, outdir, moments)
        argv = [self.pw_command, "-nk", str(k_pools(params)), "-in", "pw.in"]
        if params.ranks <= 1:
            launch = launch.with_ranks(1)
        else:
            launch = launch.with_ranks(params.ranks)
        result = run_program(argv, folder, timeout_s=self.settings.timeout_s, launch=launch,
                             check=False)
        text = result.stdout()
        if result.returncode == 127 and "cannot start" in result.stderr():
            raise OracleConfigError(f"programs.pw: cannot start {self.pw_command!r} "
                                    f"({result.stderr().strip()}); see {folder}")
        output = PwOutput.parse(text, len(atoms))
        classification = classify(result, output, params.conv_thr, self.settings.max_force)
        if output.pseudo_files:
            mismatch = pseudo_mismatch(output.pseudo_files, list(pseudos.values()), folder)
            if mismatch:
                raise PseudoMismatchError(f"{folder}: {mismatch}")
        if classification.outcome == "converged" and moments is not None:
            flip = magnetic_ordering_problem(moments, output.magmoms)
            if flip:
                classification = Classification("scf_not_converged", flip)
        version = _VERSION.search(text)
        return PwRun(params, folder, result, output, classification,
                     version.group(1) if version else "unknown")

    @staticmethod
    def _attempt_record(number: int, strategy: str, run: PwRun) -> dict[str, Any]:
        p = run.params
        return {
            "attempt": number, "strategy": strategy, "outcome": run.classification.outcome,
            "detail": run.classification.detail, "folder": run.folder.name,
            "duration_s": round(run.result.duration_s, 2), "returncode": run.result.returncode,
            "scf_iterations": run.output.scf_iterations,
            "scf_accuracy_ry": run.output.scf_accuracy_ry,
            "parameters": {
                "mixing_beta": p.mixing_beta, "mixing_mode": p.mixing_mode,
                "electron_maxstep": p.electron_maxstep, "smearing": p.smearing,
                "degauss": p.degauss, "diagonalization": p.diagonalization,
                "startingpot": p.startingpot, "restart": p.restart, "ranks": p.ranks,
                "kpts": list(p.kpts), "ecutwfc": p.ecutwfc, "ecutrho": p.ecutrho,
                "spin": p.spin,
            },
            "magmoms": None if run.output.magmoms is None
            else np.round(run.output.magmoms, 3).tolist(),
        }

    def _converged(self, atoms: Atoms, run: PwRun, attempts: list[dict[str, Any]],
                   pseudos: dict[str, PseudoChoice]) -> LabelOutcome:
        out = run.output
        assert out.energy is not None and out.forces is not None
        extra: dict[str, Any] = {}
        if out.magmoms is not None:
            extra["magmoms"] = out.magmoms
        # A cluster in vacuum (embedding) has no meaningful stress.
        stress = out.stress if "core_mask" not in atoms.info else None
        labelled = labelled_copy(atoms, out.energy, out.forces, stress, **extra)
        healed = len(attempts) > 1
        reason = (f"converged after healing ({', '.join(a['strategy'] for a in attempts[1:])})"
                  if healed else "converged")
        return LabelOutcome("converged", labelled, reason, attempts,
                            self.provenance(pseudos, run))

    @staticmethod
    def _give_up_reason(run: PwRun, healer: Healer, attempts: list[dict[str, Any]]) -> str:
        c = run.classification
        if not c.recoverable:
            why = "not recoverable"
        elif healer.exhausted:
            why = f"healing budget of {healer.budget} retries spent"
        else:
            why = "no healing strategy left for this failure"
        tried = ", ".join(a["strategy"] for a in attempts)
        return f"{c.outcome}: {c.detail} ({why}; attempts: {tried})"
