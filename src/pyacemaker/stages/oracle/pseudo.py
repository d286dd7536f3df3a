"""Pseudopotentials: which file per element, its checksum, and proof pw.x read that file.

Precedence: an explicit file in the config (``oracle.qe.pseudopotentials``) > an SSSP-style
name (``Si.*.UPF``, ``si_pbe_*.upf`` ...) in ``oracle.qe.pseudo_dir`` > a PBE file shipped by
Debian in /usr/share/espresso/pseudo. pw.x silently falls back to its system directory when a
file is missing from pseudo_dir, so every run's "read from file" lines are compared with the
intended files (by checksum) and a mismatch stops the labelling.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pyacemaker.stages.oracle.base import OracleConfigError

DEBIAN_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
# The Debian package that ships it (a Recommends of quantum-espresso, so named on its own).
DEBIAN_PSEUDO_PACKAGE = "quantum-espresso-data"

# Debian's PBE files we prefer when several exist (pslibrary 1.0.0 where shipped).
DEBIAN_PBE_CHOICE: dict[str, str] = {
    "Si": "Si.pbe-nl-rrkjus_psl.1.0.0.UPF",
    "Cu": "Cu.pbe-kjpaw.UPF",
    "Fe": "Fe.pbe-spn-rrkjus_psl.0.2.1.UPF",
    "Ni": "Ni.pbe-spn-kjpaw_psl.1.0.0.UPF",
    "Cr": "Cr.pbe-spn-kjpaw_psl.1.0.0.UPF",
    "O": "O.pbe-kjpaw.UPF",
    "N": "N.pbe-n-kjpaw_psl.1.0.0.UPF",
    "C": "C.pbe-rrkjus.UPF",
    "H": "H.pbe-kjpaw.UPF",
    "B": "B.pbe-n-kjpaw_psl.1.0.0.UPF",
    "Ge": "Ge.pbe-kjpaw.UPF",
    "I": "I.pbe-n-kjpaw_psl.1.0.0.UPF",
    "Pt": "Pt.rel-pbe-n-rrkjus.UPF",
}
PSEUDO_SUFFIXES = (".upf", ".UPF")


@dataclass(frozen=True)
class PseudoChoice:
    element: str
    path: Path
    sha256: str
    source: str  # explicit | pseudo_dir | debian
    kind: str  # NC | US | PAW | unknown
    functional: str
    z_valence: float | None

    @property
    def norm_conserving(self) -> bool:
        return self.kind == "NC"

    def record(self) -> dict[str, str]:
        return {"element": self.element, "file": str(self.path), "sha256": self.sha256,
                "source": self.source, "kind": self.kind, "functional": self.functional}



def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=256)
def _header(path: Path, mtime: float) -> tuple[str, str, float | None]:
    """(kind, functional, valence) from a UPF header; 'unknown'/None when it does not say."""
    head = path.read_text(errors="replace")[:20000]
    kind = "unknown"
    match = re.search(r'pseudo_type\s*=\s*"\s*(\w+)', head)
    if match:
        kind = match.group(1).upper()
    elif re.search(r"US\s+Ultrasoft|Ultrasoft", head[:4000], re.IGNORECASE):
        kind = "US"
    elif "PAW" in head[:4000]:
        kind = "PAW"
    kind = {"SL": "NC", "USPP": "US"}.get(kind, kind)
    functional = "unknown"
    match = re.search(r'functional\s*=\s*"\s*([^"]+?)\s*"', head)
    if match:
        functional = " ".join(match.group(1).split())
    z_valence = None
    match = re.search(r'z_valence\s*=\s*"\s*([-+.\dEeDd]+)', head)
    if match is None:
        match = re.search(r"^\s*([-+.\dEeDd]+)\s+Z valence", head, re.MULTILINE)
    if match:
        z_valence = float(match.group(1).lower().replace("d", "e"))
    return kind, functional, z_valence


def _choice(element: str, path: Path, source: str) -> PseudoChoice:
    path = path.resolve()
    kind, functional, z_valence = _header(path, path.stat().st_mtime)
    return PseudoChoice(element, path, sha256_of(path), source, kind, functional, z_valence)


def _sssp_style_candidates(element: str, directory: Path) -> list[Path]:
    """Files named after the element (``Fe.pbe-...UPF``, ``fe_pbe_v1.5.uspp.F.UPF``)."""
    pattern = re.compile(rf"^{element}[._\-]", re.IGNORECASE)
    found = [p for p in directory.iterdir()
             if p.is_file() and p.suffix in PSEUDO_SUFFIXES and pattern.match(p.name)]
    # Prefer PBE files and files that name the element with the right case.
    return sorted(found, key=lambda p: ("pbe" not in p.name.lower() or "pbesol" in p.name.lower(),
                                        not p.name.startswith(element), p.name))


def resolve_pseudopotential(element: str, explicit: dict[str, Path],
                            pseudo_dir: Path | None) -> PseudoChoice:
    """The pseudopotential for ``element`` by the module's precedence; raises
    :class:`OracleConfigError` naming the element and every place searched."""
    searched: list[str] = []
    if element in explicit:
        path = Path(explicit[element])
        if not path.is_file():
            raise OracleConfigError(
                f"oracle.qe.pseudopotentials.{element}: file not found: {path}")
        return _choice(element, path, "explicit")
    searched.append("oracle.qe.pseudopotentials (no entry)")
    if pseudo_dir is not None:
        pseudo_dir = Path(pseudo_dir)
        if not pseudo_dir.is_dir():
            raise OracleConfigError(f"oracle.qe.pseudo_dir: directory not found: {pseudo_dir}")
        candidates = _sssp_style_candidates(element, pseudo_dir)
        if candidates:
            return _choice(element, candidates[0], "pseudo_dir")
        searched.append(f"{pseudo_dir}/{element}[._-]*.upf")
    if element in DEBIAN_PBE_CHOICE and (DEBIAN_PSEUDO_DIR / DEBIAN_PBE_CHOICE[element]).is_file():
        return _choice(element, DEBIAN_PSEUDO_DIR / DEBIAN_PBE_CHOICE[element], "debian")
    if DEBIAN_PSEUDO_DIR.is_dir():
        generic = sorted(DEBIAN_PSEUDO_DIR.glob(f"{element}.pbe-*.UPF"))
        if generic:
            return _choice(element, generic[0], "debian")
    searched.append(f"{DEBIAN_PSEUDO_DIR}/{element}.pbe-*.UPF")
    raise OracleConfigError(
        f"no pseudopotential for element {element!r}; searched: " + "; ".join(searched)
        + ". Set oracle.qe.pseudopotentials." + element + " to a UPF file, or put one named "
        f"'{element}.<anything>.UPF' in oracle.qe.pseudo_dir.")


_FUNCTIONAL_ALIASES = {
    "SLAPWPBXPBC": "PBE", "SLAPWPBEPBE": "PBE", "PBE": "PBE",
    "SLAPWPSXPSC": "PBESOL", "PBESOL": "PBESOL",
    "SLAPZNOGXNOGC": "LDA", "SLAPZ": "LDA", "PZ": "LDA", "LDA": "LDA",
}


def functional_family(functional: str) -> str:
    key = functional.upper().replace(" ", "").replace("-", "")
    return _FUNCTIONAL_ALIASES.get(key, key)


def check_functionals(choices: list[PseudoChoice]) -> None:
    """Refuse pseudopotentials generated with different exchange-correlation functionals."""
    known = {functional_family(c.functional) for c in choices if c.functional != "unknown"}
    if len(known) > 1:
        listing = ", ".join(f"{c.element}: {c.path.name} ({c.functional})" for c in choices)
        raise OracleConfigError(
            f"pseudopotentials mix exchange-correlation functionals: {listing}")


def pseudo_mismatch(read_files: list[str], intended: list[PseudoChoice],
                    workdir: Path) -> str | None:
    """Why the files pw.x reports having read are not the intended ones, or None."""
    if not read_files:
        return "pw.x output names no pseudopotential file read"
    wanted = {c.sha256: c for c in intended}
    for reported in read_files:
        path = Path(reported)
        if not path.is_absolute():
            path = workdir / path
        if not path.is_file():
            return f"pw.x read pseudopotential {reported}, which cannot be found to check it"
        if sha256_of(path) not in wanted:
            names = ", ".join(str(c.path) for c in intended)
            return (f"pw.x read pseudopotential {reported}, which is none of the intended files "
                    f"({names}); pw.x falls back silently to its system directory when a file "
                    "is missing from pseudo_dir")
    return None
