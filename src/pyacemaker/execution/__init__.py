"""The execution layer: the only package that imports Parsl.

``Engine`` loads a site, builds its Parsl Config (parsl_configs/<scheduler>.py), and
submits plain stage functions to the executor of their stage class (dft, train, md,
light). ``launch_for`` turns the site's resources and container settings into the
:class:`pyacemaker.programs.Launch` a stage uses to start its programs.
"""

from pyacemaker.execution.engine import Engine, launch_for

__all__ = ["Engine", "launch_for"]
