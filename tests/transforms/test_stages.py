"""The Beam stages on tiny inputs, each run on the in-process FnApiRunner.

ReadEvents + ClassifyEvents, FindDuplicates, CollectRunContext, DetectLeaks + RouteRecords +
Deidentify, WriteStaged + LeakGate, and the whole `build()`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.pvalue import AsSingleton
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.chunk import (
    AUDIT_SCHEMA,
    QUARANTINE_SCHEMA,
    RESTRICTED_SCHEMA,
    ChunkOutputs,
    EventChunk,
    training_schema,
)
from pipelines.config import Config
from pipelines.gate.leak_gate import CROSS_CHECKS, LeakGate
from pipelines.gate.staged import CHECKS
from pipelines.pipeline import SUMMARY_NAME, build
from pipelines.rules.classify import LOC
from pipelines.rules.detectors import EchoIndex, KnownIdentifiers
from pipelines.rules.route import DedupVerdicts
from pipelines.rules.strings import QualifiedStrings, string_hashes
from pipelines.transforms.consent import ApplyConsent
from pipelines.transforms.context import CollectRunContext, FindDuplicates, RunContext
from pipelines.transforms.process import Deidentify, DetectLeaks, RouteRecords
from pipelines.transforms.read import ClassifyEvents, InputFile, ReadEvents
from pipelines.transforms.write import StagedChunk, WriteStaged

RUNNER = "FnApiRunner"
LINE_MASK = (1 << 32) - 1
MEETING = "mtg-20261126-0001"
OTHER_MEETING = "mtg-20261126-0002"
PSEUDONYM = re.compile(r"^ps_[0-9a-f]{32}$")
SERVICE_TYPES = (
    "diagnostic.crash",
    "diagnostic.log",
    "qos.audio",
    "qos.screen_share",
    "qos.system",
    "qos.video",
    "usage.feature_used",
    "usage.meeting_ended",
    "usage.meeting_started",
    "usage.participant_joined",
    "usage.participant_left",
)
CONTENT_TYPES = (
    "content.ai_summary",
    "content.audio_chunk",
    "content.caption",
    "content.chat_message",
    "content.poll_answer",
    "content.recording_file",
    "content.shared_file",
    "content.transcript_segment",
    "content.video_frame",
    "content.whiteboard",
)
ALL_TYPES = tuple(sorted(SERVICE_TYPES + CONTENT_TYPES))
RESTRICTED_COLUMNS = (
    "event_id",
    "event_type",
    "event_ts",
    "account_id",
    "meeting_id",
    "subjects",
    "reason",
    "consent_subjects",
    "host_only",
    "withheld_fields",
)


# ----------------------------------------------------------------------------------------- helpers


def _pipeline() -> BeamTestPipeline:
    # Aliased on import: pytest would try to collect a module-level class named Test*.
    return BeamTestPipeline(runner=RUNNER)


def _chunks(
    p: beam.Pipeline, config: Config, inputs: list[InputFile], chunk_records: int = 1000
) -> beam.PCollection:
    return (
        p
        | "ListInputs" >> beam.Create(inputs)
        | "ReadEvents" >> ReadEvents(chunk_records, 1 << 20)
        | "ClassifyEvents" >> ClassifyEvents(config)
    )


def _outputs(
    p: beam.Pipeline, config: Config, inputs: list[InputFile], chunk_records: int = 1000
) -> tuple[beam.PCollection, beam.PCollection, beam.PCollection]:
    """ChunkOutputs of the stages up to Deidentify, the run context, and the input chunks."""
    chunks = _chunks(p, config, inputs, chunk_records)
    context = chunks | "CollectRunContext" >> CollectRunContext(config)
    verdicts = chunks | "FindDuplicates" >> FindDuplicates(config.policy.dedup_buckets)
    ledger = p | "NoLedger" >> beam.Create([])
    outputs = (
        chunks
        | "DetectLeaks" >> DetectLeaks(config, context)
        | "ApplyConsent" >> ApplyConsent(config, ledger, context, as_of=0)
        | "RouteRecords" >> RouteRecords(config, verdicts)
        | "Deidentify" >> Deidentify(config, verdicts, context)
    )
    return outputs, context, chunks


def _pseudonym(key: bytes, value: str) -> str:
    """The pseudonym the contract promises: `ps_` + HMAC-SHA256 hex, 32 characters."""
    return "ps_" + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def _counter(result: Any, name: str) -> int:
    query = MetricsFilter().with_namespace("consentgate").with_name(name)
    return sum(c.committed for c in result.metrics().query(query)["counters"])


def _variant(event: dict[str, Any], event_id: str, change: Callable[[dict], Any]) -> bytes:
    out = copy.deepcopy(event)
    out["event_id"] = event_id
    change(out)
    return json.dumps(out).encode()


def _log_event(event_id: str, meeting_id: str, message: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": "diagnostic.log",
        "event_ts": "2026-11-26T09:30:00Z",
        "account_id": "acct-7f3e",
        "meeting_id": meeting_id,
        "participant_id": "p-alice",
        "schema_version": 1,
        "payload": {"level": "warn", "component": "net", "message": message},
    }


# -------------------------------------------------------------------------------------- extractors


def _table_counts(chunk: EventChunk) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((name, table.num_rows) for name, table in chunk.tables.items()))


def _reject_reasons(chunk: EventChunk) -> Iterator[tuple[str, int]]:
    reasons = chunk.rejects["reason"].to_pylist()
    locs = chunk.rejects[LOC].to_pylist()
    for reason, loc in zip(reasons, locs, strict=True):
        yield reason, loc & LINE_MASK


def _chunk_span(chunk: EventChunk) -> tuple[str, int, int, int]:
    """(chunk id, records, first line, last line) of a chunk."""
    locs = [loc for t in chunk.tables.values() for loc in t[LOC].to_pylist()]
    locs += chunk.rejects[LOC].to_pylist()
    lines = [loc & LINE_MASK for loc in locs]
    return chunk.chunk_id, chunk.record_count(), min(lines), max(lines)


def _numbers_as_float(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _numbers_as_float(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_float(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps(_numbers_as_float(row), sort_keys=True, default=str)


def _table_rows(chunk: EventChunk) -> Iterator[tuple[str, str, str]]:
    """(event_type, event_id, canonical row) of every typed row, internal columns left out."""
    for name, table in chunk.tables.items():
        for row in table.to_pylist():
            row = {k: v for k, v in row.items() if not k.startswith("_")}
            row["event_ts"] = row["event_ts"].astimezone(UTC).isoformat()
            yield name, row["event_id"], _canonical(row)


def _expected_row(event: dict[str, Any]) -> tuple[str, str, str]:
    """What a conforming input event must look like as a typed row: envelope + payload fields."""
    row = {k: v for k, v in event.items() if k != "payload"}
    row.setdefault("meeting_id", None)
    row.setdefault("participant_id", None)
    ts = datetime.fromisoformat(event["event_ts"].replace("Z", "+00:00"))
    row["event_ts"] = ts.astimezone(UTC).isoformat()
    payload = dict(event["payload"])
    if isinstance(payload.get("recipients"), str):
        payload["recipients"] = [payload["recipients"]]
    return event["event_type"], event["event_id"], _canonical({**row, **payload})


def _record_verdicts(chunk: EventChunk, verdicts: DedupVerdicts) -> Iterator[tuple]:
    """(file, line, event_id, verdict) of every record of the chunk that has an event id."""
    tables = [*chunk.tables.values(), chunk.rejects]
    for table in tables:
        for event_id, loc in zip(
            table["event_id"].to_pylist(), table[LOC].to_pylist(), strict=True
        ):
            if event_id is not None:
                yield (
                    os.path.basename(chunk.source),
                    loc & LINE_MASK,
                    event_id,
                    verdicts.verdict(event_id, loc),
                )


def _audit_rows(out: ChunkOutputs) -> Iterator[tuple]:
    view = out.audit.select(["source_file", "source_line", "event_id", "destination", "reason"])
    for row in view.to_pylist():
        yield (
            os.path.basename(row["source_file"]),
            row["source_line"],
            row["event_id"],
            row["destination"],
            row["reason"],
        )


def _quarantined(out: ChunkOutputs) -> Iterator[tuple[str, str]]:
    view = out.quarantine.select(["event_id", "reason"]).to_pylist()
    yield from ((row["event_id"], row["reason"]) for row in view)


def _training_ids(out: ChunkOutputs) -> Iterator[tuple[str, str]]:
    for name, table in out.training.items():
        yield from ((name, event_id) for event_id in table["event_id"].to_pylist())


def _training_columns(out: ChunkOutputs) -> Iterator[tuple[str, tuple[str, ...]]]:
    yield from ((name, tuple(table.column_names)) for name, table in out.training.items())


def _columns_among(out: ChunkOutputs, names: set[str]) -> Iterator[tuple[str, str]]:
    for event_type, table in out.training.items():
        yield from ((event_type, c) for c in table.column_names if c in names)


def _pseudonym_ok(out: ChunkOutputs) -> Iterator[tuple[str, str, bool]]:
    """Per training table and id column: are all non-null values pseudonyms?"""
    for name, table in out.training.items():
        for column in ("event_id", "account_id", "meeting_id", "participant_id"):
            values = [v for v in table[column].to_pylist() if v is not None]
            yield name, column, bool(values) and all(PSEUDONYM.match(v) for v in values)


def _rows_of(out: ChunkOutputs, event_type: str) -> Iterator[tuple]:
    table = out.training.get(event_type)
    if table is not None:
        yield from (tuple(sorted(row.items())) for row in table.to_pylist())


def _content_in_restricted(out: ChunkOutputs, values: list[str]) -> Iterator[tuple[str, str]]:
    """(event_id, content value) of every content value found anywhere in a restricted row."""
    for row in out.restricted.to_pylist():
        text = json.dumps(row, default=str)
        yield from ((row["event_id"], v) for v in values if v in text)


def _restricted_rows(out: ChunkOutputs) -> Iterator[tuple]:
    for row in out.restricted.to_pylist():
        yield (
            row["event_id"],
            row["event_type"],
            row["reason"],
            tuple(row["withheld_fields"]),
            len(row["subjects"]),
            all(PSEUDONYM.match(s) for s in row["subjects"]),
        )


# --------------------------------------------------------------------- ReadEvents + ClassifyEvents


def _mixed_lines(events: list[dict[str, Any]]) -> list[tuple[str | None, bytes]]:
    """(expected reject reason, line) of the 21 spec events, the bad lines and blank lines.

    Reason None is a conforming record; "blank" a line that is not a record at all.
    """
    audio = events[0]
    good = [(None, json.dumps(e).encode()) for e in events]
    bad = [
        ("not_json", b'{"event_id": "ev-x0", "event_type": '),
        ("not_utf8", b'{"event_id": "ev-\xff\xfe", "event_type": "qos.audio"}'),
        ("not_object", json.dumps([audio]).encode()),
        ("unknown_event_type", _variant(audio, "ev-x1", lambda e: e.update(event_type="qos.mos"))),
        (
            "unknown_event_type",
            _variant(audio, "ev-x2", lambda e: e.update(event_type="QoS.Audio")),
        ),
        (
            "unknown_event_type",
            _variant(audio, "ev-x3", lambda e: e.update(event_type=" qos.audio")),
        ),
        ("wrong_type", _variant(audio, "ev-x4", lambda e: e["payload"].update(latency_ms="92"))),
        ("missing_field", _variant(audio, "ev-x5", lambda e: e["payload"].pop("codec"))),
        ("undeclared_field", _variant(audio, "ev-x6", lambda e: e["payload"].update(mos=4.1))),
        (
            "bad_timestamp",
            _variant(audio, "ev-x7", lambda e: e.update(event_ts="2026-02-30T09:00:00Z")),
        ),
    ]
    return [
        *good[:10],
        ("blank", b""),
        *bad[:5],
        ("blank", b"   \t"),
        *good[10:],
        *bad[5:],
        ("blank", b" "),
    ]


@pytest.mark.parametrize(
    ("name", "ending"),
    [("events.jsonl", b"\n"), ("events.jsonl.gz", b"\n"), ("crlf.jsonl", b"\r\n")],
    ids=["plain", "gzip", "crlf"],
)
def test_read_and_classify_types_good_lines_and_rejects_bad_ones(
    config, spec_events, jsonl_file, name, ending
):
    lines = _mixed_lines(spec_events)
    source = jsonl_file(name, [line for _, line in lines], ending=ending)
    expected_rejects = sorted(
        (reason, number)
        for number, (reason, _) in enumerate(lines, start=1)
        if reason not in (None, "blank")
    )
    records = sum(1 for reason, _ in lines if reason != "blank")

    p = _pipeline()
    chunks = _chunks(p, config, [source])
    tables = chunks | "Tables" >> beam.Map(lambda c: (c.chunk_id, _table_counts(c)))
    rejects = chunks | "Rejects" >> beam.FlatMap(_reject_reasons)
    assert_that(
        tables,
        equal_to([("00000-00000", tuple((t, 1) for t in ALL_TYPES))]),
        label="CheckTables",
    )
    assert_that(rejects, equal_to(expected_rejects), label="CheckRejects")
    result = p.run()

    assert len(expected_rejects) == 10 and records == 31
    assert _counter(result, "records_read") == records


def test_read_splits_a_file_into_chunks_that_keep_line_numbers(config, spec_events, jsonl_file):
    lines = _mixed_lines(spec_events)
    source = jsonl_file("events.jsonl", [line for _, line in lines], index=3)

    p = _pipeline()
    spans = _chunks(p, config, [source], chunk_records=8) | beam.Map(_chunk_span)
    # 34 lines, 3 of them blank (lines 11, 17, 34): 31 records in chunks of 8.
    assert_that(
        spans,
        equal_to(
            [
                ("00003-00000", 8, 1, 8),
                ("00003-00001", 8, 9, 18),
                ("00003-00002", 8, 19, 26),
                ("00003-00003", 7, 27, 33),
            ]
        ),
    )
    p.run()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"], ids=["jsonl", "parquet"])
def test_classified_tables_hold_exactly_the_input_events(
    config, spec_events, jsonl_file, parquet_file, fmt
):
    source = (
        jsonl_file("events.jsonl", spec_events)
        if fmt == "jsonl"
        else parquet_file("events.parquet", spec_events)
    )

    p = _pipeline()
    chunks = _chunks(p, config, [source])
    rows = chunks | "Rows" >> beam.FlatMap(_table_rows)
    rejects = chunks | "Rejects" >> beam.FlatMap(_reject_reasons)
    assert_that(rows, equal_to([_expected_row(e) for e in spec_events]), label="CheckRows")
    assert_that(rejects, equal_to([]), label="CheckNoRejects")
    result = p.run()

    assert _counter(result, "records_read") == 21


# ---------------------------------------------------------------------------------- FindDuplicates


@pytest.mark.parametrize("buckets", [1, 7], ids=["one-bucket", "seven-buckets"])
def test_find_duplicates_keeps_one_copy_and_quarantines_conflicts(
    config, spec_events, jsonl_file, parquet_file, pseudonym_key, buckets
):
    by_id = {e["event_id"]: e for e in spec_events}
    changed_log = _variant(
        by_id["ev-0011"], "ev-0011", lambda e: e["payload"].update(message="ICE restart after 9 ms")
    )
    bad_system = _variant(
        by_id["ev-0004"], "ev-0004", lambda e: e["payload"].update(memory_mb="812")
    )
    first = jsonl_file(
        "a.jsonl",
        [by_id["ev-0001"], by_id["ev-0002"], by_id["ev-0001"], by_id["ev-0011"], by_id["ev-0004"]],
        index=0,
    )
    second = jsonl_file(
        "b.jsonl.gz", [by_id["ev-0001"], changed_log, bad_system, by_id["ev-0012"]], index=1
    )
    third = parquet_file("c.parquet", [by_id["ev-0012"], by_id["ev-0013"]], index=2)
    config = config.with_policy(dedup_buckets=buckets)

    p = _pipeline()
    chunks = _chunks(p, config, [first, second, third], chunk_records=2)
    verdicts = chunks | "FindDuplicates" >> FindDuplicates(buckets)
    per_record = chunks | "Verdicts" >> beam.FlatMap(_record_verdicts, AsSingleton(verdicts))
    assert_that(
        per_record,
        equal_to(
            [
                ("a.jsonl", 1, "ev-0001", "keep"),
                ("a.jsonl", 2, "ev-0002", "keep"),
                ("a.jsonl", 3, "ev-0001", "duplicate"),
                ("a.jsonl", 4, "ev-0011", "conflict"),
                ("a.jsonl", 5, "ev-0004", "conflict"),
                ("b.jsonl.gz", 1, "ev-0001", "duplicate"),
                ("b.jsonl.gz", 2, "ev-0011", "conflict"),
                ("b.jsonl.gz", 3, "ev-0004", "conflict"),
                ("b.jsonl.gz", 4, "ev-0012", "keep"),
                ("c.parquet", 1, "ev-0012", "duplicate"),
                ("c.parquet", 2, "ev-0013", "keep"),
            ]
        ),
        label="CheckVerdicts",
    )
    context = chunks | CollectRunContext(config)
    ledger = p | "NoLedger" >> beam.Create([])
    outputs = (
        chunks
        | "DetectLeaks" >> DetectLeaks(config, context)
        | "ApplyConsent" >> ApplyConsent(config, ledger, context, as_of=0)
        | "RouteRecords" >> RouteRecords(config, verdicts)
        | "Deidentify" >> Deidentify(config, verdicts, context)
    )
    assert_that(
        outputs | "Audit" >> beam.FlatMap(_audit_rows),
        equal_to(
            [
                ("a.jsonl", 1, "ev-0001", "training", "service_deidentified"),
                ("a.jsonl", 2, "ev-0002", "training", "service_deidentified"),
                ("a.jsonl", 3, "ev-0001", "duplicate", "duplicate"),
                ("a.jsonl", 4, "ev-0011", "quarantine", "conflicting_duplicate"),
                ("a.jsonl", 5, "ev-0004", "quarantine", "conflicting_duplicate"),
                ("b.jsonl.gz", 1, "ev-0001", "duplicate", "duplicate"),
                ("b.jsonl.gz", 2, "ev-0011", "quarantine", "conflicting_duplicate"),
                ("b.jsonl.gz", 3, "ev-0004", "quarantine", "conflicting_duplicate"),
                ("b.jsonl.gz", 4, "ev-0012", "restricted", "content_policy_never"),
                ("c.parquet", 1, "ev-0012", "duplicate", "duplicate"),
                ("c.parquet", 2, "ev-0013", "restricted", "content_policy_never"),
            ]
        ),
        label="CheckAudit",
    )
    p.run()


# ------------------------------------------------------------------------------- CollectRunContext


def _context_view(context: RunContext, wanted: frozenset[str], text: str) -> tuple:
    echo_same = context.echo.find(MEETING, text)
    echo_other = context.echo.find(OTHER_MEETING, text)
    return (
        tuple(sorted(wanted & context.known.keys)),
        "slides are in the shared folder" in context.known.keys,
        None if echo_same is None else (echo_same.detector, text[echo_same.start : echo_same.end]),
        echo_other,
    )


def test_run_context_knows_participants_and_indexes_content_per_meeting(
    config, spec_events, jsonl_file
):
    bob = copy.deepcopy(spec_events[4])  # usage.participant_joined of Alice
    bob.update(event_id="ev-0105", participant_id="p-bob", meeting_id=OTHER_MEETING)
    bob["payload"].update(user_name="Bob Marley-Jones", email="bob.mj@example.org")
    first = jsonl_file("a.jsonl", spec_events[:11], index=0)
    second = jsonl_file("b.jsonl", [*spec_events[11:], bob], index=1)
    wanted = frozenset(
        {"alice example", "alice@example.com", "bob marley-jones", "bob.mj@example.org"}
    )
    text = "upload stalled: Slides are in the shared folder"  # three words make an echo

    p = _pipeline()
    context = _chunks(p, config, [first, second], chunk_records=5) | CollectRunContext(config)
    assert_that(
        context | beam.Map(_context_view, wanted, text),
        equal_to([(tuple(sorted(wanted)), False, ("content_echo", "Slides are in"), None)]),
    )
    p.run()


# ----------------------------------------------------------- DetectLeaks, RouteRecords, Deidentify


def test_detect_route_deidentify_send_each_record_to_one_place(
    config, spec_events, jsonl_file, pseudonym_key
):
    extra = [
        _log_event("ev-1001", MEETING, "relay refused ops.oncall@corp.example"),
        _log_event("ev-1002", MEETING, "upload stalled slides are in the shared folder"),
        _log_event("ev-1003", OTHER_MEETING, "upload stalled slides are in the shared folder"),
        _log_event("ev-1004", OTHER_MEETING, "participant Alice Example reconnected"),
    ]
    source = jsonl_file("events.jsonl", [*spec_events, *extra])
    columns = config.schemas["outputs/training.json"]["x-columns-by-event-type"]
    key = pseudonym_key
    joined = {
        "record_class": "service_generated",
        "event_id": _pseudonym(key, "ev-0005"),
        "event_type": "usage.participant_joined",
        "event_ts": datetime(2026, 11, 26, 9, 4, tzinfo=UTC),
        "account_id": _pseudonym(key, "acct-7f3e"),
        "meeting_id": _pseudonym(key, MEETING),
        "participant_id": _pseudonym(key, "p-alice"),
        "schema_version": 1,
        "user_name": _pseudonym(key, "Alice Example"),
        "email": _pseudonym(key, "alice@example.com"),
        "location_country": "FR",
        "device": "Mac",
        # One account cannot make a version common: the registry's approved template stands in.
        "os_version": "<num>",
        "client_version": "<num>",
        "network_type": "wired",
        "role": "host",
        "withheld_fields": [],
    }
    withheld = {
        "content.ai_summary": ("summary_text", "next_steps"),
        "content.audio_chunk": ("data_b64",),
        "content.caption": ("text",),
        "content.chat_message": ("message", "file_name"),
        "content.poll_answer": ("question", "answer"),
        "content.recording_file": ("download_url",),
        "content.shared_file": ("file_name", "uri"),
        "content.transcript_segment": ("text",),
        "content.video_frame": ("data_b64",),
        "content.whiteboard": ("elements",),
    }
    subjects = {"content.ai_summary": 3, "content.audio_chunk": 3, "content.recording_file": 3}
    content_ids = {e["event_type"]: e["event_id"] for e in spec_events[11:]}
    forbidden = {"ip_address", "location", "audio_level", "topic"}
    content_values = [
        "Slides are in the shared folder",
        "start with the roadmap",
        "T2dnUwACAAAAAAAAAAA=",
        "nQEqAoABaAE+kUSfSyWk=",
        "access_token=eyJhbGciOi",
        "Ship v2 in March",
        "Which date works?",
        "Tuesday",
        "roadmap-q3.pdf",
        "https://files.example.com/f/91ac",
        "The team agreed on the Q3 roadmap.",
        "Bob shares the deck",
        "p-alice",
        "p-bob",
        "p-carol",
    ]

    p = _pipeline()
    outputs, _, _ = _outputs(p, config, [source], chunk_records=8)
    assert_that(
        outputs | "Quarantine" >> beam.FlatMap(_quarantined),
        equal_to(
            [
                ("ev-1001", "detector:email"),
                ("ev-1002", "detector:content_echo"),
                # ev-1003 repeats the same content in another meeting of the same account:
                # one account cannot make its message common, so the message is withheld
                # and the rest of the record trains (see CheckWithheldMessage).
                ("ev-1004", "detector:known_identifier"),
            ]
        ),
        label="CheckQuarantine",
    )
    assert_that(
        outputs | "TrainingIds" >> beam.FlatMap(_training_ids),
        equal_to(
            [(e["event_type"], _pseudonym(key, e["event_id"])) for e in spec_events[:11]]
            + [("diagnostic.log", _pseudonym(key, "ev-1003"))]
        ),
        label="CheckTrainingIds",
    )
    assert_that(
        outputs
        | "Ev1003" >> beam.FlatMap(_rows_of, "diagnostic.log")
        | beam.Map(dict)
        | beam.Filter(lambda row: row["event_id"] == _pseudonym(key, "ev-1003"))
        | beam.Map(lambda row: (row["message"], tuple(row["withheld_fields"]))),
        equal_to([(None, ("message",))]),
        label="CheckWithheldMessage",
    )
    assert_that(
        outputs | "TrainingColumns" >> beam.FlatMap(_training_columns),
        equal_to([(t, tuple(columns[t])) for t in (*SERVICE_TYPES, "diagnostic.log")]),
        label="CheckTrainingColumns",
    )
    assert_that(
        outputs | "Forbidden" >> beam.FlatMap(_columns_among, forbidden),
        equal_to([]),
        label="CheckNoForbiddenColumns",
    )
    assert_that(
        outputs | "Pseudonyms" >> beam.FlatMap(_pseudonym_ok),
        equal_to(
            [
                (t, c, not (t == "usage.meeting_ended" and c == "participant_id"))
                for t in (*SERVICE_TYPES, "diagnostic.log")
                for c in ("event_id", "account_id", "meeting_id", "participant_id")
            ]
        ),
        label="CheckPseudonyms",
    )
    assert_that(
        outputs | "Joined" >> beam.FlatMap(_rows_of, "usage.participant_joined"),
        equal_to([tuple(sorted(joined.items()))]),
        label="CheckJoinedRow",
    )
    assert_that(
        outputs | "Restricted" >> beam.FlatMap(_restricted_rows),
        equal_to(
            [
                (content_ids[t], t, "content_policy_never", withheld[t], subjects.get(t, 1), True)
                for t in CONTENT_TYPES
            ]
        ),
        label="CheckRestricted",
    )
    assert_that(
        outputs | "RestrictedColumns" >> beam.Map(lambda o: tuple(o.restricted.column_names)),
        equal_to([RESTRICTED_COLUMNS] * 4),
        label="CheckRestrictedColumns",
    )
    assert_that(
        outputs | "RestrictedValues" >> beam.FlatMap(_content_in_restricted, content_values),
        equal_to([]),
        label="CheckNoContentInRestricted",
    )
    assert_that(
        outputs | "AuditLines" >> beam.FlatMap(lambda o: [row[1] for row in _audit_rows(o)]),
        equal_to(list(range(1, 26))),
        label="CheckOneAuditRowPerRecord",
    )
    assert_that(
        outputs
        | "Conservation"
        >> beam.Map(
            lambda o: (
                o.counts["input_records"],
                sum(o.counts[d] for d in ("training", "restricted", "quarantine", "duplicate")),
            )
        ),
        equal_to([(8, 8), (8, 8), (8, 8), (1, 1)]),
        label="CheckCounts",
    )
    p.run()


def test_detect_leaks_quarantines_a_log_line_echoing_a_short_content_text(
    config, spec_events, jsonl_file, pseudonym_key
):
    # The meeting's topic "Quarterly roadmap sync" is content typed by the host, three words
    # long; the echo index keeps three-word content, so a log line of the same meeting that
    # repeats it must not reach training.
    echo = _log_event("ev-1005", MEETING, "calendar reminder for Quarterly roadmap sync")
    source = jsonl_file("events.jsonl", [*spec_events, echo])

    p = _pipeline()
    outputs, _, _ = _outputs(p, config, [source])
    assert_that(
        outputs
        | beam.FlatMap(_audit_rows)
        | beam.Filter(lambda row: row[2] == "ev-1005")
        | beam.Map(lambda row: (row[2], row[3], row[4])),
        equal_to([("ev-1005", "quarantine", "detector:content_echo")]),
    )
    p.run()


# ------------------------------------------------------------------------ WriteStaged + GateStaged


def _staged_files(staged: StagedChunk, staging: str) -> Iterator[tuple]:
    for f in staged.files:
        yield os.path.relpath(f.path, staging), f.table, f.event_type, f.rows


def _gate_view(verdict: dict[str, Any]) -> tuple:
    checks = verdict["checks"]
    return tuple(
        (name, checks[name]["passed"], checks[name]["violations"], checks[name]["rows_checked"])
        for name in CHECKS
    )


def test_write_staged_names_files_by_chunk_and_the_gate_passes_clean_data(
    config, spec_events, jsonl_file, pseudonym_key, tmp_path
):
    source = jsonl_file("events.jsonl", spec_events, index=2)
    staging = str(tmp_path / "staging")
    service = [(e["event_type"], e["event_id"]) for e in spec_events[:11]]
    expected = []
    for event_type, event_id in service:
        chunk = "00002-00000" if event_id <= "ev-0008" else "00002-00001"
        folder = f"training/service_generated/event_type={event_type}"
        expected.append((f"{folder}/part-{chunk}.parquet", "training", event_type, 1))
    expected += [
        ("restricted/part-00002-00001.parquet", "restricted", None, 5),
        ("restricted/part-00002-00002.parquet", "restricted", None, 5),
        ("audit/part-00002-00000.parquet", "audit", None, 8),
        ("audit/part-00002-00001.parquet", "audit", None, 8),
        ("audit/part-00002-00002.parquet", "audit", None, 5),
    ]

    p = _pipeline()
    outputs, context, chunks = _outputs(p, config, [source], chunk_records=8)
    staged = outputs | WriteStaged(staging, config.policy.parquet_compression)
    assert_that(
        staged | "Files" >> beam.FlatMap(_staged_files, staging),
        equal_to(expected),
        label="CheckFiles",
    )
    assert_that(
        staged | LeakGate(config, context, chunks) | beam.Map(_gate_view),
        equal_to([tuple((name, True, 0, 11) for name in CHECKS)]),
        label="CheckGate",
    )
    p.run()

    on_disk = sorted(
        (str(path.relative_to(staging)), pq.read_metadata(path).num_rows)
        for path in Path(staging).rglob("*.parquet")
    )
    assert on_disk == sorted((path, rows) for path, _, _, rows in expected)


def _log_training_outputs(config: Config, key: bytes, message: str) -> ChunkOutputs:
    contract = config.contract()
    schema = training_schema(config, contract, contract.event_types["diagnostic.log"])
    row = {
        "record_class": "service_generated",
        "event_id": _pseudonym(key, "ev-2001"),
        "event_type": "diagnostic.log",
        "event_ts": datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        "account_id": _pseudonym(key, "acct-7f3e"),
        "meeting_id": _pseudonym(key, MEETING),
        "participant_id": _pseudonym(key, "p-alice"),
        "schema_version": 1,
        "level": "warn",
        "component": "net",
        "message": message,
        "withheld_fields": [],
    }
    return ChunkOutputs(
        chunk_id="00004-00001",
        training={"diagnostic.log": pa.Table.from_pylist([row], schema)},
        consented={},
        restricted=RESTRICTED_SCHEMA.empty_table(),
        quarantine=QUARANTINE_SCHEMA.empty_table(),
        audit=AUDIT_SCHEMA.empty_table(),
        counts={},
    )


# Strings the run found common: the log template, and the email line as a value (so that
# only the detectors stand between it and training, as under a mistaken registry approval).
_COMMON_LOGS = QualifiedStrings(
    np.unique(
        np.concatenate(
            [
                string_hashes("t", "diagnostic.log.message", ["ICE restart after <num> ms"]),
                string_hashes(
                    "v", "diagnostic.log.message", ["relay refused ops.oncall@corp.example"]
                ),
            ]
        )
    )
)


@pytest.mark.parametrize(
    ("message", "strings_earned", "detectors_clean"),
    [
        ("ICE restart after <num> ms", True, True),
        ("relay refused ops.oncall@corp.example", True, False),
        # A chat line no k accounts produced, planted in a staged file.
        ("upload failed: Acme_layoffs_2027.xlsx", False, True),
    ],
    ids=["clean", "email", "unearned"],
)
def test_gate_fails_a_staged_training_table_holding_an_email(
    config, pseudonym_key, tmp_path, message, strings_earned, detectors_clean
):
    staging = str(tmp_path / "staging")
    outputs = _log_training_outputs(config, pseudonym_key, message)
    context = RunContext(
        KnownIdentifiers(),
        EchoIndex.build([], config.detectors.content_echo_shingle_words),
        strings=_COMMON_LOGS,
    )
    where = "training/diagnostic.log/part-00004-00001.parquet"
    examples = {
        "strings_earned": [] if strings_earned else [f"{where}: column message, values [0]"],
        "detectors_clean": (
            [] if detectors_clean else [f"{where}: column message, values [0], detectors ['email']"]
        ),
    }

    p = _pipeline()
    side = p | "Context" >> beam.Create([context])
    staged = p | "Outputs" >> beam.Create([outputs]) | WriteStaged(staging, "zstd")
    chunks = p | "NoChunks" >> beam.Create([])
    results = staged | LeakGate(config, side, chunks)
    assert_that(
        results | "View" >> beam.Map(_gate_view),
        equal_to(
            [
                (
                    *((n, True, 0, 1) for n in CHECKS[:4]),
                    ("strings_earned", strings_earned, int(not strings_earned), 1),
                    ("detectors_clean", detectors_clean, int(not detectors_clean), 1),
                )
            ]
        ),
        label="CheckChecks",
    )
    assert_that(
        results
        | "Examples"
        >> beam.Map(lambda r: {n: r["checks"][n]["examples"] for n in sorted(examples)}),
        equal_to([examples]),
        label="CheckExamples",
    )
    p.run()

    written = Path(staging) / "training/service_generated/event_type=diagnostic.log"
    assert [f.name for f in written.iterdir()] == ["part-00004-00001.parquet"]


# ----------------------------------------------------------------------------------------- build()


def test_build_runs_the_whole_job_over_the_spec_examples(
    config, spec_events, jsonl_file, pseudonym_key, tmp_path
):
    source = jsonl_file("events.jsonl", spec_events)
    staging = tmp_path / "staging"

    with beam.Pipeline(runner=RUNNER) as p:
        build(p, config, [source], str(staging), as_of=0)

    summary = json.loads((staging / SUMMARY_NAME).read_text(encoding="utf-8"))
    counts = summary["counts"]
    assert (
        counts["input_records"],
        counts["training"],
        counts["restricted"],
        counts["quarantine"],
        counts["duplicate"],
        counts["consented_content"],
    ) == (21, 11, 10, 0, 0, 0)
    assert counts["by_record_class"] == {
        "service_generated": {"training": 11},
        "customer_content": {"restricted": 10},
    }
    checks = summary["gate"]["checks"]
    assert {name: check["passed"] for name, check in checks.items()} == dict.fromkeys(
        (*CHECKS, *CROSS_CHECKS), True
    )
    assert checks["content_fingerprints"]["rows_checked"] > 0
    assert checks["ids_not_withheld"]["rows_checked"] == 11
    suites = summary["gate"]["expectations"]
    assert len(suites) == 11 and all(r["success"] for r in suites.values())
    training_files = [f for f in counts["files"] if f["table"] == "training"]
    assert sorted(f["event_type"] for f in training_files) == sorted(SERVICE_TYPES)
    assert sum(f["rows"] for f in training_files) == 11
