"""pyacemaker: autonomous active learning of ACE interatomic potentials."""

__version__ = "0.1.0"
