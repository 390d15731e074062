"""The job's wiring, and nothing else: which stage feeds which."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam

from pipelines import storage
from pipelines.chunk import add_counts
from pipelines.config import Config
from pipelines.gate.leak_gate import LeakGate, empty_verdict
from pipelines.progress import progress
from pipelines.transforms.coders import register_chunk_coders
from pipelines.transforms.consent import ApplyConsent, ReadConsent
from pipelines.transforms.context import CollectRunContext, FindDuplicates
from pipelines.transforms.process import Deidentify, DetectLeaks, RouteRecords
from pipelines.transforms.read import ClassifyEvents, InputFile, ReadEvents, count_records
from pipelines.transforms.spill import SPILL_FOLDER, LoadChunks, SpillChunks
from pipelines.transforms.templates import SummariseTemplates
from pipelines.transforms.write import StagedChunk, WriteStaged

__all__ = ["SUMMARY_NAME", "build", "read_inputs", "spill_folder"]

SUMMARY_NAME = "_summary.json"


class _SumCounts(beam.CombineFn):
    def create_accumulator(self) -> dict[str, Any]:
        return {}

    def add_input(self, acc: dict[str, Any], staged: StagedChunk) -> dict[str, Any]:
        acc = add_counts(acc, staged.counts)
        acc.setdefault("files", []).extend(
            {"table": f.table, "event_type": f.event_type, "path": f.path, "rows": f.rows}
            for f in staged.files
        )
        return acc

    def merge_accumulators(self, accs: Iterable[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for acc in accs:
            files = out.get("files", []) + acc.get("files", [])
            out = add_counts(
                {k: v for k, v in out.items() if k != "files"},
                {k: v for k, v in acc.items() if k != "files"},
            )
            out["files"] = files
        return out

    def extract_output(self, acc: dict[str, Any]) -> dict[str, Any]:
        acc.setdefault("files", [])
        acc["files"].sort(key=lambda f: f["path"])
        return acc


def _note_staged(staged: StagedChunk) -> None:
    progress.add("staged", staged.counts.get("input_records", 0))


def _write_summary(counts: dict[str, Any], gate: dict[str, Any], path: str) -> None:
    storage.write_bytes(path, json.dumps({"counts": counts, "gate": gate}, sort_keys=True).encode())


def _classified(
    pipeline: beam.Pipeline, config: Config, inputs: list[InputFile]
) -> beam.PCollection:
    """The input files read and classified into EventChunks."""
    policy = config.policy
    return (
        pipeline
        | "ListInputs" >> beam.Create(inputs)
        | "ReadEvents"
        >> ReadEvents(
            policy.chunk_records,
            policy.max_line_bytes,
            max_file_records=policy.max_file_records,
            max_decompressed_bytes=policy.max_decompressed_bytes,
        )
        | "ClassifyEvents" >> ClassifyEvents(config)
    )


def spill_folder(staging: str) -> str:
    """Where a large run parks its classified chunks; the run deletes it when the job ends."""
    return storage.join(staging, SPILL_FOLDER)


def read_inputs(
    pipeline: beam.Pipeline, config: Config, inputs: list[InputFile]
) -> tuple[beam.PCollection, beam.PCollection]:
    """The input files as classified EventChunks, and the run context built from them."""
    register_chunk_coders()
    chunks = _classified(pipeline, config, inputs)
    return chunks, chunks | "CollectRunContext" >> CollectRunContext(config)


def build(
    pipeline: beam.Pipeline,
    config: Config,
    inputs: list[InputFile],
    staging: str,
    *,
    consent: Sequence[str] = (),
    as_of: int,
    consent_join: bool = False,
) -> None:
    """Add the whole job to `pipeline`: read -> classify -> detect -> consent -> route ->
    de-identify -> write staged Parquet -> gate -> one summary file in `staging`; beside them
    the run's template summary (`strings/templates.parquet`).

    `consent` lists the ledger files (none: nobody consented); `as_of` is the consent as-of
    time in microseconds since the epoch (UTC); `consent_join` brings the ledger to the
    records by a keyed join instead of a side input (for ledgers too big for one worker).
    """
    chunks, context = read_inputs(pipeline, config, inputs)
    # The main chain (and the template names) need the side inputs, which need every chunk
    # first. Below the limits the chunks wait in memory (or the runner's shuffle) for them;
    # above either each chunk is spilled to the staging folder as it is classified and loaded
    # back when the side inputs are ready, so memory stays flat. Records are counted, not
    # guessed from sizes: a few KB of gzip can hold millions of records.
    policy = config.policy
    spill = (
        sum(f.size for f in inputs) > policy.reread_inputs_above_bytes
        or count_records(inputs, policy.reread_inputs_above_records)
        > policy.reread_inputs_above_records
    )
    waited = chunks
    if spill:
        spilled = chunks | "SpillChunks" >> SpillChunks(spill_folder(staging))
        waited = spilled | "LoadChunks" >> LoadChunks()
    verdicts = chunks | "FindDuplicates" >> FindDuplicates(config.policy.dedup_buckets)
    _ = chunks | "SummariseTemplates" >> SummariseTemplates(config, context, staging, waited)
    ledger_parts, ledger_staged = pipeline | "ReadConsent" >> ReadConsent(
        config, list(consent), staging
    )
    events_staged = (
        waited
        | "DetectLeaks" >> DetectLeaks(config, context)
        | "ApplyConsent"
        >> ApplyConsent(config, ledger_parts, context, as_of=as_of, keyed_join=consent_join)
        | "RouteRecords" >> RouteRecords(config, verdicts)
        | "Deidentify" >> Deidentify(config, verdicts, context)
        | "WriteStaged" >> WriteStaged(staging, config.policy.parquet_compression)
    )
    _ = events_staged | "Progress" >> beam.Map(_note_staged)
    gate = events_staged | "LeakGate" >> LeakGate(config, context, chunks)
    staged = (events_staged, ledger_staged) | "AllStaged" >> beam.Flatten()
    counts = staged | "SumCounts" >> beam.CombineGlobally(_SumCounts())
    summary_path = f"{staging.rstrip('/')}/{SUMMARY_NAME}"
    (
        counts
        | "WriteSummary"
        >> beam.Map(
            lambda c, g, path: _write_summary(c, g or empty_verdict(), path),
            beam.pvalue.AsSingleton(gate),
            summary_path,
        )
    )
