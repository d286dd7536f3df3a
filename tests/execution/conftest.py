"""Fixtures of the execution-layer tests."""

from __future__ import annotations

import shutil
import subprocess
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
