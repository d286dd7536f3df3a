"""The ``eonclient`` engine: each relaxation and saddle search is an eOn client job.

The job folder gets ``config.ini`` (``potential = ext_pot`` pointing at the generated
``pace_driver.py``), ``pos.con`` and, for a process search, the initial displacement
(``displacement.con``) and mode (``direction.dat``). A search is a ``saddle_search``
job followed by a ``minimization`` job on each side of the saddle (along eOn's
``mode.dat``); the connection check and the process table are the same as in process.
The ACE driver talks to one
persistent evaluator started here for the whole task. A halt is the driver's dump
``pace_halt.extxyz`` in the job folder (the driver exits 100 and eOn stops the job);
any other failure of the client raises :class:`ProgramFailed` with its output.

``KMCConfig.eonclient`` is the client executable (eOn 3.2+ ``eonclient``), or
``pyeonclient``: the same eOn client job code run through the pyeonclient bindings in
a subprocess (what this machine has; the eOn binary does not build here).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import numpy as np
from ase import Atoms
from ase.io import read, write

from pyacemaker.config import KMCConfig
from pyacemaker.programs import Launch, ProgramFailed, run_program
from pyacemaker.stages.explore import pace_driver
from pyacemaker.stages.explore.kmc.rates import htst_rate
from pyacemaker.stages.explore.kmc.search import KMCHalt, SearchOutcome, relax_across_saddle
from pyacemaker.stages.explore.kmc.watchdog import resolve_potential_file
from pyacemaker.state import PotentialRecord

DRIVER_NAME = "pace_driver.py"
PYEONCLIENT_RUNNER = "import pyeonclient; pyeonclient.run_eon_cwd()"
SERVER_START_TIMEOUT_S = 120.0


def install_driver(run_dir: Path, potential: PotentialRecord, gamma_lower: float,
                   gamma_upper: float, python: str = sys.executable) -> Path:
    """Write the executable ``pace_driver.py`` and its ``pace_driver.json`` into run_dir.

    The shebang is this interpreter (it has pyace) with ``-S``: the per-call client needs
    only the standard library, and skipping site-packages halves its start-up time.
    The settings hold absolute paths.
    """
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    source = Path(pace_driver.__file__).read_text().split("\n", 1)[1]
    script = run_dir / DRIVER_NAME
    script.write_text(f"#!{python} -S\n{source}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    if potential.baseline:
        raise ValueError("the eonclient engine does not evaluate delta-learning baselines "
                         "yet; use kmc engine 'inprocess' for this potential")
    settings = {
        "potential_yaml": str(resolve_potential_file(potential.yaml, "B-basis yaml")),
        "active_set": str(resolve_potential_file(potential.asi, "active set (.asi)")),
        "gamma_lower": gamma_lower,
        "gamma_upper": gamma_upper,
        # UNIX socket paths are limited to ~107 bytes: keep it short, in /tmp.
        "socket": f"/tmp/pace_driver_{os.getpid()}_{abs(hash(str(run_dir))) % 10**8}.sock",
        "gamma_log": str(run_dir / pace_driver.GAMMA_LOG),
    }
    pace_driver.settings_path(script).write_text(json.dumps(settings, indent=1))
    return script


def config_ini(job: str, driver: Path, settings: KMCConfig, temperature: float,
               seed: int) -> str:
    """eOn client configuration of one job with the ACE ext_pot driver."""
    lines = [
        "[Main]", f"job = {job}", f"temperature = {temperature}", f"random_seed = {seed}", "",
        "[Potential]", "potential = ext_pot", f"ext_pot_path = {driver}", "",
        "[Optimizer]", f"converged_force = {settings.converged_force}", "",
        "[Saddle Search]", f"min_mode_method = {settings.search_method}",
        "displace_type = load",
        f"converged_force = {settings.converged_force}",
        f"max_iterations = {settings.max_search_iterations}", "",
    ]
    return "\n".join(lines) + "\n"


def read_results(path: Path) -> dict[str, str]:
    """eOn's ``results.dat``: one ``value key`` pair a line."""
    results: dict[str, str] = {}
    for line in path.read_text().splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            results[parts[1].strip()] = parts[0]
    return results


class EonClientSearcher:
    """Relaxations and process searches as eOn client jobs; ACE through pace_driver.py."""

    def __init__(self, potential: PotentialRecord, settings: KMCConfig, temperature: float,
                 seed: int, workdir: Path, launch: Launch | None = None):
        if settings.prefactor == "computed":
            raise ValueError("kmc.prefactor 'computed' is available with engine 'inprocess' "
                             "only; give the eonclient engine a number (1/s)")
        self.settings = settings
        self.launch = launch  # the site's eon image / launch, from the execution layer
        self.temperature = temperature
        self.seed = seed
        self.workdir = Path(workdir).resolve()
        self.driver = install_driver(self.workdir, potential, settings.gamma_lower,
                                     settings.gamma_upper)
        self.driver_settings = json.loads(pace_driver.settings_path(self.driver).read_text())
        self.jobs = 0
        self.server: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ evaluator lifetime
    def __enter__(self) -> EonClientSearcher:
        self.start_server()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_server()

    def start_server(self) -> None:
        socket_path = Path(self.driver_settings["socket"])
        ready = socket_path.with_name(socket_path.name + ".ready")
        ready.unlink(missing_ok=True)
        log = open(self.workdir / "pace_server.log", "ab")  # noqa: SIM115
        self.server = subprocess.Popen([sys.executable, str(self.driver), "--serve"],
                                       cwd=self.workdir, stdout=log, stderr=log,
                                       start_new_session=True)
        log.close()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not ready.exists():
            if self.server.poll() is not None:
                raise RuntimeError(f"the ACE evaluator of {self.driver} exited with status "
                                   f"{self.server.returncode}; see "
                                   f"{self.workdir / 'pace_server.log'}")
            if time.monotonic() > deadline:
                self.stop_server()
                raise RuntimeError(f"the ACE evaluator did not start in "
                                   f"{SERVER_START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)

    def stop_server(self) -> None:
        if self.server is None:
            return
        if self.server.poll() is None:
            pace_driver.ask_server(self.driver_settings["socket"], {"stop": True})
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        socket_path = Path(self.driver_settings["socket"])
        socket_path.unlink(missing_ok=True)
        socket_path.with_name(socket_path.name + ".ready").unlink(missing_ok=True)
        self.server = None

    # ------------------------------------------------------------------ jobs
    def _argv(self) -> list[str]:
        if self.settings.eonclient == "pyeonclient":
            return [sys.executable, "-c", PYEONCLIENT_RUNNER]
        return [self.settings.eonclient]

    def _run_job(self, job: str, atoms: Atoms, extra: dict[str, str] | None = None) -> Path:
        self.jobs += 1
        folder = self.workdir / "eon_jobs" / f"{self.jobs:04d}_{job}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / "config.ini").write_text(
            config_ini(job, self.driver, self.settings, self.temperature, self.seed + self.jobs))
        write(folder / "pos.con", atoms, format="eon")
        for name, text in (extra or {}).items():
            (folder / name).write_text(text)
        result = run_program(self._argv(), folder, timeout_s=self.settings.timeout_s,
                             check=False, log_name="eonclient", launch=self.launch)
        dump = folder / pace_driver.HALT_DUMP
        if dump.is_file():
            frame = read(dump, format="extxyz")
            frame.info["gamma_max"] = float(frame.info["gamma_max"])
            raise KMCHalt(frame, f"eonclient {job} (driver exit status "
                                 f"{pace_driver.HALT_EXIT_STATUS})")
        if not result.ok:
            raise ProgramFailed(result)
        if not (folder / "results.dat").is_file():
            raise ProgramFailed(result)
        return folder

    def relax(self, atoms: Atoms) -> tuple[Atoms, float]:
        folder = self._run_job("minimization", atoms)
        results = read_results(folder / "results.dat")
        relaxed = read(folder / "min.con", format="eon")
        return _with_cell(relaxed, atoms), float(results["potential_energy"])

    def search(self, reactant: Atoms, energy: float,
               displacement: np.ndarray) -> SearchOutcome:
        """A saddle_search job, then a minimization job on each side of the saddle."""
        start = reactant.copy()
        start.positions = reactant.positions + displacement
        buffer = self.workdir / "displacement.con"
        write(buffer, start, format="eon")
        mode = displacement / np.linalg.norm(displacement)
        folder = self._run_job("saddle_search", reactant,
                               {"displacement.con": buffer.read_text(),
                                "direction.dat": _vectors(mode)})
        results = read_results(folder / "results.dat")
        if results.get("termination_reason") != "0":
            reason = results.get("termination_reason_text", results.get("termination_reason"))
            return SearchOutcome(status=f"saddle_search: {reason}".lower())
        barrier = float(results["potential_energy_saddle"]) - energy
        if barrier <= 0 or barrier > self.settings.max_barrier:
            return SearchOutcome(status="barrier_out_of_range", barrier=barrier)
        saddle = _with_cell(read(folder / "saddle.con", format="eon"), reactant)
        negative_mode = np.loadtxt(folder / "mode.dat").reshape(-1, 3)
        negative_mode /= np.linalg.norm(negative_mode)
        outcome = relax_across_saddle(saddle, negative_mode, reactant, barrier, self.relax)
        assert self.settings.prefactor != "computed"
        return replace(outcome, prefactor=float(self.settings.prefactor)) if outcome.good \
            else outcome

    def rate(self, barrier: float, prefactor: float) -> float:
        return htst_rate(barrier, prefactor, self.temperature)


def _vectors(rows: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.10f}" for v in row) for row in rows) + "\n"


def _with_cell(atoms: Atoms, like: Atoms) -> Atoms:
    """eOn's .con keeps the orthorhombic box; keep the reactant's cell and pbc."""
    out = like.copy()
    out.calc = None
    out.positions = atoms.positions
    return out
