"""Pydantic models of campaign.yaml and site.yaml.

Defaults are physics-based so that ``elements: [Si]`` alone is a valid campaign.
Unknown keys are errors (``extra="forbid"`` everywhere); :func:`load_campaign` and
:func:`load_site` turn any validation problem into a :class:`ConfigError` that names
the file, the field path and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from ase.data import atomic_numbers
from pydantic import Field, ValidationError, field_validator, model_validator


from pyacemaker.config_base import ConfigError, StrictModel
from pyacemaker.loop_settings import (  # noqa: F401 - re-exported
    ActiveLearningSettings,
    StoppingSettings,
)
from pyacemaker.validation_settings import ValidationSettings  # noqa: F401 - re-exported
from pyacemaker.kmc_settings import KMCConfig  # noqa: F401 - re-exported
from pyacemaker.site_config import (  # noqa: F401 - re-exported: one place to import from
    STAGE_CLASSES,
    ContainerSettings,
    MonitoringSettings,
    ProgramSettings,
    SiteConfig,
    StageClass,
    StageResources,
    Tool,
)

# --------------------------------------------------------------------------- campaign


class DFTSettings(StrictModel):
    """Quantum ESPRESSO settings. ``None`` means: use the per-element default."""

    pseudo_dir: Path | None = Field(
        None, description="Directory searched for SSSP-style pseudopotential files."
    )
    pseudopotentials: dict[str, Path] = Field(
        default_factory=dict, description="Explicit pseudopotential file per element (wins)."
    )
    ecutwfc: float | None = Field(None, gt=0, description="Ry; default: max over elements.")
    ecutrho: float | None = Field(None, gt=0, description="Ry; default: 8x ecutwfc (US/PAW).")
    kspacing: float = Field(0.25, gt=0, description="Max reciprocal spacing, 2*pi/A units of ASE.")
    smearing: Literal["mv", "gaussian", "mp", "fd"] = "mv"
    degauss: float = Field(0.01, gt=0, description="Ry")
    spin: Literal["auto", "on", "off"] = "auto"
    conv_thr_per_atom: float = Field(1e-9, gt=0, description="Ry per atom")
    mixing_beta: float = Field(0.7, gt=0, le=1)
    electron_maxstep: int = Field(100, gt=0)
    timeout_s: float = Field(3600.0, gt=0, description="Wall-time limit of one pw.x run.")
    max_healing_attempts: int = Field(6, ge=0)
    min_interatomic_distance: float = Field(
        0.6, gt=0, description="A; structures with closer atoms are rejected before DFT."
    )
    max_force: float = Field(
        50.0, gt=0, description="eV/A; a converged result with a larger force is unphysical."
    )
    magnetic_moments: dict[str, float] = Field(
        default_factory=dict,
        description="Starting moment (Bohr magneton) per element; overrides the built-in table. "
        "Atoms that carry their own initial magnetic moments keep them.",
    )
    healing_strategies: list[
        Literal["reduce_mixing", "local_tf", "more_steps", "more_smearing", "cg_diagonalization"]
    ] = Field(
        default_factory=lambda: [
            "reduce_mixing", "local_tf", "more_steps", "more_smearing", "cg_diagonalization",
        ],
        min_length=1,
        description="Order in which an unconverged SCF is retried; each step keeps the earlier "
        "changes. Crashes retry with fewer MPI ranks, time-outs restart from pw.x's saved state.",
    )


class OracleSettings(StrictModel):
    kind: Literal["qe", "emt"] = Field(
        "qe", description="qe: Quantum ESPRESSO DFT; emt: ASE's EMT reference (not DFT)."
    )
    qe: DFTSettings = Field(default_factory=DFTSettings)


class BaselineSettings(StrictModel):
    """Physical short-range baseline under the ACE model."""

    kind: Literal["zbl_core", "delta_zbl", "delta_lj", "none"] = Field(
        "zbl_core",
        description="zbl_core: pacemaker's own ZBL inner core; delta_*: fit the residual "
        "to an explicit pair baseline added back at run time.",
    )
    inner_cutoff: float | None = Field(
        None, gt=0,
        description="A. zbl_core: r_in of pacemaker's ZBL core per bond; delta_zbl: distance "
        "where the ZBL baseline is switched off (switch starts at half of it). None: the "
        "shortest interatomic distance in the training data.",
    )
    inner_cutoff_margin: float = Field(
        0.0, ge=0,
        description="A. zbl_core without inner_cutoff: r_in per bond = shortest distance of "
        "that bond in the whole training set (train and test split) minus this margin, set "
        "before the fit and on warm starts. A margin leaves ACE unconstrained below the data "
        "(seen: a 0.2 A margin let compressed fcc Cu collapse).",
    )
    lj_epsilon: float = Field(0.01, gt=0)
    lj_sigma: float = Field(2.0, gt=0)


class WeightingSettings(StrictModel):
    """pacemaker's data weighting (``fit: weighting:`` in input.yaml), see docs/training.md.

    energy_based is pacemaker's EnergyBasedWeightingPolicy: energy weight
    1/(dE + de)^2 with dE the energy per atom above the convex hull, force weight
    1/(|F|^2 + df) per atom times the structure's energy weight.
    """

    kind: Literal["energy_based", "uniform"] = Field(
        "energy_based",
        description="energy_based: pacemaker's EnergyBasedWeightingPolicy; uniform: "
        "pacemaker's default (every structure and every atom alike).",
    )
    de_low: float = Field(
        1.0, gt=0, description="DElow, eV/atom above the hull: the low-energy tier.")
    de_up: float = Field(
        10.0, gt=0, description="DEup, eV/atom above the hull: structures higher are left "
        "out of the fit by pacemaker (counted in the metrics, kept in the data lake).")
    de: float = Field(1.0, gt=0, description="DE, eV/atom: energy weight 1/(dE + DE)^2.")
    df: float = Field(1.0, gt=0, description="DF, (eV/A)^2: force weight 1/(|F|^2 + DF).")
    ground_state_factor: float = Field(
        100.0, gt=0, description="Weight factor (pacemaker's w_factor) of the cold start's "
        "ground-state property cells: the crystal, its EOS and strain series, from which "
        "B0 and Cij are learned (docs/training.md, measured). 1: weighted like every other "
        "structure.")
    wlow: float | None = Field(
        None, gt=0, le=1,
        description="Share of the energy weight given to the low tier (None: as the formula "
        "gives).")
    energy: Literal["convex_hull", "cohesive"] = Field(
        "convex_hull", description="Reference for dE: the convex hull, or the lowest "
        "energy per atom.")


class TrainingSettings(StrictModel):
    cutoff: float = Field(5.0, gt=1.0, le=12.0, description="ACE radial cutoff, A")
    number_of_functions_per_element: int = Field(
        64, gt=0, description="ACE basis functions per element (Si: 32 left C11/C12 25-36 % "
        "off where 64 gave <= 4 %, docs/training.md).")
    lmax_by_orders: list[int] = Field(
        default_factory=lambda: [0, 2, 2, 1], min_length=1, max_length=6,
        description="pacemaker's lmax per body order (pair, 3-body, ...): the angular "
        "resolution of the basis (Si's TA phonons: [0, 3, 3, 2] 6 % off where [0, 2, 2, 1] "
        "gave 15 %, docs/training.md).")
    nradmax_by_orders: list[int] = Field(
        default_factory=lambda: [15, 3, 2, 1], min_length=1, max_length=6,
        description="pacemaker's radial functions per body order (same length as "
        "lmax_by_orders).")
    ladder_step: int | None = Field(
        None, gt=0, description="If set, ladder fitting adding this many functions a step."
    )
    kappa: float = Field(0.3, ge=0, le=1, description="Force weight in the loss.")
    l1_coefficients: float = Field(1e-8, ge=0, description="pacemaker's L1_coeffs "
                                   "(regularisation of the basis coefficients).")
    l2_coefficients: float = Field(1e-8, ge=0, description="pacemaker's L2_coeffs.")
    max_iterations: int = Field(1500, gt=0, description="BFGS iterations of a full fit "
                                "(at most: see loss_plateau; 300 were far from converged "
                                "for Si, docs/training.md).")
    warm_start_iterations: int = Field(100, gt=0, description="Iterations of an upfit "
                                       "(at most).")
    loss_plateau: float | None = Field(
        1e-4, gt=0, lt=1, description="A fit stops early once no BFGS step of the last "
        "plateau_patience lowered its train loss by more than this fraction (pacemaker's "
        "min_relative_train_loss_per_iter). None: always run the iteration cap.")
    plateau_patience: int = Field(50, gt=1, description="Steps the plateau test looks back.")
    fit_restarts: int = Field(
        3, ge=0, description="A fit that scipy's BFGS ends early on 'precision loss' "
        "(neither the plateau nor the cap) is continued from its result this many times "
        "at most, for the steps left (stages/train/restart.py). 0: never.")
    full_refit_every: int = Field(3, gt=0, description="Full refit every N iterations.")
    test_fraction: float = Field(
        0.1, ge=0, lt=0.5, description="pacemaker's own test split of a fit made outside a "
        "campaign, or in one without a validation set (validation.validation_fraction: 0); "
        "a campaign's fixed validation set scores its fits instead, and they get all the "
        "rest.")
    timeout_s: float = Field(6 * 3600.0, gt=0)
    baseline: BaselineSettings = Field(default_factory=BaselineSettings)
    weighting: WeightingSettings = Field(
        default_factory=WeightingSettings, description="Energy/force weights of the fit.")
    max_force_ev_per_a: float | None = Field(
        20.0, gt=0,
        description="eV/A; structures with a larger force on any atom (after the baseline "
        "is removed) are left out of the fit, with a logged count (the data lake keeps "
        "them). None: keep all.",
    )


    @model_validator(mode="after")
    def _orders_match(self) -> TrainingSettings:
        if len(self.lmax_by_orders) != len(self.nradmax_by_orders):
            raise ValueError(f"training.lmax_by_orders {self.lmax_by_orders} and "
                             f"training.nradmax_by_orders {self.nradmax_by_orders} must list "
                             "the same body orders")
        return self


class ExplorationSettings(StrictModel):
    engine: Literal["auto", "ase", "lammps"] = "auto"
    temperatures: list[float] = Field(default_factory=lambda: [300.0, 600.0, 1200.0])
    pressures_gpa: list[float] = Field(default_factory=lambda: [0.0])
    ensemble: Literal["nvt", "npt"] = "nvt"
    steps: int = Field(2000, gt=0)
    timestep_fs: float = Field(1.0, gt=0)
    target_atoms: int = Field(64, gt=0, description="Approximate supercell size.")
    walkers: int = Field(2, gt=0)
    gamma_every: int = Field(10, gt=0, description="Compute gamma every N steps.")
    max_walkers: int = Field(8, gt=0, description="Walkers per condition at most (policy).")
    max_tasks: int = Field(16, gt=0, description="MD tasks per iteration at most (policy).")
    max_frames_per_run: int = Field(
        20, gt=0, description="Frames kept per run: the halted one and the highest-gamma others."
    )
    timeout_s: float = Field(7200.0, gt=0, description="Wall-time limit of one MD run.")
    kmc: KMCConfig = Field(default_factory=KMCConfig, description="aKMC exploration (eOn).")


class CampaignConfig(StrictModel):
    name: str = "campaign"
    elements: list[str] = Field(..., min_length=1)
    seed_structures: list[Path] = Field(
        default_factory=list, description="Files ASE can read (cif, POSCAR, extxyz ...)."
    )
    seed: int = Field(42, description="Random seed for every stochastic step.")
    oracle: OracleSettings = Field(default_factory=OracleSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    exploration: ExplorationSettings = Field(default_factory=ExplorationSettings)
    active_learning: ActiveLearningSettings = Field(default_factory=ActiveLearningSettings)
    stopping: StoppingSettings = Field(default_factory=StoppingSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)

    @field_validator("elements")
    @classmethod
    def _known_elements(cls, elements: list[str]) -> list[str]:
        unknown = [e for e in elements if e not in atomic_numbers or e == "X"]
        if unknown:
            raise ValueError(f"unknown chemical symbol(s) {unknown}; expected e.g. 'Si', 'Cu'")
        if len(set(elements)) != len(elements):
            raise ValueError(f"duplicate elements in {elements}")
        return elements

    def fingerprint(self) -> str:
        """Hash of the physics settings (config_changes.py), those that make earlier results
        incompatible if changed; execution settings (timeouts, budgets ...) are left out."""
        from pyacemaker.config_changes import physics_settings

        relevant = physics_settings(self.model_dump(mode="json"))
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------- loading


def _describe_error(err: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key (not a field of this section; check the spelling)"
    if kind == "missing":
        return f"{path}: required field is missing"
    expected = err.get("msg", "")
    given = err.get("input")
    if isinstance(given, (str, int, float, bool)) or given is None:
        return f"{path}: {expected} (got {given!r})"
    return f"{path}: {expected}"


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def _validate(model: type[StrictModel], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [_describe_error(e) for e in exc.errors()]
        raise ConfigError(f"{path}: invalid {model.__name__}:\n  " + "\n  ".join(lines)) from None


def _resolve_relative(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p).resolve()


def load_campaign(path: str | Path) -> CampaignConfig:
    """Read and validate a campaign YAML; relative paths are taken from its folder."""
    path = Path(path)
    cfg: CampaignConfig = _validate(CampaignConfig, _read_yaml(path), path)
    base = path.resolve().parent
    seeds = [_resolve_relative(base, s) for s in cfg.seed_structures]
    for i, seed in enumerate(seeds):
        if not seed.is_file():
            raise ConfigError(f"{path}: seed_structures.{i}: file not found: {seed}")
    cfg.seed_structures = seeds
    if seeds:  # readable by ASE, no atoms on top of each other: before anything starts
        from pyacemaker.seed_checks import check_seed_files
        check_seed_files(path, cfg)
    checks = [_resolve_relative(base, s) for s in cfg.validation.structures]
    for i, crystal in enumerate(checks):
        if not crystal.is_file():
            raise ConfigError(f"{path}: validation.structures.{i}: file not found: {crystal}")
    cfg.validation.structures = checks
    qe = cfg.oracle.qe
    if qe.pseudo_dir is not None:
        qe.pseudo_dir = _resolve_relative(base, qe.pseudo_dir)
        if not qe.pseudo_dir.is_dir():
            raise ConfigError(f"{path}: oracle.qe.pseudo_dir: directory not found: {qe.pseudo_dir}")
    resolved = {}
    for element, file in qe.pseudopotentials.items():
        if element not in cfg.elements:
            raise ConfigError(
                f"{path}: oracle.qe.pseudopotentials.{element}: not one of elements {cfg.elements}"
            )
        candidate = file if file.is_absolute() or qe.pseudo_dir is None else qe.pseudo_dir / file
        candidate = _resolve_relative(base, candidate)
        if not candidate.is_file():
            raise ConfigError(
                f"{path}: oracle.qe.pseudopotentials.{element}: file not found: {candidate}"
            )
        resolved[element] = candidate
    qe.pseudopotentials = resolved
    return cfg


def load_site(path: str | Path) -> SiteConfig:
    """Read and validate a site YAML, given as a path or by name (see :func:`resolve_site`)."""
    from pyacemaker.sites import resolve_site

    path = resolve_site(path)
    return _validate(SiteConfig, _read_yaml(path), path)
