"""The consent part of the ground truth, worked out a second time from the ledger as written."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from datetime import date as Date
from typing import Any

# (account_id, meeting_id, host ids, [(event_id, event_ts, content subjects)]).
ConsentView = tuple[str, str, frozenset[str], list[tuple[str, str, tuple[str, ...]]]]

# -- consent truth -------------------------------------------------------------------------------
# The contract's consent rule read again from scratch (not pipelines.rules.consent), over the
# ledger as written and the content records as generated: the second implementation an
# end-to-end run is checked against. Times are compared as `YYYY-MM-DDTHH:MM:SS.mmmZ` text
# (UTC, fixed width), which sorts in time order: the generated event times need no parsing.
_PURPOSE = "ai_training"
# Whose consent a content record needs: a payload field holding one id, a list of ids, or the
# envelope's participant_id.
_SUBJECT_FIELD = {
    "content.chat_message": "sender_id",
    "content.transcript_segment": "speaker_id",
    "content.caption": "speaker_id",
}
_SUBJECT_LIST = frozenset({"content.audio_chunk", "content.recording_file", "content.ai_summary"})
# Why a subject's consent holds or not, for one content record (truth "consent.verdicts").
CONSENT_VERDICTS = (
    "consented",
    "no_decision",  # nothing in a matching scope
    "other_purpose_only",
    "granted_after_event",  # no decision yet at the event; an own grant comes later
    "nothing_before_event",  # no decision yet at the event, no own grant later either
    "not_own_grant",  # the latest decision is a host's or an admin's grant
    "revoked",  # the latest decision is a revoke
    "revoked_later",  # the own grant was revoked after it (whenever; or a rejected row revokes)
)


def _utc_ms_text(text: str) -> str:
    """An RFC 3339 time as `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC (finer digits dropped)."""
    if len(text) == 20 and text[10] == "T" and text[19] == "Z":  # whole seconds in UTC
        return f"{text[:19]}.000Z"
    moment = datetime.fromisoformat(text).astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def content_subjects(event_type: str, participant_id: str | None, payload: Any) -> tuple[str, ...]:
    """The ids whose consent a content record needs (input contract, content table)."""
    field = _SUBJECT_FIELD.get(event_type)
    if field is not None:
        return (payload[field],)
    if event_type in _SUBJECT_LIST:
        return tuple(payload["participants"])
    return (participant_id,) if participant_id is not None else ()


class _Timeline:
    """One subject's decisions in the scopes matching one meeting, as of the run.

    `times` are the distinct ai_training decision times in order, `kinds` what was decided
    at each: "own" (only the subject's own grants), "other" (some grant by a host or an admin,
    no revoke) or "revoke". `last_revoke` is the time of the latest revoke. `always` is the
    verdict when it does not depend on the time.
    """

    __slots__ = ("always", "kinds", "last_revoke", "own", "times")

    def __init__(self, decisions: list[tuple[str, str, str, str]]):
        at_time: dict[str, str] = {}
        self.last_revoke: str | None = None
        self.own = False
        other_purpose = False
        for at, purpose, action, actor in decisions:
            if purpose != _PURPOSE:
                other_purpose = True
            elif action == "revoke":
                at_time[at] = "revoke"
                if self.last_revoke is None or at > self.last_revoke:
                    self.last_revoke = at
            elif actor == "self":
                self.own = True
                at_time.setdefault(at, "own")
            elif at_time.get(at) != "revoke":
                at_time[at] = "other"
        self.times = sorted(at_time)
        self.kinds = [at_time[t] for t in self.times]
        self.always: str | None = None
        if not self.times:
            self.always = "other_purpose_only" if other_purpose else "no_decision"

    def verdict(self, at: str) -> str:
        """The subject's consent for content at time `at`: one of CONSENT_VERDICTS."""
        i = bisect_right(self.times, at) - 1
        if i < 0:
            return "granted_after_event" if self.own else "nothing_before_event"
        kind = self.kinds[i]
        if kind == "revoke":
            return "revoked"
        if kind == "other":
            return "not_own_grant"
        # Only own grants at that time, so no revoke at it: any revoke since is later.
        if self.last_revoke is not None and self.last_revoke > self.times[i]:
            return "revoked_later"
        return "consented"


_NO_DECISIONS = _Timeline([])


class ConsentTruth:
    """Per-participant consent and the host-only what-if, from the ledger as written.

    Grants after `as_of` do not exist yet and are left out; a revoke counts whenever it was
    recorded. Indexed by (subject, account, scope), so that each meeting looks at its own
    people in its own scopes only. `rejected`: (subject, account) read from each row that
    breaks the ledger, None where unreadable; each stands as a revoke of everything for them.
    """

    def __init__(
        self,
        decisions: Iterable[dict[str, str]],
        as_of: str,
        rejected: Iterable[tuple[str | None, str | None]] = (),
    ):
        as_of = _utc_ms_text(as_of)
        self.rejected = list(rejected)
        self.by_scope: dict[tuple[str, str, str], list[tuple[str, str, str, str]]] = {}
        # ai_training grants a host-only rule may count: account scope by a host or an admin,
        # per account (time, subject); meeting scope per (account, scope) (time, subject, actor).
        self.delegated: dict[str, list[tuple[str, str]]] = {}
        self.meeting_grants: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for row in decisions:
            at = _utc_ms_text(row["decided_at"])
            if at > as_of and row["action"] != "revoke":
                continue
            subject, account, scope = row["subject_id"], row["account_id"], row["scope"]
            purpose, action, actor = row["purpose"], row["action"], row["actor"]
            self.by_scope.setdefault((subject, account, scope), []).append(
                (at, purpose, action, actor)
            )
            if purpose != _PURPOSE or action != "grant":
                continue
            if scope != "account":
                self.meeting_grants.setdefault((account, scope), []).append((at, subject, actor))
            elif actor != "self":
                self.delegated.setdefault(account, []).append((at, subject))
        self.verdicts: dict[str, int] = dict.fromkeys(CONSENT_VERDICTS, 0)

    def blocked(self, subject: str, account: str) -> bool:
        """Does a rejected ledger row stand as a revoke for `subject` in `account`?"""
        return any(
            (s is None or s == subject) and (a is None or a == account) for s, a in self.rejected
        )

    def timeline(self, subject: str, account: str, meeting_id: str | None) -> _Timeline:
        decisions = list(self.by_scope.get((subject, account, "account"), ()))
        if meeting_id is not None:
            decisions += self.by_scope.get((subject, account, f"meeting:{meeting_id}"), ())
        return _Timeline(decisions) if decisions else _NO_DECISIONS

    def host_only_from(
        self, account: str, meeting_id: str | None, hosts: frozenset[str]
    ) -> str | None:
        """From when a host-only rule admits this meeting's content (None: never).

        A grant counts for everyone when a host or an admin made it, or one of the meeting's
        hosts made it for themselves, and its subject has no revoke in a matching scope at or
        after it. The earliest such grant opens the meeting.
        """
        candidates = list(self.delegated.get(account, ()))
        for host in hosts:
            candidates += [
                (at, host)
                for at, purpose, action, _ in self.by_scope.get((host, account, "account"), ())
                if purpose == _PURPOSE and action == "grant"
            ]
        if meeting_id is not None:
            scope = f"meeting:{meeting_id}"
            candidates += [
                (at, subject)
                for at, subject, actor in self.meeting_grants.get((account, scope), ())
                if actor != "self" or subject in hosts
            ]
        earliest: str | None = None
        last_revoke: dict[str, str | None] = {}
        for at, subject in candidates:
            if earliest is not None and at >= earliest:
                continue
            if self.blocked(subject, account):
                continue
            if subject not in last_revoke:
                last_revoke[subject] = self.timeline(subject, account, meeting_id).last_revoke
            revoked = last_revoke[subject]
            if revoked is None or revoked < at:
                earliest = at
        return earliest

    def meeting(
        self,
        account: str,
        meeting_id: str | None,
        hosts: frozenset[str],
        events: Iterable[tuple[str, str, tuple[str, ...]]],
    ) -> tuple[list[str], list[str]]:
        """(consented, host-only-but-not-consented) ids of one meeting's content records.

        `events`: (event_id, event time as `YYYY-MM-DDTHH:MM:SS.mmmZ` UTC, content subjects).
        """
        opens = self.host_only_from(account, meeting_id, hosts)
        timelines: dict[str, _Timeline] = {}
        verdicts = self.verdicts
        consented: list[str] = []
        host_only: list[str] = []
        for event_id, at, subjects in events:
            ok = bool(subjects)
            for subject in subjects:
                timeline = timelines.get(subject)
                if timeline is None:
                    timeline = timelines[subject] = self.timeline(subject, account, meeting_id)
                if self.blocked(subject, account):
                    verdict = "revoked_later"
                else:
                    verdict = timeline.always or timeline.verdict(at)
                verdicts[verdict] += 1
                if verdict != "consented":
                    ok = False
            if ok:
                consented.append(event_id)
            elif opens is not None and at >= opens:
                host_only.append(event_id)
        return consented, host_only


def consent_truth(
    decisions: list[dict[str, str]],
    views: list[ConsentView],
    day: str,
    clauses: dict[str, int],
    rejected: list[tuple[str | None, str | None]],
) -> dict[str, Any]:
    """The consent part of the truth, for a run as of noon the day after `day`."""
    as_of = f"{Date.fromisoformat(day) + timedelta(days=1)}T12:00:00Z"
    truth = ConsentTruth(decisions, as_of, rejected)
    consented: list[str] = []
    host_only: list[str] = []
    content_events = 0
    for account, meeting_id, hosts, content in views:
        content_events += len(content)
        yes, host = truth.meeting(account, meeting_id, hosts, content)
        consented += yes
        host_only += host
    return {
        "as_of": as_of,
        "consented_event_ids": sorted(consented),
        "host_only_event_ids": sorted(host_only),
        "content_events": content_events,
        "bad_ledger_rows": 3,
        "decisions": len(decisions),
        "clauses": clauses,
        "verdicts": truth.verdicts,
    }
