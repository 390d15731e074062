"""Reading the ledger fails closed: every way a row can be rejected stands as a revoke.

Each flaw is tried on a revoke of alice, the one subject of the spec's example whose content is
consented, in both ways the ledger reaches records (side input, keyed join). Fast: no Beam
pipeline, but the functions the Beam stages run.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.chunk import CONSENT_REASON, EventChunk
from pipelines.config import load_config
from pipelines.contract import micros_of, parse_instant
from pipelines.rules.classify import python_rows
from pipelines.rules.consent import ConsentLedger, RejectedRow, event_consent
from pipelines.transforms.consent import (
    _ACCOUNT_WIDE,
    _EVERYWHERE,
    _decision_keys,
    ledger_part,
    readable_ids,
)

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec"
CONFIG = load_config()
CONTRACT = CONFIG.contract()
ACCT, MTG = "acct-7f3e", "mtg-20261126-0001"
AS_OF = micros_of(datetime(2026, 11, 27, 12, tzinfo=UTC))
# Alice's transcript segment (ev-0013), consented by her own meeting grant at 08:55.
EVENT_TS = micros_of(datetime(2026, 11, 26, 9, 12, tzinfo=UTC))
GOOD = (SPEC / "consent-examples-v1.jsonl").read_bytes()
GOOD_ROWS = GOOD.count(b"\n")
REVOKE = {
    "subject_id": "p-alice",
    "account_id": ACCT,
    "scope": "account",
    "purpose": "ai_training",
    "action": "revoke",
    "actor": "self",
    "decided_at": "2026-11-26T10:00:00Z",
}


def line(**changes) -> bytes:
    row = {**REVOKE, **changes}
    return json.dumps({k: v for k, v in row.items() if v is not _DROP}).encode()


_DROP = object()
_VALID = line()

# (id, the flawed revoke line, the reason it is rejected with)
FLAWS = [
    ("unknown field", line(note="asked by phone"), "consent_undeclared_field"),
    ("space for T", line(decided_at="2026-11-26 10:00:00Z"), "consent_bad_timestamp"),
    ("offset minutes 60", line(decided_at="2026-11-26T10:00:00+00:60"), "consent_bad_timestamp"),
    ("offset hours 24", line(decided_at="2026-11-26T10:00:00+24:00"), "consent_bad_timestamp"),
    ("leap second", line(decided_at="2026-11-26T23:59:60Z"), "consent_bad_timestamp"),
    ("no zone", line(decided_at="2026-11-26T10:00:00"), "consent_bad_timestamp"),
    ("year 1 overflows", line(decided_at="0001-01-01T00:00:00+01:00"), "consent_bad_timestamp"),
    ("year 9999 overflows", line(decided_at="9999-12-31T23:59:59-01:00"), "consent_bad_timestamp"),
    (
        "wide digits",
        line(decided_at="\uff12\uff10\uff12\uff16-11-26T10:00:00Z"),
        "consent_bad_timestamp",
    ),
    ("actor outside the enum", line(actor="owner"), "consent_bad_value"),
    ("action outside the enum", line(action="withdraw"), "consent_bad_value"),
    ("time as a number", line(decided_at=1764151200), "consent_wrong_type"),
    ("missing time", line(decided_at=_DROP), "consent_missing_field"),
    ("missing scope", line(scope=_DROP), "consent_missing_field"),
    ("bad scope", line(scope="everything"), "consent_bad_value"),
    (
        "a key twice",
        _VALID.replace(b'"action": "revoke"', b'"action": "revoke", "action": "grant"'),
        "consent_duplicate_field",
    ),
    (
        "a key twice, one escaped",
        _VALID.replace(b'"action": "revoke"', b'"action": "revoke", "\\u0061ction": "grant"'),
        "consent_duplicate_field",
    ),
    (
        "a key twice, a quote in a value",
        line(purpose='say "yes"').replace(
            b'"action": "revoke"', b'"action": "revoke", "action": "grant"'
        ),
        "consent_duplicate_field",
    ),
    ("cut mid-line", _VALID[:70], "consent_not_json"),
    ("not UTF-8", _VALID.replace(b"ai_training", b"ai_tr\xffining"), "consent_not_utf8"),
    ("not an object", b"[" + _VALID + b"]", "consent_not_object"),
    ("too large", line(note="x" * 3000), "consent_line_too_large"),
]
SMALL_LINES = CONFIG.with_policy(max_line_bytes=2048)


def ledger_file(folder: Path, *extra: bytes) -> str:
    path = folder / "consent.jsonl"
    path.write_bytes(GOOD + b"".join(x + b"\n" for x in extra))
    return str(path)


def side_input(part) -> ConsentLedger:
    return ConsentLedger.from_decisions(part.decisions, AS_OF, part.rejected)


def keyed_join(part, subject: str, account: str) -> ConsentLedger:
    """The ledger one chunk receives by the keyed join, for a record of `subject`."""
    wanted = {(subject, account), (_ACCOUNT_WIDE, account), _EVERYWHERE}
    entries = [e for key, e in _decision_keys(part) if key in wanted]
    decisions = [e for e in entries if not isinstance(e, RejectedRow)]
    return ConsentLedger.from_decisions(
        decisions, AS_OF, [e for e in entries if isinstance(e, RejectedRow)]
    )


def alice(ledger: ConsentLedger):
    return ledger.subject("p-alice", ACCT, MTG, EVENT_TS)


@pytest.mark.parametrize("join", [False, True], ids=["side input", "keyed join"])
def test_without_the_flawed_row_alice_consents(tmp_path, join):
    part = ledger_part(CONFIG, ledger_file(tmp_path))
    ledger = keyed_join(part, "p-alice", ACCT) if join else side_input(part)
    assert alice(ledger).reason == "consented"
    assert part.rejected == ()


@pytest.mark.parametrize("join", [False, True], ids=["side input", "keyed join"])
@pytest.mark.parametrize(("flawed", "reason"), [f[1:] for f in FLAWS], ids=[f[0] for f in FLAWS])
def test_a_revoke_with_one_flaw_still_revokes(tmp_path, flawed, reason, join):
    part = ledger_part(SMALL_LINES, ledger_file(tmp_path, flawed))
    assert part.rejects["reason"].to_pylist() == [reason]
    assert len(part.decisions) == GOOD_ROWS
    ledger = keyed_join(part, "p-alice", ACCT) if join else side_input(part)
    found = alice(ledger)
    assert (found.consented, found.reason) == (False, "revoked")
    row = GOOD_ROWS + 1
    assert [b.describe() for b in found.basis] == [f"ledger row {row} rejected ({reason})"]
    # Only alice's: carol is decided on her own decisions as before.
    carol = ledger.subject("p-carol", ACCT, MTG, EVENT_TS)
    assert carol.reason == "revoked" and not any(isinstance(b, RejectedRow) for b in carol.basis)


@pytest.mark.parametrize("join", [False, True], ids=["side input", "keyed join"])
@pytest.mark.parametrize(
    ("flawed", "subject", "reached"),
    [
        (line(subject_id=7), "p-dana", True),  # only the account: every subject of it
        (line(subject_id=7, account_id="acct-other"), "p-dana", False),
        (line(account_id=["x"]), "p-dana", False),  # only the subject: alice everywhere
        (line(account_id=["x"]), "p-alice", True),
        (line(subject_id="", account_id=""), "p-dana", True),  # nothing: the whole run
    ],
    ids=["account only", "other account only", "subject only", "subject only, hers", "nothing"],
)
def test_what_a_rejected_row_reaches_depends_on_what_can_be_read(
    tmp_path, flawed, subject, reached, join
):
    dana = line(subject_id="p-dana", action="grant", decided_at="2026-11-01T00:00:00Z")
    for extra, reached_here in (((), False), ((flawed,), reached)):
        part = ledger_part(CONFIG, ledger_file(tmp_path, dana, *extra))
        ledger = keyed_join(part, subject, ACCT) if join else side_input(part)
        found = ledger.subject(subject, ACCT, MTG, EVENT_TS)
        assert found.consented is not reached_here


def test_a_rejected_grant_admits_nobody(tmp_path):
    """Bob's own grant with a flaw: it does not count, and it withholds him as a revoke would."""
    bob = line(subject_id="p-bob", action="grant", decided_at="2026-11-26T09:00:00+00:60")
    ledger = side_input(ledger_part(CONFIG, ledger_file(tmp_path, bob)))
    assert ledger.subject("p-bob", ACCT, MTG, EVENT_TS).reason == "revoked"
    valid = line(subject_id="p-bob", action="grant", decided_at="2026-11-26T09:00:00Z")
    ledger = side_input(ledger_part(CONFIG, ledger_file(tmp_path, valid)))
    assert ledger.subject("p-bob", ACCT, MTG, EVENT_TS).reason == "consented"


@pytest.mark.parametrize(
    ("raw", "subjects", "accounts"),
    [
        (_VALID[:70], {"p-alice"}, {ACCT}),
        (_VALID[:20], set(), set()),
        (b'{"subject_id": "a", "x": {"subject_id": "b"}, "account_id": "c"', set(), {"c"}),
        (b'{"subject\\u005fid": "a", "account_id": "c"', {"a"}, {"c"}),
        (b'{"subject_id": "p-\\u00e9", "account_id": 5', {"p-é"}, set()),
        (b'{"subject_id": "", "account_id": "c"', set(), {"c"}),
        (b"\xff\xfe garbage", set(), set()),
    ],
    ids=["cut late", "cut early", "key twice", "escaped key", "escaped value", "empty", "bytes"],
)
def test_the_lenient_read_of_a_line_that_is_not_json(raw, subjects, accounts):
    assert readable_ids(None, raw) == (subjects, accounts)


@pytest.mark.parametrize(
    "purpose", ["ai_training", 'say "yes"', "back\\slash", "\u00e9t\u00e9"], ids=str
)
def test_a_conforming_row_is_not_taken_for_a_duplicate(tmp_path, purpose):
    path = tmp_path / "consent.jsonl"
    path.write_bytes(line(purpose=purpose) + b"\n")
    part = ledger_part(CONFIG, str(path))
    assert part.rejects.num_rows == 0 and len(part.decisions) == 1


def test_the_lenient_read_of_an_object_takes_every_value():
    row = {"subject_id": "a", "note": {"subject_id": "b"}, "account_id": 3}
    raw = json.dumps(row).encode()
    assert readable_ids(row, raw) == ({"a", "b"}, set())


# -- Parquet ledgers --------------------------------------------------------------------------
def test_a_parquet_ledger_rejects_like_json_lines_and_never_crashes(tmp_path):
    rows = [json.loads(x) for x in GOOD.splitlines()]
    table = pa.Table.from_pylist(
        [*rows, {**REVOKE, "decided_at": "2026-11-26T10:00:00+00:60"}, {**REVOKE, "actor": "x"}]
    )
    path = tmp_path / "consent.parquet"
    pq.write_table(table, path)
    part = ledger_part(CONFIG, str(path))
    assert part.rejects["reason"].to_pylist() == ["consent_bad_timestamp", "consent_bad_value"]
    assert alice(side_input(part)).basis[0].describe() == (
        f"ledger row {GOOD_ROWS + 1} rejected (consent_bad_timestamp)"
    )
    # decided_at as a native timestamp before year 1 once read: wrong type, not a crash.
    native = table.set_column(
        table.schema.get_field_index("decided_at"),
        "decided_at",
        pa.array([-62135600400000000] * table.num_rows, pa.timestamp("us", tz="UTC")),
    )
    pq.write_table(native, path)
    part = ledger_part(CONFIG, str(path))
    assert part.decisions == () and part.rejects.num_rows == native.num_rows
    assert part.rejects["reason"].to_pylist()[:GOOD_ROWS] == ["consent_wrong_type"] * GOOD_ROWS
    assert alice(side_input(part)).reason == "revoked"


# -- event times: strict, full precision, never a crash ----------------------------------------
EXAMPLE_LINES = (SPEC / "examples-v1.jsonl").read_bytes().splitlines()
ALICE_SEGMENT = json.loads(next(x for x in EXAMPLE_LINES if b'"ev-0013"' in x))


def event_chunk(event_ts: str) -> EventChunk:
    record = {**ALICE_SEGMENT, "event_ts": event_ts}
    return EventChunk.from_lines(CONTRACT, 0, 0, "e.jsonl", [(1, json.dumps(record).encode())])


def columnar_chunk(event_ts: str) -> EventChunk:
    record = {
        **ALICE_SEGMENT,
        "event_ts": event_ts,
        "payload": json.dumps(ALICE_SEGMENT["payload"]),
    }
    return EventChunk.from_rows(CONTRACT, 0, 0, "e.parquet", 1, [record])


@pytest.mark.parametrize("build", [event_chunk, columnar_chunk], ids=["jsonl", "parquet"])
@pytest.mark.parametrize(
    ("event_ts", "ok"),
    [
        ("2026-11-26T09:12:00Z", True),
        ("2026-11-26t09:12:00.123456789z", True),
        ("2026-11-26T11:12:00+02:00", True),
        ("2026-11-26T09:12:00+23:59", True),
        ("2026-11-26 09:12:00Z", False),
        ("2026-11-26T09:12:00+00:60", False),
        ("2026-11-26T09:12:00+24:00", False),
        ("2026-11-26T23:59:60Z", False),
        ("0001-01-01T00:00:00+00:01", False),
        ("0001-01-01T00:00:00-00:01", True),
        ("9999-12-31T23:59:59-00:01", False),
        ("9999-12-31T23:59:59.999999999Z", True),
    ],
)
def test_event_times_are_strict_and_an_overflow_is_quarantined(build, event_ts, ok):
    chunk = build(event_ts)
    if ok:
        assert chunk.rejects.num_rows == 0
        stored = chunk.tables["content.transcript_segment"]["event_ts"].cast(pa.int64())
        assert stored.to_pylist() == [parse_instant(event_ts).micros]
    else:
        assert chunk.rejects["reason"].to_pylist() == ["bad_timestamp"]


@pytest.mark.parametrize(
    ("micros", "reason"),
    [(-62135600400000000, "wrong_type"), (EVENT_TS, "wrong_type")],
    ids=["before year 1", "in range"],
)
def test_a_parquet_timestamp_column_is_a_wrong_type_never_a_crash(tmp_path, micros, reason):
    """Read as the event reader reads Parquet (`python_rows`): the contract wants a string."""
    record = {**ALICE_SEGMENT, "payload": json.dumps(ALICE_SEGMENT["payload"])}
    table = pa.Table.from_pylist([record]).set_column(
        2, "event_ts", pa.array([micros], pa.timestamp("us", tz="UTC"))
    )
    pq.write_table(table, tmp_path / "e.parquet")
    rows = python_rows(pq.read_table(tmp_path / "e.parquet"))
    chunk = EventChunk.from_rows(CONTRACT, 0, 0, "e.parquet", 1, rows)
    assert chunk.rejects["reason"].to_pylist() == [reason]


def test_arrow_and_the_parser_agree_on_plain_utc_texts():
    texts = ["2026-11-26T09:12:00Z", "2026-11-26T09:12:00.5Z", "1000-01-01T00:00:00.000001Z"]
    for text in texts:
        assert event_chunk(text).tables["content.transcript_segment"]["event_ts"].cast(
            pa.int64()
        ).to_pylist() == [parse_instant(text).micros]


@pytest.mark.parametrize(
    ("event_ts", "grant_at", "ok"),
    [
        ("2026-11-26T09:12:00.000000500Z", "2026-11-26T09:12:00.000000499Z", False),
        ("2026-11-26T09:12:00.000000500Z", "2026-11-26T09:12:00.000000500Z", False),
        ("2026-11-26T09:12:00.000000500Z", "2026-11-26T09:12:00.000000501Z", False),
        ("2026-11-26T09:12:00.000001Z", "2026-11-26T09:12:00.0000009999Z", True),
        ("2026-11-26T09:12:00.000001Z", "2026-11-26T09:12:00.000001000Z", True),
        ("2026-11-26T09:12:00.000001Z", "2026-11-26T09:12:00.0000010001Z", False),
        ("2026-11-26T09:12:00.0000019Z", "2026-11-26T09:12:00.0000010001Z", False),
    ],
    ids=[
        "grant 1 ns before, same microsecond",
        "grant at the same instant, below the microsecond",
        "grant 1 ns after",
        "grant 100 ps before a whole microsecond",
        "grant at a whole microsecond, same instant",
        "grant 100 ps after a whole microsecond",
        "grant before the event, both below the same microsecond",
    ],
)
def test_a_grant_is_never_rounded_to_before_the_event(tmp_path, event_ts, grant_at, ok):
    """Both sides with 7 to 10 fractional digits, against the grant whenever it is unsure."""
    grant = line(action="grant", scope=f"meeting:{MTG}", subject_id="p-dana", decided_at=grant_at)
    path = tmp_path / "consent.jsonl"
    path.write_bytes(grant + b"\n")
    ledger = side_input(ledger_part(CONFIG, str(path)))
    record = {**ALICE_SEGMENT, "event_ts": event_ts}
    record["payload"] = {**record["payload"], "speaker_id": "p-dana"}
    chunk = EventChunk.from_lines(CONTRACT, 0, 0, "e.jsonl", [(1, json.dumps(record).encode())])
    decided = chunk.with_consent(CONFIG, CONTRACT, ledger, {})
    reason = decided.tables["content.transcript_segment"][CONSENT_REASON].to_pylist()
    assert reason == (["consented"] if ok else ["granted_after_event"])


# -- property: a rejected row never admits more ---------------------------------------------
SUBJECTS = ("p-a", "p-b", "p-c")
ACCOUNTS = ("acct-1", "acct-2")
FLAW_MAKERS = [
    lambda row: {**row, "note": "n"},
    lambda row: {**row, "actor": "owner"},
    lambda row: {**row, "decided_at": row["decided_at"].replace("T", " ")},
    lambda row: {**row, "decided_at": row["decided_at"].replace("Z", "+00:60")},
    lambda row: {k: v for k, v in row.items() if k != "scope"},
    lambda row: {**row, "subject_id": 1},
    lambda row: {**row, "account_id": None},
    lambda row: {**row, "subject_id": 1, "account_id": 2},
]
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "subject_id": st.sampled_from(SUBJECTS),
            "account_id": st.sampled_from(ACCOUNTS),
            "scope": st.sampled_from(["account", "meeting:m1", "meeting:m2"]),
            "purpose": st.sampled_from(["ai_training", "ai_training", "support"]),
            "action": st.sampled_from(["grant", "grant", "revoke"]),
            "actor": st.sampled_from(["self", "self", "host", "admin"]),
            "decided_at": st.sampled_from(
                [f"2026-11-26T0{h}:00:00{f}Z" for h in range(1, 9) for f in ("", ".0000000005")]
            ),
        }
    ),
    min_size=1,
    max_size=8,
)
EVENTS = [
    (s, a, m, micros_of(datetime(2026, 11, 26, h, tzinfo=UTC)))
    for s in SUBJECTS
    for a in ACCOUNTS
    for m in ("m1", "m2")
    for h in (2, 5, 9)
]


def _admitted(ledger: ConsentLedger) -> set[tuple]:
    return {e for e in EVENTS if event_consent(ledger, [e[0]], e[1], e[2], e[3])[0]}


def _part(lines: list[bytes]):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "consent.jsonl"
        path.write_bytes(b"".join(x + b"\n" for x in lines))
        return ledger_part(CONFIG, str(path))


@settings(max_examples=60, deadline=None, database=None)
@given(
    rows=rows_strategy,
    flawed=st.lists(st.tuples(st.integers(0, 7), st.sampled_from(range(len(FLAW_MAKERS))))),
    cut=st.integers(0, 200),
)
def test_rejecting_a_row_never_admits_more(rows, flawed, cut):
    lines = [json.dumps(r).encode() for r in rows]
    bad = {i % len(rows): f for i, f in flawed}
    rejected_lines = []
    for i, row in enumerate(rows):
        if i not in bad:
            rejected_lines.append(lines[i])
        elif bad[i] == 0 and cut < len(lines[i]):
            rejected_lines.append(lines[i][:cut] or b"{")  # cut mid-line
        else:
            rejected_lines.append(json.dumps(FLAW_MAKERS[bad[i]](row)).encode())
    with_rejects = _part(rejected_lines)
    assert with_rejects.rejects.num_rows == len(bad)
    without = _part([x for i, x in enumerate(lines) if i not in bad])
    whole = _part(lines)
    admitted = _admitted(side_input(with_rejects))
    assert admitted <= _admitted(side_input(without))
    assert admitted <= _admitted(side_input(whole))
    keyed = {e for e in EVENTS if event_consent(keyed_join(with_rejects, e[0], e[1]), *_args(e))[0]}
    assert keyed == admitted  # the keyed join decides the same


def _args(event: tuple) -> tuple:
    subject, account, meeting, at = event
    return [subject], account, meeting, at
