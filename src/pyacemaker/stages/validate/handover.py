"""Which validated potential a finished campaign hands over.

The loop deploys a fit when it is not worse on the validation set (``train/best.py``), but
the gate's property checks (EOS, Cij, phonons against DFT) are only seen afterwards, and a
refit can pass the first test and lose on the second: in the Si demo run of session 7 the
iteration-3 refit failed 6 of 16 checks (C11 -28 %, C12 +33 %) where iteration 1 failed 3.
At the stop, a NO-GO potential is therefore replaced by an earlier validated one that the
gate judged better on the checks both reports made: fewer failed checks first, then the
smaller excess of the failed ones (sum of value/threshold - 1: phonons 6 % off a 5 % limit
beat 8 % off, however the passing checks stand), then the smaller sum of value/threshold
over all of them; each ratio capped at :data:`RATIO_CAP`, so one absurd number does not
outweigh everything else. A GO potential is always kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyacemaker.stages.validate.checks import Check
from pyacemaker.stages.validate.gate import ValidationReport

RATIO_CAP = 10.0


@dataclass(frozen=True)
class GateStanding:
    failed: int
    beyond: float  # sum of value/threshold - 1 over the failed checks
    excess: float  # sum of value/threshold over the compared checks

    def key(self) -> tuple[int, float, float]:
        return self.failed, round(self.beyond, 6), round(self.excess, 6)

    def __lt__(self, other: GateStanding) -> bool:
        return self.key() < other.key()


def _ratio(check: Check) -> float | None:
    if check.value is None or not check.threshold:
        return None
    return min(check.value / check.threshold, RATIO_CAP)


def standing(report: ValidationReport, names: set[str]) -> GateStanding:
    checks = [c for c in report.checks if c.name in names]
    ratios = [(c, _ratio(c)) for c in checks]
    return GateStanding(
        failed=sum(not c.passed for c in checks),
        beyond=sum(max(r - 1.0, 0.0) for c, r in ratios if r is not None and not c.passed),
        excess=sum(r for _, r in ratios if r is not None))


def better_validated(current: ValidationReport,
                     earlier: dict[int, ValidationReport]) -> tuple[int, str] | None:
    """(iteration, reason) of an earlier potential to hand over instead, or None."""
    if current.passed:
        return None
    candidates = []
    for iteration, report in earlier.items():
        if iteration == current.iteration:
            continue
        names = {c.name for c in current.checks} & {c.name for c in report.checks}
        theirs, ours = standing(report, names), standing(current, names)
        if report.passed or theirs < ours:  # later iterations win ties (more data)
            key = (not report.passed, *theirs.key(), -iteration)
            candidates.append((key, iteration, theirs, ours))
    if not candidates:
        return None
    _, iteration, theirs, ours = min(candidates)
    return iteration, (
        f"iteration {iteration}'s potential ({earlier[iteration].verdict}, {theirs.failed} "
        f"failed checks, excess {theirs.excess:.2f}) instead of iteration "
        f"{current.iteration}'s (NO-GO, {ours.failed} failed, excess {ours.excess:.2f}) on "
        "the checks both reports made")
