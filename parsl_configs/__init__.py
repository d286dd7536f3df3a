"""One factory per scheduler kind: ``make_config(site, run_dir) -> parsl.config.Config``.

Each factory builds one executor per stage class (dft, train, md, light) so that DFT
batches and long fits get the blocks they need. Pick one with :func:`factory_for`.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parsl.config import Config

    from pyacemaker.config import SiteConfig

ConfigFactory = Callable[["SiteConfig", Path], "Config"]


def factory_for(scheduler: str) -> ConfigFactory:
    """The ``make_config`` of ``parsl_configs/<scheduler>.py``."""
    if scheduler not in ("local", "slurm", "pbs"):
        raise ValueError(f"no Parsl config factory for scheduler {scheduler!r}")
    return import_module(f"parsl_configs.{scheduler}").make_config
