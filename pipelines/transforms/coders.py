"""Coders for the large elements the stages pass: raw chunks, event chunks, chunk outputs.

Beam measures every PCollection by sampling its elements' encoded sizes: the first ten
elements of each, then a shrinking share. A run has tens of chunks, so most of them were
pickled whole once per stage (tens of megabytes each) only to be measured. These coders pickle
a chunk only when a runner must move it and estimate its size from what it holds (Arrow buffer
sizes, line lengths) without encoding it. Registered for the element types
(`register_chunk_coders`, called where the job is built), they serve every PCollection whose
DoFn declares its output type (`beam.typehints.with_output_types`).
"""

from __future__ import annotations

import pickle
from typing import Any

import apache_beam as beam

from pipelines.chunk import ChunkOutputs, EventChunk
from pipelines.transforms.read import RawChunk

__all__ = ["ChunkCoder", "chunk_nbytes", "register_chunk_coders"]


def chunk_nbytes(value: Any) -> int:
    """About how many bytes a chunk holds: its tables' Arrow buffers, or its lines."""
    if isinstance(value, EventChunk):
        return sum(t.nbytes for t in value.tables.values()) + value.rejects.nbytes
    if isinstance(value, ChunkOutputs):
        tables = [*value.training.values(), *value.consented.values()]
        tables += [value.restricted, value.quarantine, value.audit]
        return sum(t.nbytes for t in tables)
    if isinstance(value, RawChunk):
        return value.nbytes
    return len(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))


class ChunkCoder(beam.coders.Coder):
    """Pickles a chunk when it must move; estimates its size without encoding it."""

    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> Any:
        return pickle.loads(encoded)

    def estimate_size(self, value: Any) -> int:
        return chunk_nbytes(value)

    def to_type_hint(self) -> Any:
        return Any


def register_chunk_coders() -> None:
    """Make ChunkCoder the coder of every PCollection of chunks (idempotent)."""
    for chunk_type in (RawChunk, EventChunk, ChunkOutputs):
        beam.coders.registry.register_coder(chunk_type, ChunkCoder)
