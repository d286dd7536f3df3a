"""Self-healing of a failed pw.x run: which inputs to change next, and when to give up.

A small state machine. After each failed run the :class:`Healer` is told the failure class
and answers with the next (strategy name, parameters), or None when the failure is not
recoverable, no strategy is left, or the budget of runs is spent. Each SCF strategy starts
from the first run's inputs: a change that did not help is dropped, not stacked (on bcc Fe
with an antiferromagnetic start, low mixing + local-TF + more smearing together still fail
where more smearing alone converges).

- scf_not_converged while the SCF error was still falling steadily (the run was only cut
  short): more_steps, continuing from the saved density, at once and as often as needed.
- scf_not_converged otherwise: the configured SCF strategies in order (reduce_mixing, local_tf,
  more_steps (continuing from the last charge density when pw.x saved one), more_smearing,
  cg_diagonalization); a strategy that would change nothing is skipped. When all failed, the
  one that came closest (lowest SCF error) runs once more with twice the steps.
- crashed: fewer MPI ranks (halved) while more than one; one plain retry at one rank.
- walltime: restart from the state pw.x saved at max_seconds; nothing to do otherwise.
- bad_input, unphysical: never retried (a retry would give the same answer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from pyacemaker.stages.oracle.outcome import Classification
from pyacemaker.stages.oracle.parameters import RunParameters

Strategy = Callable[[RunParameters, bool], RunParameters | None]


def reduce_mixing(p: RunParameters, density_saved: bool) -> RunParameters | None:
    beta = round(max(0.1, min(0.3, p.mixing_beta / 2)), 3)
    return None if beta >= p.mixing_beta else replace(p, mixing_beta=beta)


def local_tf(p: RunParameters, density_saved: bool) -> RunParameters | None:
    if p.mixing_mode == "local-TF":
        return None
    return replace(p, mixing_mode="local-TF", mixing_beta=min(p.mixing_beta, 0.3))


def more_steps(p: RunParameters, density_saved: bool) -> RunParameters | None:
    return replace(p, electron_maxstep=2 * p.electron_maxstep,
                   startingpot="file" if density_saved else p.startingpot)


def more_smearing(p: RunParameters, density_saved: bool) -> RunParameters | None:
    degauss = min(0.05, max(0.02, 2 * p.degauss))
    if degauss <= p.degauss:
        return None
    smearing = p.smearing if p.smearing in ("mv", "mp", "gaussian") else "mv"
    return replace(p, degauss=degauss, smearing=smearing)


def cg_diagonalization(p: RunParameters, density_saved: bool) -> RunParameters | None:
    return None if p.diagonalization == "cg" else replace(p, diagonalization="cg")


SCF_STRATEGIES: dict[str, Strategy] = {
    "reduce_mixing": reduce_mixing,
    "local_tf": local_tf,
    "more_steps": more_steps,
    "more_smearing": more_smearing,
    "cg_diagonalization": cg_diagonalization,
}


@dataclass
class Healer:
    scf_strategies: list[str]
    budget: int  # runs allowed after the first one
    used: list[str] = field(default_factory=list)
    plain_retry_done: bool = False
    base: RunParameters | None = None
    best_retried: bool = False
    scf_errors: list[tuple[float, RunParameters]] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = [s for s in self.scf_strategies if s not in SCF_STRATEGIES]
        if unknown:
            raise ValueError(f"unknown healing strategies {unknown}; known: {list(SCF_STRATEGIES)}")

    @property
    def exhausted(self) -> bool:
        return len(self.used) >= self.budget

    def next_run(self, params: RunParameters, failure: Classification, density_saved: bool,
                 restart_saved: bool, scf_error: float | None = None
                 ) -> tuple[str, RunParameters] | None:
        """The next strategy and its parameters, or None to give up. ``scf_error`` is the
        failed run's last estimated SCF accuracy (Ry), used to pick the most promising one."""
        if self.base is None:
            self.base = params
        if failure.outcome == "scf_not_converged" and scf_error is not None:
            self.scf_errors.append((scf_error, params))
        if self.exhausted or not failure.recoverable:
            return None
        choice = self._choose(params, failure, density_saved, restart_saved)
        if choice is not None:
            self.used.append(choice[0])
        return choice

    def _choose(self, params: RunParameters, failure: Classification, density_saved: bool,
                restart_saved: bool) -> tuple[str, RunParameters] | None:
        fresh = replace(params, restart=False)
        if failure.outcome == "crashed":
            if params.ranks > 1:
                return "fewer_ranks", replace(fresh, ranks=params.ranks // 2, startingpot="atomic")
            if not self.plain_retry_done:
                self.plain_retry_done = True
                return "retry", replace(fresh, startingpot="atomic")
            return None
        if failure.outcome == "walltime":
            if restart_saved:
                return "restart_from_saved_state", replace(params, restart=True)
            return None
        if failure.converging and "more_steps" in self.scf_strategies:
            # cut short while steadily improving: continue the same run for longer
            return "more_steps", replace(fresh, electron_maxstep=2 * params.electron_maxstep,
                                         startingpot="file" if density_saved else "atomic")
        assert self.base is not None
        start = replace(self.base, ranks=params.ranks, restart=False)
        for name in self.scf_strategies:
            if name in self.used:
                continue
            changed = SCF_STRATEGIES[name](start, density_saved)
            if changed is not None and changed != start:
                return name, changed
        if self.scf_errors and not self.best_retried:
            # every single change failed: give the closest one twice the steps
            self.best_retried = True
            _, best = min(self.scf_errors, key=lambda pair: pair[0])
            return "best_with_more_steps", replace(
                best, electron_maxstep=2 * best.electron_maxstep, startingpot="atomic",
                ranks=params.ranks, restart=False)
        return None


def magnetic_ordering_problem(start: np.ndarray, final: np.ndarray | None,
                              threshold: float = 0.5) -> str | None:
    """A reason when an atom that started magnetic ends with a sizeable moment of the opposite
    sign (the SCF slid into another magnetic state); a collapse to zero is physics, not a flip."""
    if final is None or len(final) != len(start):
        return None
    flipped = [i for i, (m0, m1) in enumerate(zip(start, final))
               if abs(m0) >= threshold and abs(m1) >= threshold and np.sign(m0) != np.sign(m1)]
    if not flipped:
        return None
    return (f"magnetic state changed: atoms {flipped[:10]} flipped sign "
            f"(start {np.round(start[flipped[:10]], 2).tolist()}, "
            f"end {np.round(final[flipped[:10]], 2).tolist()} Bohr magneton)")
