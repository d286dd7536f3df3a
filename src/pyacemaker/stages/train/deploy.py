"""The deployed model as an ASE calculator: ACE + explicit baseline + reference energies."""

from __future__ import annotations

from ase.calculators.calculator import Calculator

from pyacemaker.state import PotentialRecord


def total_energy_calculator(record: PotentialRecord) -> Calculator:
    """ASE calculator of the absolute energy: ACE + explicit baseline + reference energies."""
    from ase.calculators.mixing import SumCalculator
    from pyace import PyACECalculator

    from pyacemaker.stages.baseline import ReferenceEnergyCalculator, baseline_from_dict

    parts: list[Calculator] = [PyACECalculator(record.yaml)]
    baseline = record.baseline
    if baseline:
        parts.append(baseline_from_dict(baseline).calculator())
    references = record.reference_energies
    if references:
        parts.append(ReferenceEnergyCalculator(references))
    return parts[0] if len(parts) == 1 else SumCalculator(parts)
