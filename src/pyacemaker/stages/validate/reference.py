"""Reference properties of a validation crystal, computed once with the oracle (DFT).

:func:`compute_reference` relaxes the crystal with the reference calculator (keeping its
space group), fits its EOS (``reference_eos_points`` volumes over
``eos_fit_volume_range``), computes its elastic tensor from stress-strain (ions relaxed in
every strained cell, so internal-strain constants such as C44 of diamond are right) and,
when asked, its phonon frequencies at the special q-points commensurate with a
``phonon_reference_supercell``^3 supercell, each from finite displacements in its smallest
commensurate cell (``special_points.py``). The gate compares a potential with these
values (``gate.py``); the campaign computes them as DFT tasks and caches them
(``execution/references.py``), so a campaign pays for them once.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from pydantic import BaseModel, Field

from pyacemaker.stages.validate.crystal import relax_crystal
from pyacemaker.stages.validate.elastic import ElasticResult, compute_elastic
from pyacemaker.stages.validate.eos import EOSFit, fit_eos
from pyacemaker.stages.validate.special_points import (
    commensurate_special_points,
    frequencies_at,
)
from pyacemaker.config import CampaignConfig
from pyacemaker.config_changes import ORACLE_EXECUTION_KEYS
from pyacemaker.validation_settings import ValidationSettings

REFERENCE_EOS_POINTS = 9
REFERENCE_DIR = Path("validation") / "dft_reference"  # inside the campaign folder
# the oracle settings that do not change a DFT number (timeouts, healing limits): the same
# ones a campaign may change on resume (config_changes.py)
IGNORED_ORACLE_KEYS = ORACLE_EXECUTION_KEYS


class PhononReference(BaseModel):
    supercell: int
    displacement: float
    q_labels: list[str]
    frequencies_thz: list[list[float]] = Field(description="[q][branch], sorted")


class CrystalReference(BaseModel):
    """What the reference calculator says about one validation crystal."""

    label: str
    source: str = Field(description="e.g. 'oracle qe (pw.x, 30/240 Ry, kspacing 0.3)'")
    key: str = Field(description="hash of the settings that made it (cache key)")
    cell: list[list[float]] = Field(description="relaxed primitive cell, A")
    volume_per_atom: float
    eos: EOSFit
    eos_volumes_per_atom: list[float]
    eos_energies_per_atom: list[float]
    elastic: ElasticResult
    phonons: PhononReference | None = None

    def moduli(self) -> dict[str, float]:
        """Cij, B, G (Hill) and the EOS B0, in GPa: what the gate's comparisons take."""
        return {**self.elastic.named(), "B0": self.eos.b0_gpa}


def reference_key(crystal: Atoms, oracle_settings: dict[str, Any],
                  settings: ValidationSettings, phonons: bool) -> str:
    """Changes whenever the crystal, the oracle's settings or the property settings do."""
    relevant = {
        "crystal": [np.round(crystal.cell.array, 6).tolist(),
                    np.round(crystal.get_scaled_positions(), 6).tolist(),
                    crystal.get_chemical_symbols()],
        "oracle": oracle_settings,
        "relax_fmax": settings.relax_fmax, "eos_range": settings.eos_fit_volume_range,
        "elastic": [settings.elastic_max_strain, settings.elastic_strain_points],
        "phonons": [settings.phonon_reference_supercell, settings.phonon_displacement,
                    "smallest commensurate cells"] if phonons else None,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def relaxed_reference_crystal(crystal: Atoms, calc: Calculator,
                              settings: ValidationSettings) -> Atoms:
    """The crystal relaxed by the reference calculator (space group kept), labelled."""
    relaxed = relax_crystal(crystal, calc, settings.relax_fmax)
    relaxed.info["label"] = str(crystal.info.get("label", crystal.get_chemical_formula()))
    relaxed.calc = None
    return relaxed


def reference_moduli(relaxed: Atoms, calc: Calculator, settings: ValidationSettings
                     ) -> tuple[EOSFit, list[float], list[float], ElasticResult]:
    """EOS (fit, volumes, energies per atom) and elastic tensor of the relaxed crystal."""
    eos, volumes, energies = fit_eos(relaxed, calc, settings.eos_fit_volume_range,
                                     REFERENCE_EOS_POINTS)
    elastic = compute_elastic(relaxed, calc, settings.elastic_max_strain,
                              settings.elastic_strain_points)
    return eos, volumes, energies, elastic


def reference_phonon_point(relaxed: Atoms, calc: Calculator, name: str,
                           settings: ValidationSettings) -> list[float]:
    """Sorted frequencies (THz) at the special point ``name`` (its smallest cell)."""
    points = commensurate_special_points(relaxed, settings.phonon_reference_supercell)
    return frequencies_at(relaxed, calc, points[name], settings.phonon_displacement)


def assemble_reference(relaxed: Atoms, source: str, key: str,
                       moduli: tuple[EOSFit, list[float], list[float], ElasticResult],
                       settings: ValidationSettings,
                       phonons: dict[str, list[float]] | None) -> CrystalReference:
    eos, volumes, energies, elastic = moduli
    phonon = None if phonons is None else PhononReference(
        supercell=settings.phonon_reference_supercell,
        displacement=settings.phonon_displacement, q_labels=list(phonons),
        frequencies_thz=list(phonons.values()))
    return CrystalReference(
        label=str(relaxed.info["label"]), source=source, key=key,
        cell=np.round(relaxed.cell.array, 6).tolist(),
        volume_per_atom=relaxed.get_volume() / len(relaxed), eos=eos,
        eos_volumes_per_atom=volumes, eos_energies_per_atom=energies, elastic=elastic,
        phonons=phonon)


def compute_reference(crystal: Atoms, calc: Calculator, settings: ValidationSettings,
                      source: str, key: str, phonons: bool) -> CrystalReference:
    """All of it in one process (a campaign runs the parts as parallel DFT tasks)."""
    relaxed = relaxed_reference_crystal(crystal, calc, settings)
    moduli = reference_moduli(relaxed, calc, settings)
    frequencies = None
    if phonons:
        frequencies = {name: reference_phonon_point(relaxed, calc, name, settings)
                       for name in commensurate_special_points(
                           relaxed, settings.phonon_reference_supercell)}
    return assemble_reference(relaxed, source, key, moduli, settings, frequencies)


def save_reference(reference: CrystalReference, path: Path) -> Path:
    from pyacemaker.state import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, reference.model_dump_json(indent=1))
    return path


def load_reference(path: Path, key: str) -> CrystalReference | None:
    """The cached reference at ``path`` when it was made with the same settings."""
    if not path.is_file():
        return None
    try:
        reference = CrystalReference.model_validate_json(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: unreadable DFT reference ({exc}); delete it to compute "
                         "it again") from exc
    return reference if reference.key == key else None


# ---------------------------------------------------------------- a campaign's cache
def oracle_source(config: CampaignConfig) -> str:
    if config.oracle.kind != "qe":
        return f"oracle {config.oracle.kind}"
    qe = config.oracle.qe
    cutoffs = (f"{qe.ecutwfc:g}/{qe.ecutrho or 8 * qe.ecutwfc:g} Ry" if qe.ecutwfc
               else "the pseudopotentials' cutoffs")
    return f"DFT (pw.x, {cutoffs}, kspacing {qe.kspacing:g})"


def oracle_settings(config: CampaignConfig) -> dict[str, Any]:
    settings = config.oracle.model_dump(mode="json")
    for key in IGNORED_ORACLE_KEYS:
        settings.get("qe", {}).pop(key, None)
    return settings


def campaign_reference_key(crystal: Atoms, config: CampaignConfig) -> str:
    return reference_key(crystal, oracle_settings(config), config.validation,
                         config.validation.reference_phonons)


def reference_folder(workdir: Path, label: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "crystal"
    return Path(workdir) / REFERENCE_DIR / slug


def cached_references(crystals: list[Atoms], config: CampaignConfig,
                      workdir: Path) -> dict[str, CrystalReference]:
    """The campaign's cached references that still match its settings (none computed)."""
    found = {}
    for crystal in crystals:
        label = str(crystal.info.get("label", crystal.get_chemical_formula()))
        reference = load_reference(reference_folder(workdir, label) / "reference.json",
                                   campaign_reference_key(crystal, config))
        if reference is not None:
            found[label] = reference
    return found
