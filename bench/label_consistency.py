"""How consistent are DFT labels across cell shapes? The same crystal, three cells.

    .venv/bin/python bench/label_consistency.py [--element Si] [--kspacing 0.3 0.2 0.15]
        [--ecutwfc 30] [--ecutrho 240] [--workdir campaigns/bench-label-consistency]

A training set mixes cells of different shapes (the 2-atom primitive cell, the 8-atom
conventional cell, supercells). The k-mesh follows each cell (``oracle.qe.kspacing``), so
the Brillouin-zone sampling error differs from cell to cell: the *same* crystal gets a
different energy per atom. When that spread is as large as an elastic energy (about
1 meV/atom at 1 % strain in Si) the fit cannot learn the elastic constants and phonons
from energies and forces of different cells. This bench labels the ground state in its
primitive cell, its conventional cell and the primitive cell doubled along a1, each as a
``dft`` task through the execution layer (the site's pw.x and launch), and prints the
energy per atom of each relative to the primitive cell, per kspacing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ase import Atoms
from ase.build import bulk

from pyacemaker.config import CampaignConfig, ProgramSettings, load_site
from pyacemaker.execution import Engine
from pyacemaker.execution.engine import launch_for
from pyacemaker.programs import Launch
from pyacemaker.sites import resolve_site
from pyacemaker.stages.coldstart import conventional_cell
from pyacemaker.stages.oracle.parameters import kpoint_grid
from pyacemaker.stages.validate.elastic import standard_cell


def energy_per_atom(atoms: Atoms, config: CampaignConfig, programs: ProgramSettings,
                    launch: Launch, folder: str) -> float:
    """The ``dft`` task: one pw.x label of ``atoms``, its energy per atom (eV)."""
    from pyacemaker.stages.oracle.base import make_oracle

    outcome = make_oracle(config, programs).label(atoms, Path(folder), launch)
    if outcome.atoms is None:
        raise RuntimeError(f"{folder}: no label ({outcome.reason})")
    return float(outcome.atoms.get_potential_energy()) / len(atoms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--element", default="Si")
    parser.add_argument("--kspacing", type=float, nargs="+", default=[0.3, 0.2, 0.15])
    parser.add_argument("--ecutwfc", type=float, default=30.0)
    parser.add_argument("--ecutrho", type=float, default=240.0)
    parser.add_argument("--workdir", type=Path,
                        default=Path("campaigns/bench-label-consistency"))
    parser.add_argument("--site", default="local")
    args = parser.parse_args()
    primitive = standard_cell(bulk(args.element))
    cells = {"primitive": primitive, "conventional": conventional_cell(primitive),
             "primitive x (2,1,1)": primitive.repeat((2, 1, 1))}
    site = load_site(resolve_site(args.site))
    print(f"{args.element}: energy per atom of the same crystal in three cells, relative to "
          f"the primitive cell ({args.ecutwfc:g}/{args.ecutrho:g} Ry)")
    with Engine(site, args.workdir / "run") as engine:
        for kspacing in args.kspacing:
            config = CampaignConfig(elements=[args.element], oracle={"kind": "qe", "qe": {
                "ecutwfc": args.ecutwfc, "ecutrho": args.ecutrho, "kspacing": kspacing}})
            start = time.monotonic()
            futures = {name: engine.submit(
                "dft", energy_per_atom, cell, config, site.programs,
                launch_for(site, "dft", "qe"),
                str(args.workdir / f"k{kspacing:g}" / name.replace(" ", "")))
                for name, cell in cells.items()}
            energies = {name: future.result() for name, future in futures.items()}
            spread = max(energies.values()) - min(energies.values())
            print(f"kspacing {kspacing:g}  ({time.monotonic() - start:.0f} s)")
            for name, cell in cells.items():
                shift = 1000 * (energies[name] - energies["primitive"])
                print(f"  {name:<20} {len(cell):2d} atoms  k {kpoint_grid(cell, kspacing)}  "
                      f"E {energies[name]:.5f} eV/atom  {shift:+6.2f} meV/atom")
            print(f"  spread {1000 * spread:.2f} meV/atom")


if __name__ == "__main__":
    main()
