"""The images a campaign runs with: pulled by digest, versions read, recorded, compared.

:func:`pin_site_images` turns a site's ``container.images`` into local images (pulling
registry references into the cache), reads each tool's version inside its image, and
compares both with what the campaign folder recorded when it started. A resume with
another image (digest) or another tool version is refused, naming each difference,
unless forced; with ``allow_tags`` the digest recorded at the first pull is reused, so a
tag that moved since does not change the campaign's programs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pyacemaker.images.record import ImageRecord
from pyacemaker.images.reference import ImageReference, is_registry_reference, \
    parse_image_reference
from pyacemaker.images.registry import ImagePullError, default_cache, pull_charliecloud, \
    pull_sif, registry_digest
from pyacemaker.images.versions import tool_versions
from pyacemaker.site_config import SiteConfig, Tool
from pyacemaker.state import StateError

log = logging.getLogger(__name__)
PROBE_DIR = "images"  # in the campaign folder: the version probes' program folders


class ImageMismatch(StateError):
    """A resumed campaign's site names other images or tool versions than it ran with."""


def cache_folder(site: SiteConfig) -> Path:
    return Path(site.container.cache) if site.container.cache else default_cache()


def local_image(site: SiteConfig, tool: Tool, reference: ImageReference) -> Path:
    """Pull ``reference`` (pinned) for the site's runtime; the local image to run."""
    runtime, cache = site.container.runtime, cache_folder(site)
    log.info("image %s: %s (cache %s)", tool, reference.by_digest(), cache)
    if runtime == "charliecloud":
        return pull_charliecloud(reference, cache, site.container.plain_http)
    return pull_sif(runtime, reference, cache)


def _versions(site: SiteConfig, tool: Tool, image: Path, digest: str | None,
              folder: Path) -> dict[str, str]:
    """Read once per digest (kept in the cache); every time for a local path image."""
    stored = cache_folder(site) / "versions" / f"{tool}-{digest.split(':')[1]}.json" \
        if digest else None
    if stored is not None and stored.is_file():
        return json.loads(stored.read_text())
    versions = tool_versions(tool, site.container.runtime, str(image), site.programs,
                             folder / f"probe_{tool}")
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_text(json.dumps(versions))
    return versions


def resolve_image(site: SiteConfig, tool: Tool, image: str, recorded: ImageRecord | None,
                  probe_folder: Path) -> tuple[Path, ImageRecord]:
    """The local image of one ``container.images`` entry and its record."""
    digest = None
    if is_registry_reference(image):
        reference = parse_image_reference(image, f"container.images.{tool}")
        if not reference.pinned:  # allow_tags: the first pull's digest, reused on resume
            if recorded is not None and recorded.reference == image and recorded.digest:
                reference = reference.with_digest(recorded.digest)
                log.info("image %s: tag %s, digest %s as recorded when the campaign "
                         "started", tool, reference.tag, recorded.digest)
            else:
                reference = reference.with_digest(
                    registry_digest(reference, site.container.plain_http))
        digest = reference.digest
        try:
            path = local_image(site, tool, reference)
        except ImagePullError as exc:
            raise ImagePullError(f"container.images.{tool}: {exc}") from exc
    else:
        path = Path(image)
        if not path.exists():
            raise ImagePullError(f"container.images.{tool}: {image}: no such image "
                                 "(make containers, or name a registry reference)")
    versions = _versions(site, tool, path, digest, probe_folder)
    return path, ImageRecord(tool=tool, reference=image, digest=digest, versions=versions)


def pin_site_images(site: SiteConfig, workdir: Path, recorded: dict[str, ImageRecord],
                    force: bool = False) -> tuple[SiteConfig, dict[str, ImageRecord]]:
    """The site with local images, and the records to keep. Raises ImageMismatch when a
    recorded image or version differs (``force``: accepted, logged)."""
    if site.container.runtime == "none" or not site.container.images:
        return site, dict(recorded)
    records, local, changes = dict(recorded), {}, []
    for tool, image in site.container.images.items():
        path, record = resolve_image(site, tool, image, recorded.get(tool),
                                     Path(workdir) / PROBE_DIR)
        if tool in recorded:
            changes += recorded[tool].differences(record)
        local[tool] = str(path)
        records[tool] = record
    if changes and not force:
        raise ImageMismatch(
            f"{Path(workdir)}: this campaign ran with other images or tool versions:\n  "
            + "\n  ".join(changes) + "\nLabels made by other programs would be mixed into "
            "its data. Name the images it ran with again (state.json 'images' lists them), "
            "or pass --force to go on with the new ones (recorded from now on).")
    for line in changes:
        log.warning("--force: %s (accepted)", line)
    container = site.container.model_copy(update={"images": local})
    return site.model_copy(update={"container": container}), records
