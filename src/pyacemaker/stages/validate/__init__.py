"""Validation of a fitted potential: phonons, elastic constants, EOS, held-out errors."""
