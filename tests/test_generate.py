"""The synthetic input generator: same seed same bytes, contract-shaped records, honest truth."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.generate import contract, generate
from pipelines.generate import truth as consent_truth_module
from pipelines.generate.ledger import CONSENT_CLAUSES

# The input contract (input-contract-v1.md), written out again here on purpose: the test
# is a second, independent reading of it. Types: num, int, str, str? (nullable), ids (list of
# ids), recipients ("everyone" or ids), elements (list of {kind, text}).
_QOS = {
    "direction": "str",
    "bitrate_kbps": "num",
    "latency_ms": "num",
    "jitter_ms": "num",
    "avg_loss_pct": "num",
    "max_loss_pct": "num",
}
PAYLOAD_FIELDS: dict[str, dict[str, str]] = {
    "qos.audio": {**_QOS, "codec": "str", "audio_level": "num"},
    "qos.video": {**_QOS, "resolution": "str", "frame_rate": "num", "codec": "str"},
    "qos.screen_share": {**_QOS, "resolution": "str", "frame_rate": "num", "codec": "str"},
    "qos.system": {
        "cpu_usage_pct": "num",
        "memory_mb": "num",
        "network_type": "str",
        "data_center": "str",
        "connection_type": "str",
    },
    "usage.participant_joined": {
        "user_name": "str",
        "email": "str?",
        "ip_address": "str",
        "location": "str",
        "device": "str",
        "os_version": "str",
        "client_version": "str",
        "network_type": "str",
        "role": "str",
    },
    "usage.participant_left": {"leave_reason": "str", "duration_s": "num"},
    "usage.meeting_started": {
        "topic": "str",
        "host_id": "str",
        "meeting_type": "str",
        "scheduled_duration_min": "num",
    },
    "usage.meeting_ended": {
        "duration_s": "num",
        "participant_count": "int",
        "peak_participants": "int",
    },
    "usage.feature_used": {"feature": "str", "action": "str", "count": "int"},
    "diagnostic.crash": {
        "component": "str",
        "error_code": "str",
        "client_version": "str",
        "os_version": "str",
        "stack_trace": "str",
        "message": "str",
    },
    "diagnostic.log": {"level": "str", "component": "str", "message": "str"},
    "content.chat_message": {
        "sender_id": "str",
        "recipients": "recipients",
        "message": "str",
        "file_name": "str?",
    },
    "content.transcript_segment": {
        "speaker_id": "str",
        "text": "str",
        "start_ms": "int",
        "end_ms": "int",
        "language": "str",
        "confidence": "num",
    },
    "content.caption": {"speaker_id": "str", "text": "str"},
    "content.audio_chunk": {
        "codec": "str",
        "sample_rate": "int",
        "duration_ms": "num",
        "data_b64": "str",
        "participants": "ids",
    },
    "content.video_frame": {"codec": "str", "width": "int", "height": "int", "data_b64": "str"},
    "content.recording_file": {
        "file_type": "str",
        "file_size": "int",
        "download_url": "str",
        "participants": "ids",
    },
    "content.whiteboard": {"board_id": "str", "elements": "elements"},
    "content.poll_answer": {"poll_id": "str", "question": "str", "answer": "str"},
    "content.shared_file": {"file_name": "str", "mime_type": "str", "size": "int", "uri": "str"},
    "content.ai_summary": {"summary_text": "str", "next_steps": "ids", "participants": "ids"},
}
REQUIRED_ENVELOPE = {
    "event_id",
    "event_type",
    "event_ts",
    "account_id",
    "schema_version",
    "payload",
}
ENVELOPE = REQUIRED_ENVELOPE | {"meeting_id", "participant_id"}
FREE_TEXT = {
    "diagnostic.log": ("message",),
    "diagnostic.crash": ("message", "stack_trace"),
    "usage.participant_left": ("leave_reason",),
}
LEDGER_FIELDS = {"subject_id", "account_id", "scope", "purpose", "action", "actor", "decided_at"}
LEAK_KINDS = (
    "email",
    "phone",
    "ip_address",
    "secret_url",
    "payment_card",
    "blob",
    "natural_language",
    "known_identifier",
    "content_echo",
)
BAD_KINDS = (
    "not_json",
    "not_utf8",
    "not_object",
    "unknown_event_type",
    "event_type_case",
    "event_type_spaces",
    "wrong_type",
    "missing_field",
    "undeclared_field",
    "bad_timestamp",
)
DESTINATIONS = ("training", "restricted", "quarantine", "duplicates", "consented_content")
_RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _type_ok(value: Any, kind: str) -> bool:
    is_num = isinstance(value, int | float) and not isinstance(value, bool)
    is_ids = isinstance(value, list) and all(isinstance(v, str) for v in value)
    return {
        "num": is_num,
        "int": is_num and isinstance(value, int),
        "str": isinstance(value, str),
        "str?": value is None or isinstance(value, str),
        "ids": is_ids,
        "recipients": value == "everyone" or is_ids,
        "elements": isinstance(value, list)
        and all(isinstance(e, dict) and set(e) == {"kind", "text"} for e in value),
    }[kind]


def _timestamp_ok(value: Any) -> bool:
    if not isinstance(value, str) or not _RFC3339_MS.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def contract_problem(rec: dict[str, Any]) -> str | None:
    """Why `rec` breaks the contract (a simple reading of it), or None."""
    if not set(rec) >= REQUIRED_ENVELOPE or not set(rec) <= ENVELOPE:
        return "envelope fields"
    fields = PAYLOAD_FIELDS.get(rec["event_type"])
    if fields is None:
        return "event type"
    if not _timestamp_ok(rec["event_ts"]) or rec["schema_version"] != 1:
        return "envelope values"
    payload = rec["payload"]
    if not isinstance(payload, dict) or set(payload) != set(fields):
        return "payload fields"
    bad = [name for name, kind in fields.items() if not _type_ok(payload[name], kind)]
    return f"payload types {bad}" if bad else None


def read_lines(out: Path, truth: dict[str, Any]) -> list[bytes]:
    """Every line of every event file, blank ones included."""
    lines: list[bytes] = []
    for name in truth["files"]:
        data = gzip.decompress((out / name).read_bytes())
        assert data.endswith(b"\n")
        lines += data[:-1].split(b"\n")
    return lines


def parse(line: bytes) -> Any:
    try:
        return json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("sample")
    return out, generate(out, events=5000, seed=3)


@pytest.fixture(scope="module")
def records(sample: tuple[Path, dict[str, Any]]) -> list[dict[str, Any]]:
    out, truth = sample
    parsed = (parse(line) for line in read_lines(out, truth) if line.strip())
    return [rec for rec in parsed if isinstance(rec, dict)]


@pytest.fixture(scope="module")
def planted_ids(sample: tuple[Path, dict[str, Any]]) -> set[str]:
    return {p["event_id"] for p in sample[1]["planted"] if p["event_id"] is not None}


# -- determinism ------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_same_seed_gives_same_bytes(tmp_path: Path, fmt: str) -> None:
    first = generate(tmp_path / "a", events=1500, seed=9, shards=2, fmt=fmt)
    second = generate(tmp_path / "b", events=1500, seed=9, shards=2, fmt=fmt)
    assert first == second
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert {*first["files"], "consent.jsonl", "truth.json"} == set(names)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# sha256 of what the contract generator writes: the decoded event lines, the ledger and the
# truth. They were first taken from the single-module generator (before it became a package) and
# changed once since, on purpose, with GENERATOR_ID 2: realistic account counts (at least 50).
# A deliberate change to the contract generator's output updates these and GENERATOR_ID together.
PINNED_OUTPUT = {
    (500, 0, 1): (
        "4ae4b7927a58067b2f26f287ecfe827327f01b649a6cb4ba2cb926ddcd4d5388",
        "23485aad24d4a1042c959fe05c907fe1b733b507e172946b31796b4561390b97",
        "ce3f96177bf3d1290eb2a6faf33387a9b9a31b3aac53c0672c46a05abed6e836",
    ),
    (1500, 9, 2): (
        "5d78de0db14716eef74918b71467f374e6e031141eb5942986b057c9c5fa5631",
        "064c50d606d9f388fb8909d1686d0da2779def3326322294f215ab83a6b7150a",
        "0e87e89c485333f522786e3dc3e8fee66317268a4d99c4a340a21dc9baab6050",
    ),
}


@pytest.mark.parametrize("events,seed,shards", sorted(PINNED_OUTPUT), ids=str)
def test_contract_output_is_pinned(tmp_path: Path, events: int, seed: int, shards: int) -> None:
    truth = generate(tmp_path, events=events, seed=seed, shards=shards)
    lines = b"".join(gzip.decompress((tmp_path / name).read_bytes()) for name in truth["files"])
    got = tuple(
        hashlib.sha256(data).hexdigest()
        for data in (
            lines,
            (tmp_path / "consent.jsonl").read_bytes(),
            (tmp_path / "truth.json").read_bytes(),
        )
    )
    assert got == PINNED_OUTPUT[(events, seed, shards)]


def test_gzip_header_carries_no_time_or_name(sample: tuple[Path, dict[str, Any]]) -> None:
    out, truth = sample
    header = (out / truth["files"][0]).read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0, "no file name"
    assert header[4:8] == b"\0\0\0\0", "mtime 0"


def _account_ids(out: Path, truth: dict[str, Any]) -> set[str]:
    ids = set()
    for name in truth["files"]:
        for line in gzip.decompress((out / name).read_bytes()).splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a planted line that is not JSON
            if isinstance(record, dict) and isinstance(record.get("account_id"), str):
                ids.add(record["account_id"])
    return ids


def test_a_set_has_realistic_account_counts(tmp_path: Path) -> None:
    # The string rule counts values across accounts; a handful of accounts would make every
    # common telemetry string look rare. Default: at least 50; `accounts` sets the count.
    default = generate(tmp_path / "default", events=2000, seed=3)
    assert default["accounts"] == 50
    # A small set holds the meetings of some of them only.
    assert 10 <= len(_account_ids(tmp_path / "default", default)) <= 50
    few = generate(tmp_path / "few", events=2000, seed=3, accounts=7)
    assert few["accounts"] == 7
    assert 1 <= len(_account_ids(tmp_path / "few", few)) <= 7
    assert generate(tmp_path / "large", events=400 * 80, seed=3)["accounts"] == 80


@pytest.mark.parametrize("accounts", [0, -1, 5001, True, "9"])
def test_a_bad_account_count_is_refused(tmp_path: Path, accounts: Any) -> None:
    with pytest.raises(ValueError, match="accounts must be"):
        generate(tmp_path, events=1000, accounts=accounts)


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    generate(tmp_path / "a", events=1000, seed=1)
    generate(tmp_path / "b", events=1000, seed=2)
    for name in ("events.jsonl.gz", "consent.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_regenerating_replaces_earlier_shards(tmp_path: Path) -> None:
    generate(tmp_path, events=1000, seed=1, shards=4)
    truth = generate(tmp_path, events=1000, seed=1)
    assert sorted(p.name for p in tmp_path.glob("events*")) == truth["files"] == ["events.jsonl.gz"]


def test_a_failed_run_leaves_no_partial_event_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = contract.Meeting.build
    calls = 0

    def failing_build(self: Any, size: int) -> Any:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise OSError("disk full")
        return build(self, size)

    monkeypatch.setattr(contract.Meeting, "build", failing_build)
    with pytest.raises(OSError, match="disk full"):
        generate(tmp_path, events=3000, seed=1)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    truth = generate(tmp_path, events=3000, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*truth["files"], "consent.jsonl", "truth.json"]
    )


# -- records against the contract ----------------------------------------------------------------
def test_all_21_event_types_present(records: list[dict[str, Any]], planted_ids: set[str]) -> None:
    clean_types = Counter(r["event_type"] for r in records if r["event_id"] not in planted_ids)
    assert set(clean_types) == set(PAYLOAD_FIELDS)


def test_every_line_is_planted_bad_or_valid(sample: tuple[Path, dict[str, Any]]) -> None:
    out, truth = sample
    bad_ids = {p["event_id"] for p in truth["planted"] if p["kind"] in BAD_KINDS}
    broken_expected = Counter(p["kind"] for p in truth["planted"] if p["event_id"] is None)
    broken_seen = 0
    invalid_ids = set()
    for line in read_lines(out, truth):
        if not line.strip():
            continue
        rec = parse(line)
        if not isinstance(rec, dict):
            broken_seen += 1
            continue
        problem = contract_problem(rec)
        if problem is not None:
            assert rec.get("event_id") in bad_ids, (problem, line[:300])
            invalid_ids.add(rec["event_id"])
    assert broken_seen == sum(broken_expected.values())
    assert set(broken_expected) == {"not_json", "not_utf8", "not_object"}
    assert invalid_ids == bad_ids - {None}, "every planted bad record must break the contract"


def test_broken_lines_break_in_the_planted_way(sample: tuple[Path, dict[str, Any]]) -> None:
    out, truth = sample
    seen: Counter[str] = Counter()
    for line in read_lines(out, truth):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            seen["not_utf8"] += 1
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError:
            seen["not_json"] += 1
            continue
        if not isinstance(value, dict):
            seen["not_object"] += 1
    expected = Counter(p["kind"] for p in truth["planted"] if p["event_id"] is None)
    assert seen == expected


def test_clean_records_are_realistic(records: list[dict[str, Any]], planted_ids: set[str]) -> None:
    clean = [r for r in records if r["event_id"] not in planted_ids]
    assert all(r["event_ts"].startswith("2026-11-26T") for r in clean)
    assert all(re.fullmatch(r"acct-[0-9a-f]{4}", r["account_id"]) for r in clean)
    assert all(
        re.fullmatch(r"mtg-20261126-\d{4}", r["meeting_id"] or "mtg-20261126-0000") for r in clean
    )
    assert all(re.fullmatch(r"p-[0-9a-f]{6}", r["participant_id"] or "p-000000") for r in clean)
    assert all(re.fullmatch(r"ev-3-\d+", r["event_id"]) for r in clean)
    for rec in clean:
        p = rec["payload"]
        if rec["event_type"].startswith("qos.") and rec["event_type"] != "qos.system":
            assert 20 <= p["latency_ms"] <= 400
            assert 0 <= p["avg_loss_pct"] <= p["max_loss_pct"] <= 5
        if rec["event_type"] == "qos.audio":
            assert 0 <= p["audio_level"] <= 1
        if rec["event_type"] in ("qos.video", "qos.screen_share"):
            assert re.fullmatch(r"\d{3,4}x\d{3,4}", p["resolution"])
        if rec["event_type"] == "usage.participant_joined":
            assert re.fullmatch(r"\S+ \S+", p["user_name"])
            assert re.fullmatch(r".+ \([A-Z]{2}\)", p["location"])
    share = Counter(r["event_type"].split(".")[0] for r in clean)
    assert 0.55 <= share["qos"] / len(clean) <= 0.65
    assert 0.15 <= share["content"] / len(clean) <= 0.25
    logs = sum(r["event_type"] == "diagnostic.log" for r in clean)
    assert 0.04 <= logs / len(clean) <= 0.08
    joined = [r["payload"] for r in clean if r["event_type"] == "usage.participant_joined"]
    assert any(p["email"] is None for p in joined) and any(p["email"] for p in joined)
    assert any(":" in p["ip_address"] for p in joined) and any(
        "." in p["ip_address"] for p in joined
    )


def test_each_meeting_has_one_host_and_2_to_12_participants(
    records: list[dict[str, Any]], planted_ids: set[str]
) -> None:
    roles: dict[str, list[str]] = {}
    for rec in records:
        if rec["event_type"] == "usage.participant_joined" and rec["event_id"] not in planted_ids:
            roles.setdefault(rec["meeting_id"], []).append(rec["payload"]["role"])
    assert len(roles) > 10
    for found in roles.values():
        assert found.count("host") == 1
        assert 2 <= len(found) <= 12


# -- the truth ----------------------------------------------------------------------------------
def test_expected_counts_add_up_to_the_records(sample: tuple[Path, dict[str, Any]]) -> None:
    out, truth = sample
    expected = truth["expected"]
    lines = read_lines(out, truth)
    records = [line for line in lines if line.strip()]
    assert len(records) < len(lines), "a few white-space-only lines are planted too"
    assert expected["input_records"] == truth["events"] == 5000 == len(records)
    assert sum(expected[d] for d in DESTINATIONS) == expected["input_records"]
    planted = Counter(p["expect"] for p in truth["planted"])
    assert expected["quarantine"] == planted["quarantine"]
    assert expected["duplicates"] == planted["duplicate"]
    assert expected["consented_content"] == 0
    assert truth["clean_service_events"] == expected["training"]


def test_truth_file_is_the_returned_truth(sample: tuple[Path, dict[str, Any]]) -> None:
    out, truth = sample
    text = (out / "truth.json").read_text()
    assert json.loads(text) == truth
    assert text == json.dumps(truth, sort_keys=True, indent=1) + "\n"
    assert truth["generator"] == "consentgate.generate/2"
    entry_keys = {"kind", "event_id", "expect", "reason", "field", "needle"}
    assert all(set(p) == entry_keys for p in truth["planted"])


def test_every_planted_kind_appears_at_least_three_times(
    sample: tuple[Path, dict[str, Any]],
) -> None:
    kinds = Counter(p["kind"] for p in sample[1]["planted"])
    for kind in (*LEAK_KINDS, *BAD_KINDS, "duplicate"):
        assert kinds[kind] >= 3, kind
    assert kinds["conflicting_duplicate"] >= 6  # both copies of at least 3 conflicts


def test_planted_reasons_and_destinations(sample: tuple[Path, dict[str, Any]]) -> None:
    for p in sample[1]["planted"]:
        if p["kind"] in LEAK_KINDS:
            assert (p["expect"], p["reason"]) == ("quarantine", f"detector:{p['kind']}")
            assert p["field"] in ("message", "stack_trace", "leave_reason") and p["needle"]
        elif p["kind"] == "duplicate":
            assert (p["expect"], p["reason"]) == ("duplicate", "duplicate")
        elif p["kind"] in ("event_type_case", "event_type_spaces"):
            assert (p["expect"], p["reason"]) == ("quarantine", "unknown_event_type")
        else:
            assert (p["expect"], p["reason"]) == ("quarantine", p["kind"])


def test_planted_cases_are_spread_through_the_file(
    sample: tuple[Path, dict[str, Any]], records: list[dict[str, Any]]
) -> None:
    position = {rec["event_id"]: i for i, rec in reversed(list(enumerate(records)))}
    places = sorted(position[p["event_id"]] for p in sample[1]["planted"] if p["event_id"])
    quarter = len(records) // 4
    assert all(any(q * quarter <= x < (q + 1) * quarter for x in places) for q in range(4))


def test_needles_sit_in_the_named_field_of_the_named_record(
    sample: tuple[Path, dict[str, Any]], records: list[dict[str, Any]]
) -> None:
    out, truth = sample
    raw = b"\n".join(read_lines(out, truth))
    by_id = {rec["event_id"]: rec for rec in records}
    for p in truth["planted"]:
        if p["needle"] is None:
            continue
        assert p["needle"].encode() in raw
        rec = by_id[p["event_id"]]
        assert rec["event_type"] in FREE_TEXT and p["field"] in FREE_TEXT[rec["event_type"]]
        assert p["needle"] in rec["payload"][p["field"]]
        assert contract_problem(rec) is None, "a leak rides in an otherwise valid record"


def _luhn_ok(number: str) -> bool:
    digits = [int(d) for d in re.sub(r"[ -]", "", number)][::-1]
    total = sum(d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d) for i, d in enumerate(digits))
    return total % 10 == 0


def test_leak_variants(sample: tuple[Path, dict[str, Any]]) -> None:
    needles: dict[str, list[str]] = {}
    for p in sample[1]["planted"]:
        if p["needle"] is not None:
            needles.setdefault(p["kind"], []).append(p["needle"])
    emails = needles["email"]
    assert any("\uff20" in e for e in emails) and any("\u200b" in e for e in emails)
    assert any(re.fullmatch(r"[\w.]+@[\w.]+", e) for e in emails)
    assert any(n.startswith("+44 ") for n in needles["phone"])
    assert any(re.fullmatch(r"\(\d{3}\) 555-\d{4}", n) for n in needles["phone"])
    assert any(":" in n for n in needles["ip_address"]) and any(
        "." in n for n in needles["ip_address"]
    )
    for param in ("access_token=", "token=", "password=", "X-Amz-Signature="):
        assert any(param in url for url in needles["secret_url"]), param
    assert all(_luhn_ok(n) and re.search(r"\d[ -]\d", n) for n in needles["payment_card"])
    assert any(re.fullmatch(r"[A-Za-z0-9+/]{48,}={0,2}", b) for b in needles["blob"])
    assert any(re.fullmatch(r"[0-9a-f]{40,}", b) for b in needles["blob"])
    assert all(len(n.split()) >= 6 for n in needles["natural_language"])


def test_identifier_and_echo_leaks_come_from_the_same_run(
    sample: tuple[Path, dict[str, Any]], records: list[dict[str, Any]], planted_ids: set[str]
) -> None:
    by_id = {rec["event_id"]: rec for rec in records}
    names = {
        r["payload"]["user_name"]
        for r in records
        if r["event_type"] == "usage.participant_joined" and r["event_id"] not in planted_ids
    }
    said: dict[str, list[str]] = {}
    for r in records:
        if r["event_type"] in ("content.chat_message", "content.transcript_segment"):
            text = r["payload"].get("message") or r["payload"].get("text")
            said.setdefault(r["meeting_id"], []).append(text)
    for p in sample[1]["planted"]:
        if p["kind"] == "known_identifier":
            assert p["needle"] in names
        if p["kind"] == "content_echo":
            assert len(p["needle"].split()) >= 6
            meeting = by_id[p["event_id"]]["meeting_id"]
            assert any(p["needle"] in text for text in said[meeting])


def test_duplicates_repeat_lines_and_conflicts_differ(
    sample: tuple[Path, dict[str, Any]], records: list[dict[str, Any]]
) -> None:
    out, truth = sample
    lines_by_id: dict[str, list[bytes]] = {}
    for line in read_lines(out, truth):
        rec = parse(line)
        if isinstance(rec, dict):
            lines_by_id.setdefault(rec["event_id"], []).append(line)
    repeated = {k for k, v in lines_by_id.items() if len(v) > 1}
    duplicates = {p["event_id"] for p in truth["planted"] if p["kind"] == "duplicate"}
    conflicts = Counter(
        p["event_id"] for p in truth["planted"] if p["kind"] == "conflicting_duplicate"
    )
    assert repeated == duplicates | set(conflicts)
    for event_id in duplicates:
        first, copy = lines_by_id[event_id]
        assert first == copy and contract_problem(json.loads(first)) is None
        assert not json.loads(first)["event_type"].startswith("content.")
    for event_id, listed in conflicts.items():
        first, copy = lines_by_id[event_id]
        assert listed == 2 and first != copy


def test_no_identifiers_in_clean_free_text(
    records: list[dict[str, Any]], planted_ids: set[str]
) -> None:
    identifiers: set[str] = set()
    for rec in records:
        identifiers.update(
            v for k in ("account_id", "meeting_id", "participant_id") if (v := rec.get(k))
        )
        if rec["event_type"] == "usage.participant_joined":
            p = rec["payload"]
            identifiers.update(v for v in (p["user_name"], p["email"], p["ip_address"]) if v)
    assert len(identifiers) > 100
    pattern = re.compile("|".join(re.escape(i) for i in sorted(identifiers, key=len, reverse=True)))
    texts = [
        rec["payload"][field]
        for rec in records
        if rec["event_id"] not in planted_ids
        for field in FREE_TEXT.get(rec["event_type"], ())
    ]
    assert len(texts) > 300
    assert [t for t in texts if pattern.search(t)] == []
    assert [t for t in texts if re.search(r"@|\uff20|https?://|\d+\.\d+\.\d+\.\d+", t)] == []


# -- consent ledger -----------------------------------------------------------------------------
def read_ledger(out: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """(rows with every ledger field and a known actor, the other lines)."""
    rows, bad = [], []
    for line in (out / "consent.jsonl").read_bytes().splitlines():
        row = parse(line)
        if (
            isinstance(row, dict)
            and set(row) == LEDGER_FIELDS
            and row["actor"] in ("self", "host", "admin")
        ):
            rows.append(row)
        else:
            bad.append(line)
    return rows, bad


@pytest.fixture(scope="module")
def ledger(sample: tuple[Path, dict[str, Any]]) -> list[dict[str, Any]]:
    return read_ledger(sample[0])[0]


def test_consent_rows_have_exactly_the_ledger_fields(
    sample: tuple[Path, dict[str, Any]], records: list[dict[str, Any]], ledger: list[dict[str, Any]]
) -> None:
    rows = ledger
    assert len(rows) > 50 and len(rows) == sample[1]["consent"]["decisions"]
    meetings = {r["meeting_id"] for r in records if r.get("meeting_id")}
    subjects = {r["participant_id"] for r in records if r.get("participant_id")}
    for row in rows:
        assert row["scope"] == "account" or row["scope"].removeprefix("meeting:") in meetings
        assert row["action"] in ("grant", "revoke")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", row["decided_at"])
    assert {r["subject_id"] for r in rows} & subjects
    mix = Counter((r["actor"], r["action"], r["scope"] == "account") for r in rows)
    for seen in [("self", "grant", True), ("self", "grant", False), ("host", "grant", False)]:
        assert mix[seen] > 0, seen
    assert mix[("admin", "grant", True)] > 0 and mix[("admin", "revoke", True)] > 0
    assert sum(n for (_, action, _), n in mix.items() if action == "revoke") > 0
    assert {r["purpose"] for r in rows} > {"ai_training"}
    decided = [r["decided_at"] for r in rows]
    assert decided != sorted(decided), "decisions arrive out of time order"
    assert any(r["decided_at"] > "2026-11-27" for r in rows), "some grants come after the day"


def test_three_ledger_rows_break_the_contract(sample: tuple[Path, dict[str, Any]]) -> None:
    _, bad = read_ledger(sample[0])
    assert sample[1]["consent"]["bad_ledger_rows"] == len(bad) == 3
    parsed = [parse(line) for line in bad]
    assert sum(p is None for p in parsed) == 1, "one line is not JSON"
    rows = [p for p in parsed if p is not None]
    assert any(set(r) == LEDGER_FIELDS and r["actor"] == "owner" for r in rows)
    assert any(set(r) == LEDGER_FIELDS - {"decided_at"} for r in rows)


# The consent rule (input-contract-v1.md, Consent ledger), read a third time, as literally and
# slowly as possible: every content record against every decision of its account.
CONTENT_SUBJECTS = {
    "content.chat_message": "sender_id",
    "content.transcript_segment": "speaker_id",
    "content.caption": "speaker_id",
    "content.audio_chunk": "participants",
    "content.recording_file": "participants",
    "content.ai_summary": "participants",
}


def subjects_of(rec: dict[str, Any]) -> list[str]:
    name = CONTENT_SUBJECTS.get(rec["event_type"])
    if name is None:
        return [rec["participant_id"]] if rec.get("participant_id") else []
    value = rec["payload"][name]
    return list(value) if isinstance(value, list) else [value]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_Decided = list[tuple[datetime, dict[str, Any]]]


def rejected_ids(lines: list[bytes]) -> list[tuple[str | None, str | None]]:
    """(subject, account) of each ledger line that breaks the ledger, None where unreadable:
    the JSON values when the line parses, else the plain `"key":"value"` text."""
    found = []
    for line in lines:
        row = parse(line)
        ids = []
        for key in ("subject_id", "account_id"):
            if isinstance(row, dict):
                value = row.get(key)
                ids.append(value if isinstance(value, str) and value else None)
            else:
                m = re.search(rb'"' + key.encode() + rb'":"([^"\\]+)"', line)
                ids.append(m[1].decode() if m else None)
        found.append((ids[0], ids[1]))
    return found


def _blocked(rejected: list[tuple[str | None, str | None]], subject: str, account: str) -> bool:
    return any((s in (None, subject)) and (a in (None, account)) for s, a in rejected)


def literal_subject(
    subject: str,
    rec: dict[str, Any],
    matching: _Decided,
    as_of: datetime,
    why: Counter[str],
    rejected: list[tuple[str | None, str | None]],
) -> bool:
    """Does `subject` consent to `rec`? `matching`: the decisions of its account in a matching
    scope, grants up to the as-of time and every revoke. Tallies the reason in `why`."""
    if _blocked(rejected, subject, rec["account_id"]):
        why["rejected_row"] += 1
        return False
    at = _at(rec["event_ts"])
    mine = [(t, d) for t, d in matching if d["subject_id"] == subject]
    training = [(t, d) for t, d in mine if d["purpose"] == "ai_training"]
    before = [(t, d) for t, d in training if t <= at]
    if not before:
        own_later = any(d["action"] == "grant" and d["actor"] == "self" for _, d in training)
        why["own_grant_after_event" if own_later else "other_purpose" if mine else "none"] += 1
        return False
    latest_time = max(t for t, _ in before)
    latest = [d for t, d in before if t == latest_time]
    if any(d["action"] == "revoke" for d in latest):
        why["revoked_before_event"] += 1
        return False
    if any(d["actor"] != "self" for d in latest):
        why[f"latest_grant_by_{latest[0]['actor']}"] += 1
        return False
    revokes = [t for t, d in training if d["action"] == "revoke" and t >= latest_time]
    if revokes:
        why["revoked_after_as_of" if min(revokes) > as_of else "revoked_after_grant"] += 1
        return False
    why["consented_account" if latest[0]["scope"] == "account" else "consented_meeting"] += 1
    return True


def literal_consent(
    records: list[dict[str, Any]],
    ledger: list[dict[str, Any]],
    as_of: str,
    rejected: list[tuple[str | None, str | None]],
) -> tuple[set[str], set[str], Counter[str]]:
    """(consented ids, host-only ids, why each subject of each record did or did not consent)."""
    decided = [(_at(d["decided_at"]), d) for d in ledger]
    hosts: dict[str, set[str]] = {}
    for rec in records:
        if rec["event_type"] == "usage.meeting_started":
            hosts.setdefault(rec["meeting_id"], set()).add(rec["payload"]["host_id"])
        if rec["event_type"] == "usage.participant_joined" and rec["payload"]["role"] == "host":
            hosts.setdefault(rec["meeting_id"], set()).add(rec["participant_id"])
    consented: set[str] = set()
    host_only: set[str] = set()
    why: Counter[str] = Counter()
    for rec in records:
        if not rec["event_type"].startswith("content."):
            continue
        at = _at(rec["event_ts"])
        scopes = {"account", f"meeting:{rec['meeting_id']}"}
        in_scope = [
            (t, d)
            for t, d in decided
            if d["account_id"] == rec["account_id"] and d["scope"] in scopes
        ]
        # A grant after the as-of time does not exist yet; a revoke counts whenever recorded.
        matching = [(t, d) for t, d in in_scope if t <= _at(as_of) or d["action"] == "revoke"]
        verdicts = [
            literal_subject(s, rec, matching, _at(as_of), why, rejected) for s in subjects_of(rec)
        ]
        if verdicts and all(verdicts):
            consented.add(rec["event_id"])
            continue
        training = [(t, d) for t, d in matching if d["purpose"] == "ai_training"]
        for t, g in training:
            if g["action"] != "grant" or t > at:
                continue
            if g["actor"] == "self" and g["subject_id"] not in hosts.get(rec["meeting_id"], ()):
                continue
            if _blocked(rejected, g["subject_id"], rec["account_id"]):
                continue
            if not any(
                d["action"] == "revoke" and d["subject_id"] == g["subject_id"] and u >= t
                for u, d in training
            ):
                host_only.add(rec["event_id"])
                break
    return consented, host_only, why


@pytest.fixture(scope="module")
def routed(
    sample: tuple[Path, dict[str, Any]], records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The records that reach routing: valid, not quarantined, a duplicate once."""
    quarantined = {p["event_id"] for p in sample[1]["planted"] if p["expect"] == "quarantine"}
    seen: dict[str, dict[str, Any]] = {}
    for rec in records:
        if rec["event_id"] not in quarantined:
            seen.setdefault(rec["event_id"], rec)
    assert all(contract_problem(rec) is None for rec in seen.values())
    return list(seen.values())


def test_consent_truth_shape(
    sample: tuple[Path, dict[str, Any]], routed: list[dict[str, Any]]
) -> None:
    truth = sample[1]
    consent = truth["consent"]
    assert consent["as_of"] == "2026-11-27T12:00:00Z"
    content = {r["event_id"] for r in routed if r["event_type"].startswith("content.")}
    assert consent["content_events"] == len(content) == truth["expected"]["restricted"]
    yes, host = consent["consented_event_ids"], consent["host_only_event_ids"]
    assert yes == sorted(set(yes)) and host == sorted(set(host))
    assert set(yes) <= content and set(host) <= content and not set(yes) & set(host)
    assert 0.1 <= len(yes) / len(content) <= 0.6
    assert 0 < len(host) < len(content) - len(yes), "the host-only rule is not all or nothing"
    assert all(n > 0 for n in consent["clauses"].values()), consent["clauses"]
    assert set(consent["clauses"]) == set(CONSENT_CLAUSES)
    assert all(n > 0 for n in consent["verdicts"].values()), consent["verdicts"]
    pairs = sum(len(subjects_of(r)) for r in routed if r["event_type"].startswith("content."))
    assert sum(consent["verdicts"].values()) == pairs


def test_consent_truth_matches_a_literal_reading(
    sample: tuple[Path, dict[str, Any]], routed: list[dict[str, Any]], ledger: list[dict[str, Any]]
) -> None:
    consent = sample[1]["consent"]
    rejected = rejected_ids(read_ledger(sample[0])[1])
    assert len(rejected) == consent["bad_ledger_rows"]
    consented, host_only, why = literal_consent(routed, ledger, consent["as_of"], rejected)
    assert sorted(consented) == consent["consented_event_ids"]
    assert sorted(host_only) == consent["host_only_event_ids"]
    # Every clause of the rule decides some subject of some record.
    for reason in (
        "consented_account",
        "consented_meeting",
        "revoked_after_as_of",
        "latest_grant_by_host",
        "latest_grant_by_admin",
        "own_grant_after_event",
        "revoked_before_event",
        "revoked_after_grant",
        "other_purpose",
        "none",
    ):
        assert why[reason] > 0, (reason, why)


def test_consent_truth_is_deterministic_and_seeded(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", events=2000, seed=21)["consent"]
    second = generate(tmp_path / "b", events=2000, seed=21)["consent"]
    other = generate(tmp_path / "c", events=2000, seed=22)["consent"]
    assert first == second and first["consented_event_ids"]
    assert other["consented_event_ids"] != first["consented_event_ids"]


# Hand-worked cases for the generator's own reading of the rule.
def _decision(subject: str, scope: str, action: str, actor: str, at: str, **kw: str) -> dict:
    return {
        "subject_id": subject,
        "account_id": kw.get("account", "acct-1"),
        "scope": scope,
        "purpose": kw.get("purpose", "ai_training"),
        "action": action,
        "actor": actor,
        "decided_at": at,
    }


_M1, _M2 = "meeting:mtg-1", "meeting:mtg-2"
HAND_LEDGER = [
    # The spec's example: alice grants for the meeting herself, the host grants for bob,
    # carol's account grant is revoked the next morning.
    _decision("alice", _M1, "grant", "self", "2026-11-26T08:55:00Z"),
    _decision("bob", _M1, "grant", "host", "2026-11-26T08:56:00Z"),
    _decision("carol", "account", "grant", "self", "2026-10-01T12:00:00Z"),
    _decision("carol", "account", "revoke", "self", "2026-11-27T07:00:00Z"),
    # dave: grant and revoke in one second (the revoke wins), then a grant at 10:00.
    _decision("dave", "account", "grant", "self", "2026-11-26T09:00:00Z"),
    _decision("dave", "account", "revoke", "admin", "2026-11-26T09:00:00Z"),
    _decision("dave", "account", "grant", "self", "2026-11-26T10:00:00Z"),
    # erin: revoked exactly at the as-of time; frank: one second later (counts all the same).
    _decision("erin", "account", "grant", "self", "2026-11-01T00:00:00Z"),
    _decision("erin", "account", "revoke", "self", "2026-11-27T12:00:00Z"),
    _decision("frank", "account", "grant", "self", "2026-11-01T00:00:00Z"),
    _decision("frank", "account", "revoke", "self", "2026-11-27T12:00:01Z"),
    # gina: account grant, revoked for meeting 2 only.
    _decision("gina", "account", "grant", "self", "2026-11-01T00:00:00Z"),
    _decision("gina", _M2, "revoke", "self", "2026-11-26T18:00:00Z"),
    # hal: other purpose only; ivy: own grant in another account; jo: admin grant then own.
    _decision("hal", "account", "grant", "self", "2026-11-01T00:00:00Z", purpose="support"),
    _decision("ivy", "account", "grant", "self", "2026-11-01T00:00:00Z", account="acct-2"),
    _decision("jo", "account", "grant", "admin", "2026-11-01T00:00:00Z"),
    _decision("jo", _M2, "grant", "self", "2026-11-26T09:30:00Z"),
]


@pytest.mark.parametrize(
    ("meeting", "at", "subjects", "consented"),
    [
        ("mtg-1", "2026-11-26T09:12:00.000Z", ["alice"], True),
        ("mtg-2", "2026-11-26T09:12:00.000Z", ["alice"], False),  # other meeting's scope
        ("mtg-1", "2026-11-26T08:54:59.999Z", ["alice"], False),  # before her grant
        ("mtg-1", "2026-11-26T08:55:00.000Z", ["alice"], True),  # at it
        ("mtg-1", "2026-11-26T09:12:00.000Z", ["bob"], False),  # the host's grant
        ("mtg-1", "2026-11-26T09:12:00.000Z", ["carol"], False),  # revoked before as-of
        ("mtg-1", "2026-11-26T09:12:00.000Z", ["alice", "bob"], False),
        ("mtg-1", "2026-11-26T09:12:00.000Z", [], False),  # no subjects
        ("mtg-1", "2026-11-26T09:30:00.000Z", ["dave"], False),  # the tie: revoked
        ("mtg-1", "2026-11-26T10:30:00.000Z", ["dave"], True),  # granted again
        ("mtg-1", "2026-11-26T09:12:00.000Z", ["erin"], False),
        ("mtg-1", "2026-11-26T09:12:00.000Z", ["frank"], False),
        ("mtg-1", "2026-11-26T09:12:00.000Z", ["gina"], True),
        ("mtg-2", "2026-11-26T09:12:00.000Z", ["gina"], False),
        ("mtg-1", "2026-11-26T09:12:00.000Z", ["hal"], False),
        ("mtg-1", "2026-11-26T09:12:00.000Z", ["ivy"], False),
        ("mtg-1", "2026-11-26T09:12:00.000Z", ["jo"], False),  # the admin's grant
        ("mtg-2", "2026-11-26T09:45:00.000Z", ["jo"], True),  # her own, later
        ("mtg-2", "2026-11-26T09:45:00.000Z", ["jo", "frank", "gina"], False),
        ("mtg-2", "2026-11-26T09:45:00.000Z", ["jo", "gina"], False),
    ],
)
def test_hand_worked_consent(meeting: str, at: str, subjects: list[str], consented: bool) -> None:
    truth = consent_truth_module.ConsentTruth(HAND_LEDGER, "2026-11-27T12:00:00Z")
    yes, _ = truth.meeting("acct-1", meeting, frozenset(), [("ev", at, tuple(subjects))])
    assert yes == (["ev"] if consented else [])


def test_hand_worked_host_only() -> None:
    ledger = [
        _decision("bob", _M1, "grant", "host", "2026-11-26T09:00:00Z"),
        _decision("carol", _M2, "grant", "self", "2026-11-26T09:00:00Z"),  # mtg-2's host
        _decision("carol", _M2, "revoke", "self", "2026-11-26T11:00:00Z"),
        _decision("carol", _M2, "grant", "self", "2026-11-26T12:00:00Z"),
        _decision("dan", "account", "grant", "admin", "2026-11-26T13:00:00Z", account="acct-2"),
        _decision("dan", "account", "revoke", "self", "2026-11-28T00:00:00Z", account="acct-2"),
        _decision("eve", _M1, "grant", "self", "2026-11-26T08:00:00Z"),  # not a host
    ]
    truth = consent_truth_module.ConsentTruth(ledger, "2026-11-27T12:00:00Z")

    def admitted(account: str, meeting: str, hosts: set[str], at: str) -> bool:
        events = [("ev", f"2026-11-26T{at}:00.000Z", ("zed",))]
        yes, host_only = truth.meeting(account, meeting, frozenset(hosts), events)
        return not yes and host_only == ["ev"]

    assert not admitted("acct-1", "mtg-1", set(), "08:30")  # eve's own grant stands for her
    assert admitted("acct-1", "mtg-1", set(), "09:30")  # the host's grant for bob
    assert not admitted("acct-1", "mtg-2", {"dan"}, "09:30")  # bob's grant was for mtg-1
    assert not admitted("acct-1", "mtg-2", {"carol"}, "10:00")  # carol revoked that grant
    assert admitted("acct-1", "mtg-2", {"carol"}, "12:30")  # her grant after the revoke
    assert not admitted("acct-1", "mtg-2", set(), "12:30")  # she does not host: hers alone
    assert not admitted("acct-2", "mtg-9", set(), "13:30")  # revoked after as-of: counts


@pytest.mark.parametrize(
    ("rejected", "consented"),
    [
        ([], True),
        ([("gina", "acct-1")], False),
        ([("gina", "acct-2")], True),
        ([("gina", None)], False),
        ([(None, "acct-1")], False),
        ([(None, "acct-2")], True),
        ([(None, None)], False),
    ],
    ids=[
        "none",
        "her row",
        "her row elsewhere",
        "subject only",
        "account only",
        "other account",
        "unreadable",
    ],
)
def test_hand_worked_rejected_rows(rejected, consented) -> None:
    truth = consent_truth_module.ConsentTruth(HAND_LEDGER, "2026-11-27T12:00:00Z", rejected)
    events = [("ev", "2026-11-26T09:12:00.000Z", ("gina",))]
    yes, _ = truth.meeting("acct-1", "mtg-1", frozenset(), events)
    assert yes == (["ev"] if consented else [])


# -- formats, shards, arguments -----------------------------------------------------------------
def test_shards_split_the_records(tmp_path: Path) -> None:
    truth = generate(tmp_path, events=2000, seed=4, shards=4)
    assert truth["files"] == [f"events-{i:05d}-of-00004.jsonl.gz" for i in range(4)]
    per_file = [
        sum(1 for line in read_lines(tmp_path, {"files": [name]}) if line.strip())
        for name in truth["files"]
    ]
    assert per_file == [500, 500, 500, 500]


def test_parquet_round_trips(tmp_path: Path) -> None:
    truth = generate(tmp_path, events=2000, seed=5, shards=2, fmt="parquet")
    assert truth["files"] == ["events-00000-of-00002.parquet", "events-00001-of-00002.parquet"]
    table = pa.concat_tables(pq.read_table(tmp_path / name) for name in truth["files"])
    assert table.num_rows == 2000 == truth["expected"]["input_records"]
    types = {f.name: f.type for f in table.schema}
    assert types.pop("schema_version") == pa.int64()
    assert set(types.values()) == {pa.string()}
    assert set(types) == ENVELOPE - {"schema_version"}
    assert (
        table.column("meeting_id").null_count > 0 and table.column("participant_id").null_count > 0
    )
    kinds = Counter(p["kind"] for p in truth["planted"])
    assert "not_utf8" not in kinds and kinds["not_json"] >= 3
    payloads = table.column("payload").to_pylist()
    for p in truth["planted"]:
        if p["needle"] is not None:
            assert any(p["needle"] in text for text in payloads)
    broken = 0
    for row in table.to_pylist():
        try:
            payload = json.loads(row["payload"])
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            broken += 1
            continue
        rec = {k: v for k, v in row.items() if v is not None or k.endswith("_id")}
        if contract_problem({**rec, "payload": payload}) is not None:
            assert row["event_id"] in {p["event_id"] for p in truth["planted"]}
    reasons = Counter(p["reason"] for p in truth["planted"] if p["event_id"] is None)
    assert broken == sum(reasons.values())
    assert set(reasons) == {"payload_not_json", "payload_not_object"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"events": 10},
        {"events": 5000, "shards": 0},
        {"events": 5000, "fmt": "csv"},
        {"events": 5000, "date": "26/11/2026"},
        {"events": 5000, "date": "2026-02-30"},
        {"events": 5000, "seed": -1},
    ],
    ids=["too-few-events", "no-shards", "unknown-format", "date-format", "no-such-day", "seed"],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, **kwargs)


def test_other_date(tmp_path: Path) -> None:
    generate(tmp_path, events=1000, seed=6, date="2027-01-05")
    first = parse(read_lines(tmp_path, {"files": ["events.jsonl.gz"]})[0])
    assert first["event_ts"].startswith("2027-01-05T")
    assert first["meeting_id"].startswith("mtg-20270105-")
