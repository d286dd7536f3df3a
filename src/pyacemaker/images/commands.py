"""``pyacemaker images pull`` / ``push`` (``make containers-pull`` / ``containers-push``)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pyacemaker.images.registry import ImagePullError, push_directory_image

DEFAULT_BUILD = Path("build") / "containers"
STAMP = ".pyacemaker-image"  # written by scripts/setup.d/qe_image.sh into a directory image


def built_images(build: Path) -> dict[str, Path]:
    """tool -> image this checkout built: directory images (charliecloud) and SIF files
    (``make containers``, apptainer)."""
    found = {folder.name: folder for folder in sorted(build.iterdir())
             if folder.is_dir() and (folder / STAMP).is_file()} if build.is_dir() else {}
    sif = build / "sif"
    if sif.is_dir():
        found.update({file.stem: file for file in sorted(sif.glob("*.sif"))})
    return found


def push_images(build: Path, registry: str, prefix: str, tag: str,
                plain_http: bool) -> dict[str, str]:
    """Push every built image to ``registry``; tool -> pinned reference to paste."""
    images = built_images(build)
    if not images:
        raise ImagePullError(f"{build}: no built image to push (make setup builds the QE "
                             "directory image; make containers builds .sif files)")
    pinned = {}
    for tool, image in images.items():
        repository = f"{registry}/{prefix}/{tool}".replace("//", "/")
        if image.is_dir():
            digest = push_directory_image(image, f"docker://{repository}:{tag}", plain_http)
            pinned[tool] = f"docker://{repository}@{digest}"
        else:
            pinned[tool] = _push_sif(image, f"oras://{repository}:{tag}")
        print(f"pushed {tool}: {pinned[tool]}", flush=True)
    return pinned


def _push_sif(image: Path, destination: str) -> str:
    """apptainer's ``push`` of a SIF (an ORAS artifact); its digest is the sha256 of the
    manifest the registry now holds."""
    from pyacemaker.images.reference import parse_image_reference
    from pyacemaker.images.registry import manifest_digest, run_tool

    runtime = shutil.which("apptainer") or shutil.which("singularity")
    if runtime is None:
        raise ImagePullError(f"{image}: pushing a SIF needs apptainer or singularity")
    what = f"pushing {image} to {destination}"
    run_tool([runtime, "push", str(image), destination], what)
    reference = parse_image_reference(destination)
    digest = manifest_digest("docker://" + destination[len("oras://"):], reference, [], what)
    return str(reference.with_digest(digest)).replace(f":{reference.tag}@", "@")


def _cmd_push(args: argparse.Namespace) -> int:
    pinned = push_images(Path(args.build), args.registry, args.prefix, args.tag,
                         args.plain_http)
    print("\n# paste into the site YAML (pinned by digest):\ncontainer:\n  images:")
    for tool, reference in pinned.items():
        print(f"    {tool}: {reference}")
    if args.plain_http:
        print(f"  plain_http: [{args.registry}]")
    return 0


def _cmd_pull(args: argparse.Namespace) -> int:
    from pyacemaker.config import load_site
    from pyacemaker.images.pinning import cache_folder, pin_site_images

    site = load_site(args.site)
    if site.container.runtime == "none" or not site.container.images:
        print(f"site {site.name!r} runs no container images: nothing to pull")
        return 0
    local, records = pin_site_images(site, cache_folder(site) / "probes", {})
    for tool, record in records.items():
        versions = ", ".join(f"{k} {v}" for k, v in record.versions.items())
        print(f"{tool}: {local.container.images[tool]} ({record.digest or 'local'}; "
              f"{versions})")
    return 0


def add_image_commands(sub: argparse._SubParsersAction) -> None:
    images = sub.add_parser("images", help="pull a site's container images by digest, or "
                            "push the images this checkout built to a registry")
    actions = images.add_subparsers(dest="images_command", required=True)
    pull = actions.add_parser("pull", help="pull (and check) every image the site names")
    pull.add_argument("--site", default="local", help="site name or YAML")
    pull.set_defaults(func=_cmd_pull)
    push = actions.add_parser("push", help="push the built images; prints their digests")
    push.add_argument("--registry", required=True, help="HOST[:PORT] of the registry")
    push.add_argument("--prefix", default="pyacemaker", help="repository prefix")
    push.add_argument("--tag", default="latest", help="tag to push under (a label only: "
                      "sites pin the printed digest)")
    push.add_argument("--plain-http", action="store_true",
                      help="the registry speaks plain HTTP (a test registry on loopback)")
    push.add_argument("--build", default=str(DEFAULT_BUILD), help="folder of built images")
    push.set_defaults(func=_cmd_push)
