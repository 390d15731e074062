"""Every clause of the per-participant rule, as pass/fail pairs, and the host-only what-if."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from pipelines.rules.consent import ConsentLedger, Decision, event_consent

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec"
ACCT, MTG = "acct-1", "mtg-1"
T_EVENT = 1_000
AS_OF = 10_000


def d(
    t,
    subject="p-a",
    action="grant",
    actor="self",
    scope="account",
    purpose="ai_training",
    account=ACCT,
):
    return Decision(t, subject, account, scope, purpose, action, actor)


def verdict(*decisions, subject="p-a", meeting=MTG, t=T_EVENT, as_of=AS_OF):
    ledger = ConsentLedger.from_decisions(decisions, as_of)
    return ledger.subject(subject, ACCT, meeting, t)


CASES = [
    ("self grant before the event", [d(500)], True, "consented"),
    ("self grant at the event time", [d(T_EVENT)], True, "consented"),
    ("no decision at all", [], False, "no_decision"),
    ("other subject's grant", [d(500, subject="p-b")], False, "no_decision"),
    ("other account's grant", [d(500, account="acct-2")], False, "no_decision"),
    ("host grant for the subject", [d(500, actor="host")], False, "not_own_grant"),
    ("admin grant for the subject", [d(500, actor="admin")], False, "not_own_grant"),
    ("self grant after the event", [d(2_000)], False, "granted_after_event"),
    ("revoke after the event, before as-of", [d(500), d(2_000, action="revoke")], False, "revoked"),
    (
        "revoke by the host also counts",
        [d(500), d(2_000, action="revoke", actor="host")],
        False,
        "revoked",
    ),
    (
        "revoke after as-of still counts",
        [d(500), d(20_000, action="revoke")],
        False,
        "revoked",
    ),
    ("grant after as-of is held back", [d(500, action="revoke"), d(20_000)], False, "revoked"),
    ("grant at the as-of time counts", [d(AS_OF)], False, "granted_after_event"),
    ("revoke then self grant again", [d(100), d(200, action="revoke"), d(300)], True, "consented"),
    ("grant then revoke before the event", [d(100), d(200, action="revoke")], False, "revoked"),
    ("other purpose only", [d(500, purpose="product_analytics")], False, "other_purpose_only"),
    ("meeting scope matches its meeting", [d(500, scope=f"meeting:{MTG}")], True, "consented"),
    ("meeting scope of another meeting", [d(500, scope="meeting:mtg-2")], False, "no_decision"),
    (
        "account revoke ends a meeting grant",
        [d(500, scope=f"meeting:{MTG}"), d(2_000, action="revoke")],
        False,
        "revoked",
    ),
    (
        "self grant then a host grant: latest is not own",
        [d(100), d(200, actor="host")],
        False,
        "not_own_grant",
    ),
    ("grant and revoke at the same time", [d(500), d(500, action="revoke")], False, "revoked"),
]


@pytest.mark.parametrize(
    ("decisions", "ok", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_subject_rule(decisions, ok, reason):
    found = verdict(*decisions)
    assert (found.consented, found.reason) == (ok, reason)


def test_decision_order_in_the_ledger_does_not_matter():
    decisions = [d(300), d(200, action="revoke"), d(100)]
    assert verdict(*decisions).consented
    assert verdict(*reversed(decisions)).consented
    assert not verdict(d(100), d(300, action="revoke"), d(200)).consented


def test_meeting_scope_needs_a_meeting():
    assert not verdict(d(500, scope=f"meeting:{MTG}"), meeting=None).consented


def test_a_recording_with_one_non_consenting_participant_among_five():
    subjects = ["p-1", "p-2", "p-3", "p-4", "p-5"]
    decisions = [d(100, subject=s) for s in subjects[:4]] + [d(100, subject="p-5", actor="host")]
    ledger = ConsentLedger.from_decisions(decisions, AS_OF)
    ok, verdicts = event_consent(ledger, subjects, ACCT, MTG, T_EVENT)
    assert not ok
    assert [v.reason for v in verdicts] == ["consented"] * 4 + ["not_own_grant"]
    ok, _ = event_consent(ledger, subjects[:4], ACCT, MTG, T_EVENT)
    assert ok


def test_an_event_without_subjects_has_no_consent():
    ledger = ConsentLedger.from_decisions([d(100)], AS_OF)
    assert event_consent(ledger, [], ACCT, MTG, T_EVENT) == (False, [])


@pytest.mark.parametrize(
    ("decisions", "hosts", "admitted"),
    [
        ([d(100, subject="p-b", actor="host")], frozenset(), True),
        ([d(100, subject="p-b", actor="admin")], frozenset(), True),
        ([d(100, subject="p-h")], frozenset({"p-h"}), True),
        ([d(100, subject="p-b")], frozenset({"p-h"}), False),
        ([d(2_000, subject="p-b", actor="host")], frozenset(), False),
        (
            [d(100, subject="p-b", actor="host"), d(200, subject="p-b", action="revoke")],
            frozenset(),
            False,
        ),
        ([d(100, subject="p-b", actor="host", purpose="marketing")], frozenset(), False),
    ],
    ids=[
        "host grant",
        "admin grant",
        "host's own grant",
        "participant's own grant only",
        "host grant after the event",
        "host grant revoked",
        "host grant other purpose",
    ],
)
def test_host_only_what_if(decisions, hosts, admitted):
    ledger = ConsentLedger.from_decisions(decisions, AS_OF)
    assert ledger.host_only(ACCT, MTG, T_EVENT, hosts) is admitted


def _micros(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1_000_000)


def test_the_spec_examples_consent_only_alices_transcript_and_caption():
    rows = [json.loads(x) for x in (SPEC / "consent-examples-v1.jsonl").read_text().splitlines()]
    decisions = [
        Decision(
            _micros(r["decided_at"]),
            r["subject_id"],
            r["account_id"],
            r["scope"],
            r["purpose"],
            r["action"],
            r["actor"],
        )
        for r in rows
    ]
    ledger = ConsentLedger.from_decisions(decisions, _micros("2026-11-27T12:00:00Z"))
    events = [json.loads(x) for x in (SPEC / "examples-v1.jsonl").read_text().splitlines()]
    subjects_of = {
        "content.chat_message": lambda e: [e["payload"]["sender_id"]],
        "content.transcript_segment": lambda e: [e["payload"]["speaker_id"]],
        "content.caption": lambda e: [e["payload"]["speaker_id"]],
        "content.audio_chunk": lambda e: e["payload"]["participants"],
        "content.recording_file": lambda e: e["payload"]["participants"],
        "content.ai_summary": lambda e: e["payload"]["participants"],
    }
    consented, host_only = set(), set()
    for e in events:
        if not e["event_type"].startswith("content."):
            continue
        subjects = subjects_of.get(e["event_type"], lambda e: [e["participant_id"]])(e)
        ts = _micros(e["event_ts"])
        ok, _ = event_consent(ledger, subjects, e["account_id"], e["meeting_id"], ts)
        if ok:
            consented.add(e["event_id"])
        if ledger.host_only(e["account_id"], e["meeting_id"], ts, frozenset({"p-alice"})):
            host_only.add(e["event_id"])
    assert consented == {"ev-0013", "ev-0014"}
    assert len(host_only) == 10
