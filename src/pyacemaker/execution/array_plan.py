"""What a DFT job array's driver does next: wait, submit (again) or stop. Pure logic on
facts read from the batch folder and the scheduler, so it is tested without either.

An element is *answered* when its outcome file exists: a label, a quarantine with the
oracle's reason (a DFT failure is an answer, never resubmitted), or an error the element
caught. An element that ended without an outcome file (killed, node lost, walltime) is an
infrastructure failure: it is submitted again, at most ``max_submissions`` times in all.
A running array is always waited for first, whoever submitted it (this driver, or the one
before a restart), so an element is never running twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ArrayStep:
    action: Literal["wait", "submit", "done"]
    job_id: str | None = None      # wait: the array still running
    indices: tuple[int, ...] = ()  # submit: the elements to (re)submit
    lost: tuple[int, ...] = ()     # elements given up: no outcome after max_submissions


def next_array_step(wanted: Iterable[int], answered: Iterable[int],
                    submissions: Mapping[int, int], running_job: str | None,
                    max_submissions: int) -> ArrayStep:
    """The next step for the elements ``wanted`` of this batch.

    ``answered``: elements with an outcome file; ``submissions``: how many arrays each
    element was in so far; ``running_job``: the batch's array that has not ended, if any.
    """
    open_elements = sorted(set(wanted) - set(answered))
    if running_job is not None and open_elements:
        return ArrayStep("wait", job_id=running_job)
    lost = tuple(i for i in open_elements if submissions.get(i, 0) >= max_submissions)
    again = tuple(i for i in open_elements if submissions.get(i, 0) < max_submissions)
    if again:
        return ArrayStep("submit", indices=again, lost=lost)
    return ArrayStep("done", lost=lost)
