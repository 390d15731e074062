"""Run-wide facts every chunk is judged against: duplicates, known identifiers, content shingles.

Both are built from small keys, never whole records: (event id, hash, position) for
de-duplication, and distinct identifier strings plus 64-bit content shingle hashes for the
detectors. Each ends as a singleton side input.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable, Iterator
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
from pipelines.rules.arrays import sorted_unique
from pipelines.rules.consent import hosts_by_meeting
from pipelines.rules.detectors import (
    ENTRY_SCHEMA,
    EchoIndex,
    EchoSettings,
    EchoSources,
    KnownIdentifiers,
    bucket_entries,
    judge_bucket,
)
from pipelines.rules.route import DedupVerdicts, find_duplicates
from pipelines.rules.strings import QualifiedStrings, cap_accounts, qualified_of
from pipelines.stage_times import timed

__all__ = [
    "CapAccounts",
    "CollectRunContext",
    "CountStrings",
    "FindDuplicates",
    "MergeAll",
    "MergeQualified",
    "RunContext",
]


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
    # Hashes of the service strings (values and templates) that at least k accounts produced.
    strings: QualifiedStrings = field(default_factory=QualifiedStrings)


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


@timed("context")
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

    @timed("context")
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

    @timed("context")
    def process(self, chunk: EventChunk) -> Iterator[tuple[int, pa.Table]]:
        entries = chunk.echo_entries(self.config, self.contract)
        yield from bucket_entries(entries, self.config.policy.dedup_buckets)


def _with_sources(context: RunContext, sources: EchoSources) -> RunContext:
    return replace(context, echo_sources=sources)


def _with_strings(context: RunContext, strings: QualifiedStrings) -> RunContext:
    return replace(context, strings=strings)


class _StringKeys(beam.DoFn):
    """One chunk's (string hash, account hash) pairs, split into buckets by string hash."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()

    @timed("context")
    def process(self, chunk: EventChunk) -> Iterator[tuple[int, pa.Table]]:
        keys = chunk.string_keys(self.config, self.contract)
        if not keys.num_rows:
            return
        buckets = self.config.policy.dedup_buckets
        bucket_of = pa.compute.cast(
            pa.array(keys["key"].to_numpy() % np.uint64(buckets)), pa.int64()
        )
        for bucket in sorted_unique(bucket_of.to_numpy()).tolist():
            yield bucket, keys.filter(pa.compute.equal(bucket_of, bucket))


class CapAccounts(beam.CombineFn):
    """(key, account) pairs of one bucket, at most k accounts per key: memory follows the
    number of distinct strings, not of events."""

    _COMPACT_EVERY = 32

    def __init__(self, k: int) -> None:
        self.k = k

    def create_accumulator(self) -> list[pa.Table]:
        return []

    def add_input(self, acc: list[pa.Table], item: pa.Table) -> list[pa.Table]:
        acc.append(item)
        if len(acc) >= self._COMPACT_EVERY:
            acc = [cap_accounts(acc, self.k)]
        return acc

    def merge_accumulators(self, accs: Iterable[list[pa.Table]]) -> list[pa.Table]:
        return [cap_accounts([t for acc in accs for t in acc], self.k)]

    def extract_output(self, acc: list[pa.Table]) -> pa.Table:
        return cap_accounts(acc, self.k)


class MergeQualified(beam.CombineFn):
    """The buckets' qualified hashes -> one sorted QualifiedStrings."""

    def create_accumulator(self) -> list[np.ndarray]:
        return []

    def add_input(self, acc: list[np.ndarray], item: np.ndarray) -> list[np.ndarray]:
        acc.append(item)
        return acc

    def merge_accumulators(self, accs: Iterable[list[np.ndarray]]) -> list[np.ndarray]:
        return [a for acc in accs for a in acc]

    def extract_output(self, acc: list[np.ndarray]) -> QualifiedStrings:
        if not acc:
            return QualifiedStrings()
        return QualifiedStrings(sorted_unique(np.concatenate(acc)).astype(np.uint64))


class CountStrings(beam.PTransform):
    """EventChunks -> the run's QualifiedStrings: a combine keyed by string-hash bucket with
    per-key account sets capped at k (only hashes move)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        k = self.config.strings.k
        return (
            chunks
            | "StringKeys" >> beam.ParDo(_StringKeys(self.config))
            | "CapAccounts" >> beam.CombinePerKey(CapAccounts(k))
            | "Qualified" >> beam.MapTuple(lambda _bucket, capped: qualified_of(capped, k))
            | "MergeQualified" >> beam.CombineGlobally(MergeQualified())
        )


class CollectRunContext(beam.PTransform):
    """EventChunks -> one RunContext: the run's identifiers, content shingles and prints, and
    under `per_participant` the other-subject echo index (bucketed by run hash: only hashes
    move)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        strings = chunks | "CountStrings" >> CountStrings(self.config)
        merge = functools.partial(_merge_contexts, self.config)
        context = (
            chunks
            | "PerChunk" >> beam.ParDo(_ChunkContext(self.config))
            | "Merge" >> MergeAll(merge, merge([]))
            | "AttachStringCounts" >> beam.Map(_with_strings, AsSingleton(strings))
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


@timed("context")
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
