"""WriteStaged: each chunk's output tables -> Parquet files under the run's staging folder.

File names come from the chunk id (input file index and chunk number), so a rerun of the same
inputs writes the same names, whatever the runner or the number of workers.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipelines.chunk import ChunkOutputs
from pipelines.stage_times import timed

__all__ = ["PRIVATE_TABLES", "StagedChunk", "StagedFile", "WriteStaged", "write_parquet"]

# Tables with raw records, raw values that failed checks or content subjects: owner-only on
# local disks even when published. Training files too are owner-only while staged (a run whose
# gate fails may hold a leak); publishing opens them to readers (pipelines/publish.py).
PRIVATE_TABLES = ("quarantine", "restricted", "audit")


@dataclass(frozen=True)
class StagedFile:
    """One Parquet file written to staging: which table, which event type, where, how many rows."""

    table: str
    event_type: str | None
    path: str
    rows: int


@dataclass(frozen=True)
class StagedChunk:
    chunk_id: str
    files: tuple[StagedFile, ...]
    counts: dict


def _private_folders(folder: str) -> None:
    """Create `folder` and any missing parents owner-only (0700), each one of them."""
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        folder = posixpath.dirname(folder)
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another worker made it first
            os.mkdir(path, 0o700)


def write_parquet(table: pa.Table, path: str, compression: str) -> None:
    """Write one Parquet file through Beam's FileSystems (local or remote) with fixed settings.

    On a local disk every staged file is owner-only (0600, folders 0700): staged training may
    hold what the gate will stop; publishing opens `training/` to readers.
    """
    private = "://" not in path
    if private:
        _private_folders(posixpath.dirname(path))
    with FileSystems.create(path) as sink:
        pq.write_table(
            table,
            sink,
            compression=compression,
            use_dictionary=True,
            write_statistics=True,
            store_schema=True,
        )
    if private:
        os.chmod(path, 0o600)


class _WriteChunk(beam.DoFn):
    def __init__(self, staging: str, compression: str) -> None:
        self.staging = staging
        self.compression = compression

    @timed("write")
    def process(self, out: ChunkOutputs) -> Iterator[StagedChunk]:
        name = f"part-{out.chunk_id}.parquet"
        files = []
        for event_type, table in sorted(out.training.items()):
            folder = posixpath.join(
                self.staging, "training", "service_generated", f"event_type={event_type}"
            )
            files.append(self._write("training", event_type, table, folder, name))
        for event_type, table in sorted(out.consented.items()):
            folder = posixpath.join(
                self.staging, "training", "consented_content", f"event_type={event_type}"
            )
            files.append(self._write("consented_content", event_type, table, folder, name))
        for label, table in (
            ("restricted", out.restricted),
            ("quarantine", out.quarantine),
            ("audit", out.audit),
        ):
            if table.num_rows:
                files.append(
                    self._write(label, None, table, posixpath.join(self.staging, label), name)
                )
        yield StagedChunk(out.chunk_id, tuple(files), out.counts)

    def _write(
        self, label: str, event_type: str | None, table: pa.Table, folder: str, name: str
    ) -> StagedFile:
        path = posixpath.join(folder, name)
        write_parquet(table, path, self.compression)
        return StagedFile(label, event_type, path, table.num_rows)


class WriteStaged(beam.PTransform):
    """ChunkOutputs -> Parquet files in staging; yields what was written with the chunk's counts."""

    def __init__(self, staging: str, compression: str) -> None:
        super().__init__()
        self.staging = staging
        self.compression = compression

    def expand(self, outputs: beam.PCollection) -> beam.PCollection:
        return outputs | "WriteParquet" >> beam.ParDo(_WriteChunk(self.staging, self.compression))
