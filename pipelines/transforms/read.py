"""ReadEvents and ClassifyEvents: input files -> chunks of lines or rows -> typed Arrow chunks."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.chunk import EventChunk
from pipelines.config import Config

__all__ = ["ClassifyEvents", "InputFile", "RawChunk", "ReadEvents"]

_LOG = logging.getLogger(__name__)
_BLOCK = 8 << 20


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


def _is_gzip(path: str) -> bool:
    return path.endswith(".gz")


def iter_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) of a JSON Lines file, gzip or plain; blank lines skipped."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if _is_gzip(path) else raw
        number = 0
        rest = b""
        while True:
            block = stream.read(_BLOCK)
            if not block:
                break
            parts = (rest + block).split(b"\n")
            rest = parts.pop()
            for line in parts:
                number += 1
                if line.strip():
                    yield number, line
        if rest:
            number += 1
            if rest.strip():
                yield number, rest


class _ReadInputFile(beam.DoFn):
    """Yields a file's records in chunks of at most `chunk_records`."""

    def __init__(self, chunk_records: int) -> None:
        self.chunk_records = chunk_records

    def process(self, file: InputFile) -> Iterator[RawChunk]:
        if file.format == "parquet":
            yield from self._parquet(file)
            return
        chunk_index = 0
        lines: list[tuple[int, bytes]] = []
        for item in iter_lines(file.path):
            lines.append(item)
            if len(lines) >= self.chunk_records:
                yield RawChunk(file, chunk_index, lines=lines)
                chunk_index += 1
                lines = []
        if lines:
            yield RawChunk(file, chunk_index, lines=lines)

    def _parquet(self, file: InputFile) -> Iterator[RawChunk]:
        with FileSystems.open(file.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            reader = pq.ParquetFile(f)
            first = 1
            for chunk_index, batch in enumerate(reader.iter_batches(self.chunk_records)):
                rows = batch.to_pylist()
                yield RawChunk(file, chunk_index, rows=rows, first_row=first)
                first += len(rows)


class ReadEvents(beam.PTransform):
    """Input files -> RawChunks of lines (JSON Lines, plain or gzip) or rows (Parquet)."""

    def __init__(self, chunk_records: int) -> None:
        super().__init__()
        self.chunk_records = chunk_records

    def expand(self, files: beam.PCollection) -> beam.PCollection:
        return files | "ReadInputFile" >> beam.ParDo(_ReadInputFile(self.chunk_records))


class _ClassifyChunk(beam.DoFn):
    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()

    def process(self, raw: RawChunk) -> Iterator[EventChunk]:
        file = raw.file
        if raw.rows is not None:
            chunk = EventChunk.from_rows(
                self.contract, file.index, raw.chunk_index, file.path, raw.first_row, raw.rows
            )
        else:
            chunk = EventChunk.from_lines(
                self.contract, file.index, raw.chunk_index, file.path, raw.lines or []
            )
        beam.metrics.Metrics.counter("consentgate", "records_read").inc(chunk.record_count())
        yield chunk


class ClassifyEvents(beam.PTransform):
    """RawChunks -> EventChunks: decoded, checked against the contract, typed, classified."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def expand(self, raw: beam.PCollection) -> beam.PCollection:
        return raw | "CheckAndType" >> beam.ParDo(_ClassifyChunk(self.config))
