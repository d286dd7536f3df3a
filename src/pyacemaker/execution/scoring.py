"""Scoring fits on the campaign's validation set, as a ``light`` task (never in the driver)."""

from __future__ import annotations

import logging
from pathlib import Path

from pyacemaker.execution.engine import Engine
from pyacemaker.stages.train.best import FitScore
from pyacemaker.state import PotentialRecord
from pyacemaker.validation_settings import ValidationSettings

log = logging.getLogger(__name__)


def score_task(records: list[PotentialRecord], workdir: str,
               datastore_path: str) -> list[FitScore | None]:
    """Score of each record on the validation set (None for all: the set is empty)."""
    from pyacemaker.datastore import DataStore
    from pyacemaker.release import potential_calculator_factory
    from pyacemaker.stages.validate.errors import compute_errors
    from pyacemaker.stages.validation_set import validation_structures

    structures = validation_structures(DataStore(Path(datastore_path)))
    if not structures:
        return [None for _ in records]
    return [FitScore.of(compute_errors(structures,
                                       potential_calculator_factory(r, Path(workdir))(),
                                       "validation set")) for r in records]


def score_on_validation_set(engine: Engine, records: list[PotentialRecord], workdir: Path,
                            datastore_path: Path) -> list[FitScore | None]:
    return engine.submit("light", score_task, records, str(workdir),
                         str(datastore_path)).result()


def judge_new_fit(engine: Engine, current: PotentialRecord | None, new: PotentialRecord,
                  settings: ValidationSettings, workdir: Path,
                  datastore_path: Path) -> PotentialRecord:
    """Score ``new`` and ``current`` on the validation set and record in ``new`` whether it
    is deployed (``stages/train/best.py``); the caller deploys it when ``new.deployed``."""
    from pyacemaker.stages.train.best import choose_potential

    scored = [new] if current is None else [new, current]
    scores = score_on_validation_set(engine, scored, workdir, datastore_path)
    if scores[0] is not None:
        new.metrics.update(scores[0].metrics(settings))
    choice = choose_potential(current, scores[-1] if current is not None else None, new,
                              scores[0], settings)
    new.deployed, new.choice = choice.deploy, choice.reason
    if not choice.deploy:
        assert current is not None
        log.warning("   the new fit is NOT deployed: %s; exploration goes on with the "
                    "potential of iteration %d", choice.reason, current.iteration)
    return new
