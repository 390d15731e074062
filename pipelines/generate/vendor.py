"""What every vendor-shaped corpus shares: meetings drawn from the shared model, drift, the truth.

A vendor source writes lines as the platform sends them (`events.jsonl.gz`, or shards), the
consent ledger for its people, and `truth.json`: for every line what it is (`event`), where
it must end up (`expect`: training, restricted or quarantine, with the `reason` for the last),
the content subjects of content lines, and every value that must never be published
(`never_published`: secrets, identifiers, content strings, each with its category and field).
One `random.Random(seed)` drives every choice: the same arguments give the same bytes.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson

from pipelines.generate.cases import pattern_leak
from pipelines.generate.ledger import ConsentLedger
from pipelines.generate.model import (
    DAY_MS,
    HOUR,
    MINUTE,
    SECOND,
    Account,
    Attendee,
    make_accounts,
    platform_user_id,
)
from pipelines.generate.vocab import LEAVE_REASONS, TOPICS, pick
from pipelines.generate.writers import JsonlShards, shard_names

# Vendor corpora are line counts; each meeting writes a few dozen, and every hard case must fit.
MIN_LINES = 200
# Dozens of accounts, whatever the size: the string rules count values across accounts.
VENDOR_ACCOUNTS = 24
EXPECTS = ("training", "restricted", "quarantine")
# Leaks planted in vendor free text (leave reasons, alert issues, error strings): each must
# keep its record out of training (`detector:<kind>`), as the string rules do for the contract.
VENDOR_LEAK_KINDS = ("email", "phone", "ip_address", "secret_url", "natural_language")


@dataclass
class VendorMeeting:
    """One meeting of the shared model, with the ids every platform gives it."""

    account: Account
    meeting_id: str  # the collector's and the consent ledger's id of the meeting
    numeric_id: int  # Zoom's meeting number
    uuid: str  # base64 of 16 bytes: `/`, `+` and `==` as Zoom's are
    attendees: list[Attendee]
    start: int  # ms from the start of the day
    end: int
    topic: str

    @property
    def host(self) -> Attendee:
        return self.attendees[0]


@dataclass
class Line:
    """One delivered line and what the truth says about it."""

    raw: bytes
    event: str
    account_id: str | None
    meeting_id: str | None
    expect: str
    reason: str | None = None
    subjects: tuple[str, ...] = ()
    never: dict[str, tuple[str, str]] = field(default_factory=dict)
    cases: list[str] = field(default_factory=list)
    planted: dict[str, Any] | None = None

    def set_body(self, body: Any) -> None:
        """The line is `body` as compact JSON."""
        self.raw = orjson.dumps(body) + b"\n"

    def must_not_publish(self, value: Any, category: str, where: str) -> None:
        """A value no training file may hold (raw, whole)."""
        if value not in (None, "") and str(value) not in self.never:
            self.never[str(value)] = (category, where)

    def case(self, name: str) -> None:
        """A hard case of the facts file this line carries."""
        self.cases.append(name)


@dataclass
class Corpus:
    """The lines of one vendor corpus, in delivery order."""

    source: str
    lines: list[Line] = field(default_factory=list)

    def add(
        self,
        body: Any,
        event: str,
        meeting: VendorMeeting | None,
        expect: str = "training",
        *,
        reason: str | None = None,
        subjects: tuple[str, ...] = (),
        raw: bytes | None = None,
    ) -> Line:
        """Append one line (`raw` as is, else `body` as compact JSON; None: set later)."""
        assert expect in EXPECTS, expect
        line = Line(
            raw if raw is not None else b"" if body is None else orjson.dumps(body) + b"\n",
            event,
            meeting.account.account_id if meeting else None,
            meeting.meeting_id if meeting else None,
            expect,
            reason,
            subjects,
        )
        self.lines.append(line)
        return line


class VendorWorld:
    """Run-wide state of a vendor corpus: random source, accounts, ledger, meetings so far."""

    def __init__(self, seed: int, day: str, accounts: int):
        self.rng = rng = random.Random(seed)
        self.r = rng.random
        self.day = day
        self.day_start_ms = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)
        self.ledger = ConsentLedger(random.Random(rng.getrandbits(64)), day)
        self.accounts = make_accounts(rng, accounts, self.ledger)
        self.account_cum = list(accumulate(a.weight for a in self.accounts))
        self.meetings = 0

    def meeting(self, topics: tuple[str, ...], at_fraction: float) -> VendorMeeting:
        """The next meeting, roughly `at_fraction` through the day; consent decided around it."""
        r, rng = self.r, self.rng
        self.meetings += 1
        x = r() * self.account_cum[-1]
        account = self.accounts[next(i for i, c in enumerate(self.account_cum) if x < c)]
        n = min(2 + int(r() ** 1.6 * 7), len(account.users))
        users = rng.sample(account.users, n)
        duration = int((10 + r() * 80) * MINUTE)
        start = int(at_fraction * (DAY_MS - 3 * HOUR)) + int(r() * 30 * MINUTE)
        start = max(0, min(start, DAY_MS - 15 * MINUTE - duration))
        end = start + duration
        attendees = [Attendee(users[0], "host", start, end, "meeting ended by host")]
        for u in users[1:]:
            join = start + int(r() * min(5 * MINUTE, duration // 4))
            leave = end - int(r() * 30 * SECOND) if r() < 0.8 else join + int((end - join) * 0.5)
            attendees.append(Attendee(u, "attendee", join, leave, pick(r, LEAVE_REASONS)))
        # Zoom's default topic names the host: the title is an identifier as well as content.
        host_first = users[0].name
        topic = f"{host_first}'s Zoom Meeting" if r() < 0.35 else pick(r, topics)
        uuid = base64.b64encode(rng.getrandbits(128).to_bytes(16, "big")).decode()
        mid = f"mtg-{self.day.replace('-', '')}-{self.meetings:04d}"
        meeting = VendorMeeting(
            account,
            mid,
            80_000_000_000 + int(r() * 9_999_999_999),
            uuid,
            attendees,
            start,
            end,
            topic,
        )
        self.ledger.around_meeting(account.account_id, mid, attendees, start, end)
        return meeting

    # -- time in the forms platforms write it ------------------------------------------------
    def epoch_ms(self, ms: int) -> int:
        return self.day_start_ms + ms

    def iso(self, ms: int, millis: bool = False) -> str:
        moment = datetime.fromtimestamp((self.day_start_ms + ms) / 1000, UTC)
        if millis:
            return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
        return f"{moment:%Y-%m-%dT%H:%M:%S}Z"

    def any_time(self, ms: int) -> str | int | float:
        """ISO-Z, epoch seconds, epoch ms or float ms: the four forms seen in the wild."""
        x = self.r()
        if x < 0.4:
            return self.iso(ms, millis=x < 0.2)
        if x < 0.6:
            return (self.day_start_ms + ms) // 1000
        if x < 0.85:
            return self.day_start_ms + ms
        return self.day_start_ms + ms + int(self.r() * 1000) / 1000

    def leak(self, kind: str, instance: int) -> tuple[str, str]:
        """(needle, phrase holding it) for a `kind` leak planted in vendor free text."""
        return pattern_leak(self.rng, kind, instance)


@dataclass(frozen=True)
class VendorSource:
    """How one platform's lines are made from the shared meetings.

    `meeting_lines` adds one meeting's lines (with `every_case`, every optional event and
    hard case of the source, so that even a small corpus has them all); `plant` adds one
    planted line of `kind` (a leak kind, "undeclared_field" or "not_json") for a meeting.
    """

    name: str
    meeting_lines: Callable[[VendorWorld, Corpus, VendorMeeting, bool], None]
    plant: Callable[[VendorWorld, Corpus, str, int, VendorMeeting], Line]
    plant_kinds: tuple[str, ...] = (*VENDOR_LEAK_KINDS, "undeclared_field", "not_json")
    # Fields whose values never reach training under any name (derived from content, secret),
    # by their name in the vendor shape.
    withheld_fields: tuple[str, ...] = ()


def build_lines(source: VendorSource, world: VendorWorld, events: int) -> list[Line]:
    """Exactly `events` lines: meetings through the day, planted lines spread among them."""
    rng = world.rng
    per_kind = min(2 + events // 2000, 10)
    plans = [(kind, i) for kind in source.plant_kinds for i in range(per_kind)]
    normal = events - len(plans)
    corpus = Corpus(source.name)
    meetings: list[VendorMeeting] = []
    while len(corpus.lines) < normal:
        meeting = world.meeting(TOPICS, len(corpus.lines) / normal)
        meetings.append(meeting)
        source.meeting_lines(world, corpus, meeting, len(meetings) <= 2)
    lines = corpus.lines[:normal]  # the last meeting's tail is cut: a day's export ends
    for kind, instance in plans:
        corpus.lines = []
        line = source.plant(world, corpus, kind, instance, pick(rng.random, meetings))
        if line.planted is None:
            raise AssertionError(f"{source.name}: planted {kind} line has no truth")
        lines.insert(int(rng.random() * (len(lines) + 1)), line)
    return lines


def write_vendor(
    out_dir: str | Path,
    source: VendorSource,
    *,
    events: int,
    seed: int,
    shards: int,
    date: str,
    generator_id: str,
    accounts: int = VENDOR_ACCOUNTS,
) -> dict[str, Any]:
    """Write `events` lines of `source`, the consent ledger and the truth; return the truth."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in sorted([*out.glob("events*.jsonl.gz"), *out.glob("events*.parquet")]):
        old.unlink()
    world = VendorWorld(seed, date, accounts)
    lines = build_lines(source, world, events)
    names = shard_names("jsonl.gz", shards)
    writer = JsonlShards([out / name for name in names], events, [])
    try:
        writer.write([line.raw for line in lines])
    except BaseException:
        writer.abort()
        raise
    writer.close()
    decisions = world.ledger.decisions()
    with open(out / "consent.jsonl", "wb") as f:
        f.writelines(world.ledger.delivered_lines(decisions))
    truth = {
        "generator": generator_id,
        "source": source.name,
        "seed": seed,
        "events": events,
        "date": date,
        "format": "jsonl",
        "files": names,
        "accounts": len(world.accounts),
        "meetings": world.meetings,
        "withheld_fields": sorted(source.withheld_fields),
        **_line_truth(lines),
    }
    truth["subjects"] = _subjects(world, truth["records"])
    # orjson: a large corpus's truth lists hundreds of thousands of values.
    truth_bytes = orjson.dumps(truth, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    (out / "truth.json").write_bytes(truth_bytes + b"\n")
    return truth


def _subjects(world: VendorWorld, records: list[dict[str, Any]]) -> dict[str, Any]:
    """How the platforms name each content subject (the ledger names them by pid)."""
    wanted = {s for r in records for s in r["content_subjects"]}
    return {
        u.pid: {"platform_user_id": platform_user_id(u), "email": u.email}
        for a in world.accounts
        for u in a.users
        if u.pid in wanted
    }


def _line_truth(lines: list[Line]) -> dict[str, Any]:
    expected = dict.fromkeys(EXPECTS, 0)
    records = []
    planted = []
    never: dict[str, tuple[str, str]] = {}
    cases: dict[str, int] = {}
    for number, line in enumerate(lines):
        expected[line.expect] += 1
        records.append(
            {
                "line": number,
                "event": line.event,
                "account_id": line.account_id,
                "meeting_id": line.meeting_id,
                "expect": line.expect,
                "reason": line.reason,
                "content_subjects": list(line.subjects),
            }
        )
        if line.planted is not None:
            planted.append({"line": number, "expect": line.expect, **line.planted})
        for value, where in line.never.items():
            never.setdefault(value, where)
        for case in line.cases:
            cases[case] = cases.get(case, 0) + 1
    return {
        "expected": {"input_records": len(lines), **expected},
        "records": records,
        "planted": planted,
        "hard_cases": dict(sorted(cases.items())),
        "never_published": [
            {"value": value, "category": category, "field": where}
            for value, (category, where) in sorted(never.items())
        ],
    }


def plant_on(line: Line, kind: str, reason: str, field_name: str, needle: Any) -> Line:
    """Mark `line` as a planted case that must be quarantined with `reason`."""
    line.expect = "quarantine"
    line.reason = reason
    line.planted = {"kind": kind, "reason": reason, "field": field_name, "needle": needle}
    if needle is not None:
        line.must_not_publish(needle, "planted", field_name)
    return line


def broken_line(corpus: Corpus, meeting: VendorMeeting, body: Any, event: str) -> Line:
    """A line cut short mid-write: not JSON."""
    raw = orjson.dumps(body)
    line = corpus.add(None, event, meeting, raw=raw[: len(raw) // 2] + b"\n")
    return plant_on(line, "not_json", "not_json", "", None)
