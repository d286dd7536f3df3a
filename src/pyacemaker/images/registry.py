"""Pulling images by digest into a local cache, and pushing the images this project builds.

charliecloud runs a directory image: the registry's manifest is checked against the digest
asked for, the image copied with ``skopeo`` into an OCI layout of the cache (converted to OCI
when it is Docker-format) and unpacked with ``umoci`` into ``<cache>/charliecloud/<hex>/``
(both Debian packages).
apptainer/singularity pull into ``<cache>/sif/<hex>.sif`` with their own ``pull``. A pulled
image is reused by digest: a digest names one image's content for ever.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyacemaker.images.reference import ImageReference

OCI_LAYOUT = "oci"
PULL_TIMEOUT_S = 3600.0


class ImagePullError(RuntimeError):
    """An image could not be pulled (or pushed); the message names image and registry."""


def default_cache() -> Path:
    """``$PYACEMAKER_IMAGE_CACHE``, else ``$XDG_CACHE_HOME/pyacemaker/images``."""
    if os.environ.get("PYACEMAKER_IMAGE_CACHE"):
        return Path(os.environ["PYACEMAKER_IMAGE_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pyacemaker" / "images"


def run_tool(argv: list[str], what: str, timeout: float = PULL_TIMEOUT_S) -> str:
    return run_tool_bytes(argv, what, timeout).decode(errors="replace")


def run_tool_bytes(argv: list[str], what: str, timeout: float = PULL_TIMEOUT_S) -> bytes:
    """Run an image tool; its stdout, or ImagePullError naming ``what`` and the cause."""
    if shutil.which(argv[0]) is None:
        raise ImagePullError(f"{what}: {argv[0]} is not installed (make setup installs skopeo "
                             "and umoci; apptainer comes with the cluster)")
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ImagePullError(f"{what}: {argv[0]} did not finish in {timeout:.0f} s") from exc
    if done.returncode != 0:
        detail = (done.stderr.decode(errors="replace").strip()
                  or done.stdout.decode(errors="replace").strip()).splitlines()
        last = detail[-1] if detail else "no output"
        logged = re.search(r'msg="(.*)"', last)  # skopeo's logrus line: the message only
        message = logged.group(1).replace('\\"', '"') if logged else last
        raise ImagePullError(f"{what}: {' '.join(argv[:2])} failed (status "
                             f"{done.returncode}): {message}")
    return done.stdout


def _tls(reference: ImageReference, plain_http: list[str], side: str = "") -> list[str]:
    """skopeo's flag for a plain-HTTP registry: ``--tls-verify`` (inspect) or
    ``--src-tls-verify`` / ``--dest-tls-verify`` (copy)."""
    flag = f"--{side}-tls-verify=false" if side else "--tls-verify=false"
    return [flag] if reference.registry in plain_http else []


def registry_digest(reference: ImageReference, plain_http: list[str]) -> str:
    """The digest a tag points at now (for ``allow_tags``)."""
    out = run_tool(["skopeo", "inspect", *_tls(reference, plain_http), "--format",
                    "{{.Digest}}", f"docker://{reference.registry}/{reference.repository}:"
                    f"{reference.tag or 'latest'}"],
                   f"image {reference} (registry {reference.registry})", timeout=300)
    return out.strip()


def manifest_digest(location: str, reference: ImageReference, plain_http: list[str],
                    what: str) -> str:
    """sha256 of the manifest bytes the registry serves for ``location`` (docker://...)."""
    manifest = run_tool_bytes(["skopeo", "inspect", "--raw", *_tls(reference, plain_http),
                               location], what)
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def pull_charliecloud(reference: ImageReference, cache: Path, plain_http: list[str]) -> Path:
    """The unpacked directory image of ``reference`` (pinned), pulled if not cached."""
    if reference.transport != "docker" or not reference.digest:
        raise ImagePullError(f"image {reference}: charliecloud pulls docker:// references "
                             "by digest (oras:// holds SIF files, which only apptainer runs)")
    hex_digest = reference.digest.split(":", 1)[1]
    target = cache / "charliecloud" / hex_digest
    if (target / ".pyacemaker-pulled").is_file():
        return target
    what = f"image {reference} (registry {reference.registry})"
    # the manifest's own bytes must hash to the digest asked for; the copy may then convert
    # a Docker-format manifest to OCI (umoci unpacks OCI only), which changes its digest
    sent = manifest_digest(reference.by_digest(), reference, plain_http, what)
    if sent != reference.digest:
        raise ImagePullError(f"{what}: the registry sent manifest {sent}, not "
                             f"{reference.digest}")
    layout = cache / OCI_LAYOUT
    layout.parent.mkdir(parents=True, exist_ok=True)
    with _locked(cache):  # one OCI layout per cache: two drivers must not write it at once
        run_tool(["skopeo", "copy", "--quiet", "--format", "oci",
                  *_tls(reference, plain_http, "src"), reference.by_digest(),
                  f"oci:{layout}:{hex_digest}"], what)
    target.parent.mkdir(parents=True, exist_ok=True)
    unpack = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{hex_digest[:12]}."))
    try:
        run_tool(["umoci", "raw", "unpack", "--rootless", "--image", f"{layout}:{hex_digest}",
                  str(unpack / "rootfs")], what)
        (unpack / "rootfs" / ".pyacemaker-pulled").write_text(str(reference) + "\n")
        try:
            os.rename(unpack / "rootfs", target)
        except OSError:  # another driver unpacked the same digest first: use that one
            if not (target / ".pyacemaker-pulled").is_file():
                raise
    finally:
        shutil.rmtree(unpack, ignore_errors=True)
    return target


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pull_sif(runtime: str, reference: ImageReference, cache: Path) -> Path:
    """apptainer/singularity: ``pull`` the pinned reference into ``<cache>/sif/<hex>.sif``."""
    assert reference.digest
    target = cache / "sif" / f"{reference.digest.split(':', 1)[1]}.sif"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".sif.{os.getpid()}.tmp")
    run_tool([runtime, "pull", "--force", str(partial), reference.by_digest()],
             f"image {reference} (registry {reference.registry})")
    os.replace(partial, target)
    return target


def push_directory_image(folder: Path, destination: str, plain_http: bool,
                         docker_format: bool = False) -> str:
    """Push a directory image (charliecloud's form) as a one-layer OCI image (or with a
    Docker v2s2 manifest) to ``destination`` (``docker://HOST/REPO:TAG``); returns the
    manifest digest."""
    what = f"pushing {folder} to {destination}"
    with tempfile.TemporaryDirectory(prefix="pyacemaker-push.") as scratch:
        layer = Path(scratch) / "layer.tar"
        # device nodes are never copied (ch-run binds the host's /dev); a sorted tar with
        # fixed owners and times gives the same layer for the same files
        run_tool(["tar", "-C", str(folder), "--exclude=./dev/*", "--sort=name", "--mtime=@0",
                  "--owner=0", "--group=0", "--numeric-owner", "-cf", str(layer), "."], what)
        layout = f"{scratch}/oci"
        run_tool(["umoci", "init", "--layout", layout], what)
        run_tool(["umoci", "new", "--image", f"{layout}:image"], what)
        # fixed times everywhere: the same files give the same digest on every push
        epoch = "1970-01-01T00:00:00Z"
        run_tool(["umoci", "raw", "add-layer", "--history.created", epoch, "--image",
                  f"{layout}:image", str(layer)], what)
        run_tool(["umoci", "config", "--no-history", "--created", epoch, "--image",
                  f"{layout}:image"], what)
        digest_file = Path(scratch) / "digest"
        flags = ["--dest-tls-verify=false"] if plain_http else []
        flags += ["--format", "v2s2"] if docker_format else []
        run_tool(["skopeo", "copy", "--quiet", *flags, "--digestfile", str(digest_file),
                  f"oci:{layout}:image", destination], what)
        return digest_file.read_text().strip()
