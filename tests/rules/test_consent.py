"""Every clause of the per-participant rule, as pass/fail pairs, and the host-only what-if."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from pipelines.rules.consent import ConsentLedger, Decision, RejectedRow, event_consent

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


def test_a_grant_at_the_as_of_time_counts_and_one_after_it_is_held_back():
    assert verdict(d(AS_OF), t=AS_OF + 5).reason == "consented"
    assert verdict(d(AS_OF + 1), t=AS_OF + 5).reason == "no_decision"


# -- full precision: ledger times carry every digit, event times are rounded down -----------
# Times of one microsecond, T, with digits below it: d(T) at T.000000, sub-micro digits apart.
T = 5_000


def dn(t, sub, **kw):
    return d(t, **kw)._replace(sub_micros=sub)


NANO_CASES = [
    ("grant 1 ns after the event is after it", [dn(T, "001")], T, False, "granted_after_event"),
    ("grant in the event's microsecond, below it", [dn(T - 1, "999999999")], T, True, "consented"),
    ("grant at the event's exact instant counts", [d(T)], T, True, "consented"),
    # The event's own finer digits were rounded down: a grant between T and the event is
    # taken as after it (never in the grant's favour).
    ("grant 100 ns into the event's microsecond", [dn(T, "1")], T, False, "granted_after_event"),
    (
        "revoke 1 ns after the grant wins",
        [dn(T - 10, "000000001"), dn(T - 10, "000000002", action="revoke")],
        T,
        False,
        "revoked",
    ),
    (
        "revoke 1 ns after, later digits shorter",
        [dn(T - 10, "49"), dn(T - 10, "5", action="revoke")],
        T,
        False,
        "revoked",
    ),
    (
        "grant again 1 ns after the revoke",
        [d(T - 20), dn(T - 10, "000000001", action="revoke"), dn(T - 10, "000000002")],
        T,
        True,
        "consented",
    ),
    (
        "revoke at the grant's exact instant wins",
        [dn(T - 10, "123456789"), dn(T - 10, "123456789", action="revoke")],
        T,
        False,
        "revoked",
    ),
]


@pytest.mark.parametrize(
    ("decisions", "t", "ok", "reason"), [c[1:] for c in NANO_CASES], ids=[c[0] for c in NANO_CASES]
)
def test_sub_microsecond_times(decisions, t, ok, reason):
    found = verdict(*decisions, t=t)
    assert (found.consented, found.reason) == (ok, reason)


def test_the_as_of_time_holds_back_a_grant_nanoseconds_after_it():
    assert verdict(dn(AS_OF, "1"), t=AS_OF + 5).reason == "no_decision"
    assert verdict(dn(AS_OF - 1, "9"), t=AS_OF + 5).reason == "consented"


# -- rejected rows stand as revokes ----------------------------------------------------------
def rej(subject="p-a", account=ACCT, row=7, reason="consent_bad_timestamp", file=0):
    return RejectedRow(file, row, reason, subject, account)


REJECTED_CASES = [
    ("subject and account read", [rej()], "p-a", ACCT, False, "revoked"),
    ("another subject's row", [rej(subject="p-b")], "p-a", ACCT, True, "consented"),
    ("another account's row", [rej(account="acct-2")], "p-a", ACCT, True, "consented"),
    ("account only: every subject of it", [rej(subject=None)], "p-a", ACCT, False, "revoked"),
    ("account only, another account", [rej(None, "acct-2")], "p-a", ACCT, True, "consented"),
    ("subject only: every account", [rej(account=None)], "p-a", ACCT, False, "revoked"),
    ("subject only, another subject", [rej("p-b", None)], "p-a", ACCT, True, "consented"),
    ("nothing read: the whole run", [rej(None, None)], "p-a", ACCT, False, "ledger_unreadable"),
]


@pytest.mark.parametrize(
    ("rejected", "subject", "account", "ok", "reason"),
    [c[1:] for c in REJECTED_CASES],
    ids=[c[0] for c in REJECTED_CASES],
)
def test_a_rejected_row_is_a_revoke_of_every_scope_and_time(rejected, subject, account, ok, reason):
    # Her own account grant, long before; the rejected row's time and scope are unknown.
    ledger = ConsentLedger.from_decisions(
        [d(100, subject=subject, account=account)], AS_OF, rejected
    )
    found = ledger.subject(subject, account, MTG, T_EVENT)
    assert (found.consented, found.reason) == (ok, reason)
    if not ok:
        assert [b.describe() for b in found.basis] == [
            "ledger row 7 rejected (consent_bad_timestamp)"
        ]


def test_the_first_rejected_row_is_named_and_files_are_counted_from_one():
    rows = [rej(row=9), rej(row=3, reason="consent_not_json"), rej(row=1, file=1)]
    ledger = ConsentLedger.from_decisions([d(100)], AS_OF, rows)
    assert ledger.subject("p-a", ACCT, MTG, T_EVENT).basis[0].describe() == (
        "ledger row 3 rejected (consent_not_json)"
    )
    assert rej(row=4, file=1).describe() == "ledger file 2 row 4 rejected (consent_bad_timestamp)"


def test_an_unreadable_ledger_withholds_even_events_without_subjects():
    ledger = ConsentLedger.from_decisions([d(100)], AS_OF, [rej(None, None)])
    ok, verdicts = event_consent(ledger, ["p-a"], ACCT, MTG, T_EVENT)
    assert not ok and verdicts[0].reason == "ledger_unreadable"
    assert not ledger.host_only(ACCT, MTG, T_EVENT, frozenset({"p-a"}))


@pytest.mark.parametrize(
    ("rejected", "admitted"),
    [([], True), ([rej("p-h")], False), ([rej(None)], False), ([rej("p-x")], True)],
    ids=["no rejected row", "the host's row", "the account's row", "someone else's row"],
)
def test_a_rejected_row_also_revokes_for_the_host_only_what_if(rejected, admitted):
    ledger = ConsentLedger.from_decisions([d(100, subject="p-h", actor="host")], AS_OF, rejected)
    assert ledger.host_only(ACCT, MTG, T_EVENT, frozenset()) is admitted


@pytest.mark.parametrize(
    ("purpose", "shown"),
    [("ai_training", "ai_training"), ("mail dana@example.org re 4711", "other_purpose")],
    ids=["the purpose that counts", "free text"],
)
def test_a_decision_is_described_without_its_free_text(purpose, shown):
    text = d(100, purpose=purpose).describe()
    assert text == f"grant by self for {shown} (account scope) at 100"
    assert "dana" not in text and "4711" not in text
