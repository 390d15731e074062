"""Per-participant consent over the ledger, and the host-only rule computed beside it.

The rule (input-contract-v1.md, Consent ledger): a subject's consent covers a content event
when, for the purpose `ai_training` and a matching scope (`account`, or `meeting:<the event's
meeting>`), the latest decision at or before the event is a grant made by the subject itself
(`actor: self`), and no revoke for that subject, purpose and a matching scope, by anyone, has
come after it up to the run's as-of time. Decisions after the as-of time do not exist yet.
A content event needs every one of its subjects; with no subjects it has no consent.

The host-only what-if asks another question: would a rule in which a host's or admin's grant
covers every participant have admitted the event? It is reported, never used to route.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "PURPOSE",
    "REASONS",
    "ConsentLedger",
    "Decision",
    "SubjectConsent",
    "event_consent",
]

PURPOSE = "ai_training"
# Why a subject's consent does or does not hold, most specific first.
REASONS = (
    "consented",
    "no_decision",
    "other_purpose_only",
    "not_own_grant",
    "granted_after_event",
    "revoked",
    "no_subjects",
)


class Decision(NamedTuple):
    """One ledger row. Times are microseconds since the epoch, UTC.

    A named tuple: a ledger holds millions of these, sorted and pickled to every worker.
    """

    decided_at: int
    subject_id: str
    account_id: str
    scope: str
    purpose: str
    action: str
    actor: str

    def matches(self, meeting_id: str | None) -> bool:
        """Does this decision's scope cover an event of `meeting_id` (same account assumed)?"""
        return self.scope in scopes_covering(meeting_id)

    def describe(self) -> str:
        """The decision without identifiers, for audit rows and reports."""
        scope = "account" if self.scope == "account" else "meeting"
        return (
            f"{self.action} by {self.actor} for {self.purpose} ({scope} scope) at {self.decided_at}"
        )


def scopes_covering(meeting_id: str | None) -> tuple[str, ...]:
    """The decision scopes that cover an event of `meeting_id`."""
    if meeting_id is None:
        return ("account",)
    return ("account", f"meeting:{meeting_id}")


@dataclass(frozen=True)
class SubjectConsent:
    """One subject's verdict for one event, with the decisions it rests on."""

    subject_id: str
    consented: bool
    reason: str
    basis: tuple[Decision, ...] = ()


@dataclass
class ConsentLedger:
    """Decisions indexed for look-up by (subject, account) and by account."""

    by_subject: dict[tuple[str, str], list[Decision]] = field(default_factory=dict)
    by_account: dict[str, list[Decision]] = field(default_factory=dict)
    # (account, meeting, hosts) -> earliest time a host-only rule admits content, or None.
    _host_only_from: dict[tuple[str, str | None, frozenset[str]], int | None] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def from_decisions(cls, decisions: Iterable[Decision], as_of: int) -> ConsentLedger:
        """Index the decisions made at or before `as_of`; later ones are ignored."""
        ledger = cls()
        for d in sorted(d for d in decisions if d.decided_at <= as_of):
            ledger.by_subject.setdefault((d.subject_id, d.account_id), []).append(d)
            ledger.by_account.setdefault(d.account_id, []).append(d)
        return ledger

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_subject.values())

    def subject(
        self, subject_id: str, account_id: str, meeting_id: str | None, event_ts: int
    ) -> SubjectConsent:
        """Apply the rule for one subject of one event."""
        # Looked up once here rather than through Decision.matches: this runs per subject.
        scopes = scopes_covering(meeting_id)
        scoped = [d for d in self.by_subject.get((subject_id, account_id), ()) if d.scope in scopes]
        relevant = [d for d in scoped if d.purpose == PURPOSE]
        if not relevant:
            reason = "other_purpose_only" if scoped else "no_decision"
            return SubjectConsent(subject_id, False, reason, tuple(scoped))
        before = [d for d in relevant if d.decided_at <= event_ts]
        if not before:
            own_grant_later = any(d.action == "grant" and d.actor == "self" for d in relevant)
            reason = "granted_after_event" if own_grant_later else _latest_reason(relevant[-1])
            return SubjectConsent(subject_id, False, reason, tuple(relevant))
        # At equal times a revoke wins: when in doubt, there is no consent.
        latest = max(before, key=lambda d: (d.decided_at, d.action == "revoke"))
        if latest.action != "grant":
            return SubjectConsent(subject_id, False, "revoked", (latest,))
        if latest.actor != "self":
            return SubjectConsent(subject_id, False, "not_own_grant", (latest,))
        revokes = [
            d for d in relevant if d.action == "revoke" and d.decided_at >= latest.decided_at
        ]
        if revokes:
            return SubjectConsent(subject_id, False, "revoked", (latest, revokes[0]))
        return SubjectConsent(subject_id, True, "consented", (latest,))

    def host_only(
        self,
        account_id: str,
        meeting_id: str | None,
        event_ts: int,
        hosts: frozenset[str] = frozenset(),
    ) -> bool:
        """Would a host's or admin's grant, standing for everyone, have admitted this event?

        A grant counts when it was made by a host or an admin (for anyone), or by one of the
        meeting's hosts for themselves, at or before the event, for this purpose and a matching
        scope, and its subject has no revoke in a matching scope after it.
        """
        key = (account_id, meeting_id, hosts)
        if key not in self._host_only_from:
            self._host_only_from[key] = self._earliest_host_grant(account_id, meeting_id, hosts)
        start = self._host_only_from[key]
        return start is not None and start <= event_ts

    def _earliest_host_grant(
        self, account_id: str, meeting_id: str | None, hosts: frozenset[str]
    ) -> int | None:
        """The earliest unrevoked grant that a host-only rule would take for everyone.

        Whether a grant is revoked does not depend on the event (only on the as-of time), so
        the answer for a meeting is one time: events at or after it are admitted.
        """
        scopes = scopes_covering(meeting_id)
        decisions = [
            d
            for d in self.by_account.get(account_id, ())
            if d.purpose == PURPOSE and d.scope in scopes
        ]
        revoked_after: dict[str, int] = {}
        for d in decisions:
            if d.action == "revoke":
                revoked_after[d.subject_id] = max(
                    revoked_after.get(d.subject_id, d.decided_at), d.decided_at
                )
        for grant in decisions:  # sorted by time: the first that counts is the earliest
            if grant.action != "grant":
                continue
            if grant.actor not in ("host", "admin") and grant.subject_id not in hosts:
                continue
            last_revoke = revoked_after.get(grant.subject_id)
            if last_revoke is None or last_revoke < grant.decided_at:
                return grant.decided_at
        return None


def _latest_reason(decision: Decision) -> str:
    if decision.action == "revoke":
        return "revoked"
    return "not_own_grant" if decision.actor != "self" else "granted_after_event"


def event_consent(
    ledger: ConsentLedger,
    subjects: Sequence[str],
    account_id: str,
    meeting_id: str | None,
    event_ts: int,
) -> tuple[bool, list[SubjectConsent]]:
    """Every subject's verdict; the event is consented only if it has subjects and all consent."""
    verdicts = [ledger.subject(s, account_id, meeting_id, event_ts) for s in subjects]
    return bool(verdicts) and all(v.consented for v in verdicts), verdicts


def hosts_by_meeting(pairs: Iterable[tuple[str | None, str | None]]) -> Mapping[str, frozenset]:
    """(meeting_id, host participant id) pairs -> hosts of each meeting."""
    out: dict[str, set[str]] = {}
    for meeting, host in pairs:
        if meeting and host:
            out.setdefault(meeting, set()).add(host)
    return {m: frozenset(h) for m, h in out.items()}
