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

A row that breaks the ledger's contract is quarantined and also kept as a `RejectedRow`: the
subject and account a lenient second read finds in it (`readable_ids`), standing as a revoke
(`rules.consent`). The keyed join sends it under its (subject, account) and account keys, or to
every chunk when it names no account.
"""

from __future__ import annotations

import functools
import re
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
from pipelines.contract import parse_instant
from pipelines.rules.classify import decode_line, python_rows, record_class_of
from pipelines.rules.consent import ConsentLedger, Decision, RejectedRow
from pipelines.rules.detectors import meeting_key
from pipelines.stage_times import timed
from pipelines.transforms.context import MergeAll, RunContext
from pipelines.transforms.read import Oversized, iter_lines
from pipelines.transforms.write import StagedChunk, StagedFile, write_parquet

__all__ = ["ApplyConsent", "LedgerPart", "ReadConsent", "ledger_part", "readable_ids"]


@dataclass(frozen=True)
class LedgerPart:
    """The valid decisions of one ledger file, what its rejected rows revoke, and their
    quarantine rows."""

    decisions: tuple[Decision, ...]
    rejected: tuple[RejectedRow, ...]
    rejects: pa.Table


# A key of a JSON object and, when it is a string, its value; both still JSON-escaped. In text
# that is valid JSON, a string followed by a colon is always a key (a `"` inside a string is
# escaped), so this finds every key, at any depth, and nothing else.
_KEY_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*(?:"((?:[^"\\]|\\.)*)")?')
_ID_KEYS = ("subject_id", "account_id")


def _unescaped(token: bytes) -> str | None:
    try:
        text = orjson.loads(b'"' + token + b'"')
    except orjson.JSONDecodeError:
        return None
    return text if isinstance(text, str) else None


def _key_tokens(raw: bytes) -> list[tuple[str | None, str | None]]:
    """(key, string value or None) of every key found in `raw`, unescaped."""
    return [
        (_unescaped(m[1]), None if m[2] is None else _unescaped(m[2]))
        for m in _KEY_TOKEN.finditer(raw)
    ]


def readable_ids(row: Any, raw: bytes) -> tuple[set[str], set[str]]:
    """The subject and account ids a lenient second read finds in a rejected ledger row.

    Only non-empty strings count. A row that parsed as a JSON object gives its own values and
    those of any deeper key of the same name (more revokes can only withhold more). A row that
    did not parse (not JSON, or cut at the line limit) is read by its key tokens alone; there a
    key found more than once cannot be trusted to be the row's own, so it counts as unreadable
    and the revoke widens (to the whole account, or to the subject in every account).
    """
    found: dict[str, set[str]] = {key: set() for key in _ID_KEYS}
    seen: dict[str, int] = dict.fromkeys(_ID_KEYS, 0)
    for key, value in _key_tokens(raw):
        if key in found:
            seen[key] += 1
            if value:
                found[key].add(value)
    parsed = isinstance(row, dict)
    for key in _ID_KEYS:
        if parsed:
            value = row.get(key)
            if isinstance(value, str) and value:
                found[key].add(value)
        elif seen[key] > 1:
            found[key] = set()
    return found["subject_id"], found["account_id"]


def _rejected_rows(
    file: int, number: int, reason: str, row: Any, raw: bytes
) -> Iterator[RejectedRow]:
    subjects, accounts = readable_ids(row, raw)
    some_subjects: list[str | None] = [*sorted(subjects)] or [None]
    some_accounts: list[str | None] = [*sorted(accounts)] or [None]
    for subject in some_subjects:
        for account in some_accounts:
            yield RejectedRow(file, number, reason, subject, account)


def _duplicate_key(row: dict[str, Any], raw: bytes) -> bool:
    """Does a conforming JSON row name a key twice? A parser keeps one of the values (orjson:
    the last), so `"action": "revoke", ..., "action": "grant"` would read as a grant.

    The row conforms, so its values are strings: with no backslash in the line, every `"`
    delimits a key or a value, and the line holds exactly 4 per field unless some key repeats
    (any repeat adds at least 2). Only lines with escapes go through the key scan.
    """
    if b"\\" not in raw:
        return raw.count(b'"') != 4 * len(row)
    return len(_KEY_TOKEN.findall(raw)) != len(row)


def ledger_part(config: Config, path: str, file: int = 0) -> LedgerPart:
    """Read and check one ledger file (JSON Lines, plain or gzip, or Parquet).

    `file` is the file's position among the run's ledger files, named in reasons.
    """
    contract = config.contract()
    items: Iterable[tuple[int, Any, str | None, bytes]]
    columnar = path.endswith(".parquet")
    if columnar:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            rows = python_rows(pq.read_table(f))
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
            else (n, *decode_line(line, config.policy.max_nesting_depth), line)
            for n, line in iter_lines(
                path, config.policy.max_line_bytes, config.policy.max_decompressed_bytes
            )
        )
    decisions = []
    rejected: list[RejectedRow] = []
    rejects = []
    for number, row, reason, raw in items:
        if reason is None:
            violation = contract.validate_consent(row)
            reason = violation.code if violation else None
        if reason is None and not columnar and _duplicate_key(row, raw):
            reason = "duplicate_field"
        if reason is not None:
            rejected.extend(_rejected_rows(file, number, f"consent_{reason}", row, raw))
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
        instant = parse_instant(row["decided_at"])
        assert instant is not None  # the contract check ran first
        decisions.append(
            Decision(
                instant.micros,
                row["subject_id"],
                row["account_id"],
                row["scope"],
                row["purpose"],
                row["action"],
                row["actor"],
                instant.sub_micros,
            )
        )
    return LedgerPart(
        tuple(decisions),
        tuple(rejected),
        pa.Table.from_pylist(rejects, QUARANTINE_SCHEMA),
    )


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
    return index, ledger_part(config, path, index)


_Entries = list[Decision | RejectedRow]


def _ledger_of(entries: Iterable[Decision | RejectedRow], as_of: int) -> ConsentLedger:
    decisions: list[Decision] = []
    rejected: list[RejectedRow] = []
    for entry in entries:
        if isinstance(entry, RejectedRow):
            rejected.append(entry)
        else:
            decisions.append(entry)
    return ConsentLedger.from_decisions(decisions, as_of, rejected)


def _build_ledger(as_of: int, parts: list[LedgerPart]) -> ConsentLedger:
    entries: _Entries = []
    for part in parts:
        entries.extend(part.decisions)
        entries.extend(part.rejected)
    return _ledger_of(entries, as_of)


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
                # Rows from which neither a subject nor an account could be read: any one
                # withholds every content record of the run (the report leads with it).
                "unreadable": len(
                    {r.row for r in part.rejected if r.subject_id is None and r.account_id is None}
                ),
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


@beam.typehints.with_output_types(EventChunk)
class _Consent(beam.DoFn):
    def __init__(self, config: Config) -> None:
        self.config = config

    def setup(self) -> None:
        self.contract = self.config.contract()

    @timed("consent")
    def process(
        self, chunk: EventChunk, ledger: ConsentLedger, context: RunContext
    ) -> Iterator[EventChunk]:
        decided = chunk.with_consent(self.config, self.contract, ledger, context.hosts)
        yield decided.with_echoes(self.config, self.contract, ledger, context.echo_sources)


# Keys of the keyed join: (subject, account) for a subject's own decisions,
# ("@account", account) for what a host-only rule reads across subjects and for rejected rows
# that revoke for an account, and ("@all", "") for rejected rows every chunk must see (those
# that name no account, or nothing readable at all).
_ACCOUNT_WIDE = "@account"
_EVERYWHERE = ("@all", "")


def _needed_keys(
    chunk: EventChunk, config: Config, context: RunContext
) -> Iterator[tuple[tuple[str, str], str]]:
    """The ledger keys one chunk needs, each with the chunk's id."""
    contract = config.contract()
    keys: set[tuple[str, str]] = {_EVERYWHERE}
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


def _decision_keys(
    part: LedgerPart,
) -> Iterator[tuple[tuple[str, str], Decision | RejectedRow]]:
    for d in part.decisions:
        yield (d.subject_id, d.account_id), d
        if d.actor in ("host", "admin") or d.action == "revoke":
            yield (_ACCOUNT_WIDE, d.account_id), d
    for r in part.rejected:
        if r.account_id is None:
            yield _EVERYWHERE, r
            continue
        if r.subject_id is not None:
            yield (r.subject_id, r.account_id), r
        # Also account-wide: a host-only grant of that subject no longer counts either.
        yield (_ACCOUNT_WIDE, r.account_id), r


def _route_decisions(item: tuple[Any, dict[str, Any]]) -> Iterator[tuple[str, _Entries]]:
    _, groups = item
    decisions = list(groups["decisions"])
    if not decisions:
        return
    for chunk_id in sorted(set(groups["chunks"])):
        yield chunk_id, decisions


@beam.typehints.with_output_types(EventChunk)
class _ConsentFromJoin(beam.DoFn):
    def __init__(self, config: Config, as_of: int) -> None:
        self.config = config
        self.as_of = as_of

    def setup(self) -> None:
        self.contract = self.config.contract()

    @timed("consent")
    def process(
        self, item: tuple[str, dict[str, Any]], context: RunContext
    ) -> Iterator[EventChunk]:
        _, groups = item
        entries = {d for batch in groups["decisions"] for d in batch}
        ledger = _ledger_of(entries, self.as_of)
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
            build = functools.partial(_build_ledger, self.as_of)
            no_part = LedgerPart((), (), QUARANTINE_SCHEMA.empty_table())
            ledger = self.parts | "BuildLedger" >> MergeAll(build, no_part)
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
