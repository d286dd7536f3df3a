"""The teacher of a distillation through the execution layer: its MD exploration and its
batch labelling run as external programs (``teacher_runner.py`` in the teacher's own
environment) on the site's ``teacher`` executor, with the site's launch (container image
``container.images.teacher`` where the site has one).

``pyacemaker distill CONFIG.yaml --site SITE --workdir DIR`` (or ``python -m
pyacemaker.execution.teaching ...``) explores, labels into ``DIR/data.db`` and fits the
base ACE; rerun after a kill, it resumes: MD temperatures whose snapshots exist, chunks
whose labels exist and a finished identical fit are not redone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass
from pathlib import Path

from ase.build import bulk
from ase.io import read, write

from pyacemaker.config import SiteConfig, load_site
from pyacemaker.datastore import DataStore
from pyacemaker.execution.engine import Engine, launch_for
from pyacemaker.programs import ProgramResult
from pyacemaker.stages.distill.chunks import (
    Chunk, ChunkPlan, ingest_chunk, plan_chunks, progress_line)
from pyacemaker.stages.distill.base import (
    TeacherErrors, errors_against_teacher, fit_base, hold_out)
from pyacemaker.stages.distill.settings import DistillConfig, load_distill
from pyacemaker.stages.distill.teacher import (
    TEACHER_ENV, label_argv, md_argv, teacher_python)

log = logging.getLogger(__name__)
CALLS_LOG = "teacher_calls.jsonl"  # one line per teacher run (the runner appends it)


@dataclass(frozen=True)
class LabelSummary:
    chunks: int
    labelled_now: int       # chunks the teacher labelled in this run
    streamed_now: int       # chunks whose existing labels were streamed into the lake
    structures: int
    seconds: float


def _python(site: SiteConfig) -> str:
    return teacher_python(site.programs.teacher_python,
                          in_container=site.container.runtime != "none")


def start_structures(config: DistillConfig) -> list:
    """The start structures of the teacher MD: the configured files (every frame), else
    each element's conventional bulk cell; repeated by ``start_supercell``."""
    if config.start_structures:
        starts = [a for path in config.start_structures for a in read(path, index=":")]
    else:
        starts = [bulk(element, cubic=True) for element in config.elements]
    return [atoms.repeat(config.start_supercell) for atoms in starts]


def explore_with_teacher(engine: Engine, config: DistillConfig, folder: Path) -> Path:
    """Teacher MD, one task per temperature (its walkers inside), in parallel on the
    teacher executor; ``folder/snapshots.extxyz`` holds every snapshot. A temperature whose
    snapshots exist is not run again."""
    folder = folder.resolve()  # the teacher runs in its task folder: absolute paths only
    folder.mkdir(parents=True, exist_ok=True)
    snapshots = folder / "snapshots.extxyz"
    if snapshots.is_file():
        return snapshots
    starts = folder / "starts.extxyz"
    write(starts, start_structures(config), format="extxyz")
    python, futures = _python(engine.site), []
    outputs = []
    for i, temperature in enumerate(config.md.temperatures_K):
        task = folder / f"md_T{temperature:g}"
        output = task / "snapshots.extxyz"
        outputs.append(output)
        if output.is_file():
            continue
        argv = md_argv(python, config.teacher, config.md, temperature, config.md.seed + i,
                       starts, output, folder / CALLS_LOG)
        futures.append(engine.run_program("teacher", argv, task, config.teacher.timeout_s,
                                          tool="teacher", env=TEACHER_ENV))
    for future in futures:
        future.result()
    frames = [atoms for output in outputs for atoms in read(output, index=":")]
    tmp = snapshots.with_name(f"snapshots.tmp.{os.getpid()}.extxyz")
    write(tmp, frames, format="extxyz")
    os.replace(tmp, snapshots)
    print(f"[teacher] MD: {len(frames)} snapshots at {config.md.temperatures_K} K", flush=True)
    return snapshots


def label_with_teacher(engine: Engine, config: DistillConfig, source: Path, folder: Path,
                       lake: DataStore,
                       progress: Callable[[str], None] = print) -> LabelSummary:
    """Label ``source`` in chunks of ``labelling.chunk_size`` on the teacher executor, at
    most ``max_chunks_in_flight`` at once, streaming each finished chunk into ``lake``."""
    start = time.monotonic()
    folder, source = folder.resolve(), source.resolve()  # the teacher runs in its folder
    plan: ChunkPlan = plan_chunks(source, folder, config.labelling.chunk_size)
    res = engine.site.resources["teacher"]
    bound = config.labelling.max_chunks_in_flight or res.max_parallel_tasks * res.max_blocks
    python = _python(engine.site)
    finished = structures = labelled_now = streamed_now = by_teacher = 0

    def finish(chunk: Chunk, relabelled: bool) -> None:
        nonlocal finished, structures, by_teacher
        ingest_chunk(lake, chunk)
        finished += 1
        structures += chunk.size
        by_teacher += chunk.size if relabelled else 0
        progress(progress_line(plan, chunk, finished, structures, by_teacher,
                               time.monotonic() - start, relabelled))

    pending: list[Chunk] = []
    for chunk in plan.chunks:
        if chunk.ingested():
            finished += 1
            structures += chunk.size
        elif chunk.labelled():
            finish(chunk, relabelled=False)
            streamed_now += 1
        else:
            pending.append(chunk)
    if finished and pending:
        progress(f"[teacher] resuming: {finished}/{len(plan.chunks)} chunks already done")
    in_flight: dict[Future[ProgramResult], Chunk] = {}
    while pending or in_flight:
        while pending and len(in_flight) < bound:
            chunk = pending.pop(0)
            argv = label_argv(python, config.teacher, chunk.input, chunk.labels,
                              folder / CALLS_LOG)
            future = engine.run_program("teacher", argv, chunk.folder,
                                        config.teacher.timeout_s, tool="teacher",
                                        env=TEACHER_ENV)
            in_flight[future] = chunk
        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for future in done:
            chunk = in_flight.pop(future)
            future.result()  # a failed teacher run raises ProgramFailed: rerun resumes
            finish(chunk, relabelled=True)
            labelled_now += 1
    return LabelSummary(len(plan.chunks), labelled_now, streamed_now, plan.structures,
                        time.monotonic() - start)


def fit_base_on_train(engine: Engine, config: DistillConfig, lake: DataStore,
                      folder: Path) -> TeacherErrors:
    """The base ACE on the teacher's labels, a Parsl app on the train executor (pacemaker
    with the site's train launch); its errors against the held-out teacher structures
    go to ``folder/base_errors.json``."""
    train, held_out = hold_out(lake, config.held_out_fraction)
    launch = launch_for(engine.site, "train")
    record = engine.submit("train", fit_base, train, config.elements, config.training,
                           folder, launch, engine.site.programs.pacemaker).result()
    errors = errors_against_teacher(record, held_out)
    text = json.dumps({**asdict(errors), "train_structures": len(train),
                       "potential": record.yaml}, indent=1)
    (folder / "base_errors.json").write_text(text)
    print(f"[base] ACE on {len(train)} teacher labels: {errors.energy_rmse_mev_per_atom:.1f} "
          f"meV/atom, {errors.force_rmse_ev_per_a:.3f} eV/A on {errors.structures} held-out "
          f"teacher structures ({record.yaml})", flush=True)
    return errors


def distill(config_path: Path, site_path: Path, workdir: Path) -> LabelSummary:
    """Explore with the teacher, label every snapshot into ``workdir/data.db``, then (with
    ``fit_base``) fit the base ACE."""
    config, site = load_distill(config_path), load_site(site_path)
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    with Engine(site, workdir / "parsl") as engine:
        snapshots = explore_with_teacher(engine, config, workdir / "teacher_md")
        lake = DataStore(workdir / "data.db")
        summary = label_with_teacher(engine, config, snapshots, workdir / "teacher_labels",
                                     lake)
        print(f"[teacher] done: {summary.structures} structures in {summary.chunks} chunks "
              f"({summary.labelled_now} labelled now, {summary.streamed_now} streamed in) "
              f"in {summary.seconds:.1f} s", flush=True)
        if config.fit_base:
            fit_base_on_train(engine, config, lake, workdir / "base")
    return summary


def main(argv: list[str] | None = None) -> int:
    from pyacemaker.distill_command import add_distill_command

    parser = argparse.ArgumentParser(prog="pyacemaker")
    add_distill_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["distill", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
