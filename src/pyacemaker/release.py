"""Glue used by the CLI and the campaign loop: validate, report and package a campaign.

A campaign folder holds ``state.json`` (WorkflowState), ``data.db`` (DataStore),
``iter_NNN/`` folders and optionally ``monitoring.db``. This module reads them, calls
the science in :mod:`pyacemaker.stages.validate`, :mod:`pyacemaker.stages.report` and
:mod:`pyacemaker.stages.package`, and writes:

    <campaign>/validation/iter_NNN.json   one ValidationReport per validated potential
    <campaign>/validation/validation.json the latest one (what report and package use)
    <campaign>/report.html
    dist/<name>-<version>/ and dist/<name>-<version>.zip
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pandas as pd
from ase import Atoms
from ase.calculators.calculator import Calculator

from pyacemaker.config import CampaignConfig, ConfigError, load_campaign
from pyacemaker.datastore import DataStore, structure_fingerprint
from pyacemaker.state import (
    PotentialRecord,
    StateError,
    WorkflowState,
    atomic_write_text,
    load_state,
    relative_path,
)
from pyacemaker.stages.validate import VALIDATION_FILE, ValidationReport, validate_potential
from pyacemaker.stages.validate.crystal import CalculatorFactory, validation_crystals
from pyacemaker.stages.validate.reference import CrystalReference, cached_references

log = logging.getLogger(__name__)
DATASTORE_FILE = "data.db"
VALIDATION_DIR = "validation"
REPORT_FILE = "report.html"
CONFIG_NAMES = ("campaign.yaml", "config.yaml")


class ReleaseError(StateError):
    """The campaign folder lacks what validate/report/package needs; says what and where."""


def resolve_path(workdir: Path, path: str | None) -> Path | None:
    if not path:
        return None
    candidate = Path(path)
    return candidate if candidate.is_absolute() else Path(workdir) / candidate


def campaign_state(workdir: Path) -> WorkflowState:
    state = load_state(Path(workdir))
    if state is None:
        raise ReleaseError(f"{workdir}: no campaign here (no state.json)")
    return state


def current_potential(state: WorkflowState, workdir: Path) -> PotentialRecord:
    record = state.potential or (state.potentials[-1] if state.potentials else None)
    if record is None:
        raise ReleaseError(f"{workdir / 'state.json'}: no fitted potential recorded yet")
    for field in ("yaml", "yace", "asi"):
        path = resolve_path(workdir, getattr(record, field))
        if field == "yaml" and (path is None or not path.is_file()):
            raise ReleaseError(f"{workdir / 'state.json'}: potential.{field}: file not found: "
                               f"{path}")
    return record


def campaign_config(workdir: Path, config_path: Path | None = None,
                    record: PotentialRecord | None = None) -> CampaignConfig:
    """The campaign's config: the given file, a copy in the folder, or defaults for the
    elements of the potential (validation thresholds then take their defaults). A file
    whose physics settings differ from those the campaign ran with is refused, naming
    them (config_changes.py); execution settings such as tolerances may differ."""
    from pyacemaker.config_changes import compare_with_folder

    candidates = [Path(config_path)] if config_path is not None else [
        Path(workdir) / name for name in CONFIG_NAMES if (Path(workdir) / name).is_file()]
    if candidates:
        config = load_campaign(candidates[0])
        state = load_state(Path(workdir))
        if state is not None:
            comparison = compare_with_folder(Path(workdir), config, state.config_fingerprint)
            if comparison.refused:
                raise ConfigError(
                    f"{candidates[0]}: not the configuration the campaign in {workdir} ran "
                    "with; these physics settings differ:\n" + comparison.describe()
                    + "\npass the campaign's own YAML with --config")
        return config
    elements = record.elements if record is not None else None
    if not elements:
        store_path = Path(workdir) / DATASTORE_FILE
        if store_path.is_file():
            store = DataStore(store_path)
            elements = sorted({s for a in store.atoms(status="labelled")
                               for s in a.get_chemical_symbols()})
    if not elements:
        raise ConfigError(f"{workdir}: no campaign YAML found ({', '.join(CONFIG_NAMES)}) and "
                          "no elements known: pass --config")
    log.warning("%s: no campaign YAML in the folder; default validation settings", workdir)
    return CampaignConfig(elements=list(elements))


def potential_calculator_factory(record: PotentialRecord, workdir: Path) -> CalculatorFactory:
    """A fresh ASE calculator of the absolute energy of ``record`` per call."""
    yaml_path = resolve_path(workdir, record.yaml)
    absolute = record.model_copy(update={"yaml": str(yaml_path)})

    def factory() -> Calculator:
        try:
            from pyacemaker.stages.train import total_energy_calculator
        except ImportError:
            from pyace import PyACECalculator

            return PyACECalculator(str(yaml_path))
        return total_energy_calculator(absolute)

    return factory


def reference_calculator_factory(config: CampaignConfig) -> CalculatorFactory | None:
    """The oracle itself when it is cheap enough to compute elastic constants and EOS."""
    if config.oracle.kind == "emt":
        from ase.calculators.emt import EMT

        return EMT
    return None


def oracle_calculator_factory(config: CampaignConfig, folder: Path) -> CalculatorFactory:
    """The campaign's oracle (pw.x for qe) as an ASE calculator, one task folder per call."""
    from pyacemaker.stages.oracle.base import make_oracle
    from pyacemaker.stages.validate.phonon_reference import OracleCalculator

    return lambda: OracleCalculator(make_oracle(config), folder)


def held_out_structures(record: PotentialRecord, store: DataStore,
                        workdir: Path) -> tuple[list[Atoms], str]:
    """Labelled structures the potential was not fitted to, and what they are.

    First choice: the campaign's fixed validation set (``stages/validation_set.py``), held
    out of every fit. For campaigns without one: pacemaker's own test split of that fit
    (``test_data_info.pckl.gzip`` next to the potential), found in the data lake by
    structure; else structures labelled after the fit's iteration; else the training set
    itself, named as such."""
    from pyacemaker.stages.validation_set import validation_structures

    fixed = validation_structures(store)
    if fixed:
        return fixed, "fixed validation set (never fitted)"
    fit_dir = resolve_path(workdir, record.yaml).parent
    test_file = fit_dir / "test_data_info.pckl.gzip"
    if test_file.is_file() and "ase_atoms" in (frame := pd.read_pickle(
            test_file, compression="gzip")).columns:
        # matched by structure, not by name: names need not be data-lake row ids
        structures = []
        for atoms in frame["ase_atoms"]:
            rows = list(store.rows(fingerprint=structure_fingerprint(atoms), status="labelled"))
            structures += [DataStore.row_to_atoms(row) for row in rows[:1]]
        if structures:
            return structures, f"held-out test split of iteration {record.iteration}"
    later = [a for a in store.atoms(status="labelled")
             if int(a.info.get("iteration", -1)) > record.iteration]
    if later:
        return later, f"structures labelled after iteration {record.iteration}"
    return store.atoms(status="labelled"), "training set (no held-out data recorded)"


def validate_record(record: PotentialRecord, config: CampaignConfig, store: DataStore,
                    workdir: Path, references: dict[str, CrystalReference] | None = None,
                    reference_failures: dict[str, str] | None = None) -> ValidationReport:
    """Run the quality gate on one potential of the campaign and save its report.

    ``references``: the campaign's DFT references (``execution/references.py``); without
    them the oracle is the reference only when it is cheap (EMT), computed here."""
    workdir = Path(workdir)
    settings = config.validation
    crystals = validation_crystals(settings.structures, config.elements)
    if references is None and config.oracle.kind == "qe":
        # outside a campaign run (pyacemaker validate/report): the campaign's cached DFT
        # references, when it computed them; none are computed here
        references = cached_references(crystals, config, workdir) or None
    held_out, held_out_name = held_out_structures(record, store, workdir)
    labelled = store.atoms(status="labelled")
    phonon_reference = None
    if settings.reference_phonons and references is None:
        phonon_reference = (f"oracle {config.oracle.kind}", oracle_calculator_factory(
            config, workdir / VALIDATION_DIR / f"oracle_phonons_{record.iteration:03d}"))
    report = validate_potential(
        potential_calculator_factory(record, workdir), crystals, settings,
        held_out=held_out, held_out_name=held_out_name,
        reference_factory=None if references is not None
        else reference_calculator_factory(config), labelled=labelled,
        potential=relative_path(str(resolve_path(workdir, record.yaml)), workdir),
        iteration=record.iteration,
        phonon_reference=phonon_reference, references=references,
        reference_failures=reference_failures)
    report.computed_by = f"{socket.gethostname()}:{os.getpid()}"
    save_validation(report, workdir)
    return report


def save_validation(report: ValidationReport, workdir: Path) -> Path:
    folder = Path(workdir) / VALIDATION_DIR
    text = report.model_dump_json(indent=1)
    if report.iteration is not None:
        atomic_write_text(folder / f"iter_{report.iteration:03d}.json", text)
    latest = folder / VALIDATION_FILE
    atomic_write_text(latest, text)
    return latest


def load_validation(workdir: Path, iteration: int | None = None) -> ValidationReport | None:
    folder = Path(workdir) / VALIDATION_DIR
    path = folder / (VALIDATION_FILE if iteration is None else f"iter_{iteration:03d}.json")
    if not path.is_file():
        return None
    try:
        return ValidationReport.model_validate_json(path.read_text())
    except ValueError as exc:
        raise ReleaseError(f"{path}: unreadable validation report ({exc}); run "
                           "'pyacemaker validate' again") from exc


def validation_history(workdir: Path) -> dict[int, ValidationReport]:
    history = {}
    for path in sorted((Path(workdir) / VALIDATION_DIR).glob("iter_*.json")):
        report = ValidationReport.model_validate_json(path.read_text())
        if report.iteration is not None:
            history[report.iteration] = report
    return history


def hand_over_best(state: WorkflowState, workdir: Path) -> str | None:
    """At the stop: a NO-GO potential gives way to an earlier validated one the gate judged
    better (``stages/validate/handover.py``); returns the reason when it did."""
    from pyacemaker.stages.validate.handover import better_validated

    deployed = {r.iteration: r for r in state.potentials if r.deployed}  # the last of each
    history = {k: v for k, v in validation_history(workdir).items() if k in deployed}
    current = history.get(state.potential.iteration) if state.potential else None
    choice = better_validated(current, history) if current is not None else None
    if choice is None:
        return None
    iteration, reason = choice
    state.potential = deployed[iteration]
    log.info("handing over %s", reason)
    return reason


def validate_campaign(workdir: Path, config_path: Path | None = None) -> ValidationReport:
    """Validate the campaign's current potential (``pyacemaker validate``)."""
    workdir = Path(workdir)
    state = campaign_state(workdir)
    record = current_potential(state, workdir)
    config = campaign_config(workdir, config_path, record)
    store = DataStore(workdir / DATASTORE_FILE)
    return validate_record(record, config, store, workdir)


def report_campaign(workdir: Path, config_path: Path | None = None,
                    output: Path | None = None) -> Path:
    """Write ``report.html`` (validating first when no validation report exists)."""
    from pyacemaker.stages.report import build_report

    workdir = Path(workdir)
    state = campaign_state(workdir)
    record = current_potential(state, workdir)
    config = campaign_config(workdir, config_path, record)
    validation = load_validation(workdir, record.iteration) or load_validation(workdir)
    if validation is None or validation.iteration != record.iteration:
        validation = validate_campaign(workdir, config_path)
    html = build_report(workdir, config, state, validation, validation_history(workdir))
    output = output or workdir / REPORT_FILE
    atomic_write_text(output, html)
    return output


def package_campaign(workdir: Path, config_path: Path | None = None, force: bool = False,
                     version: str | None = None, author: str | None = None,
                     dist_dir: Path | None = None) -> Path:
    """Build the release folder and zip in ``dist/``; returns the zip's path."""
    from pyacemaker.stages.package import build_release

    workdir = Path(workdir)
    state = campaign_state(workdir)
    record = current_potential(state, workdir)
    config = campaign_config(workdir, config_path, record)
    report = workdir / REPORT_FILE
    validation = load_validation(workdir, record.iteration) or load_validation(workdir)
    if validation is None or validation.iteration != record.iteration or not report.is_file():
        report = report_campaign(workdir, config_path)
        validation = load_validation(workdir)
    assert validation is not None
    return build_release(
        workdir=workdir, config=config, state=state, record=record, validation=validation,
        store=DataStore(workdir / DATASTORE_FILE), report=report,
        dist_dir=Path(dist_dir) if dist_dir else Path("dist"), force=force, version=version,
        author=author)
