"""pw.x inside a container: charliecloud's ch-run on the QE image that
scripts/setup.d/qe_image.sh builds from a debootstrap'ed Debian rootfs (a cached step of
make setup; the fixture runs it too, a no-op when the image exists). The label computed
inside must equal the native one: same program, same libraries, same numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hpc_support import label_si2, write_si2_input

from pyacemaker.config import ContainerSettings, SiteConfig, StageResources
from pyacemaker.execution import Engine, launch_for
from pyacemaker.programs import Launch, run_program

pytestmark = pytest.mark.timeout(600)


def container_site(image: Path, ranks: int = 1) -> SiteConfig:
    site = SiteConfig(container=ContainerSettings(runtime="charliecloud",
                                                  images={"qe": str(image)}))
    site.resources["dft"] = StageResources(mpi_ranks=ranks, max_parallel_tasks=1)
    site.programs.mpirun = {"qe": "/usr/bin/mpirun"}
    return site


def test_programs_run_inside_the_image(qe_image: Path, tmp_path: Path) -> None:
    launch = launch_for(container_site(qe_image), "dft")
    inside = run_program(["cat", "/.pyacemaker-image"], tmp_path, launch=launch)
    assert "quantum-espresso" in inside.stdout()  # the image's stamp, absent on the host
    assert not Path("/.pyacemaker-image").exists()
    assert inside.argv[0] == "ch-run" and str(qe_image) in inside.argv


def test_label_inside_container_equals_native(qe_image: Path, tmp_path: Path) -> None:
    native_dir, contained_dir = tmp_path / "native", tmp_path / "container"
    for folder in (native_dir, contained_dir):
        write_si2_input(folder, displacement=0.08)
    native = label_si2(str(native_dir), Launch())
    site = container_site(qe_image)
    with Engine(site, tmp_path / "run") as engine:  # the campaign's path: site -> launch
        contained = engine.submit("dft", label_si2, str(contained_dir),
                                  launch_for(site, "dft")).result(timeout=300)
    argv = (contained_dir / "command.json").read_text()
    assert "ch-run" in argv and str(qe_image) in argv
    assert contained.energy == pytest.approx(native.energy, abs=1e-6)
    for f_in, f_out in zip(contained.forces, native.forces, strict=True):
        assert f_in == pytest.approx(f_out, abs=1e-6)
    assert abs(native.forces[1][0]) > 1e-2  # a displaced atom: the forces are not trivially 0


def test_hybrid_mpi_host_launcher_outside_binary_inside(qe_image: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mpi"
    write_si2_input(folder, displacement=0.08)
    launch = launch_for(container_site(qe_image, ranks=2), "dft")
    assert launch.wrap(["pw.x"], folder)[:4] == ["/usr/bin/mpirun", "-np", "2", "ch-run"]
    label = label_si2(str(folder), launch)
    assert re.search(r"running on\s+2 processors", (folder / "stdout.txt").read_text())
    reference = tmp_path / "serial"
    write_si2_input(reference, displacement=0.08)
    serial = label_si2(str(reference), Launch())
    assert label.energy == pytest.approx(serial.energy, abs=1e-5)


def test_oracle_labels_inside_container_like_natively(qe_image: Path, tmp_path: Path) -> None:
    """The campaign's own QE oracle (input writing, pseudo staging, parsing, checks) with
    the site's container launch: same label as without the container."""
    from ase.build import bulk

    from pyacemaker.config import DFTSettings
    from pyacemaker.stages.oracle.qe import QEOracle

    atoms = bulk("Si", "diamond", a=5.43)
    atoms.positions[1] += (0.06, -0.03, 0.02)
    oracle = QEOracle(DFTSettings(ecutwfc=20.0, kspacing=0.6, pseudo_dir=Path(
        "/usr/share/espresso/pseudo")), elements=["Si"])
    native = oracle.label(atoms.copy(), tmp_path / "native", Launch())
    contained = oracle.label(atoms.copy(), tmp_path / "container",
                             launch_for(container_site(qe_image), "dft"))
    assert native.converged and contained.converged, (native.reason, contained.reason)
    assert "ch-run" in next((tmp_path / "container").rglob("command.json")).read_text()
    assert contained.atoms.get_potential_energy() == pytest.approx(
        native.atoms.get_potential_energy(), abs=1e-6)
    assert contained.atoms.get_forces() == pytest.approx(native.atoms.get_forces(), abs=1e-6)
