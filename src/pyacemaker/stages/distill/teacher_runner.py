"""The teacher as an external program: run by path with the teacher environment's Python
(``.venv-teacher/bin/python teacher_runner.py ...``), never imported by pyacemaker's venv
(torch and the foundation model live only there). Standard library, ASE and the teacher's
own packages only: no pyacemaker import.

Subcommands:

``label``  read a chunk of structures (extxyz), label them with the teacher, write energy,
           forces and stress per structure (extxyz) atomically: written to ``OUT.tmp.PID``,
           fsynced, renamed. The output file's existence means the chunk is done.
``md``     short teacher MD (ASE Langevin, NVT): walkers x temperatures from the start
           structures, a snapshot every ``--interval`` steps, written atomically.
``info``   print the teacher's name and weight sha256 (JSON) and exit.

Every output carries the teacher's report (``teacher_model``, ``teacher_sha256`` in each
frame's info and in ``OUT.json``). ``--calls-log FILE`` appends one JSON line per run (a
count of teacher calls, for resume checks). Teachers: ``chgnet`` (the wheel's CHGNet, or
``--weights FILE``), and any ASE calculator as ``module:factory`` (``--kwargs JSON``;
``--weights FILE`` is hashed and, with ``--weights-kwarg NAME``, passed to the factory).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

CHGNET_DEFAULT = "0.3.0"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Teacher:
    """A loaded teacher: its name, weight file and hash, and how to evaluate structures."""

    def __init__(self, args: argparse.Namespace):
        self.kind = "chgnet" if args.teacher == "chgnet" else "calculator"
        self.batch_size = args.batch_size
        self.device = args.device
        weights = Path(args.weights).resolve() if args.weights else None
        if self.kind == "chgnet":
            import chgnet
            from chgnet.model import CHGNet

            if weights is None:
                folder = Path(chgnet.__file__).parent / "pretrained" / CHGNET_DEFAULT
                weights = next(folder.glob("*.pth.tar"))
                self.name = f"CHGNet {CHGNET_DEFAULT} (chgnet {chgnet.__version__})"
            else:
                self.name = f"CHGNet {weights.name} (chgnet {chgnet.__version__})"
            self.model = CHGNet.from_file(str(weights), version=CHGNET_DEFAULT)
            self.model.eval()
        else:
            module_name, _, factory_name = args.teacher.partition(":")
            if not factory_name:
                raise SystemExit(f"teacher {args.teacher!r}: expected chgnet or module:factory")
            factory = getattr(importlib.import_module(module_name), factory_name)
            kwargs: dict[str, Any] = json.loads(args.kwargs or "{}")
            if weights is not None and args.weights_kwarg:
                kwargs[args.weights_kwarg] = str(weights)
            self.factory, self.kwargs = factory, kwargs
            self.name = args.teacher
        self.weights = str(weights) if weights else None
        self.sha256 = sha256_of(weights) if weights else None

    def report(self) -> dict[str, Any]:
        return {"teacher_model": self.name, "teacher_sha256": self.sha256 or "none",
                "teacher_weights": self.weights}

    def calculator(self) -> Calculator:
        if self.kind == "chgnet":
            from chgnet.model.dynamics import CHGNetCalculator

            return CHGNetCalculator(model=self.model, use_device=self.device)
        calc: Calculator = self.factory(**self.kwargs)
        return calc

    def evaluate(self, structures: list[Atoms]) -> list[dict[str, np.ndarray | float]]:
        """Energy (eV), forces (eV/A) and stress (eV/A^3, ASE's sign and Voigt order) per
        structure; CHGNet in batches of collated graphs, other calculators one by one."""
        if self.kind == "chgnet":
            from pymatgen.io.ase import AseAtomsAdaptor

            adaptor = AseAtomsAdaptor()
            pymatgen = [adaptor.get_structure(atoms) for atoms in structures]
            predictions = self.model.predict_structure(pymatgen, task="efs",
                                                       batch_size=self.batch_size)
            if isinstance(predictions, dict):
                predictions = [predictions]
            out = []
            for atoms, pred in zip(structures, predictions):
                # as CHGNetCalculator: e per atom, s in GPa -> eV/A^3 with units.GPa
                stress = np.asarray(pred["s"], dtype=float) * units.GPa
                out.append({"energy": float(pred["e"]) * len(atoms),
                            "forces": np.asarray(pred["f"], dtype=float),
                            "stress": _voigt(stress)})
            return out
        calc = self.calculator()
        out = []
        for atoms in structures:
            work = atoms.copy()
            work.calc = calc
            result: dict[str, np.ndarray | float] = {
                "energy": float(work.get_potential_energy()),
                "forces": np.asarray(work.get_forces(), dtype=float)}
            if work.pbc.all():
                result["stress"] = np.asarray(work.get_stress(voigt=True), dtype=float)
            out.append(result)
        return out


def _voigt(stress: np.ndarray) -> np.ndarray:
    if stress.shape == (3, 3):
        return np.array([stress[0, 0], stress[1, 1], stress[2, 2],
                         stress[1, 2], stress[0, 2], stress[0, 1]])
    return stress.reshape(6)


def write_atomic(path: Path, frames: list[Atoms], report: dict[str, Any]) -> None:
    """``OUT.json`` (the report), then ``OUT`` (the frames), each written to a temporary
    file in the same folder, fsynced and renamed: a kill leaves no partial output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, writer in ((path.with_name(path.name + ".json"),
                            lambda tmp: tmp.write_text(json.dumps(report, indent=1))),
                           (path, lambda tmp: write(tmp, frames, format="extxyz"))):
        tmp = target.with_name(f"{target.name}.tmp.{os.getpid()}")
        writer(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)


def log_call(args: argparse.Namespace) -> None:
    """One JSON line per started teacher run, before the model loads (a run killed at any
    moment is counted)."""
    if not args.calls_log or args.command == "info":
        return
    line = json.dumps({"command": args.command, "input": str(args.input),
                       "teacher": args.teacher, "pid": os.getpid(), "time": time.time()})
    with open(args.calls_log, "a") as handle:  # O_APPEND: one line per call, never mixed
        handle.write(line + "\n")


def command_label(args: argparse.Namespace, teacher: Teacher) -> dict[str, Any]:
    structures = read(args.input, index=":", format="extxyz")
    start = time.monotonic()
    results = teacher.evaluate(structures)
    frames = []
    for index, (atoms, result) in enumerate(zip(structures, results)):
        frame = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        frame.info.update({k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float))})
        frame.info.update(input_index=index, teacher_model=teacher.name,
                          teacher_sha256=teacher.sha256 or "none")
        frame.calc = SinglePointCalculator(frame, **result)
        frames.append(frame)
    seconds = time.monotonic() - start
    report = {**teacher.report(), "structures": len(frames), "seconds": seconds,
              "atoms": int(sum(len(a) for a in frames)), "batch_size": teacher.batch_size}
    write_atomic(Path(args.output), frames, report)
    return report


def command_md(args: argparse.Namespace, teacher: Teacher) -> dict[str, Any]:
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    starts = read(args.input, index=":", format="extxyz")
    rng = np.random.default_rng(args.seed)
    frames: list[Atoms] = []
    walkers = []
    start_time = time.monotonic()
    for temperature in args.temperatures:
        for walker in range(args.walkers):
            atoms = starts[(len(walkers)) % len(starts)].copy()
            atoms.calc = teacher.calculator()
            MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
            Stationary(atoms)
            dyn = Langevin(atoms, timestep=args.timestep_fs * units.fs,
                           temperature_K=temperature, friction=args.friction_per_fs / units.fs,
                           rng=rng)
            name = f"T{temperature:g}_w{walker}"
            for step in range(args.interval, args.steps + 1, args.interval):
                dyn.run(args.interval)
                snap = Atoms(atoms.numbers, positions=atoms.get_positions(wrap=True),
                             cell=atoms.cell, pbc=atoms.pbc)
                snap.info.update(walker=name, temperature_K=float(temperature), md_step=step,
                                 teacher_energy=float(atoms.get_potential_energy()),
                                 source_task=f"teacher_md:{name}:{step}")
                frames.append(snap)
            walkers.append({"walker": name, "temperature_K": temperature,
                            "final_temperature_K": float(atoms.get_temperature())})
    report = {**teacher.report(), "snapshots": len(frames), "walkers": walkers,
              "steps": args.steps, "timestep_fs": args.timestep_fs,
              "seconds": time.monotonic() - start_time}
    write_atomic(Path(args.output), frames, report)
    return report


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    for name in ("label", "md", "info"):
        sub = commands.add_parser(name)
        sub.add_argument("--teacher", default="chgnet", help="chgnet | module:factory")
        sub.add_argument("--weights", default=None, help="weight file (hashed)")
        sub.add_argument("--weights-kwarg", default=None)
        sub.add_argument("--kwargs", default=None, help="JSON keyword arguments of factory")
        sub.add_argument("--batch-size", type=int, default=16)
        sub.add_argument("--device", default="cpu")
        sub.add_argument("--calls-log", default=None)
        if name != "info":
            sub.add_argument("--input", required=True)
            sub.add_argument("--output", required=True)
        if name == "md":
            sub.add_argument("--temperatures", type=float, nargs="+", required=True)
            sub.add_argument("--walkers", type=int, default=1, help="per temperature")
            sub.add_argument("--steps", type=int, required=True)
            sub.add_argument("--interval", type=int, required=True)
            sub.add_argument("--timestep-fs", type=float, default=2.0)
            sub.add_argument("--friction-per-fs", type=float, default=0.02)
            sub.add_argument("--seed", type=int, default=0)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    log_call(args)
    teacher = Teacher(args)
    if args.command == "info":
        report = teacher.report()
    elif args.command == "label":
        report = command_label(args, teacher)
    else:
        report = command_md(args, teacher)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
