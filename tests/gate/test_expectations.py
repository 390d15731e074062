"""Expectation suites: clean tables pass, each planted leak fails by name, no value leaks out."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from functools import reduce
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipelines.config import load_config
from pipelines.errors import ConfigError, GateFailed
from pipelines.gate.expectations import (
    ExpectationsFailed,
    expand_template,
    load_suite_templates,
    merge_results,
    require_success,
    string_columns,
    validate_table,
)
from pipelines.run import RunRequest, run_job

HOME = Path(__file__).resolve().parents[2]
SERVICE = json.loads((HOME / "schemas/outputs/training.json").read_text(encoding="utf-8"))
CONTENT = json.loads((HOME / "schemas/outputs/consented_content.json").read_text(encoding="utf-8"))
SCHEMAS = {"service_generated": SERVICE, "consented_content": CONTENT}

COLUMNS_LIST = "expect_table_columns_to_match_ordered_list"
IN_SET = "expect_column_values_to_be_in_set"
NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
MATCH = "expect_column_values_to_match_regex"
NOT_MATCH_LIST = "expect_column_values_to_not_match_regex_list"

ROWS = 4
TS = pa.timestamp("us", tz="UTC")
KIND_TEXT = pa.struct([("kind", pa.string()), ("text", pa.string())])
ARROW_TYPES = {
    "string": pa.string(),
    "bool": pa.bool_(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "timestamp[us, tz=UTC]": TS,
    "list<item: string>": pa.list_(pa.string()),
    "list<item: struct<kind: string, text: string>>": pa.list_(KIND_TEXT),
}

# Planted leaks: each trips exactly one pattern and nothing else.
EMAIL = "alice.smith@example.org"
IPV4 = "10.42.7.19"
TOKEN_URL = "https://api.example.com/v1/rec?access_token=Zm9vYmFyYmF6cXV4"
HEX_40 = hashlib.sha1(b"planted").hexdigest()
BASE64_BLOB = base64.b64encode(bytes(range(7, 52))).decode()
RAW_ID = "alice-raw-id-7731"


@pytest.fixture(scope="module")
def templates() -> dict[str, dict]:
    return load_suite_templates(HOME)


def _pseudonym(seed: str) -> str:
    return "ps_" + hashlib.md5(seed.encode()).hexdigest()


def _crash_columns() -> dict[str, pa.Array]:
    """A clean diagnostic.crash table, column by column in the output schema's order."""
    values: dict[str, list[Any]] = {
        "record_class": ["service_generated"] * ROWS,
        "event_id": [_pseudonym(f"event-{i}") for i in range(ROWS)],
        "event_type": ["diagnostic.crash"] * ROWS,
        "event_ts": [dt.datetime(2026, 11, 26, 12, i, tzinfo=dt.UTC) for i in range(ROWS)],
        "account_id": [_pseudonym("account")] * ROWS,
        "meeting_id": [_pseudonym(f"meeting-{i % 2}") for i in range(ROWS)],
        "participant_id": [_pseudonym(f"participant-{i}") for i in range(ROWS - 1)] + [None],
        "schema_version": [1] * ROWS,
        "component": ["ui", "audio", "video", "network"],
        "error_code": ["E1710", "E2001", "E1710", "E0042"],
        "client_version": ["6.3.1", "6.2.5", "5.17.11", "6.1.12"],
        "os_version": ["15.1", "10", "Chrome 131", "18.1"],
        "stack_trace": [
            "at AudioDevice.open(audio_device.cc:51)\nat Session.onFrame(session.cc:90)",
            "at GpuContext.present(gpu_context.cc:317)",
            "at JitterBuffer.pop(jitter_buffer.cc:284)",
            "at Renderer.draw(renderer.cc:12)",
        ],
        "message": [
            "null pointer in renderer",
            "device lost",
            "buffer underrun after 1.2.3.4.5 retries",
            "websocket closed code 1006",
        ],
        "withheld_fields": [[], ["message"], [], ["stack_trace", "message"]],
    }
    types = {
        "event_ts": TS,
        "schema_version": pa.int64(),
        "withheld_fields": pa.list_(pa.string()),
    }
    return {
        name: pa.array(column, type=types.get(name, pa.string())) for name, column in values.items()
    }


def _table(columns: dict[str, pa.Array]) -> pa.Table:
    return pa.table(list(columns.values()), names=list(columns))


def _planted(column: str, row: int, value: Any) -> pa.Table:
    columns = _crash_columns()
    cells = columns[column].to_pylist()
    cells[row] = value
    columns[column] = pa.array(cells, type=columns[column].type)
    return _table(columns)


def _validate(table: pa.Table, templates: dict, *, event_type: str = "diagnostic.crash") -> dict:
    kind = "service_generated" if not event_type.startswith("content.") else "consented_content"
    schema = SCHEMAS[kind]
    return validate_table(
        table,
        kind=kind,
        event_type=event_type,
        columns=schema["x-columns-by-event-type"][event_type],
        pseudonym_columns=schema["x-pseudonym-columns"][event_type],
        templates=templates,
    )


def test_a_clean_service_table_passes(templates: dict) -> None:
    result = _validate(_table(_crash_columns()), templates)

    assert result["success"], result["failed"]
    assert result["failed"] == []
    assert result["rows"] == ROWS
    # columns, 2 sets, not-null, unique, 4 pseudonym columns (event_id among them), 8 other
    # string columns, and the withheld_fields list
    assert result["evaluated"] == 1 + 2 + 1 + 1 + 4 + 8 + 1
    assert result["statistics"]["successful_expectations"] == result["evaluated"]
    json.dumps(result)
    require_success(result)


def _with_extra_column() -> pa.Table:
    columns = _crash_columns()
    columns["network_type"] = pa.array(["wifi"] * ROWS)
    return _table(columns)


PLANTED = [
    pytest.param(_with_extra_column, "wifi", COLUMNS_LIST, None, 1, [15], id="extra-column"),
    pytest.param(
        lambda: _planted("record_class", 2, "customer_content"),
        "customer_content",
        IN_SET,
        "record_class",
        1,
        [2],
        id="record-class",
    ),
    pytest.param(
        lambda: _planted("event_type", 1, "diagnostic.log"),
        "diagnostic.log",
        IN_SET,
        "event_type",
        1,
        [1],
        id="event-type",
    ),
    pytest.param(
        lambda: _planted("participant_id", 1, RAW_ID),
        RAW_ID,
        MATCH,
        "participant_id",
        1,
        [1],
        id="bad-pseudonym",
    ),
    pytest.param(
        lambda: _planted("account_id", 3, _pseudonym("account") + "\n"),
        _pseudonym("account") + "\n",
        MATCH,
        "account_id",
        1,
        [3],
        id="pseudonym-trailing-newline",
    ),
    pytest.param(
        lambda: _planted("event_id", 3, _pseudonym("event-1")),
        _pseudonym("event-1"),
        UNIQUE,
        "event_id",
        2,
        [1, 3],
        id="duplicate-event-id",
    ),
    pytest.param(
        lambda: _planted("event_id", 2, None),
        None,
        NOT_NULL,
        "event_id",
        1,
        [2],
        id="null-event-id",
    ),
    pytest.param(
        lambda: _planted("message", 1, f"mail {EMAIL} for access"),
        EMAIL,
        NOT_MATCH_LIST,
        "message",
        1,
        [1],
        id="email",
    ),
    pytest.param(
        lambda: _planted("stack_trace", 0, f"at Socket.connect({IPV4}:443)"),
        IPV4,
        NOT_MATCH_LIST,
        "stack_trace",
        1,
        [0],
        id="ipv4",
    ),
    pytest.param(
        lambda: _planted("message", 3, f"fetch failed: {TOKEN_URL}"),
        "Zm9vYmFyYmF6cXV4",
        NOT_MATCH_LIST,
        "message",
        1,
        [3],
        id="access-token-url",
    ),
    pytest.param(
        lambda: _planted("error_code", 2, HEX_40),
        HEX_40,
        NOT_MATCH_LIST,
        "error_code",
        1,
        [2],
        id="hex-40",
    ),
    pytest.param(
        lambda: _planted("message", 0, f"payload {BASE64_BLOB} dropped"),
        BASE64_BLOB,
        NOT_MATCH_LIST,
        "message",
        1,
        [0],
        id="base64-blob",
    ),
]


@pytest.mark.parametrize(("build", "planted", "expectation", "column", "count", "rows"), PLANTED)
def test_each_planted_problem_fails_its_expectation_alone(
    templates: dict,
    build: Any,
    planted: str | None,
    expectation: str,
    column: str | None,
    count: int,
    rows: list[int],
) -> None:
    result = _validate(build(), templates)

    assert not result["success"]
    assert result["failed"] == [
        {
            "expectation": expectation,
            "column": column,
            "unexpected_count": count,
            "unexpected_examples": rows,
        }
    ]
    assert result["statistics"]["unsuccessful_expectations"] == 1
    if planted is not None:
        assert planted not in json.dumps(result)


def test_a_failed_result_raises_a_gate_error_that_keeps_the_details(templates: dict) -> None:
    result = _validate(_planted("message", 1, f"mail {EMAIL}"), templates)

    with pytest.raises(ExpectationsFailed) as raised:
        require_success(result)

    assert isinstance(raised.value, GateFailed)
    assert raised.value.result == result
    assert f"{NOT_MATCH_LIST}(message): 1" in str(raised.value)
    assert EMAIL not in str(raised.value)


def test_a_missing_key_column_fails_closed(templates: dict) -> None:
    columns = _crash_columns()
    del columns["event_id"]

    result = _validate(_table(columns), templates)

    assert not result["success"]
    failed = {(entry["expectation"], entry["column"]) for entry in result["failed"]}
    assert {(COLUMNS_LIST, None), (NOT_NULL, "event_id"), (UNIQUE, "event_id")} <= failed


# --- consented content --------------------------------------------------------------------


def _chat_table(*, recipients: list[list[str | None]], message: list[str]) -> pa.Table:
    n = len(message)
    sender = _pseudonym("sender")
    columns = {
        "record_class": pa.array(["customer_content"] * n),
        "event_id": pa.array([f"ev-1-{i}" for i in range(n)]),
        "event_type": pa.array(["content.chat_message"] * n),
        "event_ts": pa.array(
            [dt.datetime(2026, 11, 26, 9, i, tzinfo=dt.UTC) for i in range(n)], TS
        ),
        "account_id": pa.array([_pseudonym("account")] * n),
        "meeting_id": pa.array([_pseudonym("meeting")] * n),
        "participant_id": pa.array([sender] * n),
        "schema_version": pa.array([1] * n, pa.int64()),
        "sender_id": pa.array([sender] * n),
        "recipients": pa.array(recipients, pa.list_(pa.string())),
        "message": pa.array(message),
        "file_name": pa.array([None] * n, pa.string()),
    }
    return _table(columns)


def test_consented_content_allows_words_and_blobs_but_checks_every_list_item(
    templates: dict,
) -> None:
    everyone = [_pseudonym("r1"), _pseudonym("r2")]
    clean = _chat_table(
        recipients=[everyone, [], [everyone[0], None]],
        message=[
            "Lunch just arrived so I'm stepping away for five minutes",
            f"the build hash is {HEX_40}",
            "mail [REDACTED:email] about it",
        ],
    )
    assert _validate(clean, templates, event_type="content.chat_message")["success"]

    leaky = _chat_table(
        recipients=[everyone, [everyone[0], RAW_ID], everyone],
        message=["ok", "ok", f"write to {EMAIL}"],
    )
    result = _validate(leaky, templates, event_type="content.chat_message")

    assert result["failed"] == [
        {
            "expectation": MATCH,
            "column": "recipients",
            "unexpected_count": 1,
            "unexpected_examples": [1],
        },
        {
            "expectation": NOT_MATCH_LIST,
            "column": "message",
            "unexpected_count": 1,
            "unexpected_examples": [2],
        },
    ]
    assert RAW_ID not in json.dumps(result)
    assert EMAIL not in json.dumps(result)


def test_consented_content_scans_strings_inside_structs(templates: dict) -> None:
    board = _pseudonym("board")
    elements = [[{"kind": "text", "text": "Top risks"}], [{"kind": "text", "text": f"ask {EMAIL}"}]]
    columns = {
        "record_class": pa.array(["customer_content"] * 2),
        "event_id": pa.array(["ev-2-0", "ev-2-1"]),
        "event_type": pa.array(["content.whiteboard"] * 2),
        "event_ts": pa.array([dt.datetime(2026, 11, 26, tzinfo=dt.UTC)] * 2, TS),
        "account_id": pa.array([_pseudonym("account")] * 2),
        "meeting_id": pa.array([_pseudonym("meeting")] * 2),
        "participant_id": pa.array([_pseudonym("p")] * 2),
        "schema_version": pa.array([1, 1], pa.int64()),
        "board_id": pa.array([board, board]),
        "elements": pa.array(elements, pa.list_(KIND_TEXT)),
    }

    result = _validate(_table(columns), templates, event_type="content.whiteboard")

    assert result["failed"] == [
        {
            "expectation": NOT_MATCH_LIST,
            "column": "elements",
            "unexpected_count": 1,
            "unexpected_examples": [1],
        }
    ]


# --- templates ----------------------------------------------------------------------------


def _arrow_schema(document: dict, event_type: str) -> pa.Schema:
    properties = document["$defs"][event_type]["properties"]
    return pa.schema(
        [
            pa.field(name, ARROW_TYPES[properties[name]["x-arrow-type"]])
            for name in document["x-columns-by-event-type"][event_type]
        ]
    )


RECORD_CLASS = {"service_generated": "service_generated", "consented_content": "customer_content"}


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


CASES = [(kind, et) for kind, doc in SCHEMAS.items() for et in doc["x-columns-by-event-type"]]


@pytest.mark.parametrize(("kind", "event_type"), CASES, ids=[et for _, et in CASES])
def test_templates_expand_per_event_type_from_the_output_schemas(
    templates: dict, kind: str, event_type: str
) -> None:
    document = SCHEMAS[kind]
    schema = _arrow_schema(document, event_type)
    pseudonyms = document["x-pseudonym-columns"][event_type]

    expanded = expand_template(
        templates[kind],
        event_type=event_type,
        columns=document["x-columns-by-event-type"][event_type],
        pseudonym_columns=pseudonyms,
        schema=schema,
    )

    def columns_of(expectation: str) -> list[str]:
        return [e["kwargs"]["column"] for e in expanded if e["type"] == expectation]

    assert [e["kwargs"]["column_list"] for e in expanded if e["type"] == COLUMNS_LIST] == [
        document["x-columns-by-event-type"][event_type]
    ]
    sets = {
        e["kwargs"]["column"]: e["kwargs"]["value_set"] for e in expanded if e["type"] == IN_SET
    }
    assert sets == {"record_class": [RECORD_CLASS[kind]], "event_type": [event_type]}
    assert columns_of(MATCH) == pseudonyms
    strings = [
        f.name
        for f in schema
        if f.name not in pseudonyms and (f.type == pa.string() or pa.types.is_list(f.type))
    ]
    assert columns_of(NOT_MATCH_LIST) == strings
    assert not any(str(v).startswith("$") for e in expanded for v in _leaves(e["kwargs"]))
    for e in expanded:
        if e["type"] == MATCH and pa.types.is_list(schema.field(e["kwargs"]["column"]).type):
            assert "\\n" in e["kwargs"]["regex"]


def test_consented_content_skips_the_blob_patterns(templates: dict) -> None:
    service = templates["service_generated"]["patterns"]
    content = templates["consented_content"]["patterns"]

    assert {"long_hex", "long_base64"} <= set(service)
    assert not {"long_hex", "long_base64"} & set(content)
    for name in ("pseudonym", "email", "ipv4", "secret_url_parameter"):
        assert content[name] == service[name], name


def _suite(**changes: Any) -> dict:
    suite = json.loads(
        (HOME / "configs/expectations/training_service_generated.json").read_text(encoding="utf-8")
    )
    suite.update(changes)
    return suite


def _expectation(type_: str, kwargs: dict, why: str = "a reason") -> dict:
    return {"type": type_, "kwargs": kwargs, "meta": {"why": why}}


MALFORMED = [
    pytest.param(
        {k: v for k, v in _suite().items() if k != "expectations"},
        "expectations",
        id="no-expectations",
    ),
    pytest.param(_suite(kind="restricted"), "kind", id="unknown-kind"),
    pytest.param(
        _suite(patterns={"email": {"regex": "(", "why": "x"}}),
        "patterns.email.regex",
        id="bad-regex",
    ),
    pytest.param(_suite(patterns={"email": {"regex": "@"}}), "patterns.email", id="pattern-no-why"),
    pytest.param(
        _suite(expectations=[_expectation("expect_column_values_to_be_secret", {"column": "a"})]),
        "expectations[0].type",
        id="unknown-type",
    ),
    pytest.param(
        _suite(expectations=[_expectation(NOT_NULL, {"column": "a", "colour": "red"})]),
        "expectations[0].kwargs.colour",
        id="unknown-kwarg",
    ),
    pytest.param(
        _suite(expectations=[_expectation(NOT_NULL, {"column": "event_id", "mostly": 0.99})]),
        "expectations[0].kwargs.mostly",
        id="mostly",
    ),
    pytest.param(
        _suite(expectations=[_expectation(MATCH, {"column": "a", "regex": "$pattern:nope"})]),
        "expectations[0].kwargs.regex",
        id="unknown-pattern",
    ),
    pytest.param(
        _suite(expectations=[_expectation(COLUMNS_LIST, {"column_list": "$colums"})]),
        "expectations[0].kwargs.column_list",
        id="unknown-placeholder",
    ),
    pytest.param(
        _suite(expectations=[{"type": NOT_NULL, "kwargs": {"column": "a"}, "meta": {}}]),
        "expectations[0].meta.why",
        id="no-why",
    ),
    pytest.param(
        _suite(
            patterns={"loose": {"regex": "ps_", "why": "x"}},
            expectations=[
                _expectation(MATCH, {"column": "$each_pseudonym_column", "regex": "$pattern:loose"})
            ],
        ),
        "expectations[0].kwargs.regex",
        id="unanchored-pseudonym",
    ),
]


@pytest.mark.parametrize(("document", "key"), MALFORMED)
def test_a_malformed_suite_names_the_file_and_key(tmp_path: Path, document: dict, key: str) -> None:
    folder = tmp_path / "configs" / "expectations"
    folder.mkdir(parents=True)
    path = folder / "training_service_generated.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_suite_templates(tmp_path)

    assert str(path) in str(raised.value)
    assert key in str(raised.value)


def test_unreadable_or_missing_suites_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no expectation suites"):
        load_suite_templates(tmp_path)
    folder = tmp_path / "configs" / "expectations"
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.json"):
        load_suite_templates(tmp_path)
    (folder / "broken.json").unlink()
    (folder / "service.json").write_text(json.dumps(_suite()), encoding="utf-8")
    with pytest.raises(ConfigError, match="consented_content"):
        load_suite_templates(tmp_path)


# --- merging ------------------------------------------------------------------------------


def test_merge_results_sums_counts_ands_success_and_caps_examples(templates: dict) -> None:
    def shard(*rows: int) -> dict:
        columns = _crash_columns()
        cells = columns["message"].to_pylist()
        for row in rows:
            cells[row] = f"mail {EMAIL}"
        columns["message"] = pa.array(cells)
        return _validate(_table(columns), templates)

    shards = [shard(), shard(0, 2), shard(1, 3)]

    merged = reduce(merge_results, shards)

    assert not merged["success"]
    assert merged["rows"] == 3 * ROWS
    assert merged["evaluated"] == sum(s["evaluated"] for s in shards)
    assert merged["statistics"]["unsuccessful_expectations"] == 2
    assert merged["failed"] == [
        {
            "expectation": NOT_MATCH_LIST,
            "column": "message",
            "unexpected_count": 4,
            "unexpected_examples": [0, 2, 1],
        }
    ]
    assert merge_results(shards[0], shards[0])["success"]
    other = {**shards[0], "event_type": "diagnostic.log"}
    with pytest.raises(ValueError, match="event_type"):
        merge_results(shards[0], other)


def test_kwargs_that_only_fail_once_filled_name_the_file_and_key(tmp_path: Path) -> None:
    folder = tmp_path / "configs" / "expectations"
    folder.mkdir(parents=True)
    for kind in ("service_generated", "consented_content"):
        # value_set wants a list; "$event_type" fills in a bare string.
        suite = _suite(
            kind=kind,
            expectations=[
                _expectation(IN_SET, {"column": "event_type", "value_set": "$event_type"})
            ],
        )
        (folder / f"{kind}.json").write_text(json.dumps(suite), encoding="utf-8")
    templates = load_suite_templates(tmp_path)

    with pytest.raises(ConfigError) as raised:
        _validate(_table(_crash_columns()), templates)

    assert str(folder / "service_generated.json") in str(raised.value)
    assert "expectations[0].kwargs" in str(raised.value)


# --- where GE is imported -----------------------------------------------------------------


def test_loading_the_config_leaves_ge_unimported() -> None:
    # Commands that never run the gate (explain, purge, report) pay no GE import (seconds).
    probe = (
        "import sys; from pipelines.config import load_config; load_config(); "
        "print('great_expectations' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=HOME, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_a_run_refuses_an_unknown_expectation_before_any_work(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "configs" / "expectations"
    folder.mkdir(parents=True)
    expect = {
        "service_generated": "expect_column_values_to_be_secret",
        "consented_content": NOT_NULL,
    }
    for kind, type_name in expect.items():
        one = _expectation(type_name, {"column": "event_id"})
        (folder / f"{kind}.json").write_text(
            json.dumps(_suite(kind=kind, expectations=[one])), encoding="utf-8"
        )
    config = replace(load_config(), expectations=load_suite_templates(tmp_path, check_types=False))
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", "k" * 40)
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n", encoding="utf-8")
    out = tmp_path / "out"

    with pytest.raises(ConfigError) as raised:
        run_job(RunRequest(inputs=[str(events)], out=str(out)), config=config)

    assert str(folder / "service_generated.json") in str(raised.value)
    assert "expectations[0].type" in str(raised.value)
    assert not out.exists()


@pytest.mark.parametrize("kind", [pa.list_(pa.string()), pa.large_list(pa.string())])
def test_list_cells_are_read_as_their_string_items_joined(kind: pa.DataType) -> None:
    cells = [["a", "b"], None, [], [None], ["x", None, "y"], ["z"]]
    table = pa.table(
        {
            "withheld_fields": pa.chunked_array(
                [pa.array(cells[:4], kind), pa.array(cells[4:], kind)]
            )
        }
    )

    [(name, joined)] = list(string_columns(table))

    assert name == "withheld_fields"
    assert joined.to_pylist() == ["a\nb", None, None, None, "x\ny", "z"]
    assert joined.type == pa.string()
