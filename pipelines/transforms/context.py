"""Run-wide facts every chunk is judged against: duplicates, known identifiers, content shingles.

Both are built from small keys, never whole records: (event id, hash, position) for
de-duplication, and distinct identifier strings plus 64-bit content shingle hashes for the
detectors. Each ends as a singleton side input.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.pvalue import AsList, AsSingleton

from pipelines.chunk import EventChunk
from pipelines.config import Config
from pipelines.contract import Contract
from pipelines.gate.rows import account_prints, merge_prints
from pipelines.rules.consent import hosts_by_meeting
from pipelines.rules.detect import EchoIndex, KnownIdentifiers
from pipelines.rules.echo import (
    ENTRY_SCHEMA,
    EchoSettings,
    EchoSources,
    bucket_entries,
    judge_bucket,
)
from pipelines.rules.route import DedupVerdicts, find_duplicates

__all__ = ["CollectRunContext", "FindDuplicates", "MergeAll", "RunContext"]


@dataclass(frozen=True)
class RunContext:
    """What the detectors need to know about the whole run."""

    known: KnownIdentifiers
    echo: EchoIndex
    hosts: dict[str, frozenset[str]] = field(default_factory=dict)  # meeting id -> host ids
    # account id -> fingerprints of its content, as the gate's content cross-check cuts them
    prints: dict[str, np.ndarray] = field(default_factory=dict)
    # Distinctive runs of content shared within a meeting (per_participant runs only).
    echo_sources: EchoSources = field(default_factory=EchoSources.empty)


class MergeAll(beam.PTransform):
    """Parts -> one value, `merge([empty, *parts])`, for a singleton side input.

    Not a CombineGlobally, and no shuffle at all: runners lift a combine, pre-combining all of
    a worker's parts in a bundle into one element before the shuffle, and on Flink a bundle is
    a task's whole partition, so that element grows with the input until it no longer fits
    Flink's sort buffer ("Cannot write record to fresh sort buffer. Record too large": 4M
    events failed so). Here the parts reach the one merging call as a side input (on Flink a
    broadcast, never sorted); `empty` makes no parts still give a value.
    """

    def __init__(self, merge: Callable[[list[Any]], Any], empty: Any) -> None:
        super().__init__()
        self.merge = merge
        self.empty = empty

    def expand(self, parts: beam.PCollection) -> beam.PCollection:
        return (
            parts.pipeline
            | "Empty" >> beam.Create([self.empty])
            | "MergeAll"
            >> beam.Map(lambda empty, all_parts: self.merge([empty, *all_parts]), AsList(parts))
        )


def _merge_contexts(config: Config, parts: list[RunContext]) -> RunContext:
    """The chunks' contexts as one."""
    settings = config.detectors
    hosts: dict[str, frozenset[str]] = {}
    for part in parts:
        for meeting, ids in part.hosts.items():
            hosts[meeting] = hosts.get(meeting, frozenset()) | ids
    return RunContext(
        KnownIdentifiers.merge_all(
            [KnownIdentifiers.from_values([], settings.known_identifier_min_length)]
            + [c.known for c in parts]
        ),
        EchoIndex.merge_all(settings.content_echo_shingle_words, [c.echo for c in parts]),
        hosts,
        merge_prints([c.prints for c in parts]),
    )


def _content_values(chunk: EventChunk, contract: Contract) -> Iterator[tuple[str | None, Any]]:
    """(account id, value) of every content field of the chunk, by the contract's categories
    (as the gate reads them, whatever the taxonomy config says)."""
    for name, table in chunk.tables.items():
        fields = [f for f in contract.event_types[name].fields if f.category == "content"]
        if not fields:
            continue
        accounts = table["account_id"].to_pylist()
        for spec in fields:
            yield from zip(accounts, table[spec.name].to_pylist(), strict=True)


class _ChunkContext(beam.DoFn):
    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()

    def process(self, chunk: EventChunk) -> Iterator[RunContext]:
        settings = self.config.detectors
        yield RunContext(
            KnownIdentifiers.from_values(
                chunk.identifier_values(self.contract), settings.known_identifier_min_length
            ),
            EchoIndex.build(
                chunk.content_texts(self.contract), settings.content_echo_shingle_words
            ),
            dict(hosts_by_meeting(chunk.host_pairs())),
            account_prints(_content_values(chunk, self.contract)),
        )


class _EchoEntries(beam.DoFn):
    """One chunk's echo index entries, split into buckets by run hash."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()

    def process(self, chunk: EventChunk) -> Iterator[tuple[int, pa.Table]]:
        entries = chunk.echo_entries(self.config, self.contract)
        yield from bucket_entries(entries, self.config.policy.dedup_buckets)


def _with_sources(context: RunContext, sources: EchoSources) -> RunContext:
    return replace(context, echo_sources=sources)


class CollectRunContext(beam.PTransform):
    """EventChunks -> one RunContext: the run's identifiers, content shingles and prints, and
    under `per_participant` the other-subject echo index (bucketed by run hash: only hashes
    move)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        merge = functools.partial(_merge_contexts, self.config)
        context = (
            chunks
            | "PerChunk" >> beam.ParDo(_ChunkContext(self.config))
            | "Merge" >> MergeAll(merge, merge([]))
        )
        if self.config.policy.content_policy != "per_participant":
            return context
        settings = EchoSettings.of(self.config.detectors)
        sources = (
            chunks
            | "EchoEntries" >> beam.ParDo(_EchoEntries(self.config))
            | "GroupEchoRuns" >> beam.GroupByKey()
            | "JudgeEchoRuns" >> beam.MapTuple(lambda _bucket, parts: judge_bucket(parts, settings))
            | "MergeEchoSources" >> MergeAll(EchoSources.of, ENTRY_SCHEMA.empty_table())
        )
        return context | "AttachEchoSources" >> beam.Map(_with_sources, AsSingleton(sources))


def _bucketed_keys(chunk: EventChunk, buckets: int) -> Iterator[tuple[int, pa.Table]]:
    keys = chunk.dedup_keys()
    if keys.num_rows == 0:
        return
    ids = keys["event_id"].to_pylist()
    bucket_of = pa.array([zlib.crc32(i.encode("utf-8")) % buckets for i in ids], pa.int32())
    for bucket in sorted(set(bucket_of.to_pylist())):
        yield bucket, keys.filter(pa.compute.equal(bucket_of, bucket))


def _merge_verdicts(parts: list[DedupVerdicts]) -> DedupVerdicts:
    out = DedupVerdicts()
    for part in parts:
        out = out.merge(part)
    return out


class FindDuplicates(beam.PTransform):
    """EventChunks -> one DedupVerdicts, shuffling only (event_id, hash, position) keys."""

    def __init__(self, buckets: int) -> None:
        super().__init__()
        self.buckets = buckets

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        return (
            chunks
            | "KeyByBucket" >> beam.FlatMap(_bucketed_keys, self.buckets)
            | "GroupBuckets" >> beam.GroupByKey()
            | "VerdictPerBucket" >> beam.MapTuple(lambda _bucket, keys: find_duplicates(keys))
            | "Merge" >> MergeAll(_merge_verdicts, DedupVerdicts())
        )
