"""The consent ledger the generated meetings come with: self, host and admin decisions."""

from __future__ import annotations

import random
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from itertools import accumulate

import orjson

from pipelines.generate.model import DAY_MS, HOUR, MINUTE, SECOND, Attendee
from pipelines.generate.vocab import OTHER_PURPOSES, pick

# -- consent ledger --------------------------------------------------------------------------
# The consent as-of time of the truth: noon the day after the generated day.
AS_OF_MS = DAY_MS + 12 * HOUR
# Kinds of decision the ledger plants (truth "consent.clauses" counts them).
CONSENT_CLAUSES = (
    "self_account",  # own grant, account scope, weeks before
    "self_meeting",  # own grant, meeting scope, on joining
    "host_self",  # the host's own grant when ticking "everyone agrees"
    "host_for_other",  # a host's grant for another participant: stands for the host alone
    "admin_account",  # an admin's grant, account scope
    "admin_meeting",  # an admin's grant, meeting scope, mid-meeting
    "grant_mid_meeting",  # own grant part-way through: covers only the content after it
    "grant_after_meeting",  # own grant after the meeting: covers none of it
    "grant_after_as_of",  # own grant after the as-of time: does not exist yet
    "revoke_in_day",  # account-wide revoke during the day
    "revoke_next_day",  # account-wide revoke the next morning, before the as-of time
    "revoke_at_as_of",  # account-wide revoke exactly at the as-of time: it counts
    "revoke_after_as_of",  # revoke after the as-of time: a recorded revoke counts all the same
    "revoke_same_time",  # a revoke at the very second of the grant: the revoke wins
    "revoke_by_admin",  # an admin revokes someone's own grant: a revoke by anyone counts
    "revoke_meeting",  # meeting-scope revoke: ends consent for that meeting only
    "regrant",  # own grant again after a revoke: covers content after it
    "other_purpose",  # a grant for another purpose: never counts
)
# A person's account-wide history: (kind, probability); the rest have none.
_STANDING = (
    ("self_account", 0.20),
    ("revoke_in_day", 0.03),
    ("regrant", 0.025),
    ("revoke_next_day", 0.025),
    ("revoke_at_as_of", 0.01),
    ("revoke_after_as_of", 0.03),
    ("revoke_same_time", 0.01),
    ("revoke_by_admin", 0.01),
    ("grant_after_as_of", 0.015),
    ("other_purpose", 0.04),
)
_STANDING_CUM = list(accumulate(p for _, p in _STANDING))


class ConsentLedger:
    """Consent decisions as the product records them: self, host and admin, grants and revokes.

    Account-scope decisions are made with the accounts (`account_history`), meeting-scope ones
    by each meeting (`around_meeting`). Every decision is tallied by kind in `clauses`.
    """

    def __init__(self, rng: random.Random, day: str):
        self.rng = rng
        self.day_start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        # (subject, account, scope, purpose, action, actor, decided_at in whole seconds from
        # the start of the day)
        self.rows: list[tuple[str, str, str, str, str, str, int]] = []
        self.clauses: dict[str, int] = dict.fromkeys(CONSENT_CLAUSES, 0)
        # The first meetings take one of each meeting-scope history, so that even a small set
        # has them all: draws for the first attendees (one in each band of `around_meeting`),
        # then "everyone agrees", then an admin's grant.
        self.owed_draws = [0.1, 0.15, 0.2, 0.24, 0.27]
        self.owed_meeting = ["host", "admin"]
        # (subject, account) as a lenient reading finds them in each row that breaks the
        # ledger (None: not readable): `delivered_lines` fills it.
        self.rejected: list[tuple[str | None, str | None]] = []

    def _decide(
        self, kind: str, subject: str, account: str, scope: str, at_ms: int, **how: str
    ) -> None:
        """One decision; `at_ms` counts from the start of the generated day (may be another).

        Times are written in whole seconds, earlier ones floored.
        """
        self.clauses[kind] += 1
        self.rows.append(
            (
                subject,
                account,
                scope,
                how.get("purpose", "ai_training"),
                how.get("action", "grant"),
                how.get("actor", "self"),
                at_ms // SECOND,
            )
        )

    def account_history(self, account: str, pids: list[str], number: int) -> None:
        """Account-wide decisions: each person's own history, and an admin's grant for some.

        In the first 3 accounts (`number` counts them) the first people take one history kind
        each, so that even a small set has them all; the first account has an admin's grant.
        """
        r = self.rng.random
        for i, pid in enumerate(pids):
            if number < 3 and i < len(_STANDING):
                kind: str | None = _STANDING[i][0]
            else:
                x = r()
                j = bisect_right(_STANDING_CUM, x)
                kind = _STANDING[j][0] if j < len(_STANDING) else None
            if kind is not None:
                self._standing(kind, account, pid)
            if r() < 0.05:
                self._decide(
                    "other_purpose",
                    pid,
                    account,
                    "account",
                    -int(r() * 30 * DAY_MS),
                    purpose=pick(r, OTHER_PURPOSES),
                )
        if number == 0 or r() < 0.25:  # an admin's grant: a host-only rule lets all through
            pid = pids[len(_STANDING) + int(r() * (len(pids) - len(_STANDING)))]
            before = -int((1 + r() * 60) * DAY_MS)
            self._decide("admin_account", pid, account, "account", before, actor="admin")
            if r() < 0.3:
                at = int((6 + r() * 14) * HOUR)
                self._decide("revoke_in_day", pid, account, "account", at, action="revoke")

    def _standing(self, kind: str, account: str, pid: str) -> None:
        r = self.rng.random
        decide = self._decide
        before = -int((1 + r() * 120) * DAY_MS)
        if kind == "grant_after_as_of":
            decide(kind, pid, account, "account", AS_OF_MS + int((1 + r() * 48) * HOUR))
            return
        if kind == "other_purpose":
            decide(kind, pid, account, "account", before, purpose=pick(r, OTHER_PURPOSES))
            return
        decide("self_account", pid, account, "account", before)
        if kind == "self_account":
            return
        revoke = {"action": "revoke"}
        if kind == "revoke_in_day":
            decide(kind, pid, account, "account", int((8 + r() * 12) * HOUR), **revoke)
        elif kind == "regrant":  # revoked early in the day, granted again a little later
            at = int((5 + r() * 4) * HOUR)
            decide("revoke_in_day", pid, account, "account", at, **revoke)
            decide(kind, pid, account, "account", at + int((1 + r() * 3) * HOUR))
        elif kind == "revoke_next_day":
            decide(kind, pid, account, "account", int(DAY_MS + (7 + r() * 4) * HOUR), **revoke)
        elif kind == "revoke_at_as_of":
            decide(kind, pid, account, "account", AS_OF_MS, **revoke)
        elif kind == "revoke_after_as_of":
            at = AS_OF_MS + SECOND + int(r() * 72 * HOUR)
            decide(kind, pid, account, "account", at, **revoke)
        elif kind == "revoke_same_time":
            decide(kind, pid, account, "account", before, **revoke)
        elif kind == "revoke_by_admin":
            at = int((8 + r() * 12) * HOUR)
            decide(kind, pid, account, "account", at, action="revoke", actor="admin")
        else:
            raise AssertionError(kind)

    def around_meeting(
        self, account: str, meeting_id: str, attendees: list[Attendee], start: int, end: int
    ) -> None:
        """Meeting-scoped decisions: on joining, part-way, after the meeting, by host and admin."""
        r = self.rng.random
        decide = self._decide
        scope = f"meeting:{meeting_id}"
        host = attendees[0]
        for a in attendees:
            x = r()
            if self.owed_draws:
                x = self.owed_draws.pop(0)
            pid = a.user.pid
            if x < 0.13:
                decide("self_meeting", pid, account, scope, a.join_ms - int(5000 + r() * 120_000))
            elif x < 0.17:  # only after the meeting: covers none of its content
                at = end + int(MINUTE + r() * 36 * HOUR)
                decide(
                    "grant_after_meeting" if at <= AS_OF_MS else "grant_after_as_of",
                    pid,
                    account,
                    scope,
                    at,
                )
            elif x < 0.22:  # part-way through: covers what comes after it
                at = a.join_ms + int(r() * (a.leave_ms - a.join_ms))
                decide("grant_mid_meeting", pid, account, scope, at)
            elif x < 0.26:  # granted on joining, revoked later: during, after, or too late
                decide("self_meeting", pid, account, scope, a.join_ms - int(r() * MINUTE))
                y = r()
                if y < 0.4:
                    at = a.join_ms + int(r() * (a.leave_ms - a.join_ms))
                elif y < 0.75:
                    at = end + HOUR
                else:
                    at = AS_OF_MS + MINUTE + int(r() * 24 * HOUR)
                kind = "revoke_meeting" if at <= AS_OF_MS else "revoke_after_as_of"
                decide(kind, pid, account, scope, at, action="revoke")
            elif x < 0.28:  # for this meeting alone: an account grant still holds elsewhere
                decide(
                    "revoke_meeting",
                    pid,
                    account,
                    scope,
                    end + int(r() * 3 * HOUR),
                    action="revoke",
                )
            if r() < 0.05:
                decide(
                    "other_purpose",
                    pid,
                    account,
                    scope,
                    a.join_ms,
                    purpose=pick(r, OTHER_PURPOSES),
                )
        owed = self.owed_meeting[0] if self.owed_meeting else None
        if r() < 0.25 or owed == "host":  # the host ticks "everyone agrees": for the host alone
            at = host.join_ms - int(r() * MINUTE)
            if r() < 0.5 or owed == "host":
                decide("host_self", host.user.pid, account, scope, at)
            others = attendees[1:]
            for a in others[: 1 + int(r() * min(3, len(others)))]:
                decide("host_for_other", a.user.pid, account, scope, at, actor="host")
        if r() < 0.06 or owed == "admin":  # part-way through, for one participant
            subject = pick(r, attendees).user.pid
            at = start + int(r() * (end - start))
            decide("admin_meeting", subject, account, scope, at, actor="admin")
        if owed is not None:
            self.owed_meeting.pop(0)

    def _untie(self) -> None:
        """Move a host's or admin's grant off the second of a subject's own grant.

        Which of two grants at one time is "the latest" is not defined; the truth avoids asking.
        """
        own: set[tuple[str, str, int]] = set()
        for s, acct, _, _, action, actor, at in self.rows:
            if action == "grant" and actor == "self":  # of any purpose: simpler, no harm
                own.add((s, acct, at))
        for i, (s, acct, scope, purpose, action, actor, at) in enumerate(self.rows):
            if action == "grant" and actor != "self" and (s, acct, at) in own:
                while (s, acct, at) in own:
                    at += 1
                self.rows[i] = (s, acct, scope, purpose, action, actor, at)

    def decisions(self) -> list[dict[str, str]]:
        """Every valid decision, in decision order, as written."""
        self._untie()
        dates: dict[int, str] = {}
        out = []
        for subject, account, scope, purpose, action, actor, at in self.rows:
            days, second = divmod(at, 86_400)
            date = dates.get(days)
            if date is None:
                date = dates[days] = f"{(self.day_start + timedelta(days=days)).date()}"
            minute, second = divmod(second, 60)
            hour, minute = divmod(minute, 60)
            out.append(
                {
                    "subject_id": subject,
                    "account_id": account,
                    "scope": scope,
                    "purpose": purpose,
                    "action": action,
                    "actor": actor,
                    "decided_at": f"{date}T{hour:02d}:{minute:02d}:{second:02d}Z",
                }
            )
        return out

    def delivered_lines(self, decisions: list[dict[str, str]]) -> list[bytes]:
        """The log as it arrives: a quarter of it out of order, and 3 rows that break it."""
        rng = self.rng
        rows = list(decisions)
        n = len(rows)
        for _ in range(n // 4):
            i, j = int(rng.random() * n), int(rng.random() * n)
            rows[i], rows[j] = rows[j], rows[i]
        dumps = orjson.dumps
        lines = [dumps(row) + b"\n" for row in rows]
        own = [row for row in decisions if row["actor"] == "self" and row["action"] == "grant"]
        template = own[int(rng.random() * len(own))]
        cut = dumps(template)
        missing = {k: v for k, v in template.items() if k != "decided_at"}
        bad = [
            cut[: int(len(cut) * (0.4 + 0.3 * rng.random()))] + b"\n",  # a writer killed mid-line
            dumps({**template, "action": "revoke", "actor": "owner"}) + b"\n",  # no such actor
            dumps({**missing, "action": "revoke"}) + b"\n",  # no time
        ]
        for line in bad:
            lines.insert(int(rng.random() * (len(lines) + 1)), line)
        # Each bad row stands as a revoke for the ids still readable in it (orjson writes
        # `"key":"value"` with no space); the cut line may have lost them.
        subject, account = template["subject_id"], template["account_id"]
        self.rejected = [
            (
                subject if f'"subject_id":"{subject}"'.encode() in line else None,
                account if f'"account_id":"{account}"'.encode() in line else None,
            )
            for line in bad
        ]
        return lines
