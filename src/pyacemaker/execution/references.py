"""DFT reference properties of the validation crystals, as DFT tasks, cached per campaign.

One ``dft`` task per crystal runs :func:`stages.validate.reference.compute_reference` with
the campaign's own oracle (the labels' settings, the site's pw.x, MPI launch and image,
healing as in labelling) behind an ASE calculator. The result is cached in
``<campaign>/validation/dft_reference/<crystal>.json`` with a key of the settings that made
it, so a campaign computes it once and recomputes it only when the oracle settings, the
crystal or the property settings change. Never in the driver's process.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ase import Atoms

from pyacemaker.config import CampaignConfig, ProgramSettings
from pyacemaker.execution.engine import Engine, launch_for
from pyacemaker.programs import Launch
from pyacemaker.stages.validate.crystal import validation_crystals
from pyacemaker.stages.validate.gate import POTENTIAL_FAILURES
from pyacemaker.stages.validate.reference import (
    CrystalReference,
    campaign_reference_key,
    compute_reference,
    load_reference,
    oracle_source,
    reference_folder,
    save_reference,
)

log = logging.getLogger(__name__)


def reference_task(crystal: Atoms, config: CampaignConfig, programs: ProgramSettings,
                   launch: Launch, folder: str, key: str) -> CrystalReference:
    """The app body: the oracle as an ASE calculator, one pw.x folder per call."""
    from pyacemaker.stages.oracle.base import make_oracle
    from pyacemaker.stages.validate.phonon_reference import OracleCalculator

    calc = OracleCalculator(make_oracle(config, programs), Path(folder) / "calls", launch)
    reference = compute_reference(crystal, calc, config.validation, oracle_source(config),
                                  key, phonons=config.validation.reference_phonons)
    save_reference(reference, Path(folder) / "reference.json")
    log.info("DFT reference of %s: %d oracle calls", reference.label, calc.calls)
    return reference


def dft_references(engine: Engine, config: CampaignConfig, workdir: Path
                   ) -> tuple[dict[str, CrystalReference], dict[str, str]]:
    """(references by crystal label, why a crystal has none): cached ones at once, the
    others computed now as ``dft`` tasks, in parallel."""
    settings = config.validation
    references: dict[str, CrystalReference] = {}
    failures: dict[str, str] = {}
    pending = {}
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
        pending[label] = (folder, engine.submit(
            "dft", reference_task, crystal, config, engine.site.programs,
            launch_for(engine.site, "dft", "qe"), str(folder), key))
    for label, (folder, future) in pending.items():
        try:
            references[label] = future.result()
        except POTENTIAL_FAILURES as exc:  # the oracle gave no label, or a fit failed
            failures[label] = f"{exc} (folder {folder})"
            log.warning("   DFT reference of %s failed: %s", label, exc)
    return references, failures
