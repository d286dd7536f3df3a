"""The execution layer runs real programs through the local Parsl executors."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write

from pyacemaker.config import SiteConfig, StageResources
from pyacemaker.execution import Engine, launch_for
from pyacemaker.programs import ProgramFailed

SI_PSEUDO = "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"
PSEUDO_DIR = Path("/usr/share/espresso/pseudo")


def write_si2_input(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    atoms = bulk("Si", "diamond", a=5.43)
    path = folder / "pw.in"
    write(path, atoms, format="espresso-in", pseudopotentials={"Si": SI_PSEUDO}, kpts=(3, 3, 3),
          input_data={"control": {"calculation": "scf", "tprnfor": True, "tstress": True,
                                  "pseudo_dir": str(PSEUDO_DIR), "outdir": "./tmp"},
                      "system": {"ecutwfc": 20.0, "ecutrho": 160.0}})
    return path


def local_site(kind: str, ranks: int = 1) -> SiteConfig:
    site = SiteConfig(local_executor=kind)
    site.resources["dft"] = StageResources(mpi_ranks=ranks, max_parallel_tasks=2)
    site.programs.mpirun = {"qe": "/usr/bin/mpirun"}
    return site


@pytest.mark.parametrize("kind", ["threads", "htex"])
def test_real_pw_scf_through_parsl(tmp_path: Path, kind: str) -> None:
    site = local_site(kind)
    with Engine(site, tmp_path / "run") as engine:
        futures = []
        for i in range(2):
            folder = tmp_path / f"task{i}"
            write_si2_input(folder)
            futures.append(engine.run_program("dft", ["pw.x", "-in", "pw.in"], folder,
                                              timeout_s=300))
        results = [f.result() for f in futures]
    energies = []
    for result in results:
        assert result.ok and result.duration_s > 0
        assert "JOB DONE" in result.stdout()
        out = read(Path(result.workdir) / "stdout.txt", format="espresso-out")
        energies.append(out.get_potential_energy())
        assert np.abs(out.get_forces()).max() < 1e-3  # perfect diamond: no force
    assert energies[0] == pytest.approx(energies[1], abs=1e-8)
    assert -290 < energies[0] < -265  # Si2 with this pseudo: ~ -277 eV


def test_pw_with_two_mpi_ranks_matches_serial(tmp_path: Path) -> None:
    site = local_site("threads", ranks=2)
    launch = launch_for(site, "dft")
    assert launch.mpi_prefix() == ["/usr/bin/mpirun", "-np", "2"]
    with Engine(site, tmp_path / "run") as engine:
        write_si2_input(tmp_path / "mpi")
        mpi = engine.run_program("dft", ["pw.x", "-nk", "2", "-in", "pw.in"], tmp_path / "mpi",
                                 timeout_s=300).result()
    text = mpi.stdout()
    assert "running on     2 processors" in text and "npool     =       2" in text
    assert "JOB DONE" in text


def test_failing_program_reaches_caller_with_stderr(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "pw.in").write_text("&control\n  calculation='scf', not_a_key=1\n/\n")
    with Engine(local_site("threads"), tmp_path / "run") as engine:
        future = engine.run_program("dft", ["pw.x", "-in", "pw.in"], folder, timeout_s=60)
        with pytest.raises(ProgramFailed) as err:
            future.result()
        missing = engine.run_program("light", ["no-such-program-xyz"], tmp_path / "nope")
        with pytest.raises(ProgramFailed, match="cannot start 'no-such-program-xyz'"):
            missing.result()
    message = str(err.value)
    assert "pw.x -in pw.in failed (exit status 1)" in message
    assert "read_namelists" in message  # pw.x's own words reach the caller


def test_timeout_kills_the_program(tmp_path: Path) -> None:
    with Engine(local_site("threads"), tmp_path / "run") as engine:
        future = engine.run_program("light", ["sleep", "30"], tmp_path / "slow", timeout_s=1)
        with pytest.raises(ProgramFailed, match="timed out") as err:
            future.result()
    assert err.value.result.timed_out
    assert err.value.result.duration_s < 10


def test_python_function_as_app(tmp_path: Path) -> None:
    with Engine(local_site("htex"), tmp_path / "run") as engine:
        results = dict(engine.map("light", shlex.quote, ["a b", "c"]))
    assert {k: v.result() for k, v in results.items()} == {"a b": "'a b'", "c": "c"}


def test_venv_programs_found_without_an_activated_venv(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from pyacemaker.programs import run_program

    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # as from cron or a bare login shell
    result = run_program(["pace_yaml2yace", "--help"], tmp_path, timeout_s=120)
    assert result.ok
    assert Path(result.argv[0]) == Path(sys.executable).parent / "pace_yaml2yace"
    assert "yace" in result.stdout().lower()
