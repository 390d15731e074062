"""The string rule: values and templates earn their place in training by account counts."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipelines.chunk import EventChunk
from pipelines.config import load_config
from pipelines.errors import ConfigError
from pipelines.gate.fingerprint import fingerprints, fingerprints_of_many
from pipelines.gate.rows import account_prints, unearned_strings
from pipelines.rules.arrays import (
    hashes64,
    list_offsets,
    ranges,
    sorted_union,
    sorted_unique,
    unique_pairs,
)
from pipelines.rules.detectors import EchoIndex, KnownIdentifiers
from pipelines.rules.strings import (
    QualifiedStrings,
    StringRegistry,
    account_keys,
    cap_accounts,
    publish_column,
    published_vocabularies,
    qualified_of,
    template_of,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC_EXAMPLES = ROOT.parent / "shared" / "spec" / "examples-v1.jsonl"
CONFIG = load_config()
CONTRACT = CONFIG.contract()
EXAMPLES = {
    r["event_type"]: r
    for r in (json.loads(x) for x in SPEC_EXAMPLES.read_text().splitlines() if x.strip())
}
K = 5
FIELD = "diagnostic.log.message"


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("value", "template"),
    [
        ("ICE restart after 3 failures", "ICE restart after <num> failures"),
        ("6.2.5", "<num>"),
        ("upload failed: Acme_layoffs_2027.xlsx", "upload failed: <file>"),
        ("at Foo.bar (/Users/alice/src/foo.js:12:3)", "at Foo.bar (<path>:<num>)"),
        ("connect 10.0.0.1:443 failed", "connect <ip> failed"),
        ("::1", "<ip>"),
        ("127.0.0.1:9001", "<ip>"),
        ("fe80::1/64 up", "<ip> up"),
        ("mac 00:1A:2B:3C:4D:5E", "mac <mac>"),
        ("gps 37.7749,-122.4194", "gps <num>,-<num>"),
        ("trace 4bf92f3577b34da6a3ce929d0e0e4736", "trace <hex>"),
        ("build 0123456789abcdef0123456789abcdef01234567", "build <hex>"),
        ("req 123e4567-e89b-12d3-a456-426614174000 done", "req <id> done"),
        ('user bob@example.com said "hi there"', "user <email> said <quoted>"),
        ("GET https://x.example/a?b=1 502", "GET <url> <num>"),
        ("C:\\Users\\bob\\file.txt missing", "<path> missing"),
        ("token sk_live_abc123def456 rejected", "token <id> rejected"),
        ("Alice's iPhone", "Alice's iPhone"),
    ],
)
def test_template_masks_variable_parts_by_type_and_keeps_the_rest(value, template):
    assert template_of(value) == template
    assert template_of(template) == template  # a template is its own template


HOSTILE = [
    "Привет, как дела? Перезвони мне вечером",
    "مرحبا، هل يمكنك الاتصال بي لاحقا",
    "明日の会議は中止になりました。よろしく",
    "我们明天再谈这个合同的事情吧",
    "Kannst du mich nach dem Termin anrufen?",
    "see you at 5",
    "text=hey%20can%20you%20call%20me",
    "upload failed: Acme_layoffs_2027.xlsx",
    "Alice's iPhone",
    "crash in /Users/alice.smith/Library/zoom.log",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_text_keeps_its_words_in_the_template(value):
    # Words are never masked: a pasted chat line stays as unlikely to be common as its text.
    words = [w for w in value.replace("%20", " ").replace("=", " ").split() if w.isalpha()]
    assert all(w in template_of(value) for w in words)


# --------------------------------------------------------------------------- counting


def _keys(rows: list[tuple[str, str]], key: str = FIELD) -> pa.Table:
    accounts = pa.array([a for a, _ in rows], pa.string())
    values = pa.array([v for _, v in rows], pa.string())
    return account_keys(key, values, accounts)


def _qualified(rows: list[tuple[str, str]], k: int = K) -> QualifiedStrings:
    return QualifiedStrings(qualified_of(cap_accounts([_keys(rows)], k), k))


def test_the_unit_is_the_account_not_the_record():
    one_account = [("acct-1", "project Nightjar kickoff")] * 500
    assert len(_qualified(one_account)) == 0
    many = [(f"acct-{i}", "project Nightjar kickoff") for i in range(K)]
    assert len(_qualified(many)) == 2  # the value and its template


def test_k_minus_one_accounts_do_not_qualify():
    rows = [(f"acct-{i}", "jitter buffer underrun") for i in range(K - 1)] * 30
    assert len(_qualified(rows)) == 0


def test_accounts_are_capped_at_k_and_the_cap_is_order_free():
    rows = [(f"acct-{i}", f"retry {i} of 9") for i in range(40)]
    parts = [_keys(rows[i : i + 7]) for i in range(0, 40, 7)]
    capped = cap_accounts(parts, K)
    shuffled = parts[:]
    random.Random(3).shuffle(shuffled)
    again = cap_accounts([cap_accounts(shuffled[:3], K), cap_accounts(shuffled[3:], K)], K)
    assert capped.equals(again)
    # 40 distinct values of one account each, and one template of 40 accounts capped at K.
    assert capped.num_rows == 40 + K
    assert qualified_of(capped, K).size == 1


# --------------------------------------------------------------------------- publishing


def test_values_publish_raw_as_template_or_withheld():
    common_value = [(f"acct-{i}", "6.2.5") for i in range(K)]
    common_template = [(f"acct-{i}", f"ICE restart after {i + 2} failures") for i in range(K)]
    qualified = _qualified([*common_value, *common_template, ("acct-0", "see you at 5")])
    column = pa.array(["6.2.5", "ICE restart after 9 failures", "see you at 5", None])
    published, withheld, counts = publish_column(FIELD, column, qualified, StringRegistry())
    assert published.to_pylist() == ["6.2.5", "ICE restart after <num> failures", None, None]
    assert withheld.tolist() == [False, False, True, False]
    assert counts == {"value": 1, "template": 1, "withheld": 1}


def test_the_registry_approves_values_and_templates_ahead_of_any_count():
    registry = StringRegistry.from_mapping(
        {"k": K, "fields": {FIELD: {"values": ["echo canceller reset"], "templates": ["t <num>"]}}},
        "strings.json",
    )
    column = pa.array(["echo canceller reset", "t 42", "t x"])
    published, withheld, _ = publish_column(FIELD, column, QualifiedStrings(), registry)
    assert published.to_pylist() == ["echo canceller reset", "t <num>", None]
    assert withheld.tolist() == [False, False, True]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"k": 1, "fields": {}}, "k must be an integer >= 2"),
        ({"k": True, "fields": {}}, "k must be an integer >= 2"),
        ({"k": 5}, "fields must be a JSON object"),
        ({"k": 5, "fields": {FIELD: {"templates": ["retry 3"]}}}, "is not a template"),
        ({"k": 5, "fields": {FIELD: {"values": "x"}}}, "must be a list of strings"),
        ({"k": 5, "fields": {FIELD: {"value": []}}}, "must be an object with"),
    ],
    ids=["k-1", "k-bool", "no-fields", "not-a-template", "not-a-list", "misspelt-key"],
)
def test_a_bad_registry_is_a_config_error_naming_the_file(data, message):
    with pytest.raises(ConfigError, match=message) as failed:
        StringRegistry.from_mapping(data, "configs/strings.json")
    assert "configs/strings.json" in str(failed.value)


def test_the_shipped_registry_names_only_contract_fields(tmp_path):
    assert CONFIG.strings.k == K
    override = tmp_path / "o.json"
    override.write_text(json.dumps({"strings": {"fields": {"diagnostic.log.mesage": {}}}}))
    with pytest.raises(ConfigError, match=r"diagnostic\.log\.message"):
        load_config(override_file=override)


# --------------------------------------------------------------------------- the gate


def _log_table(messages: list[str | None]) -> pa.Table:
    n = len(messages)
    return pa.table(
        {
            "record_class": ["service_generated"] * n,
            "event_id": ["ps_" + "a" * 32] * n,
            "event_type": ["diagnostic.log"] * n,
            "level": ["warn"] * n,
            "message": pa.array(messages, pa.string()),
            "withheld_fields": pa.array([[] if m else ["message"] for m in messages]),
        }
    )


def _unearned(table: pa.Table, qualified: QualifiedStrings) -> dict[str, list[int]]:
    return {
        name: rows.tolist()
        for name, rows in unearned_strings(
            table,
            event_type="diagnostic.log",
            pseudonym_columns=["event_id"],
            pseudonym_pattern=r"^ps_[0-9a-f]{32}$",
            vocabularies=published_vocabularies(CONFIG.schemas),
            strings=qualified,
            registry=StringRegistry(),
        )
    }


def test_a_pseudonym_column_passes_what_the_pseudonym_pattern_matches_and_nothing_else():
    """The column is judged in RE2 first; where RE2 refuses, Python's `match` decides, so a
    final newline (which Python's `$` allows) is judged as Python judges it."""
    good = "ps_" + "0123456789abcdef" * 2
    ids = [good, good + "\n", good + "0", "PS_" + good[3:], "ps_" + "g" * 32, good + "\n\n"]
    table = _log_table(["jitter buffer underrun"] * len(ids))
    table = table.set_column(1, "event_id", pa.array(ids))
    qualified = _qualified([(f"acct-{i}", "jitter buffer underrun") for i in range(K)])

    flagged = _unearned(table, qualified)

    python = re.compile(r"^ps_[0-9a-f]{32}$")
    assert flagged == {"event_id": [i for i, v in enumerate(ids) if not python.match(v)]}
    assert flagged == {"event_id": [2, 3, 4, 5]}


def test_the_gate_check_passes_earned_strings_and_names_each_planted_one():
    qualified = _qualified(
        [(f"acct-{i}", f"ICE restart after {i} failures") for i in range(K)]
        + [(f"acct-{i}", "jitter buffer underrun") for i in range(K)]
    )
    clean = _log_table(["ICE restart after <num> failures", "jitter buffer underrun", None])
    assert _unearned(clean, qualified) == {}
    planted = _log_table(["jitter buffer underrun", "see you at 5", "ICE restart after 4 failures"])
    planted = planted.set_column(3, "level", pa.array(["warn", "loud", "warn"]))
    planted = planted.set_column(1, "event_id", pa.array(["ps_" + "a" * 32, "ev-7", None]))
    assert _unearned(planted, qualified) == {"event_id": [1], "level": [1], "message": [1, 2]}


# --------------------------------------------------------------------------- detectors stand down


def _joined(account: str, pid: str, name: str, device: str) -> bytes:
    base = EXAMPLES["usage.participant_joined"]
    record = {
        **base,
        "event_id": f"ev-{account}-{pid}",
        "account_id": account,
        "participant_id": pid,
        "payload": {**base["payload"], "user_name": name, "device": device},
    }
    return json.dumps(record).encode()


def _device_findings(lines: list[bytes]) -> dict[str, list[str]]:
    chunk = EventChunk.from_lines(CONTRACT, 0, 0, "in.jsonl", list(enumerate(lines, 1)))
    known = KnownIdentifiers.from_values(chunk.identifier_values(CONTRACT), 4)
    echo = EchoIndex.build(chunk.content_texts(CONTRACT), 4)
    strings = QualifiedStrings(qualified_of(chunk.string_keys(CONFIG, CONTRACT), CONFIG.strings.k))
    found = chunk.with_findings(CONFIG, CONTRACT, known, echo, strings)
    table = found.tables["usage.participant_joined"]
    out: dict[str, list[str]] = {}
    for device, findings in zip(
        table["device"].to_pylist(), table["_findings"].to_pylist(), strict=True
    ):
        for f in findings:
            if f["field"] == "device":
                out.setdefault(device, []).append(f["detector"])
    return out


def test_a_common_device_name_is_not_a_known_identifier_even_when_someone_is_called_so():
    # Somebody's display name is "iPhone"; the device "iPhone" comes from K accounts.
    lines = [_joined(f"acct-{i}", f"p-{i}", f"Person Number{i}", "iPhone") for i in range(K)]
    lines.append(_joined("acct-9", "p-9", "iPhone", "Windows"))
    assert _device_findings(lines) == {}


def test_a_rare_device_name_that_is_a_participant_is_still_flagged():
    lines = [_joined(f"acct-{i}", f"p-{i}", f"Person Number{i}", "Mac") for i in range(K)]
    lines.append(_joined("acct-9", "p-9", "Alice Johnson", "Alice Johnson's laptop"))
    assert _device_findings(lines) == {"Alice Johnson's laptop": ["known_identifier"]}


def test_an_email_in_a_common_value_still_fires():
    device = "kiosk owner ops.desk@corp.example"
    lines = [_joined(f"acct-{i}", f"p-{i}", f"Person Number{i}", device) for i in range(K)]
    assert set(_device_findings(lines)) == {device}
    assert "email" in _device_findings(lines)[device]


def test_hashes_are_unsigned_and_sorted():
    qualified = _qualified([(f"acct-{i}", "x") for i in range(K)])
    assert qualified.hashes.dtype == np.uint64
    assert np.all(np.diff(qualified.hashes.astype(np.float64)) >= 0)


@pytest.mark.parametrize("size", [0, 1, 5_000])
def test_unique_pairs_are_the_sorted_distinct_pairs(size: int) -> None:
    rng = np.random.default_rng(size)
    # Few keys and owners, so most pairs repeat; values past 2**63 as hashes are.
    keys = rng.choice(np.array([0, 7, 2**63 + 5, 2**64 - 1], np.uint64), size)
    owners = rng.choice(np.array([3, 2**64 - 2, 11], np.uint64), size)

    got_keys, got_owners = unique_pairs(keys, owners)

    expected = sorted(set(zip(keys.tolist(), owners.tolist(), strict=True)))
    assert list(zip(got_keys.tolist(), got_owners.tolist(), strict=True)) == expected
    assert got_keys.dtype == got_owners.dtype == np.uint64


@pytest.mark.parametrize("size", [0, 1, 2, 5_000])
@pytest.mark.parametrize("dtype", [np.uint64, np.int64])
def test_sorted_unique_is_the_sorted_distinct_values(size: int, dtype: type) -> None:
    rng = np.random.default_rng(size)
    edges = [0, 1, 2**63 - 1] if dtype is np.int64 else [0, 2**63 + 5, 2**64 - 1]
    values = rng.choice(np.array([*edges, 7, 7, 3], dtype), size)

    got = sorted_unique(values)

    assert got.tolist() == sorted(set(values.tolist()))
    assert got.dtype == dtype


def test_hashes64_is_a_stable_hash_of_each_texts_utf8() -> None:
    texts = ["", "a", "Zoë 名前", "a", "x" * 5_000]

    got = hashes64(texts)

    assert got.dtype == np.int64 and len(got) == 5
    assert got.tolist() == hashes64([t.encode("utf-8") for t in texts]).tolist()
    assert got[1] == got[3] and len(set(got.tolist())) == 4
    # The same key on every worker and run: a fixed value, not a per-process seed.
    assert got.tolist() == hashes64(list(texts)).tolist()
    assert hashes64([]).tolist() == []


def test_fingerprints_of_many_texts_are_each_texts_fingerprints() -> None:
    texts = [
        "ok",  # too short
        "see you Tuesday",  # hashed whole
        "the budget for next quarter is frozen until March",
        "Zoë\u2019s Straße — ΑΒΓ δεζ ηθι",
        "",
    ]

    hashes, sizes = fingerprints_of_many(texts)

    each = [fingerprints(t) for t in texts]
    assert sizes.tolist() == [len(h) for h in each] == [0, 1, 5, 2, 0]
    assert hashes.tolist() == [h for part in each for h in part.tolist()]


def test_account_prints_are_each_accounts_own_fingerprints() -> None:
    """Every account's texts are fingerprinted in one pass and cut back per account: an
    account with no strings, or only short ones, gets nothing, and no print crosses over."""
    pairs = [
        ("acct-z", 7),  # no strings at all
        ("acct-a", "the budget for next quarter is frozen"),
        ("acct-b", "ok"),
        ("acct-a", ["see you on tuesday then", "x"]),
        (None, "one two three four"),  # no account
        ("acct-d", {"note": "alpha beta gamma delta"}),
    ]

    got = account_prints(iter(pairs))

    assert sorted(got) == ["acct-a", "acct-d"]
    assert got["acct-a"].tolist() == sorted(
        {
            *fingerprints("the budget for next quarter is frozen").tolist(),
            *fingerprints("see you on tuesday then").tolist(),
        }
    )
    assert got["acct-d"].tolist() == sorted(set(fingerprints("alpha beta gamma delta").tolist()))
    assert account_prints(iter([])) == {}


def test_ranges_are_each_start_counted_on_end_to_end() -> None:
    starts, counts = np.array([5, 0, 9, 2]), np.array([3, 0, 1, 2])
    assert ranges(starts, counts).tolist() == [5, 6, 7, 9, 2, 3]
    assert ranges(np.array([], np.int64), np.array([], np.int64)).tolist() == []


def test_list_offsets_count_each_rows_items() -> None:
    assert list_offsets([0, 0, 2, 2, 2], 4).tolist() == [0, 2, 2, 5, 5]
    assert list_offsets([], 2).tolist() == [0, 0, 0]


def test_sorted_union_of_sorted_distinct_parts() -> None:
    a, b = np.array([1, 4, 9], np.int64), np.array([4, 5], np.int64)
    assert sorted_union([a, b]).tolist() == [1, 4, 5, 9]
    assert sorted_union([a]) is a
    empty = sorted_union([], np.uint64)
    assert empty.size == 0 and empty.dtype == np.uint64
