"""Consented content carries no one else: one run of the spec's meeting with planted leaks.

Only p-alice consented (consent-examples-v1.jsonl). Planted in records of hers that are
consented: another participant's name and raw id, a phone number in a national format, URL
tokens, a long opaque id, an IBAN, a MIME type naming someone; a summary quoting a
non-consenting participant's chat word for word; an event id holding an address. The
published Parquet files are read back and searched for every planted string.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.rules.nested import iter_strings

pytestmark = pytest.mark.e2e

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec"
KEY = "redaction-test-key-" + "z" * 32
AS_OF = "2026-11-27T12:00:00Z"
MEETING = "mtg-20261126-0001"

BOBS_WORDS = "we should move the Lisbon launch to the second week of April"
DAVES_WORDS = "the vendor can deliver the new badges by the end of next month"
# Dave consented for himself: quoting him is no echo of a non-consenting subject.
DAVES_GRANT = {
    "subject_id": "p-dave",
    "account_id": "acct-7f3e",
    "scope": "account",
    "purpose": "ai_training",
    "action": "grant",
    "actor": "self",
    "decided_at": "2026-11-01T00:00:00Z",
}
PLANTED = {
    "name": "Carol",
    "surname": "Danvers",
    "raw_id": "p-carol",
    "national_phone": "020 7946 0958",
    "bracket_phone": "(415)555-0132",
    "url_token": "Zq81kW27xP",
    "tk_token": "9f8a7b6c5d4e",
    "opaque_id": "9f86d081884c7d659a2f3b",
    "iban": "DE89 3704 0044 0532 0130 00",
    "mime_name": "Danvers",
}


def _event(event_id: str, event_type: str, minute: int, payload: dict[str, Any]) -> dict:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "event_ts": f"2026-11-26T09:{minute:02d}:00.000Z",
        "account_id": "acct-7f3e",
        "meeting_id": MEETING,
        "schema_version": 1,
        "participant_id": "p-alice",
        "payload": payload,
    }


def _planted_rows() -> list[dict]:
    rows = [json.loads(x) for x in (SPEC / "examples-v1.jsonl").read_text().splitlines()]
    by_id = {r["event_id"]: r for r in rows}
    # Bob (host's grant only: not consenting) writes a distinctive sentence in chat ...
    by_id["ev-0012"]["payload"]["message"] = f"I think {BOBS_WORDS}."
    # ... and Alice's summary, listing only her, quotes it word for word.
    summary = by_id["ev-0021"]["payload"]
    summary["participants"] = ["p-alice"]
    summary["summary_text"] = f"Bob said {BOBS_WORDS}; the team agreed."
    summary["next_steps"] = ["Alice drafts the plan"]
    rows.append(
        _event(
            "ev-0030",
            "usage.participant_joined",
            5,
            {
                "user_name": "Carol Danvers",
                "email": "carol@example.com",
                "ip_address": "192.0.2.11",
                "location": "Leeds (GB)",
                "device": "Windows",
                "os_version": "11",
                "client_version": "6.2.5",
                "network_type": "wifi",
                "role": "attendee",
            },
        )
        | {"participant_id": "p-carol"}
    )
    chat = (
        f"Carol asked me to ping {PLANTED['raw_id']}; call her on {PLANTED['national_phone']} "
        f"or {PLANTED['bracket_phone']}. Deck: https://files.example.com/d/"
        f"{PLANTED['url_token']}?tk={PLANTED['tk_token']} ref {PLANTED['opaque_id']}, "
        f"refund to IBAN {PLANTED['iban']}"
    )
    rows.append(
        _event(
            "ev-0031",
            "content.chat_message",
            21,
            {"sender_id": "p-alice", "recipients": "everyone", "message": chat, "file_name": None},
        )
    )
    rows.append(
        _event(
            "ev-0032",
            "content.shared_file",
            22,
            {
                "file_name": "plan.txt",
                "mime_type": "text/plain; owner=Carol Danvers",
                "size": 120,
                "uri": "https://files.example.com/f/91ac",
            },
        )
    )
    daves_chat = _event(
        "ev-0033",
        "content.chat_message",
        24,
        {
            "sender_id": "p-dave",
            "recipients": "everyone",
            "message": DAVES_WORDS,
            "file_name": None,
        },
    )
    rows.append(daves_chat | {"participant_id": "p-dave"})
    rows.append(
        _event(
            "ev-0034",
            "content.transcript_segment",
            25,
            {
                "speaker_id": "p-alice",
                "text": f"Dave says {DAVES_WORDS}",
                "start_ms": 30000,
                "end_ms": 33000,
                "language": "en",
                "confidence": 0.9,
            },
        )
    )
    rows.append(
        _event(
            "ev-alice@example.com",
            "content.caption",
            23,
            {"speaker_id": "p-alice", "text": "Thanks all"},
        )
    )
    return rows


def _run(folder: Path, *extra: str) -> Path:
    events = folder / "events.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in _planted_rows()))
    ledger = folder / "consent.jsonl"
    ledger.write_text((SPEC / "consent-examples-v1.jsonl").read_text() + json.dumps(DAVES_GRANT))
    out = folder / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
        code = main(
            [
                "-q",
                "run",
                "--input",
                str(events),
                "--consent",
                str(ledger),
                "--out",
                str(out),
                "--as-of",
                AS_OF,
                "--content-policy",
                "per_participant",
                *extra,
            ]
        )
    # Exit 0: the leak gate re-checked consented content with the same scan and passed.
    assert code == 0
    return out


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("redaction"))


def _consented(out: Path) -> list[dict]:
    """Every row of every consented-content file, each file read with its own columns."""
    files = sorted((out / "training" / "consented_content").rglob("*.parquet"))
    assert files
    return [row for path in files for row in pq.read_table(path).to_pylist()]


def test_the_planted_consented_records_are_published(published):
    ids = {row["event_id"] for row in _consented(published)}
    # ev-0034 quotes Dave, who consented for his chat (ev-0033, published too).
    assert {"ev-0031", "ev-0032", "ev-0013", "ev-0014", "ev-0033", "ev-0034"} <= ids
    assert "ev-0021" not in ids and "ev-alice@example.com" not in ids


@pytest.mark.parametrize("what", sorted(PLANTED))
def test_no_planted_string_is_left_in_consented_content(published, what):
    needle = PLANTED[what]
    texts = [t for row in _consented(published) for t in iter_strings(list(row.values()))]
    assert any("[REDACTED:" in t for t in texts)  # the planted rows were read
    for text in texts:
        assert needle not in text, what


def test_redactions_are_marked_by_family(published):
    rows = {row["event_id"]: row for row in _consented(published)}
    message = rows["ev-0031"]["message"]
    for family in ("known_identifier", "phone", "token", "opaque_id", "iban"):
        assert f"[REDACTED:{family}]" in message, family
    assert message.startswith("[REDACTED:known_identifier] asked me to ping")
    assert rows["ev-0032"]["mime_type"] == "text/plain; owner=[REDACTED:known_identifier]"
    # Alice's own caption, a repeat of her transcript, keeps its words.
    assert rows["ev-0014"]["text"] == "Let's start with the roadmap"
    counts = json.loads((published / "manifest.json").read_text())["counts"]
    assert counts["consented_redactions"]["known_identifier"] == 2
    assert counts["consented_redactions"]["phone"] == 1


def test_a_summary_quoting_a_non_consenting_participant_is_restricted(published):
    rows = {r["event_id"]: r for r in ds.dataset(published / "restricted").to_table().to_pylist()}
    assert rows["ev-0021"]["reason"] == "no_consent:echoes_other_subject"
    # Its only subject consented: the echo, not her consent, kept it out.
    assert [s["reason"] for s in rows["ev-0021"]["consent_subjects"]] == ["consented"]
    # Bob's chat itself is restricted for his own lack of consent.
    assert rows["ev-0012"]["reason"] == "no_consent:not_own_grant"


def test_an_event_id_holding_an_address_is_quarantined_before_the_gate(published):
    rows = ds.dataset(published / "quarantine").to_table().to_pylist()
    reasons = {r["event_id"]: r["reason"] for r in rows}
    # `@` is outside the declared shape of an event id, so the contract check stops it first.
    assert reasons["ev-alice@example.com"] == "bad_value"


def test_the_keyed_join_finds_the_same_echo(published, tmp_path):
    """Through the keyed join the ledger brings each chunk the quoted authors' decisions too:
    with one record per chunk, Dave's grant reaches Alice's quote only that way."""
    join = tmp_path / "join.json"
    join.write_text(
        json.dumps({"policy": {"consent_side_input_max_decisions": 0, "chunk_records": 1}})
    )
    out = _run(tmp_path, "--config", str(join))
    assert json.loads((out / "manifest.json").read_text())["consent_join"] == "keyed_join"
    decisions = []
    for folder in (published, out):
        audit = ds.dataset(folder / "audit").to_table().sort_by("event_id")
        decisions.append(audit.select(["event_id", "destination", "reason"]).to_pylist())
    assert decisions[0] == decisions[1]
    assert {
        "event_id": "ev-0021",
        "destination": "restricted",
        "reason": "no_consent:echoes_other_subject",
    } in decisions[1]
