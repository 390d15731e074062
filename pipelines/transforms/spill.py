"""SpillChunks and LoadChunks: classified chunks parked on disk while the side inputs are built.

The main chain needs the run's side inputs (context, duplicates, templates), and those need
every chunk first. Small runs keep the chunks in memory (or the runner's shuffle) until then.
Large runs spill each classified chunk as Arrow IPC (zstd) into the run's staging folder and
pass on only its path; the main chain loads it back when the side inputs are ready. Reading a
spilled chunk costs about a microsecond an event, against a dozen to read and classify the
input again, and memory stays flat either way.

A spill file is a run of frames, one per table: an 8-byte little-endian length, then one Arrow
IPC stream. The tables' event types travel in the `SpilledChunk` with the path; the rejects come
last. The folder holds raw records and is owner-only on a local disk; the run deletes it when
the job ends (`pipelines/run.py`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa

from pipelines import storage
from pipelines.chunk import EventChunk
from pipelines.stage_times import timed

__all__ = ["SPILL_FOLDER", "LoadChunks", "SpillChunks", "SpilledChunk", "load_chunk", "spill_chunk"]

# Under the run's staging folder; deleted when the job ends, never published.
SPILL_FOLDER = "_spill"
_LENGTH = struct.Struct("<Q")
_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


@dataclass(frozen=True)
class SpilledChunk:
    """Where one classified chunk was spilled, and what its file holds, in order."""

    path: str
    file_index: int
    chunk_index: int
    source: str
    input_source: str
    event_types: tuple[str, ...]


def _frame(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_OPTIONS) as writer:
        writer.write_table(table)
    body = sink.getvalue()
    return _LENGTH.pack(body.size) + body.to_pybytes()


def spill_chunk(chunk: EventChunk, folder: str) -> SpilledChunk:
    """Write `chunk` to `folder/<chunk id>.arrows` and say what the file holds."""
    event_types = tuple(chunk.tables)
    frames = [_frame(chunk.tables[name]) for name in event_types]
    frames.append(_frame(chunk.rejects))
    path = storage.join(folder, f"{chunk.chunk_id}.arrows")
    storage.write_bytes(path, b"".join(frames), sync=False)
    return SpilledChunk(
        path, chunk.file_index, chunk.chunk_index, chunk.source, chunk.input_source, event_types
    )


def load_chunk(spilled: SpilledChunk) -> EventChunk:
    """The chunk `spill_chunk` wrote, table for table."""
    changed = "the run's staging folder was changed during the run"
    data = pa.py_buffer(storage.read_bytes(spilled.path))
    tables: list[pa.Table] = []
    at = 0
    try:
        while at < data.size:
            (length,) = _LENGTH.unpack_from(data, at)
            at += _LENGTH.size
            if at + length > data.size:
                raise ValueError("a table runs past the end of the file")
            tables.append(pa.ipc.open_stream(data.slice(at, length)).read_all())
            at += length
    except (ValueError, struct.error, pa.ArrowException) as exc:
        raise ValueError(f"spill file {spilled.path}: unreadable ({exc}); {changed}") from None
    if len(tables) != len(spilled.event_types) + 1:
        raise ValueError(
            f"spill file {spilled.path}: {len(tables)} tables, expected "
            f"{len(spilled.event_types) + 1}; {changed}"
        )
    return EventChunk(
        spilled.file_index,
        spilled.chunk_index,
        spilled.source,
        dict(zip(spilled.event_types, tables[:-1], strict=True)),
        tables[-1],
        spilled.input_source,
    )


class _Spill(beam.DoFn):
    def __init__(self, folder: str) -> None:
        self.folder = folder

    @timed("spill")
    def process(self, chunk: EventChunk) -> Iterator[SpilledChunk]:
        yield spill_chunk(chunk, self.folder)


@beam.typehints.with_output_types(EventChunk)
class _Load(beam.DoFn):
    @timed("spill")
    def process(self, spilled: SpilledChunk) -> Iterator[EventChunk]:
        yield load_chunk(spilled)


class SpillChunks(beam.PTransform):
    """EventChunks -> SpilledChunks: each chunk written to `folder`, only its path passed on."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = folder

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        return chunks | "SpillChunk" >> beam.ParDo(_Spill(self.folder))


class LoadChunks(beam.PTransform):
    """SpilledChunks -> EventChunks, loaded where they are consumed.

    The reshuffle is a fusion break: without it a runner may fuse the load into the stage
    that spilled, and the loaded chunks would wait in memory for the side inputs after all.
    """

    def expand(self, spilled: beam.PCollection) -> beam.PCollection:
        return spilled | "Reshuffle" >> beam.Reshuffle() | "LoadChunk" >> beam.ParDo(_Load())
