"""Site YAMLs by name: the ones shipped with the package (``site_configs/``) make
``pyacemaker run X.yaml --site local`` work from any folder, outside the checkout too."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from pyacemaker.config import ConfigError


def shipped_sites() -> dict[str, Path]:
    """The site YAMLs installed with the package, by name (local, cluster, pbs, ...)."""
    folder = Path(str(importlib.resources.files("site_configs")))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_site(name_or_path: str | Path) -> Path:
    """A site YAML given as a path, or by name: then ``site_configs/<name>.yaml`` in the
    current folder (a user's own edited copy) wins over the shipped one."""
    given = Path(name_or_path)
    if given.suffix in (".yaml", ".yml") or given.parent != Path("."):
        return given
    own_copy = Path("site_configs") / f"{given}.yaml"
    if own_copy.is_file():
        return own_copy
    shipped = shipped_sites()
    if str(given) in shipped:
        return shipped[str(given)]
    raise ConfigError(f"site {str(given)!r}: neither a YAML file nor a shipped site "
                      f"(shipped: {', '.join(shipped)}); give the path of a site YAML")
