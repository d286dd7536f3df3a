"""What every config model shares: strict models and the error that names file and field."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid; the message names file and field."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def check_gamma_order(gamma_lower: float, gamma_upper: float) -> None:
    """Frames between the two thresholds are candidates, above the upper one a run halts."""
    if gamma_upper <= gamma_lower:
        raise ValueError(f"gamma_upper ({gamma_upper}) must be greater than gamma_lower "
                         f"({gamma_lower})")
