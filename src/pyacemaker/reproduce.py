"""``pyacemaker reproduce RELEASE.zip --site SITE``: recompute a release's labels.

The release carries the exact campaign config, the images its programs ran in (by digest,
with the tool versions read inside them), the pseudopotentials' sha256 and a sample of its
training labels. This pulls the same images on the given site, checks the versions and
pseudopotentials, relabels the sample with the campaign's own oracle through the site's
execution layer, and reports every difference: 0.0 eV is expected for DFT in the same image.
"""

from __future__ import annotations

import argparse
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from pyacemaker.config import CampaignConfig, SiteConfig, load_campaign
from pyacemaker.images.pinning import pin_site_images
from pyacemaker.images.record import ImageRecord
from pyacemaker.images.reference import is_registry_reference, parse_image_reference
from pyacemaker.state import StateError

log = logging.getLogger(__name__)


@dataclass
class LabelComparison:
    row_id: int
    atoms: int
    energy_release: float
    energy_now: float | None
    max_force_diff: float | None
    reason: str = ""

    @property
    def energy_diff(self) -> float | None:
        return None if self.energy_now is None else self.energy_now - self.energy_release


@dataclass
class ReproductionReport:
    release: str
    labels: list[LabelComparison] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)  # images, versions, pseudos
    notes: list[str] = field(default_factory=list)  # what could not be checked

    def identical(self, energy_tol: float, force_tol: float) -> bool:
        return not self.differences and all(
            c.energy_diff is not None and abs(c.energy_diff) <= energy_tol
            and c.max_force_diff is not None and c.max_force_diff <= force_tol
            for c in self.labels)

    def text(self, energy_tol: float, force_tol: float) -> str:
        lines = [f"reproduce {self.release}: {len(self.labels)} labels recomputed",
                 f"{'row':>6} {'atoms':>5} {'E release (eV)':>18} {'dE (eV)':>10} "
                 f"{'max dF (eV/A)':>13}"]
        for c in self.labels:
            if c.energy_now is None:
                lines.append(f"{c.row_id:>6} {c.atoms:>5} {c.energy_release:>18.6f}  "
                             f"not labelled: {c.reason}")
                continue
            lines.append(f"{c.row_id:>6} {c.atoms:>5} {c.energy_release:>18.6f} "
                         f"{c.energy_diff:>10.2e} {c.max_force_diff:>13.2e}")
        lines += [f"difference: {line}" for line in self.differences]
        lines += [f"note: {line}" for line in self.notes]
        verdict = ("IDENTICAL" if self.identical(energy_tol, force_tol) else "DIFFERENT")
        lines.append(f"{verdict} (tolerances {energy_tol:g} eV, {force_tol:g} eV/A)")
        return "\n".join(lines)


def unpack_release(archive: Path, folder: Path) -> Path:
    """Extract the zip into ``folder``; returns the release folder inside."""
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(folder)
        top = {Path(name).parts[0] for name in zipped.namelist()}
    if len(top) != 1:
        raise StateError(f"{archive}: not a pyacemaker release (one folder expected)")
    return folder / top.pop()


def pinned_site(site: SiteConfig, images: list[ImageRecord]) -> tuple[SiteConfig, list[str]]:
    """The site running the release's images (registry ones by digest); notes on the
    images that cannot be pinned (a local path the release ran with)."""
    if not images:
        return site, []
    if site.container.runtime == "none":
        return site, ["the release ran in container images; this site runs the programs "
                      "natively (set container.runtime to pull the same images)"]
    named, notes = dict(site.container.images), []
    for record in images:
        if record.digest and is_registry_reference(record.reference):
            reference = parse_image_reference(record.reference).with_digest(record.digest)
            named[record.tool] = reference.by_digest()
        else:
            notes.append(f"{record.tool}: the release ran with the local image "
                         f"{record.reference} (no digest); using the site's "
                         f"{named.get(record.tool, 'none')}")
    container = site.container.model_copy(update={"images": named})
    return site.model_copy(update={"container": container}), notes


def check_pseudopotentials(config: CampaignConfig, shipped: list[dict[str, str]]) -> list[str]:
    from pyacemaker.stages.oracle.pseudo import resolve_pseudopotential

    differences = []
    for entry in shipped:
        qe = config.oracle.qe
        choice = resolve_pseudopotential(entry["element"], qe.pseudopotentials, qe.pseudo_dir)
        if choice.sha256 != entry["sha256"]:
            differences.append(f"pseudopotential {entry['element']}: {choice.path} has "
                               f"sha256 {choice.sha256[:12]}..., the release "
                               f"{entry['sha256'][:12]}...")
    return differences


def relabel(site: SiteConfig, config: CampaignConfig, structures: list[Atoms],
            workdir: Path) -> list[LabelComparison]:
    """Label ``structures`` again with the campaign's oracle on the site's dft executor."""
    from pyacemaker.execution import Engine, launch_for
    from pyacemaker.execution.labelling import label_one
    from pyacemaker.stages.oracle.base import make_oracle

    oracle = make_oracle(config, site.programs)
    comparisons = []
    with Engine(site, workdir) as engine:
        launch = launch_for(site, "dft")
        row_ids = [int(a.info.get("row_id", i)) for i, a in enumerate(structures)]
        futures = [engine.submit("dft", label_one, (row_id, a.copy()), oracle,
                                 str(workdir / "labels"), launch)
                   for row_id, a in zip(row_ids, structures, strict=True)]
        for row_id, atoms, future in zip(row_ids, structures, futures, strict=True):
            outcome = future.result()
            e_release = float(atoms.get_potential_energy())
            if not outcome.converged or outcome.atoms is None:
                comparisons.append(LabelComparison(row_id, len(atoms), e_release, None, None,
                                                   outcome.reason))
                continue
            force_diff = np.abs(outcome.atoms.get_forces() - atoms.get_forces()).max()
            comparisons.append(LabelComparison(
                row_id, len(atoms), e_release, float(outcome.atoms.get_potential_energy()),
                float(force_diff)))
            log.info("row %d relabelled: dE %.2e eV", row_id, comparisons[-1].energy_diff)
    return comparisons


def revalidate(folder: Path, config: CampaignConfig, site: SiteConfig, workdir: Path,
               released: dict[str, float]) -> tuple[list[str], list[str]]:
    """The gate again on the shipped potential (references recomputed with the oracle):
    differences of the metrics both have, and a note on what was compared."""
    import math

    from pyacemaker.validate_file import validate_file

    potential = folder / f"{'-'.join(config.elements)}.yaml"
    report = validate_file(potential, config, site, workdir / "validation",
                           oracle=config.oracle.kind)
    now = report.metrics()
    common = sorted(set(now) & set(released))
    differences = [f"validation {key}: {released[key]:.6g} -> {now[key]:.6g}"
                   for key in common
                   if not math.isclose(released[key], now[key], rel_tol=1e-6, abs_tol=1e-9)]
    note = (f"validation: {len(common)} metrics of the release recomputed (verdict now "
            f"{report.verdict}); {len(set(released) - set(now))} need the campaign's "
            "held-out data, which the release does not ship")
    return differences, [note]


def reproduce_release(archive: Path, site: SiteConfig, workdir: Path,
                      sample: int | None = None, validate: bool = False
                      ) -> ReproductionReport:
    from pyacemaker.stages.package import read_manifest

    archive, workdir = Path(archive), Path(workdir).resolve()
    manifest = read_manifest(archive)
    if manifest.reproduction is None:
        raise StateError(f"{archive}: an older release without the config and labels "
                         "`reproduce` needs (package the campaign again)")
    folder = unpack_release(archive, workdir / "release")
    config = load_campaign(folder / manifest.reproduction.config)
    report = ReproductionReport(release=f"{manifest.name} {manifest.version}")
    site, report.notes = pinned_site(site, manifest.reproduction.images)
    recorded = {r.tool: r for r in manifest.reproduction.images if r.digest}
    site, records = pin_site_images(site, workdir, recorded, force=True)
    for tool, old in recorded.items():
        report.differences += old.differences(records[tool])
    report.differences += check_pseudopotentials(
        config, [p.model_dump() for p in manifest.dft.pseudopotentials])
    structures = read(folder / manifest.reproduction.labels, index=":")
    structures = structures[:sample] if sample else structures
    log.info("relabelling %d structures of %s with %s", len(structures), manifest.name,
             config.oracle.kind)
    report.labels = relabel(site, config, structures, workdir)
    if validate:
        differences, notes = revalidate(folder, config, site, workdir,
                                        manifest.validation.metrics)
        report.differences += differences
        report.notes += notes
    return report


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from pyacemaker.config import load_site
    from pyacemaker.logs import setup_logging

    archive = Path(args.release)
    if not archive.is_file():
        raise StateError(f"{archive}: no such release zip")
    workdir = Path(args.workdir or Path("reproduce") / archive.stem)
    setup_logging(workdir, verbose=args.verbose)
    report = reproduce_release(archive, load_site(args.site), workdir, sample=args.sample,
                               validate=args.validate)
    print(report.text(args.energy_tol, args.force_tol))
    return 0 if report.identical(args.energy_tol, args.force_tol) else 1


def add_reproduce_command(sub: argparse._SubParsersAction) -> None:
    command = sub.add_parser(
        "reproduce", help="recompute a release's sample of labels in the same images "
        "(pulled by digest) and report the differences (exit 1 when any)")
    command.add_argument("release", help="release zip (dist/NAME-VERSION.zip)")
    command.add_argument("--site", default="local", help="site name or YAML")
    command.add_argument("--workdir", help="folder for the work; default reproduce/<zip name>")
    command.add_argument("--sample", type=int, help="relabel only the first N of the sample")
    command.add_argument("--validate", action="store_true",
                         help="also run the gate again on the shipped potential (DFT "
                         "references recomputed with the campaign's oracle) and compare")
    command.add_argument("--energy-tol", type=float, default=1e-6, help="eV (default 1e-6)")
    command.add_argument("--force-tol", type=float, default=1e-5, help="eV/A (default 1e-5)")
    command.set_defaults(func=_cmd_reproduce)
