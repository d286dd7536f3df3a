"""Fitting ACE potentials with pacemaker: dataset, input.yaml, fit, .yace, active set.

Energy referencing (explicit, per element): the training target is

    energy_corrected = E_label - sum_i E_ref[species_i] - E_baseline

where ``E_ref`` are free-atom energies of the same oracle that labelled the data (so the
ACE energy of an isolated atom, which is zero, is physically right), and ``E_baseline``
is the explicit pair baseline of delta learning (zero otherwise). The reference energies
and the baseline are written next to the potential (``potential_meta.json``) and into
the :class:`~pyacemaker.state.PotentialRecord`; :func:`total_energy_calculator` adds both
back, so it reproduces the labels' absolute energies.

pacemaker runs as an external program in its own folder (``workdir``); a fit that ends
badly raises :class:`FitFailed` carrying the log tail, and never touches the previous
potential (each fit has its own folder; nothing is written anywhere else).
"""

from pyacemaker.stages.train.dataset import (composition_fit_energies, dataset_meta_path,
                                             export_training_set,
                                             free_atom_energies, inner_core_radii,
                                             read_dataset_meta, read_training_structures,
                                             reference_energies,
                                             resolve_baseline, shortest_bond_distances,
                                             shortest_distance, stage_training_set,
                                             training_frame, write_training_set)
from pyacemaker.stages.train.deploy import total_energy_calculator
from pyacemaker.stages.train.fit import build_active_set, fit_potential, load_record
from pyacemaker.stages.train.outputs import (ACTIVE_SET, META_FILE, POTENTIAL_YACE,
                                             POTENTIAL_YAML, RECORD_FILE, FitFailed,
                                             count_functions, fit_metrics, initial_train_rmse)
from pyacemaker.stages.train.inputs import bond_keys, pacemaker_input
from pyacemaker.stages.train.refit import RefitPlan, plan_refit, warm_fit_degraded

__all__ = [
    "ACTIVE_SET", "META_FILE", "POTENTIAL_YACE", "POTENTIAL_YAML", "RECORD_FILE", "FitFailed",
    "RefitPlan", "bond_keys", "build_active_set", "composition_fit_energies", "count_functions",
    "dataset_meta_path",
    "export_training_set", "fit_metrics", "fit_potential", "free_atom_energies",
    "initial_train_rmse", "inner_core_radii", "load_record", "pacemaker_input", "plan_refit",
    "read_dataset_meta", "read_training_structures", "reference_energies", "resolve_baseline",
    "shortest_bond_distances", "shortest_distance", "stage_training_set",
    "total_energy_calculator", "training_frame", "warm_fit_degraded", "write_training_set",
]
