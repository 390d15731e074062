"""The first line stops what would crash the job or fail the gate, one record at a time.

Nesting past the limit, numbers Arrow cannot hold and ids of no declared shape are rejects
with a reason; the gate's own row checks (`GateTwin`) quarantine a de-identified row before it
is staged when the first line's settings differ from the gate's.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from pipelines.audit import audit_path
from pipelines.chunk import EventChunk
from pipelines.config import load_config
from pipelines.errors import ConfigError
from pipelines.gate.rows import GateTwin, account_prints, print_hits
from pipelines.rules.classify import (
    decode_line,
    decode_lines,
    nesting_depth,
    record_hash,
    record_hashes,
    too_deep,
)
from pipelines.rules.consent import ConsentLedger, hosts_by_meeting
from pipelines.rules.deidentify import Pseudonymizer
from pipelines.rules.detectors import EchoIndex, KnownIdentifiers
from pipelines.rules.route import find_duplicates
from pipelines.rules.strings import QualifiedStrings, qualified_of

ROOT = Path(__file__).resolve().parents[2]
SPEC_EXAMPLES = ROOT.parent / "shared" / "spec" / "examples-v1.jsonl"
CONFIG = load_config()
CONTRACT = CONFIG.contract()
EXAMPLES = {
    r["event_type"]: r
    for r in (json.loads(x) for x in SPEC_EXAMPLES.read_text().splitlines() if x.strip())
}


def _deep(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# --------------------------------------------------------------------------- nesting


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b'{"a": 1}', 1),
        (b'{"a": [[{"b": []}]]}', 5),
        (b'{"a": "[[[[[[[[{{{{"}', 1),
        (b'{"a": "quote \\" then [[[[", "b": [1]}', 2),
        (b'{"a": "backslash \\\\", "b": [[[1]]]}', 4),
        (b"plain text", 0),
    ],
    ids=["flat", "nested", "brackets-in-string", "escaped-quote", "escaped-backslash", "no-json"],
)
def test_nesting_depth_counts_brackets_outside_strings(text: bytes, depth: int):
    assert nesting_depth(text) == depth


@pytest.mark.parametrize(
    ("depth", "reason"), [(31, None), (32, None), (33, "too_deep")], ids=["31", "32", "33"]
)
def test_decode_line_refuses_a_line_past_the_limit(depth: int, reason: str | None):
    # The record itself is one level: a payload of depth-1 lists makes `depth` in all.
    line = json.dumps({"payload": _deep(depth - 1)}).encode()
    record, found = decode_line(line, 32)
    assert found == reason
    assert (record is None) == (reason is not None)


def test_a_million_brackets_are_counted_not_recursed():
    line = b"[" * 1_000_000 + b"]" * 1_000_000
    assert too_deep(line, 32)
    assert decode_line(line) == (None, "too_deep")


@pytest.mark.parametrize(
    "record",
    [{"event_id": "x", "n": 2**70}, {"event_id": "x", "n": _deep(300)}],
    ids=["int-past-uint64", "deeper-than-orjson-writes"],
)
def test_record_hash_never_raises_and_is_stable(record: dict):
    assert record_hash(record) == record_hash(json.loads(json.dumps(record)))


def test_decoding_many_lines_gives_each_lines_own_verdict():
    """The many-line decoder's shortcut for plain object lines changes no verdict."""
    lines = [
        b'{"event_id": "a", "n": [1, [2]]}',
        b"[" * 40 + b"]" * 40,  # too deep
        b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}",  # too deep inside an object
        b'{"a": "' + b"[" * 40 + b'"}',  # many brackets, all inside a string
        b'["an", "array"]',
        b'"a string"',
        b"{not json",
        b"\xff\xfe",
        b'{"a": "\xff"}',
        b"",
        b"  {}  ",
    ]
    lines = [line.decode("unicode_escape").encode("latin-1") for line in lines]

    assert list(decode_lines(lines, 32)) == [decode_line(line, 32) for line in lines]
    assert [reason for _, reason in decode_lines(lines, 32)] == [
        None,
        "too_deep",
        "too_deep",
        None,
        "not_object",
        "not_object",
        "not_json",
        "not_utf8",
        "not_utf8",
        "not_json",
        None,
    ]


# --------------------------------------------------------------------------- numbers and ids


def _qos(envelope: dict | None = None, **payload: Any) -> dict:
    base = EXAMPLES["qos.audio"]
    return {**base, **(envelope or {}), "payload": {**base["payload"], **payload}}


def _feature(**payload: Any) -> dict:
    base = EXAMPLES["usage.feature_used"]
    return {**base, "payload": {**base["payload"], **payload}}


CASES = [
    # `count` is an integer (int64 column), `latency_ms` a number (float64 column).
    ("int64-max", _feature(count=2**63 - 1), None),
    ("int64-max+1", _feature(count=2**63), "bad_value"),
    ("uint64-max", _feature(count=2**64 - 1), "bad_value"),
    ("exact-in-double", _qos(latency_ms=2**53), None),
    ("past-exact-in-double", _qos(latency_ms=2**53 + 1), "bad_value"),
    ("finite-float", _qos(avg_loss_pct=0.5), None),
    ("nan", _qos(avg_loss_pct=math.nan), "bad_value"),
    ("infinity", _qos(avg_loss_pct=math.inf), "bad_value"),
    ("event-id-plain", _qos({"event_id": "ev-2026:a_b.c"}), None),
    ("event-id-email", _qos({"event_id": "a@example.com"}), "bad_value"),
    ("event-id-newline", _qos({"event_id": "ev-1\n"}), "bad_value"),
    ("event-id-129-chars", _qos({"event_id": "e" * 129}), "bad_value"),
    ("account-base64", _qos({"account_id": "aB+/9=="}), None),
    ("account-email", _qos({"account_id": "bob@example.com"}), "bad_value"),
    ("participant-escape", _qos({"participant_id": "p-\x1b[2J"}), "bad_value"),
    ("meeting-null", _qos({"meeting_id": None}), None),
]


@pytest.mark.parametrize(("record", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rows_of_a_columnar_file_are_checked_for_values_arrow_cannot_hold(record, reason):
    # Rows as a Parquet reader gives them (a NaN comes only from there), payload as an object.
    chunk = EventChunk.from_rows(CONTRACT, 0, 0, "in.parquet", 1, [record])
    assert chunk.rejects["reason"].to_pylist() == ([reason] if reason else [])
    assert chunk.record_count() == 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [(9223372036854775807, None), (9223372036854775808, "bad_value")],
    ids=["int64-max", "int64-max+1"],
)
def test_json_lines_with_integers_past_int64_are_rejects(value: int, reason: str | None):
    line = json.dumps(_feature(count=value)).encode()
    chunk = EventChunk.from_lines(CONTRACT, 0, 0, "in.jsonl", [(1, line)])
    assert chunk.rejects["reason"].to_pylist() == ([reason] if reason else [])


def test_a_parquet_payload_too_deep_is_a_payload_reject():
    base = EXAMPLES["qos.audio"]
    row = {**base, "payload": json.dumps({**base["payload"], "codec": _deep(100, "x")})}
    chunk = EventChunk.from_rows(CONTRACT, 0, 0, "in.parquet", 1, [row])
    assert chunk.rejects["reason"].to_pylist() == ["payload_too_deep"]


@pytest.mark.parametrize(
    ("depth", "ok"), [(3, False), (4, True), (200, True), (201, False)], ids=str
)
def test_max_nesting_depth_is_checked_at_start_up(tmp_path: Path, depth: int, ok: bool):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"policy": {"max_nesting_depth": depth}}))
    if ok:
        assert load_config(override_file=path).policy.max_nesting_depth == depth
        return
    with pytest.raises(ConfigError) as err:
        load_config(override_file=path)
    assert "policy" in str(err.value) and "max_nesting_depth" in str(err.value)


# --------------------------------------------------------------------------- audit


def test_audit_reports_a_line_too_deep_as_a_finding(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": "fine"}\n' + b"[" * 1000 + b"]" * 1000 + b'\n{"b": "ok"}\n')
    report = audit_path(path)
    assert report.rows_scanned == 3
    assert report.rows_with_findings == 1
    assert report.by_detector == {"too_deep": 1}


def test_the_audit_command_on_a_deep_line_exits_with_findings_not_a_traceback(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"[" * 1000 + b"]" * 1000 + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "audit", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "too_deep" in done.stdout


# --------------------------------------------------------------------------- the gate's twin

PSEUDONYMS = Pseudonymizer(b"first-line-test-key-" + b"k" * 32, "ps_", 32)


def _outputs(config_override: dict, lines: list[bytes], twin: bool, tmp_path: Path):
    path = tmp_path / "o.json"
    path.write_text(json.dumps(config_override))
    config = load_config(override_file=path)
    chunk = EventChunk.from_lines(CONTRACT, 0, 0, "in.jsonl", list(enumerate(lines, 1)))
    known = KnownIdentifiers.from_values(chunk.identifier_values(CONTRACT), 4)
    echo = EchoIndex.build(chunk.content_texts(CONTRACT), 4)
    prints = account_prints(
        (account, value)
        for name, table in chunk.tables.items()
        for spec in CONTRACT.event_types[name].fields_of("content")
        for account, value in zip(
            table["account_id"].to_pylist(), table[spec.name].to_pylist(), strict=True
        )
    )
    verdicts = find_duplicates([chunk.dedup_keys()])
    ledger = ConsentLedger.from_decisions([], 0)
    routed = (
        chunk.with_findings(config, CONTRACT, known, echo)
        .with_consent(config, CONTRACT, ledger, dict(hosts_by_meeting(chunk.host_pairs())))
        .routed(config, CONTRACT, verdicts)
    )
    strings = QualifiedStrings(qualified_of(chunk.string_keys(config, CONTRACT), config.strings.k))
    gate_twin = GateTwin.build(
        config.schemas,
        config.expectations,
        known,
        prints,
        strings=strings,
        registry=config.strings,
        pseudonym_pattern=PSEUDONYMS.pattern,
    )
    return routed.outputs(
        config, CONTRACT, PSEUDONYMS, verdicts, gate_twin if twin else None, strings=strings
    )


def _log(event_id: str, message: str, meeting: str = "mtg-20261126-0001") -> bytes:
    log = EXAMPLES["diagnostic.log"]
    record = {**log, "event_id": event_id, "meeting_id": meeting}
    return json.dumps({**record, "payload": {**log["payload"], "message": message}}).encode()


PROSE = "please call me back when you get this, I really miss you"


def _approved(messages: list[str]) -> dict:
    """A config override whose string registry approves these log messages."""
    return {"strings": {"fields": {"diagnostic.log.message": {"values": messages}}}}


def _raw_ids(table: pa.Table, candidates: list[str]) -> list[str]:
    """The raw ids (among `candidates`) of a training table's pseudonymised event ids."""
    raw_of = {PSEUDONYMS.one(c): c for c in candidates}
    return [raw_of[p] for p in table["event_id"].to_pylist()]


@pytest.mark.parametrize("twin", [True, False], ids=["with-twin", "without-twin"])
def test_a_detector_switched_off_in_the_config_is_still_the_gates(tmp_path: Path, twin: bool):
    enabled = [
        "email", "phone", "ip_address", "secret_url", "payment_card", "blob",
        "known_identifier", "content_echo",
    ]  # fmt: skip
    lines = [_log("ev-prose", PROSE), _log("ev-clean", "ICE restart after 640 ms")]
    # Both messages approved by the string registry (a reviewer's mistake for the prose): the
    # detectors are the second net behind it.
    override = {
        "detectors": {"enabled": enabled},
        **_approved([PROSE, "ICE restart after 640 ms"]),
    }
    out = _outputs(override, lines, twin, tmp_path)
    trained = _raw_ids(out.training["diagnostic.log"], ["ev-clean", "ev-prose"])
    audit = out.audit.to_pylist()
    reasons = {row["event_id"]: row["reason"] for row in audit}
    if twin:
        assert trained == ["ev-clean"]
        assert reasons["ev-prose"] == "gate_twin:detectors_clean"
        row = out.quarantine.to_pylist()[0]
        assert (row["event_id"], row["detail"]) == ("ev-prose", "message: natural_language")
    else:
        assert sorted(trained) == ["ev-clean", "ev-prose"]  # what the gate would then fail on
    assert out.counts["input_records"] == 2
    assert out.counts["training"] + out.counts["quarantine"] == 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fingerprint_hits_are_the_rows_sharing_a_window_with_their_own_account(seed: int):
    """Many accounts and values drawn from few words, so windows collide across accounts:
    the rows found are exactly those a row-by-row comparison finds."""
    import random

    from pipelines.gate.fingerprint import fingerprints

    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma"]
    accounts = [f"acct-{i}" for i in range(12)]

    def text(most: int = 8) -> str:
        return " ".join(rng.choices(words, k=rng.randint(1, most)))

    content = [(rng.choice(accounts), text(12)) for _ in range(60)]
    prints = account_prints(iter(content))
    values = [text() if rng.random() < 0.9 else None for _ in range(400)]
    row_accounts = [rng.choice([*accounts, "acct-none"]) for _ in values]
    table = pa.table({"message": pa.array(values, pa.string())})

    found = list(print_hits(table, accounts=row_accounts, prints=prints, pseudonym_columns=[]))

    expected = [
        row
        for row, (value, account) in enumerate(zip(values, row_accounts, strict=True))
        if value is not None
        and account in prints
        and set(fingerprints(value).tolist()) & set(prints[account].tolist())
    ]
    assert expected  # collisions were planted
    assert [(name, rows.tolist()) for name, rows in found] == [("message", expected)]


def test_a_salted_match_between_two_accounts_is_not_a_hit():
    """Prints are searched XORed with their account's salt; a print of one account that meets
    another's only after salting is confirmed against the account's own prints, and fails."""
    from pipelines.gate.rows import _KnownPrints, _salt

    mine = np.array([12345], np.int64)
    collides = np.int64(12345) ^ _salt("acct-a") ^ _salt("acct-b")
    known = _KnownPrints({"acct-a": mine, "acct-b": np.array([7], np.int64)})
    names = ["acct-a", "acct-b"]

    found = known.holds(names, np.array([0, 1, 1]), np.array([12345, collides, 7], np.int64))

    assert found.tolist() == [True, False, True]


def test_under_redact_an_event_id_finding_still_quarantines(tmp_path: Path):
    lines = [_log("4111111111111111", "ICE restart"), _log("ev-ok", "mail a@example.com now")]
    override = {
        "policy": {"on_detector_finding": "redact"},
        **_approved(["ICE restart", "mail [REDACTED:email] now"]),
    }
    out = _outputs(override, lines, True, tmp_path)
    table = out.training["diagnostic.log"]
    assert table["event_id"].to_pylist() == [PSEUDONYMS.one("ev-ok")]
    assert table["message"].to_pylist() == ["mail [REDACTED:email] now"]
    assert out.quarantine["reason"].to_pylist() == ["detector:payment_card"]


def test_fingerprints_compare_a_row_with_its_own_accounts_content_only():
    prints = account_prints(
        iter([("acct-a", "the harbour lantern project needs seven volunteers")])
    )
    table = pa.table({"message": ["retry harbour lantern project needs seven", "ok", None]})
    same = list(print_hits(table, accounts=["acct-a"] * 3, prints=prints, pseudonym_columns=[]))
    other = list(print_hits(table, accounts=["acct-b"] * 3, prints=prints, pseudonym_columns=[]))
    assert [(name, rows.tolist()) for name, rows in same] == [("message", [0])]
    assert other == []
    assert np.all(np.diff(prints["acct-a"]) > 0)  # sorted and distinct


def test_record_hashes_are_each_records_hash() -> None:
    records = [
        {"b": 1, "a": [1.5, "x"]},
        {"a": [1.5, "x"], "b": 1},  # the same record, keys in another order
        {"big": 2**70},  # past orjson: hashed from Python's JSON text
        {"odd": {1, 2}},  # neither writes a set
        {},
    ]

    hashes = record_hashes(records)

    assert hashes.dtype == "int64"
    assert hashes.tolist() == [record_hash(r) for r in records]
    assert hashes[0] == hashes[1] and len(set(hashes.tolist())) == 4
