"""Fixtures of the execution-layer tests."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from hpc_support import REPO

IMAGE = REPO / "build" / "containers" / "qe"


@pytest.fixture(scope="session")
def qe_image() -> Path:
    """The small QE charliecloud image (scripts/setup.d/qe_image.sh, a step of make setup;
    run again here, a no-op when the image exists)."""
    if shutil.which("ch-run") is None:
        pytest.fail("ch-run not found: make setup installs charliecloud-runtime")
    step = subprocess.run(["bash", str(REPO / "scripts/setup.d/qe_image.sh")],
                          capture_output=True, text=True, timeout=900)
    assert step.returncode == 0, f"QE image build failed:\n{step.stdout}\n{step.stderr}"
    assert (IMAGE / ".pyacemaker-image").is_file(), f"no image at {IMAGE}:\n{step.stdout}"
    return IMAGE


def _die_with_parent() -> None:
    """A killed pytest must not leave the registry running (SIGTERM when the parent dies)."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OCI registry (Debian's docker-registry, distribution 2.8) on 127.0.0.1 only,
    plain HTTP, storage in the session's temporary folder; stopped at the end."""
    if shutil.which("docker-registry") is None:
        pytest.fail("docker-registry not found: make setup installs the docker-registry "
                    "package")
    folder = tmp_path_factory.mktemp("registry")
    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (folder / "config.yml").write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'store'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n")
    with open(folder / "registry.log", "w") as log:
        server = subprocess.Popen(["docker-registry", "serve", str(folder / "config.yml")],
                                  stdout=log, stderr=subprocess.STDOUT,
                                  preexec_fn=_die_with_parent)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"registry did not start: {(folder / 'registry.log').read_text()}")
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def pushed_qe(registry: str, qe_image: Path) -> str:
    """The QE image this setup builds, pushed to the test registry; its pinned reference."""
    from pyacemaker.images.registry import push_directory_image

    repository = f"{registry}/pyacemaker/qe"
    digest = push_directory_image(qe_image, f"docker://{repository}:test", plain_http=True)
    return f"docker://{repository}@{digest}"
