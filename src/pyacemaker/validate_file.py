"""``pyacemaker validate POTENTIAL``: the quality gate on a potential file made anywhere.

The potential (.yace, .yaml or .ace, read by pyace) is judged on the validation crystals of
its elements, against a reference chosen by the user:

* ``--oracle qe``: DFT references computed with the oracle settings of ``--config`` (or
  the defaults), as ``dft`` tasks on the site, cached in the output folder;
* ``--oracle emt``: ASE's EMT (cheap; for tests and demonstrations);
* ``--reference FILE``: a reference JSON written by a campaign
  (``validation/dft_reference/<crystal>/reference.json``), or a YAML/JSON mapping of moduli
  in GPa (``{C11: 153, C12: 57, C44: 75, B0: 89}``) from experiment or a paper;
* nothing: the physical checks only (phonon and Born stability, a sane EOS).

``--data FILE`` (labelled extxyz) adds the error targets. The gate runs as a ``light`` task;
the report is saved as ``<output>/validation.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ase import Atoms
from ase.io import read

from pyacemaker.config import CampaignConfig, ConfigError, SiteConfig
from pyacemaker.stages.validate import ValidationReport
from pyacemaker.stages.validate.reference import CrystalReference

POTENTIAL_SUFFIXES = (".yace", ".yaml", ".ace")


class ValidateInputError(ConfigError):
    """A potential, reference or data file that cannot be used (names the file)."""


def read_reference_file(path: Path) -> tuple[dict[str, CrystalReference], dict[str, float]]:
    """(campaign-style references by crystal label, user moduli in GPa) from ``path``."""
    try:
        raw: Any = yaml.safe_load(Path(path).read_text())  # JSON is YAML too
    except (OSError, yaml.YAMLError) as exc:
        raise ValidateInputError(f"--reference {path}: cannot read it: {exc}") from exc
    if isinstance(raw, dict) and "elastic" in raw and "eos" in raw:
        try:
            reference = CrystalReference.model_validate(raw)
        except ValueError as exc:
            raise ValidateInputError(f"--reference {path}: not a reference record: "
                                     f"{exc}") from exc
        return {reference.label: reference}, {}
    if isinstance(raw, dict) and raw and all(isinstance(v, int | float) for v in raw.values()):
        return {}, {str(k): float(v) for k, v in raw.items()}
    raise ValidateInputError(f"--reference {path}: expected a campaign reference.json or a "
                             "mapping of moduli in GPa such as {C11: 153, C44: 75, B0: 89}")


def read_labelled(path: Path) -> list[Atoms]:
    try:
        frames = read(path, index=":")
    except Exception as exc:  # ASE raises many kinds for unreadable files
        raise ValidateInputError(f"--data {path}: cannot read labelled structures: {exc}") from exc
    labelled = [a for a in frames if a.calc is not None]
    if not labelled:
        raise ValidateInputError(f"--data {path}: no structure carries energies/forces")
    return labelled


def gate_task(potential: str, config: CampaignConfig,
              references: dict[str, CrystalReference] | None, failures: dict[str, str],
              use_emt: bool, held_out: list[Atoms]) -> ValidationReport:
    """The app body (``light`` executor): pyace on the file, the gate, the verdict."""
    import os
    import socket

    from ase.calculators.emt import EMT
    from pyace import PyACECalculator

    from pyacemaker.stages.validate import validate_potential
    from pyacemaker.stages.validate.crystal import validation_crystals

    try:
        PyACECalculator(potential)
    except (RuntimeError, ValueError) as exc:  # pyace's words for a file it cannot use
        raise ValidateInputError(f"{potential}: pyace cannot read it: {exc}") from exc
    settings = config.validation
    report = validate_potential(
        lambda: PyACECalculator(potential),
        validation_crystals(settings.structures, config.elements), settings,
        held_out=held_out, held_out_name=f"labelled structures of {len(held_out)}",
        reference_factory=EMT if use_emt and not references else None, potential=potential,
        references=references, reference_failures=failures)
    report.computed_by = f"{socket.gethostname()}:{os.getpid()}"
    return report


def validate_file(potential: Path, config: CampaignConfig, site: SiteConfig, output: Path,
                  oracle: str | None = None, reference: Path | None = None,
                  data: Path | None = None) -> ValidationReport:
    from pyacemaker.execution import Engine
    from pyacemaker.execution.references import dft_references
    from pyacemaker.images.pinning import pin_site_images

    potential = Path(potential).resolve()
    if not potential.is_file():
        raise ValidateInputError(f"potential file not found: {potential}")
    if potential.suffix not in POTENTIAL_SUFFIXES:
        raise ValidateInputError(f"{potential}: expected a {', '.join(POTENTIAL_SUFFIXES)} "
                                 "file (pyace reads those)")
    references: dict[str, CrystalReference] = {}
    if reference is not None:
        references, moduli = read_reference_file(reference)
        if moduli:
            config = config.model_copy(update={"validation": config.validation.model_copy(
                update={"reference_moduli_gpa": moduli})})
    held_out = read_labelled(data) if data is not None else []
    output.mkdir(parents=True, exist_ok=True)
    site, _ = pin_site_images(site, output, {})  # registry images: pulled by digest
    with Engine(site, output / "runinfo") as engine:
        failures: dict[str, str] = {}
        if oracle == "qe":
            qe_config = config.model_copy(update={"oracle": config.oracle.model_copy(
                update={"kind": "qe"})})
            computed, failures = dft_references(engine, qe_config, output)
            references = {**computed, **references}
        report = engine.submit("light", gate_task, str(potential), config, references or None,
                               failures, oracle == "emt", held_out).result()
    (output / "validation.json").write_text(report.model_dump_json(indent=1))
    return report


def summary_lines(report: ValidationReport) -> list[str]:
    """Potential vs reference, one line per compared property, then the verdict."""
    lines = [f"{c.message}" for c in report.checks if c.threshold is not None
             and c.value is not None and " vs " in c.message]
    lines.append(f"verdict: {report.verdict} (reference: {report.reference or 'none'})")
    return lines + [f"  - {reason}" for reason in report.reasons]

