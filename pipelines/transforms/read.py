"""ReadEvents and ClassifyEvents: input files -> chunks of lines or rows -> typed Arrow chunks."""

from __future__ import annotations

import gc
import gzip
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.chunk import EventChunk, loc_of
from pipelines.config import Config
from pipelines.errors import RunFailed
from pipelines.progress import progress
from pipelines.rules.classify import LOC, REJECT_SCHEMA, python_rows
from pipelines.sources.reader import source_reader
from pipelines.stage_times import timed

__all__ = [
    "ClassifyEvents",
    "InputFile",
    "InputFileError",
    "Oversized",
    "RawChunk",
    "ReadEvents",
    "count_records",
    "iter_lines",
]

_LOG = logging.getLogger(__name__)
# Decompressed bytes read at a time. A block is split into lines at once, so it is kept small:
# 1 MiB of two-byte lines is half a million line objects, not the eight million of 8 MiB.
_BLOCK = 1 << 20


@dataclass(frozen=True)
class InputFile:
    """One matched input file: its position in the run's sorted input list, path, size, format."""

    index: int
    path: str
    size: int
    format: str  # "jsonl" or "parquet"


@dataclass
class RawChunk:
    """Undecoded records of one slice of a file: JSON lines or Parquet rows."""

    file: InputFile
    chunk_index: int
    lines: list[tuple[int, bytes]] | None = None
    rows: list[dict[str, Any]] | None = None
    first_row: int = 0
    oversized: list[tuple[int, Oversized]] = field(default_factory=list)
    nbytes: int = 0  # the bytes of its lines, or of its Arrow batch: a size estimate for Beam


@dataclass(frozen=True)
class Oversized:
    """A line longer than the limit: its size and first bytes; the rest was never held."""

    size: int
    prefix: bytes


class InputFileError(RunFailed):
    """An input file that cannot be read as what its name says (broken gzip, not Parquet)."""


_PREFIX_BYTES = 1024


def _is_gzip(path: str) -> bool:
    return path.endswith(".gz")


def _too_large(path: str, what: str, limit: int, key: str) -> InputFileError:
    return InputFileError(
        f"input {path}: {what} more than {limit} (policy.{key}); nothing was published. Split "
        "the file, or raise the limit in the config if it is genuine, and rerun"
    )


def _blocks(path: str, max_bytes: int | None = None) -> Iterator[bytes]:
    """The decompressed bytes of a JSON Lines file, block by block; a broken file is an error,
    and so is one decompressing to more than `max_bytes` (a decompression bomb)."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if _is_gzip(path) else raw
        done = 0
        while True:
            try:
                block = stream.read(_BLOCK)
            except (OSError, EOFError, zlib.error) as exc:
                raise InputFileError(
                    f"input {path}: not a readable gzip file ({exc}; {done} bytes decoded "
                    "before it); re-create or remove the file and rerun"
                ) from None
            if not block:
                return
            done += len(block)
            if max_bytes is not None and done > max_bytes:
                raise _too_large(path, "decompresses to", max_bytes, "max_decompressed_bytes")
            yield block


def _whole(head: bytes, size: int, last: bytes, max_line_bytes: int) -> bytes | Oversized:
    """A line from its start (`head`, `size` bytes seen so far) and its last piece."""
    total = size + len(last)
    if total <= max_line_bytes:
        return head + last
    return Oversized(total, (head + last[:_PREFIX_BYTES])[:_PREFIX_BYTES])


def iter_lines(
    path: str, max_line_bytes: int, max_bytes: int | None = None
) -> Iterator[tuple[int, bytes | Oversized]]:
    """(1-based line number, line) of a JSON Lines file, gzip or plain; blank lines skipped.

    A line longer than `max_line_bytes` comes out as `Oversized`: only its first bytes are
    kept while the rest is read past, so one enormous line never sits whole in memory. A file
    decompressing to more than `max_bytes` raises InputFileError.
    """
    number = 0
    head = b""  # the start of a line that runs past the end of a block
    size = 0  # bytes of that line seen so far (head holds only a prefix once it is too long)
    for block in _blocks(path, max_bytes):
        parts = block.split(b"\n")
        for part in parts[:-1]:
            number += 1
            line = _whole(head, size, part, max_line_bytes)
            head, size = b"", 0
            if isinstance(line, Oversized) or line.strip():
                yield number, line
        tail = parts[-1]
        if size + len(tail) <= max_line_bytes:
            head += tail
        elif size <= max_line_bytes:
            head = (head + tail[:_PREFIX_BYTES])[:_PREFIX_BYTES]
        size += len(tail)
    if size:
        line = _whole(head, size, b"", max_line_bytes)
        if isinstance(line, Oversized) or line.strip():
            yield number + 1, line


def count_records(inputs: list[InputFile], stop_above: int) -> int:
    """Records in the input files (lines, blank ones too; Parquet rows from the footers),
    counted by the driver and only until the count passes `stop_above`.

    Compressed sizes say little about how many records a file holds (a few KB of gzip can
    expand to millions of lines), so the choice of holding chunks in memory is made on this.
    A file that cannot be read counts as nothing here; the reader fails it with its message.
    """
    total = 0
    for file in inputs:
        try:
            if file.format == "parquet":
                with FileSystems.open(
                    file.path, compression_type=CompressionTypes.UNCOMPRESSED
                ) as f:
                    total += pq.ParquetFile(f).metadata.num_rows
            else:
                for block in _blocks(file.path):
                    total += block.count(b"\n")
                    if total > stop_above:
                        return total
        except (InputFileError, pa.ArrowException, OSError):
            continue
        if total > stop_above:
            return total
    return total


def oversized_rejects(
    file_index: int, lines: list[tuple[int, Oversized]], max_line_bytes: int
) -> pa.Table:
    """Quarantine rows for lines over the limit: reason `line_too_large`, raw = first bytes."""
    return pa.Table.from_pylist(
        [
            {
                LOC: loc_of(file_index, number),
                "reason": "line_too_large",
                "detail": f"{line.size} bytes > max_line_bytes {max_line_bytes}",
                "raw": line.prefix,
            }
            for number, line in lines
        ],
        REJECT_SCHEMA,
    )


@beam.typehints.with_output_types(RawChunk)
class _ReadInputFile(beam.DoFn):
    """Yields a file's records in chunks of at most `chunk_records`, as they are read: memory
    is that of a chunk whatever the file's size or compression ratio. A file over
    `max_file_records` records or `max_decompressed_bytes` bytes fails (InputFileError)."""

    def __init__(
        self,
        chunk_records: int,
        max_line_bytes: int,
        progress_name: str,
        max_file_records: int | None = None,
        max_decompressed_bytes: int | None = None,
    ) -> None:
        self.chunk_records = chunk_records
        self.max_line_bytes = max_line_bytes
        self.progress_name = progress_name
        self.max_file_records = max_file_records
        self.max_decompressed_bytes = max_decompressed_bytes

    @timed("read")
    def process(self, file: InputFile) -> Iterator[RawChunk]:
        if file.format == "parquet":
            yield from self._parquet(file)
            return
        chunk_index = nbytes = 0
        lines: list[tuple[int, bytes]] = []
        oversized: list[tuple[int, Oversized]] = []
        limit = self.max_file_records
        lines_of = iter_lines(file.path, self.max_line_bytes, self.max_decompressed_bytes)
        for records, (number, line) in enumerate(lines_of, start=1):
            if limit is not None and records > limit:
                raise _too_large(file.path, "holds", limit, "max_file_records")
            if isinstance(line, Oversized):
                oversized.append((number, line))
            else:
                lines.append((number, line))
                nbytes += len(line)
            if len(lines) + len(oversized) >= self.chunk_records:
                progress.add(self.progress_name, len(lines) + len(oversized))
                yield RawChunk(file, chunk_index, lines=lines, oversized=oversized, nbytes=nbytes)
                chunk_index += 1
                lines, oversized, nbytes = [], [], 0
        if lines or oversized:
            progress.add(self.progress_name, len(lines) + len(oversized))
            yield RawChunk(file, chunk_index, lines=lines, oversized=oversized, nbytes=nbytes)

    def _parquet(self, file: InputFile) -> Iterator[RawChunk]:
        with FileSystems.open(file.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            try:
                reader = pq.ParquetFile(f)
            except (pa.ArrowException, OSError) as exc:
                raise InputFileError(
                    f"input {file.path}: not a readable Parquet file ({exc}); "
                    "re-create or remove the file and rerun"
                ) from None
            meta = reader.metadata
            if self.max_file_records is not None and meta.num_rows > self.max_file_records:
                raise _too_large(file.path, "holds", self.max_file_records, "max_file_records")
            unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            if self.max_decompressed_bytes is not None and unpacked > self.max_decompressed_bytes:
                raise _too_large(
                    file.path,
                    "decompresses to",
                    self.max_decompressed_bytes,
                    "max_decompressed_bytes",
                )
            first = 1
            for chunk_index, batch in enumerate(reader.iter_batches(self.chunk_records)):
                rows = python_rows(batch)
                progress.add(self.progress_name, len(rows))
                yield RawChunk(file, chunk_index, rows=rows, first_row=first, nbytes=batch.nbytes)
                first += len(rows)


class ReadEvents(beam.PTransform):
    """Input files -> RawChunks of lines (JSON Lines, plain or gzip) or rows (Parquet)."""

    def __init__(
        self,
        chunk_records: int,
        max_line_bytes: int,
        *,
        progress_name: str = "read",
        max_file_records: int | None = None,
        max_decompressed_bytes: int | None = None,
    ) -> None:
        super().__init__()
        self.chunk_records = chunk_records
        self.max_line_bytes = max_line_bytes
        self.progress_name = progress_name
        self.max_file_records = max_file_records
        self.max_decompressed_bytes = max_decompressed_bytes

    def expand(self, files: beam.PCollection) -> beam.PCollection:
        return files | "ReadInputFile" >> beam.ParDo(
            _ReadInputFile(
                self.chunk_records,
                self.max_line_bytes,
                self.progress_name,
                self.max_file_records,
                self.max_decompressed_bytes,
            )
        )


# Python's cyclic garbage collector runs after every 700 new container objects and walks the
# young ones each time; a chunk decodes up to `chunk_records` records into dicts and lists,
# which reference counting frees anyway. Collecting after 100,000 instead takes about a tenth
# off a run (200k events: 21.5 s -> 19.7 s, the mean of two runs each).
BATCH_GC_THRESHOLDS = (100_000, 50, 100)


@beam.typehints.with_output_types(EventChunk)
class _ClassifyChunk(beam.DoFn):
    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()
        self.source_reader = source_reader(self.config)
        # Process-wide, set where the records are decoded: the local runner and each worker.
        gc.set_threshold(*BATCH_GC_THRESHOLDS)

    @timed("classify")
    def process(self, raw: RawChunk) -> Iterator[EventChunk]:
        file = raw.file
        if self.source_reader is not None:
            # Vendor shapes (`--source`): the adapters normalise, then the contract path types.
            chunk = self.source_reader.chunk(raw)
        elif raw.rows is not None:
            chunk = EventChunk.from_rows(
                self.contract,
                file.index,
                raw.chunk_index,
                file.path,
                raw.first_row,
                raw.rows,
                self.config.policy.max_nesting_depth,
            )
        else:
            chunk = EventChunk.from_lines(
                self.contract,
                file.index,
                raw.chunk_index,
                file.path,
                raw.lines or [],
                self.config.policy.max_nesting_depth,
            )
        if raw.oversized:
            too_large = oversized_rejects(
                file.index, raw.oversized, self.config.policy.max_line_bytes
            )
            chunk = replace(chunk, rejects=pa.concat_tables([chunk.rejects, too_large]))
        beam.metrics.Metrics.counter("consentgate", "records_read").inc(chunk.record_count())
        yield chunk


class ClassifyEvents(beam.PTransform):
    """RawChunks -> EventChunks: decoded, checked against the contract, typed, classified."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def expand(self, raw: beam.PCollection) -> beam.PCollection:
        return raw | "CheckAndType" >> beam.ParDo(_ClassifyChunk(self.config))
