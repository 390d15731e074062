"""SummariseTemplates: the run's templates with their account counts, for the report and
`consentgate templates`, written once to `<run>/strings/templates.parquet`.

Keyed like `CountStrings`: (hash, account hash) pairs bucketed by hash, a combine per bucket
capping each hash at `k` accounts. Words are counted first, so that each chunk can decide which
masked forms may be shown; a form that may not is never carried past its chunk (only its hash
and keyed reference move).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.pvalue import AsSingleton

from pipelines.chunk import EventChunk, string_fields
from pipelines.config import Config
from pipelines.rules.arrays import sorted_unique
from pipelines.rules.deidentify import key_from_env
from pipelines.rules.strings import QualifiedStrings, field_key, qualified_of
from pipelines.rules.templates import (
    SUMMARY_SCHEMA,
    TEMPLATES_PATH,
    merge_summaries,
    summary_rows,
    template_names,
    template_pairs,
    word_pairs,
)
from pipelines.stage_times import timed
from pipelines.transforms.context import CapAccounts, MergeAll, MergeQualified, RunContext
from pipelines.transforms.write import write_parquet

__all__ = ["SummariseTemplates"]

_PairsOf = Callable[[str, Any, Any], pa.Table]


def _fields(
    config: Config, chunk: EventChunk, contract: Any
) -> Iterator[tuple[str, pa.Table, str]]:
    for name, table in sorted(chunk.tables.items()):
        for field_name in string_fields(config, contract, contract.event_types[name]):
            yield field_key(name, field_name), table, field_name


def _bucketed(table: pa.Table, buckets: int) -> Iterator[tuple[int, pa.Table]]:
    if not table.num_rows:
        return
    bucket_of = pa.array(table["key"].to_numpy() % np.uint64(buckets)).cast(pa.int64())
    for bucket in sorted_unique(bucket_of.to_numpy()).tolist():
        yield bucket, table.filter(pc.equal(bucket_of, bucket))


class _Pairs(beam.DoFn):
    """One chunk's (hash, account hash) pairs of one kind, split into buckets by hash."""

    def __init__(self, config: Config, pairs_of: _PairsOf) -> None:
        self.config = config
        self.pairs_of = pairs_of

    def setup(self) -> None:
        self.contract = self.config.contract()

    @timed("context")
    def process(self, chunk: EventChunk) -> Iterator[tuple[int, pa.Table]]:
        parts = [
            self.pairs_of(key, table[name], table["account_id"])
            for key, table, name in _fields(self.config, chunk, self.contract)
        ]
        parts = [p for p in parts if p.num_rows]
        if parts:
            yield from _bucketed(pa.concat_tables(parts), self.config.policy.dedup_buckets)


class _Names(beam.DoFn):
    """One chunk's distinct templates: reference, and masked form where it may be shown."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        # The key is read on the worker, from its environment; it never travels in the graph.
        self.contract = self.config.contract()
        self.key = key_from_env()

    @timed("context")
    def process(
        self, chunk: EventChunk, words: QualifiedStrings, context: RunContext
    ) -> Iterator[tuple[int, pa.Table]]:
        parts = [
            template_names(
                key,
                table[name],
                common_words=words,
                qualified=context.strings,
                registry=self.config.strings,
                key=self.key,
            )
            for key, table, name in _fields(self.config, chunk, self.contract)
        ]
        parts = [p for p in parts if p.num_rows]
        if parts:
            yield from _bucketed(pa.concat_tables(parts), self.config.policy.dedup_buckets)


def _write(table: pa.Table, path: str, compression: str, k: int) -> None:
    write_parquet(table.replace_schema_metadata({"k": str(k)}), path, compression)


class SummariseTemplates(beam.PTransform):
    """EventChunks -> `<staging>/strings/templates.parquet`: per field and template, distinct
    accounts (capped at k), whether it qualified or is approved, and its masked form or
    keyed reference."""

    def __init__(
        self,
        config: Config,
        context: beam.PCollection,
        staging: str,
        waited: beam.PCollection | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.context = context
        self.staging = staging
        # The chunks as the main chain gets them once the side inputs are ready (loaded back
        # from the spill in a large run); the names need those side inputs too. None: the
        # chunks this transform is applied to.
        self.waited = waited

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        k = self.config.strings.k
        words = (
            chunks
            | "WordKeys" >> beam.ParDo(_Pairs(self.config, word_pairs))
            | "CapWordAccounts" >> beam.CombinePerKey(CapAccounts(k))
            | "CommonWords" >> beam.MapTuple(lambda _bucket, capped: qualified_of(capped, k))
            | "MergeCommonWords" >> beam.CombineGlobally(MergeQualified())
        )
        counted = (
            chunks
            | "TemplateKeys" >> beam.ParDo(_Pairs(self.config, template_pairs))
            | "CapTemplateAccounts" >> beam.CombinePerKey(CapAccounts(k))
        )
        waited = chunks if self.waited is None else self.waited
        names = waited | "TemplateNames" >> beam.ParDo(
            _Names(self.config), AsSingleton(words), AsSingleton(self.context)
        )
        path = posixpath.join(self.staging, TEMPLATES_PATH)
        return (
            {"counted": counted, "names": names}
            | "JoinCounts" >> beam.CoGroupByKey()
            | "PerBucket"
            >> beam.MapTuple(lambda _b, got: summary_rows(got["counted"], got["names"], k))
            | "MergeBuckets" >> MergeAll(merge_summaries, SUMMARY_SCHEMA.empty_table())
            | "WriteTemplates" >> beam.Map(_write, path, self.config.policy.parquet_compression, k)
        )
