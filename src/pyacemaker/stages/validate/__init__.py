"""Validation of a fitted potential: phonons, elastic constants, EOS, held-out errors,
and the Go/No-Go gate that combines them."""

from pyacemaker.stages.validate.gate import (
    VALIDATION_FILE,
    Check,
    CrystalValidation,
    ValidationReport,
    validate_potential,
)

__all__ = ["VALIDATION_FILE", "Check", "CrystalValidation", "ValidationReport",
           "validate_potential"]
