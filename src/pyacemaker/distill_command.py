"""``pyacemaker distill CONFIG.yaml --site SITE --workdir DIR``: the distillation workflow
(issue 18, in progress): teacher MD, batch labelling into the data lake, base ACE. The
work is in :mod:`pyacemaker.execution.teaching` (imported only when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_distill_command(sub: Any) -> None:
    distill = sub.add_parser(
        "distill", help="distil a foundation model (the teacher) into ACE: teacher MD, "
        "batch labelling into the data lake, base ACE (in progress; README)")
    distill.add_argument("config", type=Path, help="distillation YAML (examples/distill/si-chgnet.yaml)")
    distill.add_argument("--site", default="local", help="site YAML or shipped site name")
    distill.add_argument("--workdir", type=Path, required=True, help="distillation folder")
    distill.set_defaults(func=_cmd_distill)


def _cmd_distill(args: argparse.Namespace) -> int:
    from pyacemaker.execution.teaching import distill
    from pyacemaker.logs import setup_logging
    from pyacemaker.sites import resolve_site

    args.workdir.mkdir(parents=True, exist_ok=True)
    setup_logging(args.workdir)  # Parsl's DEBUG lines go to the folder's log, not here
    distill(args.config, resolve_site(args.site), args.workdir)
    return 0
