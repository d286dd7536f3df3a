"""Container image references of a site YAML: a local path, or a registry reference.

Registry references are ``docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX]`` (an OCI/Docker
registry: apptainer, singularity and charliecloud pull them) and ``oras://...`` (a SIF
stored in an OCI registry: apptainer/singularity only). A reference is reproducible only
when it carries its digest: a tag moves, a digest names one image for ever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

Transport = Literal["docker", "oras"]
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REFERENCE = re.compile(
    r"^(?P<transport>docker|oras)://(?P<registry>[A-Za-z0-9.-]+(?::\d+)?)/"
    r"(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z0-9]+:[A-Za-z0-9]+))?$")


class ImageReferenceError(ValueError):
    """A container.images entry that is not a usable reference."""


@dataclass(frozen=True)
class ImageReference:
    transport: Transport
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    def with_digest(self, digest: str) -> ImageReference:
        return replace(self, digest=digest)

    def by_digest(self) -> str:
        """The reference as pulled: by digest when known (the tag is then only a label)."""
        if self.digest:
            return f"{self.transport}://{self.registry}/{self.repository}@{self.digest}"
        return str(self)

    def __str__(self) -> str:
        text = f"{self.transport}://{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_registry_reference(text: str) -> bool:
    return "://" in text


def parse_image_reference(text: str, what: str = "image") -> ImageReference:
    """Parse ``docker://`` / ``oras://`` references; ``what`` names the entry in errors."""
    scheme = text.split("://", 1)[0]
    if scheme not in ("docker", "oras"):
        raise ImageReferenceError(
            f"{what}: {text!r}: unknown transport {scheme + '://'!r}; use docker://HOST/REPO"
            "@sha256:... (OCI registry), oras://HOST/REPO@sha256:... (SIF in a registry) "
            "or a local path")
    match = _REFERENCE.match(text)
    if match is None:
        raise ImageReferenceError(
            f"{what}: {text!r} is not a registry reference of the form "
            f"{scheme}://HOST[:PORT]/REPOSITORY[:TAG]@sha256:<64 hex digits>")
    digest = match["digest"]
    if digest is not None and not DIGEST.match(digest):
        raise ImageReferenceError(
            f"{what}: {text!r}: the digest must be sha256: followed by 64 lowercase hex "
            "digits")
    return ImageReference(transport=match["transport"],  # type: ignore[arg-type]
                          registry=match["registry"], repository=match["repository"],
                          tag=match["tag"], digest=digest)


def check_pinned(reference: ImageReference, what: str, allow_tags: bool) -> None:
    """A registry reference must carry its digest unless the site allows tags."""
    if reference.pinned or allow_tags:
        return
    raise ImageReferenceError(
        f"{what}: {reference} has no digest: a tag can point at another image tomorrow, so "
        "the campaign could not be rerun as it ran. Pin it: "
        f"{reference.transport}://{reference.registry}/{reference.repository}@sha256:<digest>"
        f" (`skopeo inspect --format '{{{{.Digest}}}}' docker://{reference.registry}/"
        f"{reference.repository}:{reference.tag or 'latest'}` prints it; `make containers-push`"
        " prints the digests of the images it pushes), or set container.allow_tags: true "
        "(the digest found at the first pull is then recorded and reused on resume)")
