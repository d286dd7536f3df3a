#!/usr/bin/env python3
"""eOn ``ext_pot`` driver: ACE energy and forces with the extrapolation-grade watchdog.

This file is standalone (stdlib only at the top; pyace, ASE and numpy only where the
potential is evaluated). The ``eonclient`` kMC engine copies it into the run folder
with its settings next to it (``pace_driver.json``) and points eOn at it::

    [Potential]
    potential = ext_pot
    ext_pot_path = /abs/run/pace_driver.py

eOn 3.2+ calls it once per force call in a scratch folder: it writes
``from_eon_to_extpot`` (three cell rows in A, then ``Z x y z`` per atom) and reads
``from_extpot_to_eon`` (energy in eV, then ``fx fy fz`` per atom in eV/A, same order).

A fresh Python that imports pyace costs about a second a call, so the potential is
loaded once by a persistent evaluator (``pace_driver.py --serve``, a UNIX-socket server
the engine starts before eOn and stops after); each call of the script is then a thin
stdlib client. Without a running server the script evaluates in process (slow, same
result).

Halt: when the max per-atom gamma exceeds ``gamma_upper`` the configuration is written
to ``pace_halt.extxyz`` (with per-atom gamma) in eOn's run folder
(``EON_EXTPOT_RUN_DIR``, else the working folder), no output file is written, and the
script exits with status 100; eOn stops the job with an error naming that status.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

HALT_EXIT_STATUS = 100
INPUT_FILE = "from_eon_to_extpot"
OUTPUT_FILE = "from_extpot_to_eon"
HALT_DUMP = "pace_halt.extxyz"
GAMMA_LOG = "pace_gamma.log"


def settings_path(script: Path) -> Path:
    return script.with_suffix(".json")


def load_settings(script: Path) -> dict[str, Any]:
    path = settings_path(script)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"pace_driver: settings file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"pace_driver: settings file {path} is not valid JSON: {exc}") from None


def read_eon_input(path: Path) -> dict[str, Any]:
    """Cell rows, atomic numbers and positions from eOn's ``from_eon_to_extpot``."""
    try:
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise SystemExit(f"pace_driver: eOn input file not found: {path}") from None
    if len(lines) < 4 or any(len(row) < 3 for row in lines[:3]):
        raise SystemExit(f"pace_driver: {path}: expected 3 cell rows then 'Z x y z' lines")
    cell = [[float(v) for v in row[:3]] for row in lines[:3]]
    numbers, positions = [], []
    for lineno, row in enumerate(lines[3:], start=4):
        if len(row) < 4:
            raise SystemExit(f"pace_driver: {path}:{lineno}: expected 'Z x y z', got {row}")
        numbers.append(int(float(row[0])))
        positions.append([float(v) for v in row[1:4]])
    return {"cell": cell, "numbers": numbers, "positions": positions}


def write_eon_output(path: Path, energy: float, forces: list[list[float]]) -> None:
    lines = [f"{energy:.12f}"] + [f"{fx:.12f} {fy:.12f} {fz:.12f}" for fx, fy, fz in forces]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


class Evaluator:
    """ACE with its active set, loaded once; decides the halt and writes the dump."""

    def __init__(self, settings: dict[str, Any]):
        if sys.flags.no_site:  # the shebang's -S keeps the client's start fast
            import site

            site.main()
        from pyace import PyACECalculator

        self.settings = settings
        self.calculator = PyACECalculator(settings["potential_yaml"])
        self.calculator.set_active_set(settings["active_set"])
        self.energy_shift = float(settings.get("energy_shift", 0.0))
        self.gamma_upper = float(settings["gamma_upper"])
        self.log = Path(settings["gamma_log"]) if settings.get("gamma_log") else None
        self.calls = 0

    def evaluate(self, request: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        from ase import Atoms

        atoms = Atoms(numbers=request["numbers"], positions=request["positions"],
                      cell=request["cell"], pbc=True)
        atoms.calc = self.calculator
        energy = float(atoms.get_potential_energy()) + self.energy_shift
        forces = atoms.get_forces()
        gamma = np.asarray(self.calculator.results["gamma"], dtype=float)
        gamma_max = float(gamma.max())
        self.calls += 1
        halt = gamma_max > self.gamma_upper
        if self.log is not None:
            with open(self.log, "a") as log:
                log.write(f"{self.calls} {gamma_max:.6f} {energy:.8f}{' HALT' if halt else ''}\n")
        reply: dict[str, Any] = {"energy": energy, "forces": forces.tolist(),
                                 "gamma_max": gamma_max, "halt": halt}
        if halt:
            from ase.io import write

            dump = Path(request.get("run_dir") or ".") / HALT_DUMP
            frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell,
                          pbc=True)
            frame.arrays["gamma"] = gamma
            frame.info["gamma_max"] = gamma_max
            write(dump, frame, format="extxyz")
            reply["dump"] = str(dump)
        return reply


# ---------------------------------------------------------------------- persistent server


def serve(settings: dict[str, Any]) -> None:
    """Answer one JSON request per connection until told to stop (``{"stop": true}``)."""
    import socketserver

    evaluator = Evaluator(settings)
    socket_path = Path(settings["socket"])
    socket_path.unlink(missing_ok=True)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            request = json.loads(self.rfile.readline())
            if request.get("stop"):
                self.wfile.write(b'{"stopped": true}\n')
                self.server._stop = True  # type: ignore[attr-defined]
                return
            try:
                reply = evaluator.evaluate(request)
            except Exception as exc:  # noqa: BLE001 - the client reports it and fails
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            self.wfile.write((json.dumps(reply) + "\n").encode())

    with socketserver.UnixStreamServer(str(socket_path), Handler) as server:
        server._stop = False  # type: ignore[attr-defined]
        tmp = socket_path.with_name(socket_path.name + ".ready")
        tmp.write_text(str(os.getpid()))
        while not server._stop:  # type: ignore[attr-defined]
            server.handle_request()
    socket_path.unlink(missing_ok=True)


def ask_server(socket_path: str, request: dict[str, Any]) -> dict[str, Any] | None:
    """The server's reply, or None when no server listens there."""
    if not socket_path or not Path(socket_path).exists():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        try:
            conn.connect(socket_path)
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        conn.sendall((json.dumps(request) + "\n").encode())
        chunks = []
        while True:
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def main(argv: list[str]) -> int:
    script = Path(__file__).resolve()
    settings = load_settings(script)
    if "--serve" in argv:
        serve(settings)
        return 0
    request = read_eon_input(Path(INPUT_FILE))
    request["run_dir"] = os.environ.get("EON_EXTPOT_RUN_DIR") or os.getcwd()
    reply = ask_server(settings.get("socket", ""), request)
    if reply is None:
        reply = Evaluator(settings).evaluate(request)
    if "error" in reply:
        print(f"pace_driver: evaluation failed: {reply['error']}", file=sys.stderr)
        return 1
    if reply["halt"]:
        print(f"pace_driver: extrapolation halt, max gamma {reply['gamma_max']:.3f} > "
              f"{settings['gamma_upper']}; structure written to {reply['dump']}",
              file=sys.stderr)
        return HALT_EXIT_STATUS
    write_eon_output(Path(OUTPUT_FILE), reply["energy"], reply["forces"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
