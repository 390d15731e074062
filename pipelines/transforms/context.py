"""Run-wide facts every chunk is judged against: duplicates, known identifiers, content shingles.

Both are built from small keys, never whole records: (event id, hash, position) for
de-duplication, and distinct identifier strings plus 64-bit content shingle hashes for the
detectors. Each ends as a singleton side input.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.pvalue import AsSingleton

from pipelines.chunk import EventChunk
from pipelines.config import Config
from pipelines.contract import Contract
from pipelines.gate.rows import account_prints, merge_prints
from pipelines.rules.consent import hosts_by_meeting
from pipelines.rules.detectors import (
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

__all__ = ["CollectRunContext", "CountStrings", "FindDuplicates", "RunContext"]


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


class _MergeContext(beam.CombineFn):
    """Collects the chunks' contexts and merges them once, at the end."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def create_accumulator(self) -> list[RunContext]:
        return []

    def add_input(self, acc: list[RunContext], item: RunContext) -> list[RunContext]:
        acc.append(item)
        return acc

    def merge_accumulators(self, accs: Iterable[list[RunContext]]) -> list[RunContext]:
        return [self.extract_output([c for acc in accs for c in acc])]

    def extract_output(self, acc: list[RunContext]) -> RunContext:
        settings = self.config.detectors
        hosts: dict[str, frozenset[str]] = {}
        for part in acc:
            for meeting, ids in part.hosts.items():
                hosts[meeting] = hosts.get(meeting, frozenset()) | ids
        return RunContext(
            KnownIdentifiers.merge_all(
                [KnownIdentifiers.from_values([], settings.known_identifier_min_length)]
                + [c.known for c in acc]
            ),
            EchoIndex.merge_all(settings.content_echo_shingle_words, [c.echo for c in acc]),
            hosts,
            merge_prints([c.prints for c in acc]),
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


class _MergeSources(beam.CombineFn):
    """The buckets' surviving entries -> one EchoSources (sorted, so order does not matter)."""

    def create_accumulator(self) -> list[pa.Table]:
        return []

    def add_input(self, acc: list[pa.Table], item: pa.Table) -> list[pa.Table]:
        acc.append(item)
        return acc

    def merge_accumulators(self, accs: Iterable[list[pa.Table]]) -> list[pa.Table]:
        return [table for acc in accs for table in acc]

    def extract_output(self, acc: list[pa.Table]) -> EchoSources:
        return EchoSources.of(acc)


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

    def process(self, chunk: EventChunk) -> Iterator[tuple[int, pa.Table]]:
        keys = chunk.string_keys(self.config, self.contract)
        if not keys.num_rows:
            return
        buckets = self.config.policy.dedup_buckets
        bucket_of = pa.compute.cast(
            pa.array(keys["key"].to_numpy() % np.uint64(buckets)), pa.int64()
        )
        for bucket in np.unique(bucket_of.to_numpy()).tolist():
            yield bucket, keys.filter(pa.compute.equal(bucket_of, bucket))


class _CapAccounts(beam.CombineFn):
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


class _MergeQualified(beam.CombineFn):
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
        return QualifiedStrings(np.unique(np.concatenate(acc)).astype(np.uint64))


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
            | "CapAccounts" >> beam.CombinePerKey(_CapAccounts(k))
            | "Qualified" >> beam.MapTuple(lambda _bucket, capped: qualified_of(capped, k))
            | "MergeQualified" >> beam.CombineGlobally(_MergeQualified())
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
        context = (
            chunks
            | "PerChunk" >> beam.ParDo(_ChunkContext(self.config))
            | "Merge" >> beam.CombineGlobally(_MergeContext(self.config))
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
            | "MergeEchoSources" >> beam.CombineGlobally(_MergeSources())
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


class _MergeVerdicts(beam.CombineFn):
    def create_accumulator(self) -> DedupVerdicts:
        return DedupVerdicts()

    def add_input(self, acc: DedupVerdicts, item: DedupVerdicts) -> DedupVerdicts:
        return acc.merge(item)

    def merge_accumulators(self, accs: Iterable[DedupVerdicts]) -> DedupVerdicts:
        out = DedupVerdicts()
        for acc in accs:
            out = out.merge(acc)
        return out

    def extract_output(self, acc: DedupVerdicts) -> Any:
        return acc


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
            | "Merge" >> beam.CombineGlobally(_MergeVerdicts())
        )
