"""Running pacemaker: fit, .yace, active set, failure classification (outputs.py: file
names, FitFailed, metrics).

pacemaker runs as an external program in its own folder (``workdir``); a fit that ends
badly raises :class:`FitFailed` carrying the log tail, and never touches the previous
potential (each fit has its own folder; nothing is written anywhere else).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from pyacemaker.config import TrainingSettings
from pyacemaker.programs import Launch, ProgramFailed, ProgramResult, run_program
from pyacemaker.stages.baseline import PairBaseline
from pyacemaker.stages.train.dataset import (dataset_meta_path, inner_core_radii,
                                             read_dataset_meta, read_training_structures,
                                             resolve_baseline, split_test_set,
                                             stage_training_set)
from pyacemaker.stages.train.inputs import Bond, bond_keys, pacemaker_input
from pyacemaker.stages.train.restart import continue_fit
from pyacemaker.stages.train.outputs import (ACTIVE_SET, META_FILE, POTENTIAL_YACE,
                                             POTENTIAL_YAML, RECORD_FILE, FitFailed,
                                             fit_metrics, log_tail)
from pyacemaker.state import PotentialRecord, located_record, relative_record

SPLIT_TRAIN, SPLIT_TEST = "fit_train.pckl.gzip", "test.pckl.gzip"  # split_test_set's files
TRAIN_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1"}

# Text in pacemaker's output that tells why a fit died (first match wins).
FAILURE_SIGNATURES: tuple[tuple[str, str], ...] = (
    (r"ResourceExhaustedError|MemoryError|std::bad_alloc|Unable to allocate|OOM",
     "out of memory"),
    (r"pthread_create\(\) failed|Resource temporarily unavailable",
     "out of memory or threads (resource limit)"),
    (r"Loss:\s+(nan|inf)\b|is not finite|contains NaN", "non-finite (NaN/inf) loss"),
)


def fit_potential(dataset: Path, elements: list[str], settings: TrainingSettings, workdir: Path,
                  iteration: int = 0, initial_potential: Path | None = None,
                  launch: Launch | None = None, reference_energies: dict[str, float] | None = None,
                  max_iterations: int | None = None, executable: str = "pacemaker",
                  seed: int = 42) -> PotentialRecord:
    """Fit an ACE potential to ``dataset`` in ``workdir``; return its record.

    ``initial_potential`` (a B-basis yaml) warm-starts the fit: pacemaker continues from
    its coefficients for ``settings.warm_start_iterations`` (unless ``max_iterations``).
    ``reference_energies`` are those the dataset was referenced with (default: read from
    the dataset's ``.meta.json``); they are recorded, the dataset already carries
    ``energy_corrected``. ``executable`` is the site's pacemaker (programs.pacemaker).
    A finished fit in the same folder with identical inputs is reused, not redone.
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

    baseline = resolve_baseline(settings.baseline, elements, structures)
    reference_energies = _check_dataset_meta(dataset, baseline, reference_energies)
    workdir.mkdir(parents=True, exist_ok=True)
    local_dataset = workdir / "train.pckl.gzip"
    excluded = stage_training_set(dataset, local_dataset, settings.max_force_ev_per_a)
    radii = _core_radii(settings, elements, read_training_structures(local_dataset))
    fit_dataset, test_dataset = local_dataset.name, None
    if settings.test_fraction > 0 and split_test_set(
            local_dataset, workdir / SPLIT_TRAIN, workdir / SPLIT_TEST,
            settings.test_fraction, seed) > 0:  # pacemaker fails on an empty test set
        fit_dataset, test_dataset = SPLIT_TRAIN, SPLIT_TEST
    config = pacemaker_input(elements, settings, fit_dataset, max_iterations, seed,
                             inner_radii=radii, test_dataset=test_dataset)
    argv = [executable, "input.yaml", "-o", POTENTIAL_YAML, "--no-predict"]
    if initial_potential is not None:
        local_initial = workdir / "initial_potential.yaml"
        shutil.copyfile(initial_potential, local_initial)
        if radii:
            set_core_radii(local_initial, radii)
        argv += ["-p", local_initial.name]
    # the source file and the force filter, not the filtered copy: pickling the same frame
    # again need not give the same bytes (measured: 14137 vs 14103), and a finished fit
    # must be recognised
    inputs_hash = _hash_inputs(dataset, workdir, config,
                               [*argv, f"max_force={settings.max_force_ev_per_a}"])
    reused = _reuse_finished(workdir, inputs_hash)
    if reused is not None:
        return reused
    for stale in (POTENTIAL_YAML, POTENTIAL_YACE, ACTIVE_SET, RECORD_FILE, "metrics.txt",
                  "fitting_data_info.pckl.gzip", "test_data_info.pckl.gzip"):
        (workdir / stale).unlink(missing_ok=True)
    for stale in workdir.glob("continue_*"):
        shutil.rmtree(stale)
    (workdir / "input.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    deadline = time.monotonic() + settings.timeout_s  # continuations share the budget

    def run_pacemaker(arguments: list[str], folder: Path) -> float:
        left = deadline - time.monotonic()
        if left < 1:
            raise FitFailed(f"no time left of training.timeout_s={settings.timeout_s:g} s",
                            folder, "")
        result = run_program([executable, *arguments], folder, timeout_s=left,
                             launch=launch, env=TRAIN_ENV, check=False, log_name="pacemaker")
        _check_fit(result, folder)
        return result.duration_s

    fit_time = run_pacemaker(argv[1:], workdir)
    continued = continue_fit(workdir, config, max_iterations, settings.fit_restarts,
                             run_pacemaker)
    potential = workdir / POTENTIAL_YAML
    # pacemaker's helpers run where pacemaker ran (its container), as serial programs
    tools = launch.with_ranks(1) if launch is not None else None
    write_yace(workdir, launch=tools)
    build_active_set(potential, workdir / "fitting_data_info.pckl.gzip", workdir, launch=tools)

    metrics = fit_metrics(workdir)
    metrics["fit_time_s"] = fit_time + continued.pop("continuation_time_s")
    metrics.update(continued)
    metrics["n_structures"] = float(len(structures))
    metrics["n_excluded_max_force"] = float(len(excluded))
    # pacemaker's weighting leaves out structures above DEup: what neither split holds
    fitted = metrics.get("train_size", 0.0) + metrics.get("test_size", 0.0)
    metrics["n_excluded_by_weighting"] = float(len(structures) - len(excluded) - fitted)
    meta = {
        "elements": sorted(elements),
        "cutoff": settings.cutoff,
        "reference_energies": reference_energies or {},
        "baseline": baseline.to_dict() if baseline else None,
        "mode": "warm" if initial_potential else "full",
        # relative to the fit folder: stays right when the campaign folder moves
        "initial_potential": os.path.relpath(initial_potential, workdir)
        if initial_potential else None,
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
    # paths relative to the fit folder: the record stays right when the folder moves
    (workdir / RECORD_FILE).write_text(relative_record(record, workdir).model_dump_json(indent=1))
    return record


def _core_radii(settings: TrainingSettings, elements: list[str],
                structures: list[Any]) -> dict[Bond, float]:
    """ZBL core radii from every structure of the fit (zbl_core without inner_cutoff).

    pacemaker's own ``repulsion: auto`` takes the train split's shortest distance after the
    fit, so a test-split structure only slightly closer falls onto the ZBL wall (seen:
    580 meV/atom, 43 eV/A errors on a hot-MD frame 0.07 A closer than the train split), and
    a warm start keeps the previous data's r_in while fitting new, closer pairs.
    """
    baseline = settings.baseline
    if baseline.kind == "zbl_core":
        if baseline.inner_cutoff is not None:
            return {bond: baseline.inner_cutoff for bond in bond_keys(elements)}
        return inner_core_radii(structures, elements, baseline.inner_cutoff_margin)
    return {}


def set_core_radii(potential_yaml: Path, radii: dict[Bond, float]) -> None:
    """Move the ZBL core of a B-basis potential to ``radii`` (warm starts keep the data's r_in)."""
    from pyace import BBasisConfiguration

    config = BBasisConfiguration(str(potential_yaml))
    for block in config.funcspecs_blocks:
        species = sorted(block.elements_vec)
        bond = (species[0], species[-1])
        if len(set(species)) <= 2 and bond in radii:
            block.r_in = radii[bond]
            block.delta_in = 0.1
            block.inner_cutoff_type = "zbl"
            block.core_rep_parameters = [1.0, 1.0]
    config.save(str(potential_yaml))


def _check_dataset_meta(dataset: Path, baseline: PairBaseline | None,
                        reference_energies: dict[str, float] | None) -> dict[str, float]:
    """The dataset must have been written with the baseline the settings ask for."""
    meta = read_dataset_meta(dataset)
    written = meta.get("baseline") if meta else None
    wanted = baseline.to_dict() if baseline else None
    if meta is None and wanted is not None:
        raise ValueError(f"{dataset}: training.baseline.kind={baseline and baseline.kind!r} needs "
                         "a dataset written by write_training_set with that baseline "
                         f"(no {dataset_meta_path(dataset).name})")
    if meta is not None and written != wanted:
        raise ValueError(f"{dataset}: written with baseline {written}, but the training "
                         f"settings give {wanted}; re-export the dataset")
    recorded = dict(meta.get("reference_energies") or {}) if meta else {}
    if reference_energies is not None and recorded and reference_energies != recorded:
        raise ValueError(f"{dataset}: written with reference energies {recorded}, "
                         f"not {reference_energies}")
    return reference_energies if reference_energies is not None else recorded


def write_yace(workdir: Path, launch: Launch | None = None) -> Path:
    """``pace_yaml2yace``: the fitted potential as the .yace LAMMPS and pyace read."""
    run_program(["pace_yaml2yace", POTENTIAL_YAML, "-o", POTENTIAL_YACE], workdir,
                timeout_s=600, env=TRAIN_ENV, log_name="yaml2yace", check=True, launch=launch)
    return Path(workdir) / POTENTIAL_YACE


def build_active_set(potential_yaml: Path, fitting_data: Path, workdir: Path,
                     launch: Launch | None = None) -> Path:
    """``pace_activeset`` -> ``<potential>.asi`` (MaxVol over the fitting data's B-projections),
    with ``launch`` (the pacemaker image on a container site)."""
    if not fitting_data.is_file():
        raise FitFailed("no fitting_data_info.pckl.gzip for the active set", workdir, "")
    argv = ["pace_activeset", Path(potential_yaml).name, "-d", fitting_data.name]
    result = run_program(argv, workdir, timeout_s=1800, env=TRAIN_ENV, log_name="activeset",
                         check=False, launch=launch)
    if not result.ok and "Insufficient atomic environments" in result.stderr():
        # pace_activeset leaves out the atoms with the largest force errors; a small
        # training set needs every atom to reach one environment per basis function
        result = run_program(argv + ["--all-atoms"], workdir, timeout_s=1800, env=TRAIN_ENV,
                             log_name="activeset", check=False, launch=launch)
        if not result.ok and "Insufficient atomic environments" in result.stderr():
            raise FitFailed(
                "too few atomic environments for the active set: the training set has fewer "
                "atoms per element than the basis has functions. Label more (or larger) "
                "structures (active_learning.initial_structures) or lower "
                "training.number_of_functions_per_element", workdir, result.tail())
    if not result.ok:
        raise ProgramFailed(result)
    asi = Path(workdir) / (Path(potential_yaml).stem + ".asi")
    if not asi.is_file():
        raise FitFailed(f"pace_activeset wrote no {asi.name}", workdir,
                        (Path(workdir) / "stdout_activeset.txt").read_text()[-2000:])
    return asi


def load_record(workdir: Path) -> PotentialRecord:
    path = Path(workdir) / RECORD_FILE
    try:
        record = PotentialRecord.model_validate_json(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable potential record: {exc}") from exc
    return located_record(record, workdir)  # absolute, in the folder it is in now


def _reuse_finished(workdir: Path, inputs_hash: str) -> PotentialRecord | None:
    path = workdir / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = load_record(workdir)
    except ValueError:
        return None
    files = [record.yaml, record.yace, record.asi]
    if record.inputs_hash == inputs_hash and all(
            f and Path(f).is_file() for f in files):
        return record
    return None


def _hash_inputs(dataset: Path, workdir: Path, config: dict[str, Any], argv: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(dataset.read_bytes())
    digest.update(json.dumps(config, sort_keys=True).encode())
    digest.update(json.dumps(argv).encode())
    if "-p" in argv:
        digest.update((workdir / argv[argv.index("-p") + 1]).read_bytes())
    return digest.hexdigest()[:24]


def _all_finite(node: Any) -> bool:
    if isinstance(node, dict):
        return all(_all_finite(v) for v in node.values())
    if isinstance(node, list):
        return all(_all_finite(v) for v in node)
    if isinstance(node, float):
        return math.isfinite(node)
    return True


def _as_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _check_fit(result: ProgramResult, workdir: Path) -> None:
    """Raise FitFailed unless pacemaker ended well and wrote a finite potential."""
    tail = log_tail(workdir)
    output = workdir / POTENTIAL_YAML
    if result.ok and output.is_file():
        losses = re.findall(r"Loss:\s+(?:Total:\s+)?([-+.\w]+)", log_tail(workdir, 10**6))
        if losses and not math.isfinite(_as_float(losses[-1])):
            raise FitFailed(f"non-finite (NaN/inf) loss: final loss {losses[-1]}", workdir, tail)
        if not _all_finite(yaml.safe_load(output.read_text()).get("species", [])):
            raise FitFailed("non-finite (NaN/inf) coefficients in the potential", workdir, tail)
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
