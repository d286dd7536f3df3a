"""DFT reference properties of the validation crystals, as DFT tasks, cached per campaign.

``dft`` tasks run the parts of :func:`stages.validate.reference.compute_reference` with
the campaign's own oracle (the labels' settings, the site's pw.x, MPI launch and image,
healing as in labelling) behind an ASE calculator: the relaxation first, then the EOS and
elastic constants and each special point's phonons side by side (on 2 cores the Si
reference takes about half the time of one serial task). The result is cached in
``<campaign>/validation/dft_reference/<crystal>.json`` with a key of the settings that made
it, so a campaign computes it once and recomputes it only when the oracle settings, the
crystal or the property settings change. Never in the driver's process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ase import Atoms

from pyacemaker.config import CampaignConfig, ProgramSettings
from pyacemaker.execution.engine import Engine, launch_for
from pyacemaker.programs import Launch
from pyacemaker.stages.validate.crystal import validation_crystals
from pyacemaker.stages.validate.gate import POTENTIAL_FAILURES
from pyacemaker.stages.validate.reference import (
    CrystalReference,
    assemble_reference,
    campaign_reference_key,
    load_reference,
    oracle_source,
    reference_folder,
    reference_moduli,
    reference_phonon_point,
    relaxed_reference_crystal,
    save_reference,
)
from pyacemaker.stages.validate.special_points import commensurate_special_points

log = logging.getLogger(__name__)


def _oracle_calculator(config: CampaignConfig, programs: ProgramSettings, launch: Launch,
                       folder: str) -> Any:
    from pyacemaker.stages.oracle.base import make_oracle
    from pyacemaker.stages.validate.phonon_reference import OracleCalculator

    return OracleCalculator(make_oracle(config, programs), Path(folder) / "calls", launch)


def relax_task(crystal: Atoms, config: CampaignConfig, programs: ProgramSettings,
               launch: Launch, folder: str) -> Atoms:
    """App body: the crystal relaxed by the oracle (pw.x folders under ``folder``)."""
    calc = _oracle_calculator(config, programs, launch, folder)
    return relaxed_reference_crystal(crystal, calc, config.validation)


def moduli_task(relaxed: Atoms, config: CampaignConfig, programs: ProgramSettings,
                launch: Launch, folder: str) -> Any:
    """App body: EOS and elastic tensor of the relaxed crystal with the oracle."""
    calc = _oracle_calculator(config, programs, launch, folder)
    return reference_moduli(relaxed, calc, config.validation)


def phonon_task(relaxed: Atoms, name: str, config: CampaignConfig, programs: ProgramSettings,
                launch: Launch, folder: str) -> list[float]:
    """App body: the oracle's frequencies at one special point (its smallest cell)."""
    calc = _oracle_calculator(config, programs, launch, folder)
    return reference_phonon_point(relaxed, calc, name, config.validation)


def dft_references(engine: Engine, config: CampaignConfig, workdir: Path
                   ) -> tuple[dict[str, CrystalReference], dict[str, str]]:
    """(references by crystal label, why a crystal has none): cached ones at once, the
    others computed now as ``dft`` tasks: every crystal's relaxation in parallel, then its
    EOS + elastic constants and each special point's phonons in parallel."""
    settings = config.validation
    references: dict[str, CrystalReference] = {}
    failures: dict[str, str] = {}
    launch = launch_for(engine.site, "dft", "qe")
    programs = engine.site.programs
    relaxing = {}
    for crystal in validation_crystals(settings.structures, config.elements):
        label = str(crystal.info.get("label", crystal.get_chemical_formula()))
        folder = reference_folder(workdir, label)
        key = campaign_reference_key(crystal, config)
        cached = load_reference(folder / "reference.json", key)
        if cached is not None:
            references[label] = cached
            continue
        log.info("   computing the DFT reference of %s (%s): relaxation, EOS, elastic "
                 "constants%s", label, oracle_source(config),
                 ", phonons" if settings.reference_phonons else "")
        relaxing[label] = (folder, key, engine.submit(
            "dft", relax_task, crystal, config, programs, launch, str(folder / "relax")))
    properties = {}
    for label, (folder, key, future) in relaxing.items():
        try:
            relaxed = future.result()
        except POTENTIAL_FAILURES as exc:
            failures[label] = f"{exc} (folder {folder})"
            log.warning("   DFT reference of %s failed: %s", label, exc)
            continue
        phonons = {name: engine.submit("dft", phonon_task, relaxed, name, config, programs,
                                       launch, str(folder / f"phonon_{name}"))
                   for name in (commensurate_special_points(
                       relaxed, settings.phonon_reference_supercell)
                       if settings.reference_phonons else ())}
        moduli = engine.submit("dft", moduli_task, relaxed, config, programs, launch,
                               str(folder / "moduli"))
        properties[label] = (folder, key, relaxed, moduli, phonons)
    for label, (folder, key, relaxed, moduli, phonons) in properties.items():
        try:
            frequencies = ({name: f.result() for name, f in phonons.items()}
                           if settings.reference_phonons else None)
            reference = assemble_reference(relaxed, oracle_source(config), key,
                                           moduli.result(), settings, frequencies)
        except POTENTIAL_FAILURES as exc:  # the oracle gave no label, or a fit failed
            failures[label] = f"{exc} (folder {folder})"
            log.warning("   DFT reference of %s failed: %s", label, exc)
            continue
        save_reference(reference, folder / "reference.json")
        log.info("   DFT reference of %s: %d pw.x runs", label,
                 len(list(folder.glob("*/calls/call_*"))))
        references[label] = reference
    return references, failures
