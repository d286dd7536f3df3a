"""What every oracle promises: the :class:`LabelOutcome` record and :func:`make_oracle`.

An oracle turns one structure into a labelled one. It never raises for a bad structure or
a failed calculation (it quarantines with a reason); it raises :class:`OracleConfigError`
only for a problem that would hit every structure (no pseudopotential for an element, an
element EMT does not know ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from ase import Atoms

from pyacemaker.programs import Launch

if TYPE_CHECKING:
    from pyacemaker.config import CampaignConfig, ProgramSettings
    from pyacemaker.stages.oracle.cost import CostEstimate


class OracleConfigError(ValueError):
    """A setting or file the oracle needs for every structure is missing or wrong."""


@dataclass
class LabelOutcome:
    status: Literal["converged", "quarantined"]
    atoms: Atoms | None
    reason: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    oracle: dict[str, Any] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return self.status == "converged"


class Oracle(Protocol):
    name: str

    def label(self, atoms: Atoms, workdir: Path, launch: Launch | None = None) -> LabelOutcome:
        ...

    def estimate_cost(self, structures: Sequence[Atoms],
                      done: Sequence[tuple[Atoms, float]] = ()) -> CostEstimate | None:
        """What labelling ``structures`` will cost (None: negligible, e.g. EMT)."""
        ...


def closest_pair(atoms: Atoms, probe: float = 3.0) -> tuple[float, int, int]:
    """Shortest interatomic distance (periodic images included) and the two atoms;
    infinity when no pair is closer than ``probe``."""
    if len(atoms) < 2 and not atoms.pbc.any():
        return float("inf"), 0, 0
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, probe, self_interaction=False)
    if len(d) == 0:
        return float("inf"), 0, 0
    k = int(np.argmin(d))
    return float(d[k]), int(i[k]), int(j[k])


def geometry_problem(atoms: Atoms, min_distance: float) -> str | None:
    """A reason to refuse this structure before spending any computation on it, or None."""
    if len(atoms) == 0:
        return "bad_input: the structure has no atoms"
    if not np.all(np.isfinite(atoms.positions)):
        return "bad_input: non-finite atomic positions"
    if atoms.pbc.any() and abs(atoms.cell.volume) < 1e-6:
        return "bad_input: periodic structure with a zero-volume cell"
    distance, i, j = closest_pair(atoms, probe=max(3.0, 2 * min_distance))
    if distance < min_distance:
        return (f"unphysical: atoms {i} ({atoms[i].symbol}) and {j} ({atoms[j].symbol}) are "
                f"{distance:.3f} A apart, closer than min_interatomic_distance={min_distance} A")
    return None


def make_oracle(config: CampaignConfig, programs: ProgramSettings | None = None) -> Oracle:
    """The oracle the campaign asks for (``oracle.kind``), checked against its elements.

    ``programs`` (the site's) names the pw.x executable; default ``pw.x`` on PATH.
    """
    kind = config.oracle.kind
    if kind == "emt":
        from pyacemaker.stages.oracle.emt import EMTOracle

        return EMTOracle(elements=list(config.elements),
                         min_distance=config.oracle.qe.min_interatomic_distance)
    if kind == "qe":
        from pyacemaker.stages.oracle.qe import QEOracle

        pw = programs.pw if programs is not None else "pw.x"
        return QEOracle(config.oracle.qe, elements=list(config.elements), pw_command=pw)
    raise OracleConfigError(f"oracle.kind: unknown oracle {kind!r}")
