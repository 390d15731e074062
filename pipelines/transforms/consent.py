"""ReadConsent and ApplyConsent: the ledger in, per-participant decisions on content records.

Two ways to bring the ledger to the records, chosen by the ledger's size (`run.py`):
- side input: the whole ledger, indexed by (subject, account), pickled once to every worker.
  Cheapest while it fits comfortably in a worker's memory: a million decisions index in about
  4 s to about 80 MB pickled (measured on the 2-core dev machine).
- keyed join: each chunk asks for the decisions of its content subjects (and of its meetings'
  hosts), plus its accounts' host and admin grants and revokes; two CoGroupByKeys bring every
  chunk a small ledger of its own. No worker holds the whole ledger, at the price of shuffling
  the decisions and the chunks once.
Both apply the same rule to the same decisions, so they decide the same (a test holds them so).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsSingleton

from pipelines.chunk import QUARANTINE_SCHEMA, EventChunk, content_subjects
from pipelines.config import Config
from pipelines.contract import parse_timestamp
from pipelines.rules.classify import decode_line, record_class_of
from pipelines.rules.consent import ConsentLedger, Decision
from pipelines.rules.echo import meeting_key
from pipelines.transforms.context import RunContext
from pipelines.transforms.read import Oversized, iter_lines
from pipelines.transforms.write import StagedChunk, StagedFile, write_parquet

__all__ = ["ApplyConsent", "LedgerPart", "ReadConsent", "ledger_part"]


@dataclass(frozen=True)
class LedgerPart:
    """The valid decisions of one ledger file and the quarantine rows of its bad ones."""

    decisions: tuple[Decision, ...]
    rejects: pa.Table


def _micros(text: str) -> int:
    moment = parse_timestamp(text)
    assert moment is not None  # the contract check ran first
    return int(moment.timestamp() * 1_000_000)


def ledger_part(config: Config, path: str) -> LedgerPart:
    """Read and check one ledger file (JSON Lines, plain or gzip, or Parquet)."""
    contract = config.contract()
    items: Iterable[tuple[int, Any, str | None, bytes]]
    if path.endswith(".parquet"):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            rows = pq.read_table(f).to_pylist()
        items = (
            (
                i + 1,
                {k: v for k, v in row.items() if v is not None},
                None,
                orjson.dumps(row, default=str),
            )
            for i, row in enumerate(rows)
        )
    else:
        items = (
            (n, None, "line_too_large", line.prefix)
            if isinstance(line, Oversized)
            else (n, *decode_line(line), line)
            for n, line in iter_lines(path, config.policy.max_line_bytes)
        )
    decisions = []
    rejects = []
    for number, row, reason, raw in items:
        if reason is None:
            violation = contract.validate_consent(row)
            reason = violation.code if violation else None
        if reason is not None:
            rejects.append(
                {
                    "event_id": None,
                    "event_type": None,
                    "source_file": path,
                    "source_line": number,
                    "reason": f"consent_{reason}",
                    "detail": None,
                    "raw": raw,
                }
            )
            continue
        decisions.append(
            Decision(
                _micros(row["decided_at"]),
                row["subject_id"],
                row["account_id"],
                row["scope"],
                row["purpose"],
                row["action"],
                row["actor"],
            )
        )
    return LedgerPart(tuple(decisions), pa.Table.from_pylist(rejects, QUARANTINE_SCHEMA))


# JSON Lines ledger rows are about 200 bytes; gzip shrinks them about tenfold.
_JSONL_ROW_BYTES = 200
_GZIP_RATIO = 10


def estimate_decisions(path: str) -> int:
    """About how many decisions a ledger file holds, without reading it: Parquet's footer
    says exactly; JSON Lines is estimated from its size."""
    if path.endswith(".parquet"):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            return int(pq.ParquetFile(f).metadata.num_rows)
    size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    return size * (_GZIP_RATIO if path.endswith(".gz") else 1) // _JSONL_ROW_BYTES


def _read_indexed(item: tuple[int, str], config: Config) -> tuple[int, LedgerPart]:
    index, path = item
    return index, ledger_part(config, path)


class _BuildLedger(beam.CombineFn):
    def __init__(self, as_of: int) -> None:
        self.as_of = as_of

    def create_accumulator(self) -> list[Decision]:
        return []

    def add_input(self, acc: list[Decision], part: LedgerPart) -> list[Decision]:
        acc.extend(part.decisions)
        return acc

    def merge_accumulators(self, accs: Iterable[list[Decision]]) -> list[Decision]:
        return [d for acc in accs for d in acc]

    def extract_output(self, acc: list[Decision]) -> ConsentLedger:
        return ConsentLedger.from_decisions(acc, self.as_of)


class _WriteLedgerRejects(beam.DoFn):
    def __init__(self, staging: str, compression: str) -> None:
        self.staging = staging
        self.compression = compression

    def process(self, item: tuple[int, LedgerPart]) -> Iterator[StagedChunk]:
        index, part = item
        files: tuple[StagedFile, ...] = ()
        if part.rejects.num_rows:
            path = f"{self.staging.rstrip('/')}/quarantine/consent-ledger-{index:05d}.parquet"
            write_parquet(part.rejects, path, self.compression)
            files = (StagedFile("quarantine", None, path, part.rejects.num_rows),)
        reasons: dict[str, int] = {}
        for reason in part.rejects["reason"].to_pylist():
            reasons[reason] = reasons.get(reason, 0) + 1
        counts = {
            "consent_ledger": {
                "rows": len(part.decisions) + part.rejects.num_rows,
                "valid": len(part.decisions),
                "quarantined": part.rejects.num_rows,
                "reasons": reasons,
            }
        }
        yield StagedChunk(f"consent-{index:05d}", files, counts)


class ReadConsent(beam.PTransform):
    """Ledger paths -> (LedgerParts of valid decisions, staged quarantine rows of bad ones)."""

    def __init__(self, config: Config, paths: list[str], staging: str) -> None:
        super().__init__()
        self.config = config
        self.paths = paths
        self.staging = staging

    def expand(self, pipeline: beam.pvalue.PBegin) -> tuple[beam.PCollection, beam.PCollection]:
        parts = (
            pipeline
            | "ListLedgers" >> beam.Create(list(enumerate(self.paths)))
            | "ReadLedger" >> beam.Map(_read_indexed, self.config)
        )
        staged = parts | "WriteRejects" >> beam.ParDo(
            _WriteLedgerRejects(self.staging, self.config.policy.parquet_compression)
        )
        return parts | "Parts" >> beam.Values(), staged


class _Consent(beam.DoFn):
    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()

    def process(
        self, chunk: EventChunk, ledger: ConsentLedger, context: RunContext
    ) -> Iterator[EventChunk]:
        decided = chunk.with_consent(self.config, self.contract, ledger, context.hosts)
        yield decided.with_echoes(self.config, self.contract, ledger, context.echo_sources)


# Keys of the keyed join: (subject, account) for a subject's own decisions, and
# ("@account", account) for what a host-only rule reads across subjects.
_ACCOUNT_WIDE = "@account"


def _needed_keys(
    chunk: EventChunk, config: Config, context: RunContext
) -> Iterator[tuple[tuple[str, str], str]]:
    """The ledger keys one chunk needs, each with the chunk's id."""
    contract = config.contract()
    keys: set[tuple[str, str]] = set()
    for name, table in chunk.tables.items():
        event_type = contract.event_types[name]
        if (
            record_class_of(event_type, config.taxonomy.record_class_overrides)
            != "customer_content"
        ):
            continue
        subjects = content_subjects(event_type, table)
        for row_subjects, account, meeting in zip(
            subjects, table["account_id"].to_pylist(), table["meeting_id"].to_pylist(), strict=True
        ):
            keys.update((s, account) for s in row_subjects)
            keys.update((h, account) for h in context.hosts.get(meeting or "", ()))
            keys.add((_ACCOUNT_WIDE, account))
            # Authors of runs this record may echo: their consent for their own records.
            keys.update(context.echo_sources.authors_in(meeting_key(meeting, account)))
    for key in sorted(keys):
        yield key, chunk.chunk_id


def _decision_keys(part: LedgerPart) -> Iterator[tuple[tuple[str, str], Decision]]:
    for d in part.decisions:
        yield (d.subject_id, d.account_id), d
        if d.actor in ("host", "admin") or d.action == "revoke":
            yield (_ACCOUNT_WIDE, d.account_id), d


def _route_decisions(item: tuple[Any, dict[str, Any]]) -> Iterator[tuple[str, list[Decision]]]:
    _, groups = item
    decisions = list(groups["decisions"])
    if not decisions:
        return
    for chunk_id in sorted(set(groups["chunks"])):
        yield chunk_id, decisions


class _ConsentFromJoin(beam.DoFn):
    def __init__(self, config: Config, as_of: int) -> None:
        self.config = config
        self.as_of = as_of

    def setup(self) -> None:
        self.contract = self.config.contract()

    def process(
        self, item: tuple[str, dict[str, Any]], context: RunContext
    ) -> Iterator[EventChunk]:
        _, groups = item
        decisions = {d for batch in groups["decisions"] for d in batch}
        ledger = ConsentLedger.from_decisions(decisions, self.as_of)
        for chunk in groups["chunk"]:
            decided = chunk.with_consent(self.config, self.contract, ledger, context.hosts)
            yield decided.with_echoes(self.config, self.contract, ledger, context.echo_sources)


class ApplyConsent(beam.PTransform):
    """Per-participant consent and the host-only what-if for every content record.

    `keyed_join` chooses how the ledger meets the records (see the module docstring).
    """

    def __init__(
        self,
        config: Config,
        parts: beam.PCollection,
        context: beam.PCollection,
        *,
        as_of: int,
        keyed_join: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.parts = parts
        self.context = context
        self.as_of = as_of
        self.keyed_join = keyed_join

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        if not self.keyed_join:
            ledger = self.parts | "BuildLedger" >> beam.CombineGlobally(_BuildLedger(self.as_of))
            return chunks | "Decide" >> beam.ParDo(
                _Consent(self.config), AsSingleton(ledger), AsSingleton(self.context)
            )
        needed = chunks | "NeededKeys" >> beam.FlatMap(
            _needed_keys, self.config, AsSingleton(self.context)
        )
        offered = self.parts | "DecisionKeys" >> beam.FlatMap(_decision_keys)
        per_chunk = (
            {"chunks": needed, "decisions": offered}
            | "JoinOnSubject" >> beam.CoGroupByKey()
            | "RouteToChunks" >> beam.FlatMap(_route_decisions)
        )
        keyed_chunks = chunks | "KeyByChunk" >> beam.Map(lambda c: (c.chunk_id, c))
        return (
            {"chunk": keyed_chunks, "decisions": per_chunk}
            | "JoinOnChunk" >> beam.CoGroupByKey()
            | "Decide"
            >> beam.ParDo(_ConsentFromJoin(self.config, self.as_of), AsSingleton(self.context))
        )
