"""Batch labelling in chunks: the plan (chunk files made once from a structure file,
de-duplicated), what is finished, and the streaming of a chunk's labels into the data lake.

A chunk folder ``chunk_NNNN/`` holds ``input.extxyz`` (N structures), then the teacher's
``labels.extxyz`` (+ ``labels.extxyz.json``, the report) once the teacher finished it
(written atomically by the runner: its existence means done), then ``ingested.json``
(row ids) once its rows are in the data lake. A rerun after a kill keeps the plan
(``manifest.json``, written last) and every finished chunk: only chunks without labels go
to the teacher again, labels not yet in the lake are streamed in without a teacher call.
Memory: the plan reads the source frame by frame; one chunk is in memory at a time here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms
from ase.io import iread, read, write

from pyacemaker.datastore import DataStore, structure_fingerprint
from pyacemaker.stages.distill.teacher import read_report
from pyacemaker.stages.oracle.pseudo import sha256_of

MANIFEST = "manifest.json"
PROVENANCE = "teacher"


class ChunkPlanMismatch(RuntimeError):
    """The folder holds a plan made from other structures or another chunk size."""


@dataclass(frozen=True)
class Chunk:
    index: int
    folder: Path
    size: int

    @property
    def input(self) -> Path:
        return self.folder / "input.extxyz"

    @property
    def labels(self) -> Path:
        return self.folder / "labels.extxyz"

    @property
    def marker(self) -> Path:
        return self.folder / "ingested.json"

    def labelled(self) -> bool:
        return self.labels.is_file()

    def ingested(self) -> bool:
        return self.marker.is_file()


@dataclass(frozen=True)
class ChunkPlan:
    folder: Path
    source_sha256: str
    chunk_size: int
    chunks: tuple[Chunk, ...]
    duplicates: int

    @property
    def structures(self) -> int:
        return sum(chunk.size for chunk in self.chunks)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _batches(source: Path, chunk_size: int, seen: set[str]) -> Iterator[list[Atoms]]:
    batch: list[Atoms] = []
    for atoms in iread(source, index=":"):
        fingerprint = structure_fingerprint(atoms)
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        atoms.calc = None
        batch.append(atoms)
        if len(batch) == chunk_size:
            yield batch
            batch = []
    if batch:
        yield batch


def plan_chunks(source: Path, folder: Path, chunk_size: int) -> ChunkPlan:
    """The chunks of ``source`` in ``folder``: the existing plan when it was made from the
    same file and chunk size (its files untouched), else a new one. A plan of other
    structures is refused (a finished chunk must never be mixed with another input)."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = sha256_of(source)
    manifest = folder / MANIFEST
    if manifest.is_file():
        saved = json.loads(manifest.read_text())
        if (saved["source_sha256"], saved["chunk_size"]) != (digest, chunk_size):
            raise ChunkPlanMismatch(
                f"{folder}: its chunks were made from {saved['source']} (sha256 "
                f"{saved['source_sha256'][:12]}, chunk size {saved['chunk_size']}), not from "
                f"{source} ({digest[:12]}, {chunk_size}); use another folder")
        chunks = tuple(Chunk(i, folder / name, size)
                       for i, (name, size) in enumerate(saved["chunks"]))
        return ChunkPlan(folder, digest, chunk_size, chunks, saved["duplicates"])
    seen: set[str] = set()
    chunks_list: list[Chunk] = []
    total = 0
    for index, batch in enumerate(_batches(source, chunk_size, seen)):
        chunk = Chunk(index, folder / f"chunk_{index:04d}", len(batch))
        chunk.folder.mkdir(exist_ok=True)
        tmp = chunk.input.with_name(f"input.tmp.{os.getpid()}.extxyz")
        write(tmp, batch, format="extxyz")
        os.replace(tmp, chunk.input)
        chunks_list.append(chunk)
    frames = sum(1 for _ in iread(source, index=":"))
    total = sum(c.size for c in chunks_list)
    _atomic_text(manifest, json.dumps({
        "source": str(source), "source_sha256": digest, "chunk_size": chunk_size,
        "duplicates": frames - total,
        "chunks": [[c.folder.name, c.size] for c in chunks_list]}, indent=1))
    return ChunkPlan(folder, digest, chunk_size, tuple(chunks_list), frames - total)


def ingest_chunk(lake: DataStore, chunk: Chunk) -> list[int]:
    """Stream a labelled chunk into the data lake (one transaction): rows with provenance
    ``teacher``, the teacher's name and weight sha256 and the chunk's index; then
    ``ingested.json``. Idempotent: the lake de-duplicates by structure, and a chunk with
    its marker is not read again. Returns the chunk's row ids."""
    if chunk.ingested():
        ids: list[int] = json.loads(chunk.marker.read_text())["row_ids"]
        return ids
    report = read_report(chunk.labels)
    frames = read(chunk.labels, index=":", format="extxyz")
    if len(frames) != chunk.size:
        raise RuntimeError(f"{chunk.labels}: {len(frames)} structures, the chunk has "
                           f"{chunk.size}")
    for atoms in frames:
        atoms.info["provenance"] = PROVENANCE
    lake.add_many(frames, teacher_model=str(report["teacher_model"]),
                  teacher_sha256=str(report["teacher_sha256"]), teacher_chunk=chunk.index)
    ids = [lake_id(lake, atoms) for atoms in frames]
    _atomic_text(chunk.marker, json.dumps({"row_ids": ids, "teacher": report}, indent=1))
    return ids


def lake_id(lake: DataStore, atoms: Atoms) -> int:
    for row in lake.rows(fingerprint=structure_fingerprint(atoms), limit=1):
        return int(row.id)
    raise KeyError(f"structure {structure_fingerprint(atoms)} not in {lake.path}")


def progress_line(plan: ChunkPlan, chunk: Chunk, finished: int, structures: int,
                  labelled_now: int, seconds: float, relabelled: bool) -> str:
    """One line per finished chunk: count, structures, the teacher's throughput in this
    run (``labelled_now`` structures in ``seconds``) and the time left at that rate."""
    rate = labelled_now / seconds if seconds > 0 else 0.0
    left = plan.structures - structures
    eta = f", ~{left / rate:.0f} s left" if rate > 0 and left else ""
    how = "labelled" if relabelled else "already labelled, streamed in"
    return (f"[teacher] chunk {finished}/{len(plan.chunks)} ({chunk.folder.name}, "
            f"{chunk.size} structures {how}): {structures}/{plan.structures} structures, "
            f"{rate:.2f}/s{eta}")
