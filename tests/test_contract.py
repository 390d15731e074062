"""schemas/ must say exactly what input-contract-v1.md says, and the validators must enforce it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest

from pipelines.contract import ENVELOPE_FIELDS, load_contract, parse_timestamp
from pipelines.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT.parent / "shared" / "spec"

# Transcribed from input-contract-v1.md: event type -> {payload field: category}.
_MEDIA = dict.fromkeys(
    ("direction", "bitrate_kbps", "latency_ms", "jitter_ms", "avg_loss_pct", "max_loss_pct"),
    "service",
)
_VIDEO = {**_MEDIA, "resolution": "service", "frame_rate": "service", "codec": "service"}
CONTRACT = {
    "qos.audio": {**_MEDIA, "codec": "service", "audio_level": "derived"},
    "qos.video": _VIDEO,
    "qos.screen_share": _VIDEO,
    "qos.system": dict.fromkeys(
        ("cpu_usage_pct", "memory_mb", "network_type", "data_center", "connection_type"), "service"
    ),
    "usage.participant_joined": {
        **dict.fromkeys(("user_name", "email", "ip_address", "location"), "identifier"),
        **dict.fromkeys(
            ("device", "os_version", "client_version", "network_type", "role"), "service"
        ),
    },
    "usage.participant_left": {"leave_reason": "free_text", "duration_s": "service"},
    "usage.meeting_started": {
        "topic": "content",
        "host_id": "identifier",
        "meeting_type": "service",
        "scheduled_duration_min": "service",
    },
    "usage.meeting_ended": dict.fromkeys(
        ("duration_s", "participant_count", "peak_participants"), "service"
    ),
    "usage.feature_used": dict.fromkeys(("feature", "action", "count"), "service"),
    "diagnostic.crash": {
        **dict.fromkeys(("component", "error_code", "client_version", "os_version"), "service"),
        "stack_trace": "free_text",
        "message": "free_text",
    },
    "diagnostic.log": {"level": "service", "component": "service", "message": "free_text"},
    "content.chat_message": {
        "sender_id": "identifier",
        "recipients": "identifier",
        "message": "content",
        "file_name": "content",
    },
    "content.transcript_segment": {
        "speaker_id": "identifier",
        "text": "content",
        **dict.fromkeys(("start_ms", "end_ms", "language", "confidence"), "service"),
    },
    "content.caption": {"speaker_id": "identifier", "text": "content"},
    "content.audio_chunk": {
        **dict.fromkeys(("codec", "sample_rate", "duration_ms"), "service"),
        "data_b64": "content",
        "participants": "identifier",
    },
    "content.video_frame": {
        **dict.fromkeys(("codec", "width", "height"), "service"),
        "data_b64": "content",
    },
    "content.recording_file": {
        "file_type": "service",
        "file_size": "service",
        "download_url": "content",
        "participants": "identifier",
    },
    "content.whiteboard": {"board_id": "identifier", "elements": "content"},
    "content.poll_answer": {"poll_id": "identifier", "question": "content", "answer": "content"},
    "content.shared_file": {
        "file_name": "content",
        "mime_type": "service",
        "size": "service",
        "uri": "content",
    },
    "content.ai_summary": {
        "summary_text": "content",
        "next_steps": "content",
        "participants": "identifier",
    },
}
ENVELOPE = {
    "event_id": "service",
    "event_type": "service",
    "event_ts": "service",
    "account_id": "identifier",
    "meeting_id": "identifier",
    "participant_id": "identifier",
    "schema_version": "service",
}
SUBJECTS = {
    "content.chat_message": {"field": "sender_id"},
    "content.transcript_segment": {"field": "speaker_id"},
    "content.caption": {"field": "speaker_id"},
    "content.audio_chunk": {"list_field": "participants"},
    "content.video_frame": {"envelope": "participant_id"},
    "content.recording_file": {"list_field": "participants"},
    "content.whiteboard": {"envelope": "participant_id"},
    "content.poll_answer": {"envelope": "participant_id"},
    "content.shared_file": {"envelope": "participant_id"},
    "content.ai_summary": {"list_field": "participants"},
}


@pytest.fixture(scope="module")
def contract():
    return load_contract(ROOT / "schemas")


@pytest.fixture(scope="module")
def examples():
    return [json.loads(line) for line in (SPEC / "examples-v1.jsonl").read_text().splitlines()]


def test_schemas_hold_every_type_field_and_category(contract):
    found = {
        name: {f.name: f.category for f in spec.fields}
        for name, spec in contract.event_types.items()
    }
    assert found == CONTRACT
    assert {f.name: f.category for f in contract.envelope} == ENVELOPE
    assert tuple(ENVELOPE) == ENVELOPE_FIELDS


def test_record_classes_and_subjects_follow_the_contract(contract):
    for name, spec in contract.event_types.items():
        expected = "customer_content" if name.startswith("content.") else "service_generated"
        assert spec.record_class == expected, name
        assert spec.subjects == SUBJECTS.get(name), name


def test_the_spec_names_the_same_21_event_types(contract):
    text = (SPEC / "input-contract-v1.md").read_text()
    named = set(re.findall(r"^\| (\w+\.\w+) \|", text, flags=re.MULTILINE))
    assert named == set(contract.event_types) and len(named) == 21


def test_every_schema_file_is_valid_draft_2020_12():
    for path in sorted((ROOT / "schemas").rglob("*.json")):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_spec_examples_conform(contract, examples):
    assert len(examples) == 21
    assert [contract.validate(r) for r in examples] == [None] * 21


def test_consent_examples_conform(contract):
    rows = [json.loads(x) for x in (SPEC / "consent-examples-v1.jsonl").read_text().splitlines()]
    assert [contract.validate_consent(r) for r in rows] == [None] * len(rows)
    bad = {**rows[0], "actor": "owner"}
    assert contract.validate_consent(bad).code == "bad_value"


def _mutate(record, path, value):
    target = record
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()
BAD = [
    ("unknown type", ("event_type",), "qos.bandwidth", "unknown_event_type"),
    ("other letter case", ("event_type",), "QoS.Audio", "unknown_event_type"),
    ("stray spaces", ("event_type",), " qos.audio ", "unknown_event_type"),
    ("type not a string", ("event_type",), 7, "wrong_type"),
    ("number as string", ("payload", "latency_ms"), "92", "wrong_type"),
    ("bool as number", ("payload", "latency_ms"), True, "wrong_type"),
    ("missing envelope field", ("account_id",), _DELETE, "missing_field"),
    ("missing payload field", ("payload", "codec"), _DELETE, "missing_field"),
    ("undeclared payload field", ("payload", "extra"), 1, "undeclared_field"),
    ("undeclared top field", ("extra",), 1, "undeclared_field"),
    ("bad timestamp", ("event_ts",), "yesterday", "bad_timestamp"),
    ("timestamp without zone", ("event_ts",), "2026-11-26T09:00:00", "bad_timestamp"),
    ("schema version 2", ("schema_version",), 2, "bad_value"),
    ("enum outside", ("payload", "direction"), "sideways", "bad_value"),
    ("payload not object", ("payload",), [], "wrong_type"),
    ("null account", ("account_id",), None, "wrong_type"),
]


@pytest.mark.parametrize(("path", "value", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_broken_record_gets_its_reason(contract, examples, path, value, code):
    record = copy.deepcopy(examples[0])
    assert contract.validate(record) is None
    _mutate(record, path, value)
    found = contract.validate(record)
    assert found is not None and found.code == code


@pytest.mark.parametrize(("path", "value", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_the_screen_keeps_every_broken_record_for_the_exact_check(
    contract, examples, path, value, code
):
    """The column screen may suspect good records, never clear a bad one."""
    good = copy.deepcopy(examples[0])
    broken = copy.deepcopy(good)
    _mutate(broken, path, value)
    records = [good, broken, copy.deepcopy(good)]
    if broken.get("event_type") in contract.event_types:
        group = [r for r in records if r.get("event_type") == good["event_type"]]
        assert contract.screen(good["event_type"], group) == {1}


@pytest.mark.parametrize(("path", "value", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_long_column_sends_only_the_broken_record_to_the_exact_check(
    contract, examples, path, value, code
):
    """Columns longer than a screen block, timestamps of both forms: one broken record is
    found where it is, and the good records of every other block are cleared."""
    good = copy.deepcopy(examples[0])
    records = [copy.deepcopy(good) for _ in range(3000)]
    for i in range(0, 3000, 7):
        records[i]["event_ts"] = "2026-11-26T11:00:00+02:00"
    _mutate(records[2500], path, value)
    if records[2500].get("event_type") == good["event_type"]:
        assert contract.screen(good["event_type"], records) == {2500}
        assert contract.validate(records[2500]).code == code


@pytest.mark.parametrize(
    "account", ["acct-1\n", "acct-\ud800", "\u0661acct", "acct 1", "acct-" + "x" * 255]
)
def test_the_pattern_screen_rejects_what_the_exact_check_rejects(contract, examples, account):
    """A final newline, a lone surrogate (no UTF-8 for Arrow), a non-ASCII digit, a space or
    too many characters: the screen never clears what the pattern refuses."""
    records = [copy.deepcopy(examples[0]) for _ in range(3)]
    records[1]["account_id"] = account
    assert contract.validate(records[1]).code == "bad_value"
    assert contract.screen(records[0]["event_type"], records) == {1}


def test_the_screen_clears_conforming_records(contract, examples):
    for record in examples:
        assert contract.screen(record["event_type"], [record, record]) == set()


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2026-11-26T09:00:00.518Z", True),
        ("2024-02-29T23:59:59Z", True),
        ("2023-02-29T23:59:59Z", False),
        ("2026-04-31T00:00:00Z", False),
        ("2026-11-26T24:00:00Z", False),
        ("2026-11-26T23:59:60Z", False),
        ("2026-13-01T00:00:00Z", False),
        ("0000-01-01T00:00:00Z", False),
        ("2026-11-26T09:00:00.1234567Z", True),
        ("2026-11-26T09:00:00+02:00", True),
    ],
)
def test_the_timestamp_screen_agrees_with_parse_timestamp(contract, examples, text, ok):
    assert (parse_timestamp(text) is not None) == ok
    records = [copy.deepcopy(examples[0]) for _ in range(3)]
    records[1]["event_ts"] = text
    assert contract.screen(records[0]["event_type"], records) == (set() if ok else {1})


@pytest.mark.parametrize(
    ("path", "value"),
    [(("meeting_id",), None), (("participant_id",), None), (("participant_id",), _DELETE)],
    ids=["null meeting", "null participant", "no participant"],
)
def test_optional_envelope_fields_may_be_null_or_absent(contract, examples, path, value):
    record = copy.deepcopy(examples[0])
    _mutate(record, path, value)
    assert contract.validate(record) is None


def test_our_validator_agrees_with_jsonschema_on_payloads(contract, examples):
    """The compiled validator and the reference implementation accept the same payloads."""
    for record in examples:
        schema = json.loads(
            (ROOT / "schemas" / "events" / "v1" / f"{record['event_type']}.json").read_text()
        )
        reference = jsonschema.Draft202012Validator(schema)
        variants = [record["payload"]]
        for key in record["payload"]:
            for value in ("x", 1, 1.5, None, [], {}, True, ["a"]):
                variants.append({**record["payload"], key: value})
        for payload in variants:
            ours = contract.event_types[record["event_type"]].check(payload, "$") is None
            assert ours == reference.is_valid(payload), (record["event_type"], payload)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2026-11-26T09:00:00Z", True),
        ("2026-11-26T09:00:00.123456789+02:00", True),
        ("2026-11-26t09:00:00z", True),
        ("2026-02-30T09:00:00Z", False),
        ("2026-11-26 09:00:00Z", False),
        ("2026-11-26T09:00:00", False),
    ],
)
def test_rfc3339_timestamps(text, ok):
    assert (parse_timestamp(text) is not None) == ok


def test_unsupported_schema_keyword_is_a_config_error(tmp_path):
    import shutil

    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    path = tmp_path / "schemas" / "events" / "v1" / "qos.audio.json"
    schema = json.loads(path.read_text())
    schema["properties"]["codec"]["oneOf"] = [{"type": "string"}]
    path.write_text(json.dumps(schema))
    with pytest.raises(ConfigError, match=r"qos\.audio\.json.*oneOf"):
        load_contract(tmp_path / "schemas")


def test_a_column_of_mixed_timestamp_forms_keeps_each_instant(contract, examples):
    """Plain UTC texts are cast in Arrow, the rest parsed one by one: each row its own instant."""
    from pipelines.rules.classify import classify_records

    texts = [
        "2026-11-26T09:00:00.518Z",
        "2026-11-26T11:00:00+02:00",
        "9999-12-31T23:59:59.9999999Z",
        "2026-11-26t09:00:00z",
        "0001-01-01T00:00:00Z",
        "2026-11-26T09:00:00.123456789-00:30",
    ]
    records = []
    for i, text in enumerate(texts):
        record = copy.deepcopy(examples[0])
        record["event_id"], record["event_ts"] = f"ev-{i}", text
        records.append(record)

    found = classify_records(contract, [(i, r, None, None) for i, r in enumerate(records)])

    [table] = found.tables.values()
    assert found.rejects.num_rows == 0
    assert table["event_ts"].to_pylist() == [parse_timestamp(t) for t in texts]


def test_the_screen_leaves_the_fields_every_record_has_in_record_order(contract, examples):
    """What the screen hands classify in place of a second read of the records: each field
    as read from every record, in order; a field one record lacks is not handed over."""
    from pipelines.contract import Columns

    records = [copy.deepcopy(examples[0]) for _ in range(4)]
    for i, record in enumerate(records):
        record["event_id"] = f"ev-{i}"
    del records[2]["participant_id"]
    first_field = next(iter(records[0]["payload"]))
    records[3]["payload"][first_field] = ["not", "its", "type"]
    read = Columns()

    suspects = contract.screen(records[0]["event_type"], records, read)

    assert suspects == {3}
    assert read.envelope["event_id"] == [f"ev-{i}" for i in range(4)]
    assert "participant_id" not in read.envelope
    assert read.payload[first_field] == [r["payload"][first_field] for r in records]
    assert set(read.payload) == set(records[0]["payload"])


def test_classify_types_the_records_left_after_a_reject_as_it_types_a_clean_group(
    contract, examples
):
    """The screen's columns, thinned to the records kept, give the table a group without the
    reject gives: same rows, same order, same positions."""
    from pipelines.rules.classify import classify_records

    records = [copy.deepcopy(examples[0]) for _ in range(5)]
    for i, record in enumerate(records):
        record["event_id"] = f"ev-{i}"
    records[2]["event_ts"] = "2026-02-30T09:00:00Z"
    clean = [(i, r, None, None) for i, r in enumerate(records) if i != 2]

    found = classify_records(contract, [(i, r, None, None) for i, r in enumerate(records)])
    expected = classify_records(contract, clean)

    assert found.rejects.column("reason").to_pylist() == ["bad_timestamp"]
    assert found.tables == expected.tables
    [table] = found.tables.values()
    assert table["event_id"].to_pylist() == ["ev-0", "ev-1", "ev-3", "ev-4"]


@pytest.mark.parametrize(
    ("pattern", "texts"),
    [
        ("^(?=.*x)[a-z]+$", ["abx", "abc"]),  # a lookahead: RE2 refuses it, Python judges
        ("^a{,3}$", ["aaa", "a{,3}", "aaaa"]),  # a repeat to Python, a literal to RE2
        ("^[0-9]{1,5}x[0-9]{1,5}$", ["1280x720", "1280x720\n", "\uff11280x720"]),
        ("^(account|meeting:.+)$", ["account", "meeting:\n", "meeting:m-1"]),
    ],
)
def test_a_pattern_column_is_judged_as_python_judges_each_text(pattern, texts):
    from pipelines import contract as module

    check = module._column_check({"type": "string", "pattern": pattern}, "test")
    for text in texts:
        assert check([text]) == (module._python_pattern(pattern).search(text) is not None), text
