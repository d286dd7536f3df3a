"""Converged PBE reference of diamond silicon with the campaign's own machinery (pw.x).

    .venv/bin/python bench/si_pbe_reference.py [--ecutwfc 40] [--ecutrho 320]
        [--kspacing 0.2] [--workdir campaigns/si-pbe-reference] [--site local]

Runs :func:`pyacemaker.execution.references.dft_references` (relaxation, 9-point EOS,
stress-strain Cij with relaxed ions, phonons at the special points by finite displacements
in the 2x2x2 supercell of the primitive cell, commensurate with X and L) as a ``dft`` task,
prints the property table and leaves ``<workdir>/validation/dft_reference/Si_diamond/
reference.json``, which ``pyacemaker validate POTENTIAL --reference FILE`` and
bench/demo_to_go.py compare a potential with. A second run with the same settings reads
the cached file (no pw.x). Pass smaller settings to measure their error against it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pyacemaker.config import CampaignConfig, load_site
from pyacemaker.execution import Engine
from pyacemaker.execution.references import dft_references
from pyacemaker.sites import resolve_site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ecutwfc", type=float, default=40.0)
    parser.add_argument("--ecutrho", type=float, default=320.0)
    parser.add_argument("--kspacing", type=float, default=0.2)
    parser.add_argument("--workdir", type=Path, default=Path("campaigns/si-pbe-reference"))
    parser.add_argument("--site", default="local")
    args = parser.parse_args()
    config = CampaignConfig(
        elements=["Si"],
        oracle={"kind": "qe", "qe": {"ecutwfc": args.ecutwfc, "ecutrho": args.ecutrho,
                                     "kspacing": args.kspacing}},
        validation={"reference_phonons": True, "phonon_reference_supercell": 2,
                    "elastic_strain_points": 2, "relax_fmax": 1e-3})
    site = load_site(resolve_site(args.site))
    start = time.monotonic()
    with Engine(site, args.workdir / "run") as engine:
        references, failures = dft_references(engine, config, args.workdir)
    if failures:
        raise SystemExit(f"reference failed: {failures}")
    (reference,) = references.values()
    a0 = (8 * reference.volume_per_atom) ** (1 / 3)  # 8 atoms in the cubic cell
    print(f"{reference.label}: {reference.source}, {time.monotonic() - start:.0f} s")
    print(f"  a0 {a0:.4f} A   V0 {reference.eos.v0_per_atom:.3f} A^3/atom")
    for name, value in reference.moduli().items():
        print(f"  {name:<4} {value:7.1f} GPa")
    if reference.phonons is not None:
        for q, freqs in zip(reference.phonons.q_labels, reference.phonons.frequencies_thz,
                            strict=True):
            print(f"  {q:<2} " + " ".join(f"{f:6.2f}" for f in freqs) + " THz")
    print(f"  file: {args.workdir}/validation/dft_reference/Si_diamond/reference.json")


if __name__ == "__main__":
    main()
