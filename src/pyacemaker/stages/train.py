"""Fitting ACE potentials with pacemaker: dataset, input.yaml, fit, .yace, active set.

Energy referencing (explicit, per element): the training target is

    energy_corrected = E_label - sum_i E_ref[species_i] - E_baseline

where ``E_ref`` are free-atom energies of the same oracle that labelled the data (so the
ACE energy of an isolated atom, which is zero, is physically right), and ``E_baseline``
is the explicit pair baseline of delta learning (zero otherwise). The reference energies
and the baseline are written next to the potential (``potential_meta.json``) and into
the :class:`~pyacemaker.state.PotentialRecord`; :func:`total_energy_calculator` adds both
back, so it reproduces the labels' absolute energies.

pacemaker runs as an external program in its own folder (``workdir``); a fit that ends
badly raises :class:`FitFailed` carrying the log tail, and never touches the previous
potential (each fit has its own folder; nothing is written anywhere else).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from dataclasses import dataclass
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from ase import Atoms
from ase.calculators.calculator import Calculator

from pyacemaker.config import BaselineSettings, TrainingSettings
from pyacemaker.datastore import DataStore
from pyacemaker.programs import Launch, ProgramResult, run_program
from pyacemaker.stages.baseline import PairBaseline, baseline_from_settings
from pyacemaker.state import PotentialRecord

POTENTIAL_YAML = "output_potential.yaml"
POTENTIAL_YACE = "output_potential.yace"
ACTIVE_SET = "output_potential.asi"
META_FILE = "potential_meta.json"
RECORD_FILE = "potential_record.json"
TRAIN_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}

# Text in pacemaker's output that tells why a fit died (first match wins).
FAILURE_SIGNATURES: tuple[tuple[str, str], ...] = (
    (r"ResourceExhaustedError|MemoryError|std::bad_alloc|Unable to allocate|OOM",
     "out of memory"),
    (r"pthread_create\(\) failed|Resource temporarily unavailable",
     "out of memory or threads (resource limit)"),
    (r"Loss:\s+(nan|inf)\b|is not finite|contains NaN", "non-finite (NaN/inf) loss"),
)


class FitFailed(RuntimeError):
    """A pacemaker fit did not produce a usable potential.

    ``reason`` is a short classification (``timed out``, ``killed by signal 9``,
    ``out of memory``, ``NaN loss`` ...), ``log_tail`` the last lines of pacemaker's log.
    """

    def __init__(self, reason: str, workdir: Path, log_tail: str):
        self.reason = reason
        self.workdir = Path(workdir)
        self.log_tail = log_tail
        super().__init__(
            f"pacemaker fit failed ({reason}) in {workdir}\n--- last lines of the log ---\n"
            f"{log_tail}"
        )

    def __reduce__(self) -> tuple[type[FitFailed], tuple[str, Path, str]]:
        return (FitFailed, (self.reason, self.workdir, self.log_tail))


# --------------------------------------------------------------------------- dataset


def free_atom_energies(calculator: Calculator, elements: list[str],
                       box: float = 20.0) -> dict[str, float]:
    """Energy of one isolated atom per element (a reference for ``energy_corrected``)."""
    energies = {}
    for element in elements:
        atom = Atoms(element, cell=[box, box, box], pbc=True, positions=[[box / 2] * 3])
        atom.calc = calculator
        energies[element] = float(atom.get_potential_energy())
    return energies


def training_frame(structures: list[Atoms], reference_energies: dict[str, float],
                   baseline: PairBaseline | None = None) -> Any:
    """The pandas DataFrame pacemaker reads, with energies referenced and baseline removed."""
    import pandas as pd

    records = []
    for index, atoms in enumerate(structures):
        if atoms.calc is None:
            raise ValueError(f"structure {index} ({atoms.get_chemical_formula()}) has no labels")
        missing = sorted(set(atoms.get_chemical_symbols()) - set(reference_energies))
        if missing:
            raise ValueError(
                f"structure {index}: no reference energy for element(s) {missing}; "
                f"reference_energies has {sorted(reference_energies)}"
            )
        energy = float(atoms.get_potential_energy())
        forces = np.array(atoms.get_forces(), dtype=float)
        if not (np.isfinite(energy) and np.isfinite(forces).all()):
            raise ValueError(f"structure {index} ({atoms.get_chemical_formula()}): "
                             "non-finite energy or forces in its labels")
        shift = sum(reference_energies[s] for s in atoms.get_chemical_symbols())
        base_energy = 0.0
        if baseline is not None:
            base_energy, base_forces = baseline.energy_and_forces(atoms)
            forces = forces - base_forces
        clean = atoms.copy()
        clean.calc = None
        records.append({
            "name": str(atoms.info.get("row_id", index)),
            "ase_atoms": clean,
            "energy": energy,
            "energy_corrected": energy - shift - base_energy,
            "forces": forces,
        })
    return pd.DataFrame.from_records(records)


def write_training_set(structures: list[Atoms], path: Path, reference_energies: dict[str, float],
                       baseline: PairBaseline | None = None) -> Path:
    """Write labelled ``structures`` as pacemaker's gzip-pickled DataFrame."""
    if not structures:
        raise ValueError(f"{path}: no labelled structures to write")
    frame = training_frame(structures, reference_energies, baseline)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_pickle(path, compression="gzip", protocol=4)
    return path.resolve()


def export_training_set(datastore: DataStore, path: Path, reference_energies: dict[str, float],
                        baseline: PairBaseline | None = None) -> Path:
    """All labelled structures of the data lake as a pacemaker dataset."""
    structures = datastore.atoms(status="labelled")
    if not structures:
        raise ValueError(f"{datastore.path}: no labelled structures to export")
    return write_training_set(structures, path, reference_energies, baseline)


def read_training_structures(dataset: Path) -> list[Atoms]:
    import pandas as pd

    try:
        frame = pd.read_pickle(dataset, compression="gzip")
    except Exception as exc:  # noqa: BLE001 - any unpickling problem means a bad file
        raise ValueError(f"{dataset}: not a readable pacemaker dataset: {exc}") from exc
    for column in ("ase_atoms", "forces", "energy_corrected"):
        if column not in frame.columns:
            raise ValueError(f"{dataset}: column {column!r} missing (has {list(frame.columns)})")
    if frame.empty:
        raise ValueError(f"{dataset}: the dataset has no structures")
    for position, (energy, forces) in enumerate(zip(frame["energy_corrected"], frame["forces"],
                                                    strict=True)):
        if not (np.isfinite(energy) and np.isfinite(np.asarray(forces, dtype=float)).all()):
            raise ValueError(f"{dataset}: row {position} has a non-finite energy or force")
    return list(frame["ase_atoms"])


def shortest_distance(structures: list[Atoms]) -> float:
    """Shortest interatomic distance over all structures (periodic images included)."""
    from ase.neighborlist import neighbor_list

    shortest = math.inf
    for atoms in structures:
        if len(atoms) == 0:
            continue
        d = neighbor_list("d", atoms, 4.0)
        if len(d):
            shortest = min(shortest, float(d.min()))
    return shortest


# --------------------------------------------------------------------------- input.yaml


def bond_keys(elements: list[str]) -> list[tuple[str, str]]:
    """Every unordered element pair, self-pairs included: Cu-Ni gives CuCu, CuNi, NiNi."""
    return list(combinations_with_replacement(sorted(elements), 2))


def pacemaker_input(elements: list[str], settings: TrainingSettings, dataset: str,
                    max_iterations: int, seed: int = 42) -> dict[str, Any]:
    """pacemaker's input.yaml as a dict. Every bond is listed explicitly."""
    cutoff = settings.cutoff
    bond = {"radbase": "SBessel", "radparameters": [5.25], "rcut": cutoff, "dcut": 0.01,
            "NameOfCutoffFunction": "cos"}
    bonds: dict[str, Any] = {}
    for a, b in bond_keys(elements):
        bonds[f"{a} {b}"] = dict(bond)
    baseline = settings.baseline
    if baseline.kind == "zbl_core" and baseline.inner_cutoff is not None:
        for spec in bonds.values():
            spec.update(r_in=baseline.inner_cutoff, delta_in=0.1, inner_cutoff_type="zbl",
                        **{"core-repulsion": [1.0, 1.0]})
    functions: dict[str, Any] = {
        "number_of_functions_per_element": settings.number_of_functions_per_element,
        "UNARY": {"nradmax_by_orders": [15, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]},
        "BINARY": {"nradmax_by_orders": [15, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]},
        "ALL": {"nradmax_by_orders": [15, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]},
    }
    fit: dict[str, Any] = {
        "loss": {"kappa": settings.kappa, "L1_coeffs": 1e-8, "L2_coeffs": 1e-8},
        "optimizer": "BFGS",
        "maxiter": max_iterations,
    }
    if baseline.kind == "zbl_core" and baseline.inner_cutoff is None:
        fit["repulsion"] = "auto"
    if settings.ladder_step:
        fit["ladder_step"] = settings.ladder_step
        fit["ladder_type"] = "power_order"
    data: dict[str, Any] = {"filename": dataset}
    if settings.test_fraction > 0:
        data["test_size"] = settings.test_fraction
    return {
        "cutoff": cutoff,
        "seed": seed,
        "metadata": {"origin": "pyacemaker"},
        "potential": {
            "deltaSplineBins": 0.001,
            "elements": sorted(elements),
            "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                                   "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
            "bonds": bonds,
            "functions": functions,
        },
        "data": data,
        "fit": fit,
        "backend": {"evaluator": "tensorpot", "batch_size": 100, "display_step": 50},
    }


# --------------------------------------------------------------------------- refit policy


@dataclass(frozen=True)
class RefitPlan:
    mode: Literal["full", "warm"]
    max_iterations: int
    initial_potential: Path | None
    reason: str


def plan_refit(iteration: int, previous: PotentialRecord | None, settings: TrainingSettings,
               last_full_refit: int | None) -> RefitPlan:
    """Warm start from the previous potential, or a full refit from scratch.

    Full when there is no previous potential, when ``full_refit_every`` iterations have
    passed since the last full fit, or when the previous potential file is gone.
    """
    full = settings.max_iterations
    if previous is None:
        return RefitPlan("full", full, None, "no previous potential")
    previous_yaml = Path(previous.yaml)
    if not previous_yaml.is_file():
        return RefitPlan("full", full, None, f"previous potential {previous_yaml} is missing")
    since = iteration - (last_full_refit if last_full_refit is not None else previous.iteration)
    if since >= settings.full_refit_every:
        return RefitPlan("full", full, None,
                         f"{since} iterations since the last full refit "
                         f"(full_refit_every={settings.full_refit_every})")
    return RefitPlan("warm", settings.warm_start_iterations, previous_yaml,
                     f"warm start from iteration {previous.iteration}")


# --------------------------------------------------------------------------- fitting


def fit_potential(dataset: Path, elements: list[str], settings: TrainingSettings, workdir: Path,
                  iteration: int = 0, initial_potential: Path | None = None,
                  launch: Launch | None = None, reference_energies: dict[str, float] | None = None,
                  max_iterations: int | None = None, executable: str = "pacemaker",
                  seed: int = 42) -> PotentialRecord:
    """Fit an ACE potential to ``dataset`` in ``workdir``; return its record.

    ``initial_potential`` (a B-basis yaml) warm-starts the fit: pacemaker continues from
    its coefficients for ``settings.warm_start_iterations`` (unless ``max_iterations``).
    ``reference_energies`` are those the dataset was referenced with; they are only
    recorded (the dataset already carries ``energy_corrected``). A finished fit in the
    same folder with identical inputs is reused, not redone.
    Raises :class:`FitFailed` when pacemaker fails, and ``ValueError`` for bad inputs.
    """
    dataset = Path(dataset).resolve()
    workdir = Path(workdir).resolve()
    if not dataset.is_file():
        raise ValueError(f"training dataset not found: {dataset}")
    structures = read_training_structures(dataset)
    present = sorted({s for atoms in structures for s in atoms.get_chemical_symbols()})
    unknown = sorted(set(present) - set(elements))
    if unknown:
        raise ValueError(f"{dataset}: element(s) {unknown} not in elements {sorted(elements)}")
    if initial_potential is not None:
        initial_potential = Path(initial_potential).resolve()
        if not initial_potential.is_file():
            raise ValueError(f"initial_potential not found: {initial_potential}")
    if max_iterations is None:
        max_iterations = (settings.warm_start_iterations if initial_potential
                          else settings.max_iterations)

    workdir.mkdir(parents=True, exist_ok=True)
    local_dataset = workdir / "train.pckl.gzip"
    if local_dataset != dataset:
        shutil.copyfile(dataset, local_dataset)
    config = pacemaker_input(elements, settings, local_dataset.name, max_iterations, seed)
    baseline = resolve_baseline(settings.baseline, elements, structures)
    argv = [executable, "input.yaml", "-o", POTENTIAL_YAML, "--no-predict"]
    if initial_potential is not None:
        local_initial = workdir / "initial_potential.yaml"
        shutil.copyfile(initial_potential, local_initial)
        argv += ["-p", local_initial.name]
    inputs_hash = _hash_inputs(local_dataset, config, argv)
    reused = _reuse_finished(workdir, inputs_hash)
    if reused is not None:
        return reused
    for stale in (POTENTIAL_YAML, POTENTIAL_YACE, ACTIVE_SET, RECORD_FILE, "metrics.txt",
                  "fitting_data_info.pckl.gzip", "test_data_info.pckl.gzip"):
        (workdir / stale).unlink(missing_ok=True)
    (workdir / "input.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    result = run_program(argv, workdir, timeout_s=settings.timeout_s, launch=launch,
                         env=TRAIN_ENV, check=False, log_name="pacemaker")
    _check_fit(result, workdir)
    potential = workdir / POTENTIAL_YAML
    run_program(["pace_yaml2yace", POTENTIAL_YAML, "-o", POTENTIAL_YACE], workdir,
                timeout_s=600, env=TRAIN_ENV, log_name="yaml2yace", check=True)
    build_active_set(potential, workdir / "fitting_data_info.pckl.gzip", workdir)

    metrics = fit_metrics(workdir)
    metrics["fit_time_s"] = result.duration_s
    metrics["n_structures"] = float(len(structures))
    meta = {
        "elements": sorted(elements),
        "cutoff": settings.cutoff,
        "reference_energies": reference_energies or {},
        "baseline": baseline.to_dict() if baseline else None,
        "mode": "warm" if initial_potential else "full",
        "initial_potential": str(initial_potential) if initial_potential else None,
    }
    (workdir / META_FILE).write_text(json.dumps(meta, indent=1))
    record = PotentialRecord(
        iteration=iteration,
        yaml=str(potential),
        yace=str(workdir / POTENTIAL_YACE),
        asi=str(workdir / ACTIVE_SET),
        metrics=metrics,
        elements=sorted(elements),
        cutoff=settings.cutoff,
        reference_energies=reference_energies or {},
        baseline=meta["baseline"],
        dataset=str(local_dataset),
        mode=meta["mode"],
        inputs_hash=inputs_hash,
    )
    (workdir / RECORD_FILE).write_text(record.model_dump_json(indent=1))
    return record


def resolve_baseline(settings: BaselineSettings, elements: list[str],
                     structures: list[Atoms]) -> PairBaseline | None:
    """The explicit pair baseline of delta learning with concrete parameters (or None)."""
    if settings.kind not in ("delta_zbl", "delta_lj"):
        return None
    return baseline_from_settings(settings, elements, shortest_distance(structures))


def build_active_set(potential_yaml: Path, fitting_data: Path, workdir: Path) -> Path:
    """``pace_activeset`` -> ``<potential>.asi`` (MaxVol over the fitting data's B-projections)."""
    if not fitting_data.is_file():
        raise FitFailed("no fitting_data_info.pckl.gzip for the active set", workdir, "")
    run_program(["pace_activeset", Path(potential_yaml).name, "-d", fitting_data.name], workdir,
                 timeout_s=1800, env=TRAIN_ENV, log_name="activeset", check=True)
    asi = Path(workdir) / (Path(potential_yaml).stem + ".asi")
    if not asi.is_file():
        raise FitFailed(f"pace_activeset wrote no {asi.name}", workdir,
                        (Path(workdir) / "stdout_activeset.txt").read_text()[-2000:])
    return asi


def fit_metrics(workdir: Path) -> dict[str, float]:
    """RMSEs of the fitted potential on pacemaker's own train/test split.

    pacemaker saves the split it used (``fitting_data_info`` / ``test_data_info``); the
    final potential is evaluated on them with pyace (pacemaker's ``--no-predict`` skips its
    slow plotting). Headline keys use the test set when there is one, else the train set.
    """
    import pandas as pd
    from pyace import PyACECalculator

    workdir = Path(workdir)
    calc = PyACECalculator(str(workdir / POTENTIAL_YAML))
    metrics: dict[str, float] = {}
    for split, name in (("train", "fitting_data_info.pckl.gzip"),
                        ("test", "test_data_info.pckl.gzip")):
        path = workdir / name
        if not path.is_file():
            continue
        frame = pd.read_pickle(path, compression="gzip")
        if frame.empty:
            continue
        energy_errors, force_errors = [], []
        for atoms, energy, forces in zip(frame["ase_atoms"], frame["energy_corrected"],
                                         frame["forces"], strict=True):
            work = atoms.copy()
            work.calc = calc
            energy_errors.append((work.get_potential_energy() - energy) / len(work))
            force_errors.append(work.get_forces() - np.asarray(forces))
        with np.errstate(over="ignore", invalid="ignore"):
            metrics[f"{split}_energy_rmse_mev_per_atom"] = float(
                1000 * np.sqrt(np.mean(np.square(energy_errors))))
            metrics[f"{split}_force_rmse_ev_per_a"] = float(
                np.sqrt(np.mean(np.square(np.concatenate(force_errors)))))
        metrics[f"{split}_size"] = float(len(frame))
    split = "test" if "test_energy_rmse_mev_per_atom" in metrics else "train"
    if f"{split}_energy_rmse_mev_per_atom" not in metrics:
        raise FitFailed("pacemaker saved no fitting data split", workdir, _log_tail(workdir))
    metrics["energy_rmse_mev_per_atom"] = metrics[f"{split}_energy_rmse_mev_per_atom"]
    metrics["force_rmse_ev_per_a"] = metrics[f"{split}_force_rmse_ev_per_a"]
    metrics["metrics_from_test_set"] = 1.0 if split == "test" else 0.0
    metrics["n_functions"] = float(count_functions(workdir / POTENTIAL_YAML))
    initial = initial_train_rmse(workdir)
    if initial is not None:
        metrics["initial_train_energy_rmse_mev_per_atom"] = initial
    for key in ("energy_rmse_mev_per_atom", "force_rmse_ev_per_a"):
        if not math.isfinite(metrics[key]):
            raise FitFailed(f"non-finite (NaN/inf) loss: {key} is {metrics[key]}", workdir,
                            _log_tail(workdir))
    return metrics


def initial_train_rmse(workdir: Path) -> float | None:
    """Train energy RMSE (meV/atom) before the first optimizer step, from metrics.txt.

    Shows what a warm start saves: it starts near the previous fit's error.
    """
    path = workdir / "metrics.txt"
    if not path.is_file():
        return None
    lines = path.read_text().split("\n")
    if len(lines) < 2:
        return None
    header, first = lines[0].split(), lines[1].split()
    if "rmse_epa" not in header or len(first) != len(header):
        return None
    return 1000 * float(first[header.index("rmse_epa")])


def count_functions(potential_yaml: Path) -> int:
    from pyace import BBasisConfiguration

    return int(BBasisConfiguration(str(potential_yaml)).total_number_of_functions)


def load_record(workdir: Path) -> PotentialRecord:
    path = Path(workdir) / RECORD_FILE
    try:
        return PotentialRecord.model_validate_json(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable potential record: {exc}") from exc


def _reuse_finished(workdir: Path, inputs_hash: str) -> PotentialRecord | None:
    path = workdir / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = load_record(workdir)
    except ValueError:
        return None
    files = [record.yaml, record.yace, record.asi]
    if getattr(record, "inputs_hash", None) == inputs_hash and all(
            f and Path(f).is_file() for f in files):
        return record
    return None


def _hash_inputs(dataset: Path, config: dict[str, Any], argv: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(dataset.read_bytes())
    digest.update(json.dumps(config, sort_keys=True).encode())
    digest.update(json.dumps(argv).encode())
    if "-p" in argv:
        digest.update((dataset.parent / argv[argv.index("-p") + 1]).read_bytes())
    return digest.hexdigest()[:24]


def _log_tail(workdir: Path, lines: int = 30) -> str:
    for name in ("log.txt", "stderr_pacemaker.txt", "stdout_pacemaker.txt"):
        path = workdir / name
        if path.is_file() and path.stat().st_size:
            text = path.read_text(errors="replace").strip().splitlines()
            return "\n".join(text[-lines:])
    return "(no log written)"


def _as_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _check_fit(result: ProgramResult, workdir: Path) -> None:
    """Raise FitFailed unless pacemaker ended well and wrote a finite potential."""
    tail = _log_tail(workdir)
    output = workdir / POTENTIAL_YAML
    if result.ok and output.is_file():
        if re.search(r"\b(nan|inf)\b", output.read_text(), flags=re.IGNORECASE):
            raise FitFailed("non-finite (NaN/inf) coefficients in the potential", workdir, tail)
        losses = re.findall(r"Loss:\s+(?:Total:\s+)?([-+.\w]+)", _log_tail(workdir, 10**6))
        if losses and not math.isfinite(_as_float(losses[-1])):
            raise FitFailed(f"non-finite (NaN/inf) loss: final loss {losses[-1]}", workdir, tail)
        return
    if result.timed_out:
        reason = f"timed out after {result.duration_s:.0f} s"
    elif result.signal is not None:
        reason = f"killed by signal {result.signal}"
        if result.signal == 9:
            reason += " (out of memory or killed by the scheduler)"
    elif result.returncode != 0:
        reason = f"exit status {result.returncode}"
    else:
        reason = f"no {POTENTIAL_YAML} written"
    stderr_tail = result.tail(40)
    for pattern, label in FAILURE_SIGNATURES:
        if re.search(pattern, tail + "\n" + stderr_tail):
            reason += f", {label}"
            break
    raise FitFailed(reason, workdir, tail + "\n--- stderr ---\n" + "\n".join(
        stderr_tail.splitlines()[-15:]))


# --------------------------------------------------------------------------- deployment


def total_energy_calculator(record: PotentialRecord) -> Calculator:
    """ASE calculator of the absolute energy: ACE + explicit baseline + reference energies."""
    from ase.calculators.mixing import SumCalculator
    from pyace import PyACECalculator

    from pyacemaker.stages.baseline import ReferenceEnergyCalculator, baseline_from_dict

    parts: list[Calculator] = [PyACECalculator(record.yaml)]
    baseline = getattr(record, "baseline", None)
    if baseline:
        parts.append(baseline_from_dict(baseline).calculator())
    references = getattr(record, "reference_energies", None) or {}
    if references:
        parts.append(ReferenceEnergyCalculator(references))
    return parts[0] if len(parts) == 1 else SumCalculator(parts)
