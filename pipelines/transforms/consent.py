"""ReadConsent and ApplyConsent: the ledger in, per-participant decisions on content records.

The ledger reaches every worker as one side input, indexed by (subject, account). That suits
ledgers up to a few million decisions (each decision is a small tuple); a ledger past that
would be joined by subject with a CoGroupByKey instead, which this version does not do yet.
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

from pipelines.chunk import QUARANTINE_SCHEMA, EventChunk
from pipelines.config import Config
from pipelines.contract import parse_timestamp
from pipelines.rules.classify import decode_line
from pipelines.rules.consent import ConsentLedger, Decision
from pipelines.transforms.context import RunContext
from pipelines.transforms.read import iter_lines
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
        items = ((n, *decode_line(line), line) for n, line in iter_lines(path))
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
    """Ledger paths -> (the ConsentLedger singleton, staged quarantine rows of bad decisions)."""

    def __init__(self, config: Config, paths: list[str], as_of: int, staging: str) -> None:
        super().__init__()
        self.config = config
        self.paths = paths
        self.as_of = as_of
        self.staging = staging

    def expand(self, pipeline: beam.pvalue.PBegin) -> tuple[beam.PCollection, beam.PCollection]:
        parts = (
            pipeline
            | "ListLedgers" >> beam.Create(list(enumerate(self.paths)))
            | "ReadLedger" >> beam.Map(_read_indexed, self.config)
        )
        ledger = (
            parts
            | "Parts" >> beam.Values()
            | "BuildLedger" >> beam.CombineGlobally(_BuildLedger(self.as_of))
        )
        staged = parts | "WriteRejects" >> beam.ParDo(
            _WriteLedgerRejects(self.staging, self.config.policy.parquet_compression)
        )
        return ledger, staged


class _Consent(beam.DoFn):
    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()

    def process(
        self, chunk: EventChunk, ledger: ConsentLedger, context: RunContext
    ) -> Iterator[EventChunk]:
        yield chunk.with_consent(self.config, self.contract, ledger, context.hosts)


class ApplyConsent(beam.PTransform):
    """Per-participant consent and the host-only what-if for every content record."""

    def __init__(self, config: Config, ledger: beam.PCollection, context: beam.PCollection) -> None:
        super().__init__()
        self.config = config
        self.ledger = ledger
        self.context = context

    def expand(self, chunks: beam.PCollection) -> beam.PCollection:
        return chunks | "Decide" >> beam.ParDo(
            _Consent(self.config), AsSingleton(self.ledger), AsSingleton(self.context)
        )
