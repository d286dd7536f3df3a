"""Images pulled by digest from a real registry (docker-registry on 127.0.0.1, started by
the ``registry`` fixture): the QE image this setup builds is pushed there with skopeo and
umoci, a site names it by digest, and pw.x labels Si inside the pulled image exactly as
natively. Wrong digests, unreachable registries and bare tags are refused by name; a
campaign records its images, refuses a resume with another one, and its release carries
the digest that `pyacemaker reproduce` pulls again."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from tiny_campaign import copy_of, finished_campaign, run_cli

from pyacemaker.config import ConfigError, ContainerSettings, SiteConfig, load_site
from pyacemaker.execution import launch_for
from pyacemaker.images.pinning import ImageMismatch, pin_site_images
from pyacemaker.images.registry import ImagePullError, push_directory_image
from pyacemaker.programs import Launch
from pyacemaker.stages.package import read_manifest

pytestmark = pytest.mark.timeout(900)
ZERO = "sha256:" + "0" * 64


def registry_site(image: str, registry: str, cache: Path, **container: object) -> SiteConfig:
    return SiteConfig(local_executor="threads", container=ContainerSettings(
        runtime="charliecloud", images={"qe": image}, plain_http=[registry],
        cache=str(cache), **container))


def test_pulled_image_labels_si_like_native(pushed_qe: str, registry: str,
                                           tmp_path: Path) -> None:
    from ase.build import bulk

    from pyacemaker.config import DFTSettings
    from pyacemaker.stages.oracle.qe import QEOracle

    site, records = pin_site_images(registry_site(pushed_qe, registry, tmp_path / "cache"),
                                    tmp_path / "campaign", {})
    pulled = Path(site.container.images["qe"])
    digest = pushed_qe.split("@")[1]
    assert pulled == tmp_path / "cache" / "charliecloud" / digest.split(":")[1]
    assert (pulled / "usr/bin/pw.x").is_file()
    assert records["qe"].digest == digest
    assert records["qe"].versions == {"pw.x": "6.7MaX"}  # read inside the image (Debian's)
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.positions[1] += (0.06, -0.03, 0.02)
    oracle = QEOracle(DFTSettings(ecutwfc=20.0, kspacing=0.6, pseudo_dir=Path(
        "/usr/share/espresso/pseudo")), elements=["Si"])
    native = oracle.label(atoms.copy(), tmp_path / "native", Launch())
    contained = oracle.label(atoms.copy(), tmp_path / "pulled", launch_for(site, "dft"))
    assert native.converged and contained.converged, (native.reason, contained.reason)
    assert str(pulled) in next((tmp_path / "pulled").rglob("command.json")).read_text()
    assert contained.atoms.get_potential_energy() == pytest.approx(
        native.atoms.get_potential_energy(), abs=1e-6)
    assert contained.atoms.get_forces() == pytest.approx(native.atoms.get_forces(), abs=1e-6)


def test_docker_format_images_pull_too(pushed_qe: str, registry: str, qe_image: Path,
                                      tmp_path: Path) -> None:
    """Images built by docker carry Docker v2s2 manifests: the digest is checked on the
    registry's bytes, the copy converts to OCI for umoci."""
    repository = pushed_qe.split("@")[0]
    digest = push_directory_image(qe_image, f"{repository}:docker", plain_http=True,
                                  docker_format=True)
    assert digest != pushed_qe.split("@")[1]
    site, records = pin_site_images(registry_site(f"{repository}@{digest}", registry,
                                                  tmp_path / "cache"), tmp_path, {})
    assert (Path(site.container.images["qe"]) / "usr/bin/pw.x").is_file()
    assert records["qe"].digest == digest and records["qe"].versions == {"pw.x": "6.7MaX"}


def test_wrong_digest_and_unreachable_registry_are_named(pushed_qe: str, registry: str,
                                                         tmp_path: Path) -> None:
    wrong = pushed_qe.split("@")[0] + "@" + ZERO
    with pytest.raises(ImagePullError) as missing:
        pin_site_images(registry_site(wrong, registry, tmp_path), tmp_path, {})
    assert wrong in str(missing.value) and f"registry {registry}" in str(missing.value)
    assert "manifest unknown" in str(missing.value)
    assert str(missing.value).startswith("container.images.qe: ")  # the site entry
    gone = pushed_qe.replace(registry, "127.0.0.1:9")
    with pytest.raises(ImagePullError) as unreachable:
        pin_site_images(registry_site(gone, "127.0.0.1:9", tmp_path), tmp_path, {})
    assert "registry 127.0.0.1:9" in str(unreachable.value)
    assert "connection refused" in str(unreachable.value)
    assert not (tmp_path / "charliecloud").exists() or not any(
        (tmp_path / "charliecloud").iterdir())  # nothing half-pulled is left as an image


def test_bare_tag_is_refused_with_the_fix(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"name": "tagged", "container": {
        "runtime": "charliecloud", "images": {"qe": "docker://registry.example/qe:7.2"}}}))
    with pytest.raises(ConfigError) as refused:
        load_site(site)
    message = str(refused.value)
    assert "container.images.qe" in message and "docker://registry.example/qe:7.2" in message
    assert "@sha256:" in message and "allow_tags" in message


def test_allow_tags_pins_the_first_digest_and_a_changed_image_is_refused(
        pushed_qe: str, registry: str, qe_image: Path, tmp_path: Path) -> None:
    repository = pushed_qe.split("@")[0]
    first = push_directory_image(qe_image, f"{repository}:moving", plain_http=True)
    assert first == pushed_qe.split("@")[1]  # same files, same digest (fixed tar, times)
    tagged = registry_site(f"{repository}:moving", registry, tmp_path / "cache",
                           allow_tags=True)
    _, records = pin_site_images(tagged, tmp_path, {})
    assert records["qe"].digest == first
    other = tmp_path / "other-image"  # another image under the same tag
    (other / "etc").mkdir(parents=True)
    (other / "etc" / "hostname").write_text("not the QE image\n")
    second = push_directory_image(other, f"{repository}:moving", plain_http=True)
    assert second != first
    site, again = pin_site_images(tagged, tmp_path, records)  # resume: the recorded digest
    assert again["qe"].digest == first
    assert (Path(site.container.images["qe"]) / "usr/bin/pw.x").is_file()
    moved = registry_site(f"{repository}@{second}", registry, tmp_path / "cache")
    with pytest.raises(ImageMismatch) as refused:
        pin_site_images(moved, tmp_path, records)
    assert f"qe: image {first} -> {second}" in str(refused.value)
    assert "pw.x version 6.7MaX -> unknown (probe status" in str(refused.value)
    _, forced = pin_site_images(moved, tmp_path, records, force=True)
    assert forced["qe"].digest == second


def test_campaign_records_its_images_and_the_release_reproduces(
        pushed_qe: str, registry: str, tmp_path: Path,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """A finished EMT campaign resumed on a site that runs QE from the registry: the images
    are pulled and recorded, a site with another digest is refused, the release names the
    digest, and `pyacemaker reproduce` pulls it again and recomputes identical labels."""
    folder = copy_of(finished_campaign(tmp_path_factory), tmp_path / "cu-tiny")
    site = yaml.safe_load((Path(__file__).parents[2] / "site_configs/local.yaml").read_text())
    site["container"] = {"runtime": "charliecloud", "images": {"qe": pushed_qe},
                         "plain_http": [registry], "cache": str(tmp_path / "cache")}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    config = folder / "campaign.yaml"
    out = run_cli("run", config, "--site", tmp_path / "site.yaml", "--workdir", folder)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    state = json.loads((folder / "state.json").read_text())
    assert state["images"]["qe"]["digest"] == pushed_qe.split("@")[1]
    status = run_cli("status", "--workdir", folder)
    assert f"image qe: {pushed_qe.split('@')[1]} (pw.x 6.7MaX)" in status.stdout

    other = tmp_path / "other-image"
    (other / "etc").mkdir(parents=True)
    (other / "etc" / "hostname").write_text("not the QE image\n")
    repository = pushed_qe.split("@")[0]
    second = push_directory_image(other, f"{repository}:other", plain_http=True)
    site["container"]["images"]["qe"] = f"{repository}@{second}"
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(site))
    refused = run_cli("run", config, "--site", tmp_path / "other.yaml", "--workdir", folder)
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert f"qe: image {pushed_qe.split('@')[1]} -> {second}" in refused.stderr
    assert json.loads((folder / "state.json").read_text())["images"] == state["images"]

    out = run_cli("package", "--workdir", folder, "--force", "--dist", tmp_path / "dist")
    assert out.returncode == 0, out.stderr[-2000:]
    archive = next((tmp_path / "dist").glob("*.zip"))
    images = read_manifest(archive).reproduction.images
    assert [(i.tool, i.digest) for i in images] == [("qe", pushed_qe.split("@")[1])]
    with zipfile.ZipFile(archive) as zipped:  # the site it ran on, as its YAML named it
        shipped = yaml.safe_load(zipped.read(next(n for n in zipped.namelist()
                                                  if n.endswith("/site.yaml"))))
    assert shipped["container"]["images"]["qe"] == pushed_qe
    again = run_cli("reproduce", archive, "--site", tmp_path / "site.yaml", "--workdir",
                    tmp_path / "reproduce", "--validate")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "IDENTICAL" in again.stdout and "difference" not in again.stdout
    compared = re.search(r"(\d+) metrics of the release recomputed", again.stdout)
    assert compared and int(compared.group(1)) >= 4, again.stdout  # Cij, B0, V0 ... vs EMT
    table = again.stdout.split("E release (eV)")[1].split("IDENTICAL")[0]
    rows = [line for line in table.strip().splitlines()[1:]  # after the header's rest
            if not line.startswith("note:")]
    assert len(rows) == 8 and all(abs(float(line.split()[3])) <= 1e-6 for line in rows)
