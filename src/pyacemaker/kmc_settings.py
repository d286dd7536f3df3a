"""The kMC section of a campaign YAML (``exploration.kmc``), see docs/kmc.md."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pyacemaker.config_base import StrictModel, check_gamma_order


class KMCConfig(StrictModel):
    """Adaptive kinetic Monte Carlo exploration (eOn), see docs/kmc.md."""

    schedule: Literal["off", "after_md_quiet", "always"] = Field(
        "after_md_quiet",
        description="When the loop runs kMC tasks: never; from the iteration after one in "
        "which no MD run halted (then in every later iteration); or in every iteration.",
    )
    tasks: int = Field(1, gt=0, description="kMC tasks per iteration (different seeds).")
    start_atoms: int = Field(
        32, gt=1, description="Atoms of the kMC start supercell before the defect is made."
    )
    defect: Literal["vacancy", "none"] = Field(
        "vacancy", description="Defect made in the start supercell (none: the cell as is)."
    )
    engine: Literal["inprocess", "eonclient"] = Field(
        "inprocess",
        description="inprocess: aKMC driven here on the pyeonclient library; eonclient: "
        "each saddle search is an eOn client process_search job with the ACE ext_pot driver.",
    )
    temperature: float = Field(500.0, gt=0, description="K, for the harmonic TST rates.")
    prefactor: float | Literal["computed"] = Field(
        1e12, description="1/s; 'computed': harmonic TST (Vineyard) prefactor from "
        "finite-difference Hessians of all free atoms at the minimum and the saddle."
    )
    search_method: Literal["dimer", "lanczos"] = Field(
        "dimer", description="Min-mode saddle search: improved dimer or Lanczos."
    )
    searches_per_state: int = Field(8, gt=0, description="At most this many searches a state.")
    confidence: float = Field(
        0.9, gt=0, lt=1, description="Stop searching a state once this sure no process is missing."
    )
    symmetry: bool = Field(
        True, description="Add the symmetry-equivalent copies of every process found (the "
        "reactant's space-group operations, spglib).")
    symmetry_tolerance: float = Field(
        0.05, gt=0, le=0.5, description="A; spglib's symprec for the reactant's operations.")
    vacuum: float = Field(
        10.0, gt=0, description="A; a slab or cluster (pbc False along an axis) is embedded "
        "in a periodic box with this much vacuum along that axis.")
    max_steps: int = Field(10, gt=0, description="kMC steps of one task.")
    gamma_lower: float = Field(2.0, gt=0, description="Configurations above are kept as frames.")
    gamma_upper: float = Field(5.0, gt=0, description="A force call above this halts the run.")
    displacement: float = Field(0.1, gt=0, le=1.0, description="A, std of the initial kick.")
    displace_radius: float = Field(3.3, gt=0, description="A; neighbours kicked with the epicentre.")
    max_barrier: float = Field(3.0, gt=0, description="eV; searches above are discarded.")
    converged_force: float = Field(0.01, gt=0, description="eV/A, saddle and minima.")
    max_search_iterations: int = Field(500, gt=0, description="Iterations of one saddle search.")
    eonclient: str = Field(
        "eonclient",
        description="eonclient engine: the eOn 3.2+ client executable, or 'pyeonclient' to run "
        "eOn's client jobs through the pyeonclient bindings in a subprocess.",
    )
    timeout_s: float = Field(3600.0, gt=0, description="Wall-time limit of one eonclient job.")

    @field_validator("prefactor")
    @classmethod
    def _positive_prefactor(cls, value: float | str) -> float | str:
        if isinstance(value, float) and value <= 0:
            raise ValueError(f"prefactor must be > 0 (1/s) or 'computed', got {value}")
        return value

    @model_validator(mode="after")
    def _ordered_gamma(self) -> KMCConfig:
        check_gamma_order(self.gamma_lower, self.gamma_upper)
        return self
