"""Which settings changed since a campaign folder was started, and whether that matters.

The driver keeps the config a campaign runs with in the folder (``campaign.yaml``,
:data:`CONFIG_COPY`). On resume the new config is compared with it field by field: both
pydantic dumps are flattened to dotted paths (``training.cutoff``, ``oracle.qe.timeout_s``;
a list or a mapping such as ``oracle.qe.pseudopotentials`` is one value) and every changed
path is classified by :data:`RULES`, a table of prefix rules where the longest matching
prefix wins:

PHYSICS    what the folder already holds would disagree with what the settings claim:
           the labels (``elements``, ``oracle``), the model a fit builds and what it
           minimises (``training``: cutoff, basis, loss weights, baseline/ZBL core, which
           data enter), the conditions the data were explored under (temperatures,
           pressures, gamma thresholds), the validation crystals and how their DFT
           reference properties are computed, the random seed. Resuming across such a
           change would leave a warm start, a potential record or a release claiming
           settings it was not made with: refused (``--force`` starts over).
EXECUTION  how much, how long, where and how strict: timeouts, budgets (iterations, DFT
           calls, wall time, optimiser iterations), sampling sizes, the program that runs
           MD, the gate's tolerances and its own procedure on the potential. Accepted on
           resume and logged.

A path that no rule names is PHYSICS: a setting added to the config without a rule here is
refused, never silently accepted (``tests/test_config_changes.py`` checks that every field
of today's config has a rule). Physics changes under ``elements`` or ``oracle`` (or
unknown ones) also change the labels: ``--force`` reuses the old labels only without them.

Folders started before ``campaign.yaml`` was written are compared by fingerprint alone:
the current form (``CampaignConfig.fingerprint``, a hash of :func:`physics_settings`) or
the one older versions stored (elements plus the whole oracle section,
:func:`legacy_fingerprint`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

if TYPE_CHECKING:
    from pyacemaker.config import CampaignConfig

CONFIG_COPY = "campaign.yaml"  # the validated config the campaign runs with (report/package)
Kind = Literal["physics", "execution"]
PHYSICS: Kind = "physics"
EXECUTION: Kind = "execution"
# the oracle settings that change no label (timeouts, healing limits); the DFT reference
# cache key (stages/validate/reference.py) leaves out the same ones
ORACLE_EXECUTION_KEYS = ("timeout_s", "max_healing_attempts")
LABEL_PREFIXES = ("elements", "oracle")  # a physics change here changes the labels


@dataclass(frozen=True)
class Rule:
    prefix: str
    kind: Kind
    why: str


def _rules(kind: Kind, why: str, *prefixes: str) -> list[Rule]:
    return [Rule(prefix, kind, why) for prefix in prefixes]


_EXPLORE, _KMC, _GATE = "exploration.", "exploration.kmc.", "validation."
RULES: tuple[Rule, ...] = tuple([
    *_rules(EXECUTION, "a label: default folder and release name", "name"),
    *_rules(PHYSICS, "the species that are labelled and fitted", "elements"),
    *_rules(PHYSICS, "every random choice: cold-start structures, splits, cut-outs", "seed"),
    *_rules(PHYSICS, "the cold-start structures", "seed_structures",
            "active_learning.cold_start_surfaces"),
    *_rules(PHYSICS, "how a structure is labelled (code, cutoffs, k-points, smearing, "
            "pseudopotentials, filters, healing steps)", "oracle"),
    *_rules(EXECUTION, "how long and how often the oracle tries, not what a label is",
            *(f"oracle.qe.{key}" for key in ORACLE_EXECUTION_KEYS)),
    *_rules(PHYSICS, "the model a fit builds and what it minimises (cutoff, basis, kappa, "
            "weighting, baseline/ZBL core, test split, force filter)", "training"),
    *_rules(EXECUTION, "optimiser budgets and refit schedule: how long fits run, not what "
            "model they build", "training.timeout_s", "training.max_iterations",
            "training.warm_start_iterations", "training.full_refit_every",
            "training.loss_plateau", "training.plateau_patience", "training.fit_restarts"),
    *_rules(PHYSICS, "the conditions the data are explored under (the release states them)",
            *(_EXPLORE + k for k in ("temperatures", "pressures_gpa", "ensemble",
                                     "timestep_fs")),
            *(_KMC + k for k in ("temperature", "prefactor", "start_atoms", "defect"))),
    *_rules(EXECUTION, "the same MD by another program", _EXPLORE + "engine"),
    *_rules(EXECUTION, "sampling sizes and time limits",
            *(_EXPLORE + k for k in ("steps", "target_atoms", "walkers", "gamma_every",
                                     "max_walkers", "max_tasks", "max_frames_per_run",
                                     "timeout_s"))),
    *_rules(EXECUTION, "how much kMC runs and how its saddle searches work",
            *(_KMC + k for k in ("schedule", "tasks", "engine", "search_method",
                                 "searches_per_state", "confidence", "max_steps",
                                 "displacement", "displace_radius", "max_barrier",
                                 "converged_force", "max_search_iterations", "eonclient",
                                 "timeout_s", "symmetry", "symmetry_tolerance",
                                 "vacuum"))),
    *_rules(PHYSICS, "what counts as extrapolation: which configurations become data and "
            "when a run halts", "active_learning.gamma_lower", "active_learning.gamma_upper",
            _KMC + "gamma_lower", _KMC + "gamma_upper"),
    *_rules(EXECUTION, "budgets", *(f"active_learning.{k}" for k in (
        "initial_structures", "max_candidates_per_iteration", "max_iterations",
        "max_dft_calls", "max_wall_time_h"))),
    *_rules(EXECUTION, "when the loop may stop", "stopping.require_no_halts"),
    *_rules(PHYSICS, "the validation crystals and how their DFT reference properties are "
            "computed (the reference cache key)", *(_GATE + k for k in (
                "structures", "relax_fmax", "eos_fit_volume_range", "elastic_max_strain",
                "elastic_strain_points", "reference_phonons", "phonon_reference_supercell",
                "phonon_displacement"))),
    *_rules(PHYSICS, "which labels are held out of every fit", _GATE + "validation_fraction"),
    *_rules(EXECUTION, "the gate's tolerances, targets and its own procedure on the "
            "potential", *(_GATE + k for k in (
                "validate_every_iteration", "relax", "phonon_supercell", "phonon_mesh",
                "imaginary_tolerance_thz", "imaginary_tolerance_gamma_thz", "gamma_radius",
                "phonon_rel_tol", "elastic_rel_tol", "b0_rel_tol", "v0_rel_tol",
                "e0_tol_mev_per_atom", "eos_scan_volumes", "eos_points",
                "min_validation_structures", "regression_tolerance",
                "energy_rmse_mev_per_atom", "force_rmse_ev_per_a", "stress_rmse_gpa",
                "reference_moduli_gpa"))),
])
_BY_PREFIX = {rule.prefix: rule for rule in RULES}
assert len(_BY_PREFIX) == len(RULES), "a prefix has two rules"


def rule_for(path: str) -> Rule | None:
    """The rule of the longest prefix (whole dotted segments) of ``path``; None: no rule."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        rule = _BY_PREFIX.get(".".join(parts[:end]))
        if rule is not None:
            return rule
    return None


def classify(path: str) -> Kind:
    """PHYSICS or EXECUTION; a path without a rule is PHYSICS (the safe side)."""
    rule = rule_for(path)
    return rule.kind if rule is not None else PHYSICS


class _Absent:
    def __repr__(self) -> str:
        return "(not set)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any

    @property
    def kind(self) -> Kind:
        return classify(self.path)

    @property
    def changes_labels(self) -> bool:
        """Labels made before would differ now (oracle, elements, or a field without rule)."""
        return self.kind == PHYSICS and (
            rule_for(self.path) is None or self.path.split(".")[0] in LABEL_PREFIXES)

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"


def _show(value: Any) -> str:
    if value is ABSENT:
        return repr(value)
    return value if isinstance(value, str) else json.dumps(value)


@functools.cache
def sections(model: Any = None, prefix: str = "") -> frozenset[str]:
    """Dotted paths of the config's sub-models (``oracle``, ``oracle.qe`` ...): the
    mappings :func:`flatten` descends into. Other mappings (pseudopotentials per element,
    reference moduli) are one value each, like lists."""
    from pydantic import BaseModel

    if model is None:
        from pyacemaker.config import CampaignConfig

        model = CampaignConfig
    found: set[str] = set()
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found |= {prefix + name} | sections(kind, f"{prefix}{name}.")
    return frozenset(found)


def flatten(data: dict[str, Any], descend: frozenset[str] | None = None,
            prefix: str = "") -> dict[str, Any]:
    """``{"oracle": {"kind": "qe"}}`` -> ``{"oracle.kind": "qe"}``, descending into the
    config's sub-models only (default: :func:`sections`)."""
    descend = sections() if descend is None else descend
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path in descend:
            flat.update(flatten(value, descend, path + "."))
        else:
            flat[path] = value
    return flat


def settings_of(dump: dict[str, Any]) -> dict[str, Any]:
    """The flattened settings of a config dump, element order not counted."""
    flat = flatten(dump)
    if isinstance(flat.get("elements"), list):
        flat["elements"] = sorted(flat["elements"])
    return flat


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every setting whose value differs between two config dumps, in the new dump's
    order. Paths only in ``old`` are settings this version no longer has: not a change."""
    before, after = settings_of(old), settings_of(new)
    return [Change(path, before.get(path, ABSENT), value) for path, value in after.items()
            if before.get(path, ABSENT) != value]


def physics_settings(dump: dict[str, Any]) -> dict[str, Any]:
    """The PHYSICS settings of a config dump, what ``CampaignConfig.fingerprint`` hashes:
    an execution change keeps the fingerprint."""
    return {path: value for path, value in settings_of(dump).items()
            if classify(path) == PHYSICS}


def legacy_fingerprint(dump: dict[str, Any]) -> str:
    """The fingerprint older versions stored: elements and the whole oracle section."""
    relevant = {"elements": sorted(dump["elements"]), "oracle": dump["oracle"]}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def known_fingerprints(config: CampaignConfig) -> set[str]:
    """Every fingerprint a state file of this config may carry (current or older form)."""
    return {config.fingerprint(), legacy_fingerprint(config.model_dump(mode="json"))}


def started_settings(workdir: Path) -> dict[str, Any] | None:
    """The config dump the folder's campaign ran with (its campaign.yaml), with the
    defaults of today's fields filled in; None when the folder has no copy."""
    from pydantic import ValidationError

    from pyacemaker.config import CampaignConfig

    path = Path(workdir) / CONFIG_COPY
    if not path.is_file():
        return None
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        return CampaignConfig.model_validate(raw).model_dump(mode="json")
    except ValidationError:  # written by another version: compare what it says
        return raw if isinstance(raw, dict) else None


@dataclass
class Comparison:
    """The changes since the folder's campaign started. ``unnamed``: the physics differ
    but the fields cannot be named (a folder without campaign.yaml, by fingerprint)."""

    changes: list[Change] = field(default_factory=list)
    unnamed: str = ""

    @property
    def physics(self) -> list[Change]:
        return [c for c in self.changes if c.kind == PHYSICS]

    @property
    def execution(self) -> list[Change]:
        return [c for c in self.changes if c.kind == EXECUTION]

    @property
    def refused(self) -> bool:
        return bool(self.physics or self.unnamed)

    @property
    def changes_labels(self) -> bool:
        return bool(self.unnamed) or any(c.changes_labels for c in self.physics)

    def describe(self) -> str:
        """One line per physics change (or the fingerprint mismatch)."""
        return "\n".join([f"  {c}" for c in self.physics] + (
            [f"  {self.unnamed}"] if self.unnamed else []))


def compare_with_folder(workdir: Path, config: CampaignConfig,
                        state_fingerprint: str | None) -> Comparison:
    """What changed between the config the folder's campaign ran with and ``config``."""
    started = started_settings(workdir)
    if started is not None:
        return Comparison(diff(started, config.model_dump(mode="json")))
    if state_fingerprint is None or state_fingerprint in known_fingerprints(config):
        return Comparison()
    return Comparison(unnamed=(
        "elements or oracle settings differ from those the campaign started with (fingerprint "
        f"{state_fingerprint}; the folder has no {CONFIG_COPY}, written since, to name them)"))
