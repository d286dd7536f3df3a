"""Registry references in a site YAML: what is accepted, what is refused and how it is
named (pure parsing and decision logic; the pulls themselves are tested against a real
registry in tests/execution/test_registry.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pyacemaker.config import ContainerSettings
from pyacemaker.images.record import ImageRecord
from pyacemaker.images.reference import ImageReferenceError, parse_image_reference

DIGEST = "sha256:" + "ab" * 32


def test_references_parse_with_port_tag_and_digest() -> None:
    ref = parse_image_reference(f"docker://127.0.0.1:5000/pyacemaker/qe:7.2@{DIGEST}")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        "127.0.0.1:5000", "pyacemaker/qe", "7.2", DIGEST)
    assert ref.by_digest() == f"docker://127.0.0.1:5000/pyacemaker/qe@{DIGEST}"
    sif = parse_image_reference(f"oras://ghcr.io/org/qe@{DIGEST}")
    assert sif.transport == "oras" and sif.tag is None and sif.pinned


@pytest.mark.parametrize("text, named", [
    ("http://host/qe", "unknown transport"),
    ("docker://host", "not a registry reference"),
    ("docker://host/qe@sha256:abc", "64 lowercase hex"),
])
def test_malformed_references_are_named(text: str, named: str) -> None:
    with pytest.raises(ImageReferenceError, match=named) as error:
        parse_image_reference(text, "container.images.qe")
    assert "container.images.qe" in str(error.value)


def test_site_rules_tags_runtime_and_transport() -> None:
    tag = "docker://host/qe:7.2"
    with pytest.raises(ValidationError, match="has no digest"):
        ContainerSettings(runtime="charliecloud", images={"qe": tag})
    assert ContainerSettings(runtime="charliecloud", images={"qe": tag}, allow_tags=True)
    with pytest.raises(ValidationError, match="runtime is 'none'"):
        ContainerSettings(images={"qe": f"docker://host/qe@{DIGEST}"})
    with pytest.raises(ValidationError, match="only apptainer/singularity"):
        ContainerSettings(runtime="charliecloud", images={"qe": f"oras://host/qe@{DIGEST}"})
    assert ContainerSettings(runtime="apptainer", images={"qe": "/images/qe.sif"})


def test_record_differences_name_digest_and_versions() -> None:
    old = ImageRecord(tool="qe", reference="r", digest=DIGEST, versions={"pw.x": "6.7MaX"})
    new = old.model_copy(update={"digest": "sha256:" + "cd" * 32,
                                 "versions": {"pw.x": "7.2"}})
    assert old.differences(old) == []
    assert old.differences(new) == [f"qe: image {DIGEST} -> sha256:{'cd' * 32}",
                                    "qe: pw.x version 6.7MaX -> 7.2"]
