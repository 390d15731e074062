"""Vendor-shaped corpora: same seed same bytes, the facts file's hard cases, an honest truth."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipelines.generate import SOURCES, generate

VENDORS = SOURCES[1:]
EVENTS = 400

# Hard cases of the facts file (sources/vendor-payloads.md) each corpus must hold, by source.
HARD_CASES = {
    "zoom-webhook": {
        "topic_names_host",
        "id_as_int",
        "id_as_str",
        "uuid_with_slash_or_plus",
        "guest_empty_email",
        "email_as_user_name",
        "leave_reason_free_text",
        "customer_key_free_form",
        "chat_text_in_event",
        "chat_message_vs_message_content",
        "chat_file_name",
        "download_token",
        "password_in_recording_event",
        "recording_file_without_id",
        "audio_file_named_after_person",
        "summary_in_lifecycle_event",
        "summary_plain_keys",
        "feedback_comment",
        "window_title_in_sharing_details",
        "file_link_in_sharing_details",
        "recording_renamed_topics",
    },
    "zoom-qos": {
        "unit_strings",
        "ip_and_location",
        "pc_name_names_device_or_person",
        "device_names",
        "user_id_as_int",
        "user_id_as_str",
    },
    "webrtc-stats": {
        "audio_level_and_energy",
        "certificates",
        "candidate_host",
        "candidate_srflx",
        "candidate_relay",
        "mdns_hidden_host_address",
        "collected_at_str",
        "collected_at_int",
        "collected_at_float",
    },
    "livekit-webhook": {
        "room_name_human_readable",
        "turn_password",
        "participant_metadata_and_attributes",
        "track_name_names_person_or_window",
        "egress_file_location",
        "created_at_str",
        "created_at_int",
        "transcription_received",
        "chat_received",
    },
}


def read_lines(out: Path, truth: dict[str, Any]) -> list[bytes]:
    data = b"".join(gzip.decompress((out / name).read_bytes()) for name in truth["files"])
    return data.splitlines()


@pytest.fixture(scope="module", params=VENDORS)
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, dict[str, Any], list[bytes]]:
    out = tmp_path_factory.mktemp(request.param)
    truth = generate(out, source=request.param, events=EVENTS, seed=5)
    return request.param, out, truth, read_lines(out, truth)


@pytest.mark.parametrize("source", VENDORS)
def test_same_seed_gives_same_bytes(tmp_path: Path, source: str) -> None:
    generate(tmp_path / "a", source=source, events=300, seed=9, shards=2)
    generate(tmp_path / "b", source=source, events=300, seed=9, shards=2)
    generate(tmp_path / "c", source=source, events=300, seed=10, shards=2)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "consent.jsonl").read_bytes() != (
        tmp_path / "c" / "consent.jsonl"
    ).read_bytes()


def test_exactly_the_lines_asked_for_each_with_its_truth(corpus: Any) -> None:
    source, _, truth, lines = corpus
    assert truth["source"] == source
    assert len(lines) == EVENTS == truth["events"] == len(truth["records"])
    expected = truth["expected"]
    assert expected["input_records"] == EVENTS
    assert sum(expected[k] for k in ("training", "restricted", "quarantine")) == EVENTS
    assert Counter(r["expect"] for r in truth["records"]) == {
        k: v for k, v in expected.items() if k != "input_records" and v
    }
    assert [r["line"] for r in truth["records"]] == list(range(EVENTS))


def test_dozens_of_accounts(corpus: Any) -> None:
    _, _, truth, _ = corpus
    accounts = {r["account_id"] for r in truth["records"]}
    assert truth["accounts"] >= 24
    assert len(accounts) >= 8, "a 400-line corpus spreads over many accounts"


def test_every_hard_case_is_there(corpus: Any) -> None:
    source, _, truth, _ = corpus
    assert HARD_CASES[source] <= set(truth["hard_cases"])


def test_planted_lines_are_what_the_truth_says(corpus: Any) -> None:
    _, _, truth, lines = corpus
    kinds = Counter(p["kind"] for p in truth["planted"])
    assert set(kinds) == {
        "email",
        "phone",
        "ip_address",
        "secret_url",
        "natural_language",
        "undeclared_field",
        "not_json",
    }
    for p in truth["planted"]:
        record = truth["records"][p["line"]]
        assert record["expect"] == p["expect"] == "quarantine"
        assert record["reason"] == p["reason"]
        raw = lines[p["line"]]
        if p["kind"] == "not_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(raw)
            continue
        body = json.loads(raw)
        if p["kind"] == "undeclared_field":
            assert p["field"].rsplit(".", 1)[1].encode() in raw
        else:
            assert p["reason"] == f"detector:{p['kind']}"
            assert p["needle"] in json.dumps(body, ensure_ascii=False)


def test_unplanted_lines_are_clean_json(corpus: Any) -> None:
    _, _, truth, lines = corpus
    planted = {p["line"] for p in truth["planted"]}
    for record in truth["records"]:
        if record["line"] in planted:
            continue
        assert record["expect"] in ("training", "restricted")
        assert record["reason"] is None
        assert isinstance(json.loads(lines[record["line"]]), dict)
        if record["expect"] == "restricted":
            assert record["content_subjects"], record


def test_never_published_values_are_really_in_the_input(corpus: Any) -> None:
    """The truth lists values that are there to leak, not values nobody wrote."""
    _, _, truth, lines = corpus
    leaves: list[str] = []
    for raw in lines:
        if _ok(raw):
            _leaves(json.loads(raw), leaves)
    text = "\n".join(leaves)
    never = truth["never_published"]
    assert len(never) > 50
    for item in never:
        assert item["value"] in text, item
    assert {"identifier"} <= {item["category"] for item in never}


def test_withheld_fields_occur_in_the_input(corpus: Any) -> None:
    _, _, truth, lines = corpus
    text = b"\n".join(lines)
    for name in truth["withheld_fields"]:
        assert f'"{name}":'.encode() in text, name


def test_consent_ledger_covers_the_content_subjects(corpus: Any) -> None:
    _, out, truth, _ = corpus
    subjects = {s for r in truth["records"] for s in r["content_subjects"]}
    ledger = (out / "consent.jsonl").read_bytes().decode()
    assert all(s.startswith("p-") for s in subjects)
    assert set(truth["subjects"]) == subjects
    decided = {s for s in subjects if f'"subject_id":"{s}"' in ledger}
    if subjects:
        assert decided, "some content subjects have consent decisions"


def _leaves(value: Any, out: list[str]) -> None:
    """Every scalar in a parsed body, as text (map keys too: a map's keys can be data)."""
    if isinstance(value, dict):
        for key, item in value.items():
            out.append(key)
            _leaves(item, out)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, out)
    else:
        out.append(str(value))


def _ok(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except json.JSONDecodeError:
        return False
    return True


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        generate(tmp_path, source="teams-webhook", events=300)
    with pytest.raises(ValueError, match="events must be an integer >= 200"):
        generate(tmp_path, source="zoom-qos", events=50)
    with pytest.raises(ValueError, match="fmt must be jsonl"):
        generate(tmp_path, source="zoom-qos", events=300, fmt="parquet")
    with pytest.raises(ValueError, match="shards must be"):
        generate(tmp_path, source="zoom-qos", events=300, shards=4)
