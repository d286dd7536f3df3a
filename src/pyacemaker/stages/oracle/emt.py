"""ASE's EMT as a fast reference oracle: seconds-fast demo campaigns and pipeline tests.

EMT is an empirical potential, not DFT. Every label it produces says so in its provenance
(``oracle["name"] == "emt"``, ``method`` names the EMT reference), so no EMT number can be
mistaken for a DFT result downstream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.emt import parameters as EMT_PARAMETERS

from pyacemaker.datastore import labelled_copy
from pyacemaker.programs import Launch
from pyacemaker.stages.oracle.base import LabelOutcome, OracleConfigError, geometry_problem

EMT_METHOD = "EMT reference potential (ASE), NOT DFT"


@dataclass
class EMTOracle:
    elements: list[str]
    min_distance: float = 0.6
    name: str = "emt"

    def __post_init__(self) -> None:
        unknown = [e for e in self.elements if e not in EMT_PARAMETERS]
        if unknown:
            raise OracleConfigError(
                f"elements: EMT has no parameters for {unknown}; it knows "
                f"{sorted(EMT_PARAMETERS)}. Use oracle.kind: qe for these elements.")

    def estimate_cost(self, structures: object, done: object = ()) -> None:
        return None  # EMT costs nothing worth announcing

    def provenance(self) -> dict[str, object]:
        return {"name": "emt", "method": EMT_METHOD, "program": "ase.calculators.emt.EMT",
                "settings": {}, "pseudopotentials": {}}

    def label(self, atoms: Atoms, workdir: Path, launch: Launch | None = None) -> LabelOutcome:
        start = time.monotonic()
        problem = geometry_problem(atoms, self.min_distance)
        if problem is None:
            unknown = sorted(set(atoms.get_chemical_symbols()) - set(EMT_PARAMETERS))
            if unknown:
                problem = f"bad_input: EMT has no parameters for {unknown}"
        if problem:
            return LabelOutcome("quarantined", None, problem, [], self.provenance())
        work = atoms.copy()
        work.calc = EMT()
        energy = work.get_potential_energy()
        forces = work.get_forces()
        stress = work.get_stress() if atoms.pbc.all() and "core_mask" not in atoms.info else None
        attempt = {"attempt": 1, "strategy": "initial", "outcome": "converged",
                   "detail": EMT_METHOD, "duration_s": round(time.monotonic() - start, 4),
                   "parameters": {}}
        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            attempt["outcome"] = "unphysical"
            return LabelOutcome("quarantined", None, "unphysical: non-finite EMT result",
                                [attempt], self.provenance())
        labelled = labelled_copy(atoms, energy, forces, stress)
        return LabelOutcome("converged", labelled, "converged (EMT reference, not DFT)",
                            [attempt], self.provenance())
