"""Small, fast pw.x settings shared by the oracle tests (coarse meshes, low cutoffs)."""

from __future__ import annotations

from typing import Any

from ase import Atoms
from ase.build import bulk

from pyacemaker.config import CampaignConfig

FAST_SI: dict[str, Any] = {"kspacing": 0.8, "ecutwfc": 25, "ecutrho": 200}


def qe_campaign(elements: list[str], **qe: Any) -> CampaignConfig:
    return CampaignConfig(elements=elements, oracle={"kind": "qe", "qe": {**FAST_SI, **qe}})


def si2_rattled() -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.rattle(0.05, seed=3)
    return atoms
