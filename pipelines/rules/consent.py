"""Per-participant consent over the ledger, and the host-only rule computed beside it.

The rule (input-contract-v1.md, Consent ledger): a subject's consent covers a content event
when, for the purpose `ai_training` and a matching scope (`account`, or `meeting:<the event's
meeting>`), the latest decision at or before the event is a grant made by the subject itself
(`actor: self`), and no revoke for that subject, purpose and a matching scope, by anyone, has
been recorded after it. A recorded revoke always counts; the run's as-of time holds back grants
only. A content event needs every one of its subjects; with no subjects it has no consent.

The ledger fails closed: a row that breaks the ledger's contract (`RejectedRow`) is a revoke
of every purpose, scope and time for the subject and account that could still be read from it
(only the account: every subject of that account; only the subject: that subject in every
account); a row from which neither could be read withholds every content event of the run.

Times are compared at full precision. Ledger times are `(microseconds, digits below the
microsecond)` pairs, exact at any length, so a revoke made a few nanoseconds after a grant is
after it. Event times are microseconds rounded down, so a grant is never taken as made at or
before an event it truly followed; a grant at exactly the event's instant counts ("at or
before", as the contract says), and a revoke at exactly a grant's instant wins over it.

The host-only what-if asks another question: would a rule in which a host's or admin's grant
covers every participant have admitted the event? It is reported, never used to route.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "OTHER_PURPOSE",
    "PURPOSE",
    "REASONS",
    "ConsentLedger",
    "Decision",
    "RejectedRow",
    "SubjectConsent",
    "event_consent",
]

PURPOSE = "ai_training"
# What every other purpose is called in outputs: a ledger's purpose is free text, never copied.
OTHER_PURPOSE = "other_purpose"
# Why a subject's consent does or does not hold, most specific first.
REASONS = (
    "consented",
    "no_decision",
    "other_purpose_only",
    "not_own_grant",
    "granted_after_event",
    "revoked",
    "no_subjects",
    "ledger_unreadable",
)


class Decision(NamedTuple):
    """One ledger row. `decided_at` is microseconds since the epoch (UTC), rounded down;
    `sub_micros` the digits below the microsecond (see `contract.Instant`).

    A named tuple: a ledger holds millions of these, sorted and pickled to every worker.
    """

    decided_at: int
    subject_id: str
    account_id: str
    scope: str
    purpose: str
    action: str
    actor: str
    sub_micros: str = ""

    @property
    def at(self) -> tuple[int, str]:
        """The decision's instant at full precision, as a sortable pair."""
        return self.decided_at, self.sub_micros

    def matches(self, meeting_id: str | None) -> bool:
        """Does this decision's scope cover an event of `meeting_id` (same account assumed)?"""
        return self.scope in scopes_covering(meeting_id)

    def describe(self) -> str:
        """The decision without identifiers or free text, for audit rows and reports."""
        scope = "account" if self.scope == "account" else "meeting"
        purpose = PURPOSE if self.purpose == PURPOSE else OTHER_PURPOSE
        return f"{self.action} by {self.actor} for {purpose} ({scope} scope) at {self.decided_at}"


class RejectedRow(NamedTuple):
    """A ledger row that broke the contract, standing as a revoke for the ids read from it.

    `subject_id` and `account_id` are what a lenient second read found (None: unreadable).
    A row holding several candidates becomes several RejectedRows with the same position.
    """

    file: int  # the ledger file's position among the run's ledger files, from 0
    row: int  # the row's number in its file, from 1
    reason: str  # the quarantine reason code, e.g. consent_bad_timestamp
    subject_id: str | None
    account_id: str | None

    def describe(self) -> str:
        """Which row, and why it was rejected: never its text."""
        where = f"ledger row {self.row}"
        if self.file:
            where = f"ledger file {self.file + 1} row {self.row}"
        return f"{where} rejected ({self.reason})"

    def renamed(self, rename: Callable[[str], str]) -> RejectedRow:
        """The same row with its ids mapped (pseudonymised, for purge)."""
        return self._replace(
            subject_id=None if self.subject_id is None else rename(self.subject_id),
            account_id=None if self.account_id is None else rename(self.account_id),
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
    basis: tuple[Decision | RejectedRow, ...] = ()


@dataclass
class ConsentLedger:
    """Decisions indexed for look-up by (subject, account) and by account."""

    by_subject: dict[tuple[str, str], list[Decision]] = field(default_factory=dict)
    by_account: dict[str, list[Decision]] = field(default_factory=dict)
    # Rejected rows, the first (by position) of each kind: (subject, account) both read, the
    # account only, the subject only; and the first row from which neither could be read.
    rejected_pairs: dict[tuple[str, str], RejectedRow] = field(default_factory=dict)
    rejected_accounts: dict[str, RejectedRow] = field(default_factory=dict)
    rejected_subjects: dict[str, RejectedRow] = field(default_factory=dict)
    unreadable: RejectedRow | None = None
    # (account, meeting, hosts) -> earliest instant a host-only rule admits content, or None.
    _host_only_from: dict[tuple[str, str | None, frozenset[str]], tuple[int, str] | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    # (subject, account, meeting) -> its decisions in covering scopes (see `_decisions_for`).
    _scoped: dict[
        tuple[str, str, str | None],
        tuple[tuple[Decision, ...], tuple[Decision, ...], list[tuple[int, str]]],
    ] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_decisions(
        cls, decisions: Iterable[Decision], as_of: int, rejected: Iterable[RejectedRow] = ()
    ) -> ConsentLedger:
        """Index the decisions: every revoke, and the grants made at or before `as_of`.

        A grant after `as_of` does not exist yet for this run; a revoke always counts.
        """
        ledger = cls()
        kept = (d for d in decisions if d.action == "revoke" or d.at <= (as_of, ""))
        for d in sorted(kept, key=lambda d: (d.at, d)):
            ledger.by_subject.setdefault((d.subject_id, d.account_id), []).append(d)
            ledger.by_account.setdefault(d.account_id, []).append(d)
        for r in sorted(set(rejected)):
            if r.subject_id is not None and r.account_id is not None:
                ledger.rejected_pairs.setdefault((r.subject_id, r.account_id), r)
            elif r.account_id is not None:
                ledger.rejected_accounts.setdefault(r.account_id, r)
            elif r.subject_id is not None:
                ledger.rejected_subjects.setdefault(r.subject_id, r)
            elif ledger.unreadable is None:
                ledger.unreadable = r
        return ledger

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_subject.values())

    def rejected_for(self, subject_id: str, account_id: str) -> RejectedRow | None:
        """The first rejected row that stands as a revoke for this subject in this account."""
        found = [
            r
            for r in (
                self.rejected_pairs.get((subject_id, account_id)),
                self.rejected_accounts.get(account_id),
                self.rejected_subjects.get(subject_id),
            )
            if r is not None
        ]
        return min(found) if found else None

    def subject(
        self, subject_id: str, account_id: str, meeting_id: str | None, event_ts: int
    ) -> SubjectConsent:
        """Apply the rule for one subject of one event."""
        if self.unreadable is not None:
            return SubjectConsent(subject_id, False, "ledger_unreadable", (self.unreadable,))
        rejected = self.rejected_for(subject_id, account_id)
        if rejected is not None:
            return SubjectConsent(subject_id, False, "revoked", (rejected,))
        scoped, relevant, times = self._decisions_for(subject_id, account_id, meeting_id)
        if not relevant:
            reason = "other_purpose_only" if scoped else "no_decision"
            return SubjectConsent(subject_id, False, reason, scoped)
        # The event's instant is rounded down: a grant in its last microsecond does not count.
        # `relevant` is in time order, so the decisions at or before it are a prefix.
        count = bisect.bisect_right(times, (event_ts, ""))
        if not count:
            own_grant_later = any(d.action == "grant" and d.actor == "self" for d in relevant)
            reason = "granted_after_event" if own_grant_later else _latest_reason(relevant[-1])
            return SubjectConsent(subject_id, False, reason, relevant)
        # At equal times a revoke wins: when in doubt, there is no consent. Only the decisions
        # at the latest instant before the event can be the latest.
        last = bisect.bisect_left(times, times[count - 1], 0, count)
        latest = max(relevant[last:count], key=lambda d: d.action == "revoke")
        if latest.action != "grant":
            return SubjectConsent(subject_id, False, "revoked", (latest,))
        if latest.actor != "self":
            return SubjectConsent(subject_id, False, "not_own_grant", (latest,))
        revokes = [d for d in relevant[last:] if d.action == "revoke"]
        if revokes:
            return SubjectConsent(subject_id, False, "revoked", (latest, revokes[0]))
        return SubjectConsent(subject_id, True, "consented", (latest,))

    def _decisions_for(
        self, subject_id: str, account_id: str, meeting_id: str | None
    ) -> tuple[tuple[Decision, ...], tuple[Decision, ...], list[tuple[int, str]]]:
        """A subject's decisions in scopes covering the meeting, those for this purpose, and
        their times: found once per (subject, account, meeting), not once per event."""
        key = (subject_id, account_id, meeting_id)
        found = self._scoped.get(key)
        if found is None:
            scopes = scopes_covering(meeting_id)
            scoped = tuple(
                d for d in self.by_subject.get((subject_id, account_id), ()) if d.scope in scopes
            )
            relevant = tuple(d for d in scoped if d.purpose == PURPOSE)
            found = self._scoped[key] = (scoped, relevant, [d.at for d in relevant])
        return found

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
        return start is not None and start <= (event_ts, "")

    def _earliest_host_grant(
        self, account_id: str, meeting_id: str | None, hosts: frozenset[str]
    ) -> tuple[int, str] | None:
        """The earliest unrevoked grant that a host-only rule would take for everyone.

        Whether a grant is revoked does not depend on the event, so the answer for a meeting
        is one instant: events at or after it are admitted. A rejected row revokes here too.
        """
        if self.unreadable is not None or account_id in self.rejected_accounts:
            return None
        scopes = scopes_covering(meeting_id)
        decisions = [
            d
            for d in self.by_account.get(account_id, ())
            if d.purpose == PURPOSE and d.scope in scopes
        ]
        revoked_after: dict[str, tuple[int, str]] = {}
        for d in decisions:
            if d.action == "revoke":
                revoked_after[d.subject_id] = max(revoked_after.get(d.subject_id, d.at), d.at)
        for grant in decisions:  # sorted by time: the first that counts is the earliest
            if grant.action != "grant":
                continue
            if grant.actor not in ("host", "admin") and grant.subject_id not in hosts:
                continue
            if self.rejected_for(grant.subject_id, account_id) is not None:
                continue
            last_revoke = revoked_after.get(grant.subject_id)
            if last_revoke is None or last_revoke < grant.at:
                return grant.at
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
