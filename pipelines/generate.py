"""Synthetic meeting-event input sets with planted leaks and bad records, and their ground truth.

`generate()` writes what `consentgate run` reads: the events (gzip JSON Lines or Parquet, one
file or shards), a consent ledger, and `truth.json`: every planted case, where it must end up,
and how many records each destination must receive under the default content policy, and
which content records per-participant consent admits as of noon the next day (worked out
here by a second, independent reading of the contract's consent rule). One
`random.Random(seed)` (and a child of it for the ledger) drives every choice, so the same
arguments give the same bytes.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import queue
import random
import re
import threading
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import date as Date
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.rules.detectors import DETECTORS

__all__ = [
    "BAD_INPUT_KINDS",
    "DUPLICATE_KINDS",
    "GENERATOR_ID",
    "LEAK_KINDS",
    "MIN_EVENTS",
    "generate",
]

GENERATOR_ID = "consentgate.generate/1"
# Below this the planted cases (4 or more of each kind) would crowd out the clean records.
MIN_EVENTS = 500
FORMATS = ("jsonl", "parquet")

# Leaks planted in service free text, one kind per detector; each must be quarantined as
# `detector:<kind>`.
# The detectors the generator plants a leak for (the families added since are measured on
# tests/rules/detectors/vectors.py instead).
LEAK_KINDS: tuple[str, ...] = (
    "email",
    "phone",
    "ip_address",
    "secret_url",
    "payment_card",
    "blob",
    "natural_language",
    "known_identifier",
    "content_echo",
)
assert set(LEAK_KINDS) <= set(DETECTORS)
# Records or lines that break the input contract; each must be quarantined with a reason.
BAD_INPUT_KINDS = (
    "not_json",
    "not_utf8",
    "not_object",
    "unknown_event_type",
    "event_type_case",
    "event_type_spaces",
    "wrong_type",
    "missing_field",
    "undeclared_field",
    "bad_timestamp",
)
DUPLICATE_KINDS = ("duplicate", "conflicting_duplicate")
# An event type in other letter case or with stray spaces is just an unknown event type.
_REASON_OF = {"event_type_case": "unknown_event_type", "event_type_spaces": "unknown_event_type"}

_SECOND = 1000
_MINUTE = 60_000
_HOUR = 3_600_000
_DAY_MS = 86_400_000
_MIN_TAIL = 60  # a last meeting smaller than this is merged into the one before
_PARQUET_ROW_GROUP = 65_536

# -- vocabularies -------------------------------------------------------------------------
FIRST_NAMES = (
    "Alice", "Amara", "Ana", "Arjun", "Aylin", "Ben", "Bruno", "Camille", "Carlos", "Chloé",
    "Daniel", "Dmitri", "Elena", "Emeka", "Emma", "Fatima", "Felix", "Grace", "Hana", "Hugo",
    "Ibrahim", "Ingrid", "Isabel", "Jakub", "James", "Jonas", "José", "Julia", "Kai", "Kenji",
    "Lars", "Laura", "Lena", "Liam", "Lucía", "Mai", "Marco", "Maria", "Mateo", "Mei",
    "Mohammed", "Nadia", "Noah", "Nora", "Olivia", "Omar", "Paul", "Priya", "Rafael", "René",
    "Rosa", "Sami", "Sara", "Sofia", "Tariq", "Thomas", "Valentina", "Wei", "Yara", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "Adeyemi", "Andersen", "Bauer", "Becker", "Bianchi", "Chen", "Costa", "Dias", "Dubois",
    "Eriksson", "Fernández", "Fischer", "Garcia", "Gupta", "Haddad", "Hansen", "Hughes",
    "Ivanova", "Jensen", "Kaya", "Kim", "Kowalski", "Lambert", "Lefèvre", "Lindqvist",
    "Martin", "Mensah", "Moreau", "Müller", "Murphy", "Nakamura", "Nguyen", "Novak", "O'Brien",
    "Okafor", "Olsen", "Patel", "Petrov", "Rossi", "Santos", "Schmidt", "Silva", "Singh",
    "Suzuki", "Tanaka", "Wagner", "Walker", "Weber", "Yilmaz", "Zhang",
)  # fmt: skip
COMPANY_DOMAINS = (
    "northwind.example.com", "bluefin-labs.example.com", "contoso.example.com",
    "orbital-freight.example.com", "kestrel-health.example.org", "tallow.example.net",
    "brightline.example.com", "meridian-legal.example.com", "quarry.example.org",
    "helio-energy.example.com", "larkspur.example.net", "copperleaf.example.com",
)  # fmt: skip
PERSONAL_EMAIL_DOMAIN = "mail.example.org"
# Leaked addresses use a domain no participant has, so they trip only the email detector.
LEAK_EMAIL_DOMAIN = "inbox.example.net"
CITIES = (
    ("Lyon", "FR"), ("Paris", "FR"), ("Berlin", "DE"), ("Munich", "DE"), ("Madrid", "ES"),
    ("Barcelona", "ES"), ("Milan", "IT"), ("Rome", "IT"), ("Amsterdam", "NL"),
    ("Stockholm", "SE"), ("Oslo", "NO"), ("Warsaw", "PL"), ("Dublin", "IE"), ("London", "GB"),
    ("Manchester", "GB"), ("New York", "US"), ("San Francisco", "US"), ("Austin", "US"),
    ("Chicago", "US"), ("Toronto", "CA"), ("Vancouver", "CA"), ("Mexico City", "MX"),
    ("São Paulo", "BR"), ("Buenos Aires", "AR"), ("Lagos", "NG"), ("Nairobi", "KE"),
    ("Cairo", "EG"), ("Dubai", "AE"), ("Mumbai", "IN"), ("Bangalore", "IN"),
    ("Singapore", "SG"), ("Tokyo", "JP"), ("Osaka", "JP"), ("Seoul", "KR"), ("Sydney", "AU"),
    ("Auckland", "NZ"), ("Istanbul", "TR"), ("Zurich", "CH"), ("Vienna", "AT"),
    ("Lisbon", "PT"),
)  # fmt: skip
# (device, os versions, weight)
DEVICES = (
    ("Mac", ("14.6", "15.1", "15.2"), 30),
    ("Windows", ("10", "11"), 34),
    ("iPhone", ("17.6", "18.1"), 10),
    ("Android", ("13", "14", "15"), 8),
    ("iPad", ("17.6", "18.1"), 4),
    ("Linux", ("6.8", "6.11"), 5),
    ("Web", ("Chrome 131", "Firefox 133", "Safari 18.1"), 6),
    ("Room System", ("5.2", "5.3"), 3),
)
CLIENT_VERSIONS = ("6.3.1", "6.3.0", "6.2.6", "6.2.5", "6.1.12", "5.17.11")
NETWORK_TYPES = ("wifi", "wifi", "wifi", "wired", "wired", "cellular", "unknown")
DATA_CENTERS = ("EU-Central", "EU-West", "US-East", "US-West", "AP-Southeast", "SA-East")
CONNECTION_TYPES = ("UDP", "UDP", "UDP", "UDP", "TCP", "TLS")
VIDEO_MODES = (("1280x720", 30), ("640x360", 30), ("1920x1080", 30), ("960x540", 24))
SHARE_MODES = (("1920x1080", 15), ("2560x1440", 10), ("1280x720", 15), ("3840x2160", 5))
VIDEO_CODECS = ("vp8", "vp8", "vp9", "h264", "av1")
MEETING_TYPES = ("scheduled", "scheduled", "recurring", "recurring", "instant", "webinar")
FEATURES = (
    "screen_share", "whiteboard", "recording", "reactions", "breakout_rooms", "polls",
    "virtual_background", "chat", "captions", "raise_hand", "noise_suppression", "ai_companion",
)  # fmt: skip
LEAVE_REASONS = (
    "left the meeting", "left the meeting", "left the meeting", "network lost",
    "removed by host", "idle timeout", "client closed", "switched device",
)  # fmt: skip
LOG_COMPONENTS = ("net", "media", "audio", "video", "signaling", "ui", "rtc", "recording")
LOG_LEVELS = ("debug", "info", "info", "info", "warn", "warn", "error")
CRASH_COMPONENTS = ("video", "audio", "render", "net", "ui", "screen_share")
CRASH_MESSAGES = (
    "decoder crashed", "null pointer in renderer", "out of memory", "segmentation fault",
    "assertion failed: frame_count > 0", "watchdog timeout on media thread",
    "unhandled exception in signaling thread", "gpu context lost",
)  # fmt: skip
STACK_FRAMES = (
    ("Decoder.feed", "decoder.cc"), ("Decoder.flush", "decoder.cc"),
    ("Session.onFrame", "session.cc"), ("Renderer.draw", "renderer.cc"),
    ("TileView.layout", "tile_view.cc"), ("JitterBuffer.pop", "jitter_buffer.cc"),
    ("AudioDevice.open", "audio_device.cc"), ("IceAgent.restart", "ice_agent.cc"),
    ("Signaling.dispatch", "signaling.cc"), ("GpuContext.present", "gpu_context.cc"),
    ("Encoder.encode", "encoder.cc"), ("ThreadPool.run", "thread_pool.cc"),
)  # fmt: skip
TOPICS = (
    "Quarterly roadmap sync", "Weekly team standup", "Design review: onboarding flow",
    "Sales pipeline review", "Customer escalation follow-up", "Hiring committee",
    "Sprint planning", "Team retro", "All hands", "1:1", "Budget planning FY27",
    "Incident postmortem", "Product launch prep", "Board prep", "Vendor negotiation",
    "Security review", "Marketing campaign kickoff", "Interview: backend engineer",
    "Partner onboarding", "Office hours",
)  # fmt: skip
CHAT_MESSAGES = (
    "Slides are in the shared folder if anyone needs them",
    "Can everyone see my screen now or is it still frozen",
    "I'll be two minutes late, start without me",
    "Sorry my connection dropped, what did I miss just now",
    "Could you paste the link to the dashboard in here",
    "Let's push the budget discussion to next week's meeting",
    "Thanks everyone, I'll send the notes after lunch today",
    "The staging deploy finished about ten minutes ago without errors",
    "Who owns the follow-up with the vendor on pricing",
    "Please mute if you're not speaking, there's an echo",
    "I think we should ship the smaller version first",
    "Can we get a quick update on the hiring plan",
    "My camera is off because the bandwidth here is terrible",
    "Great point, let's add that to the risk register",
    "The customer asked for the contract draft by Thursday",
    "Does anyone have the numbers from last quarter handy",
    "I'll take the action item on the migration checklist",
    "Lunch just arrived so I'm stepping away for five minutes",
    "We need sign-off from legal before we publish this",
    "Reminder that the offsite agenda is due on Friday morning",
    "I can hear you fine but your video is frozen",
    "Let's keep the demo under ten minutes this time please",
    "The new onboarding flow cut support tickets almost in half",
    "Is the recording going to be shared with the whole team",
    "I'll follow up with finance about the invoice delay",
    "We're blocked on the API keys from the partner team",
    "Can someone from design join the review tomorrow afternoon",
    "Quick reminder to fill in the retro board before Friday",
    "That test failed again on the nightly build last night",
    "sounds good",
    "thanks!",
    "+1",
    "agreed",
    "brb",
)
SPOKEN_SENTENCES = (
    "Let's start with the roadmap and then move to hiring",
    "So the main thing this week is the release date",
    "I think we can hit the deadline if we cut scope a little",
    "Can you walk us through the numbers on the second slide",
    "We saw a big jump in sign-ups after the campaign went live",
    "The biggest risk right now is the dependency on the vendor",
    "Let me share my screen so everyone can see the chart",
    "We should talk to the customer before we commit to that",
    "Okay let's take five minutes and come back to this",
    "I'm not sure the team has capacity for another project",
    "The pilot went well and the feedback was mostly positive",
    "We need to decide today whether we move the launch",
    "Does anyone have questions before we move on to the next item",
    "I'll summarise the decisions at the end of the call",
    "The support queue is down to about forty tickets",
    "Our main competitor cut prices last month so we should respond",
    "Let's make sure the documentation is ready before the launch",
    "I spoke with the board and they are supportive of the plan",
    "The contract renewal is coming up at the end of the quarter",
    "We have three open positions and two offers are out",
    "Thanks everyone for joining, let's get started",
    "Can you hear me okay, I switched to my headset",
    "I'd like to hear from the engineering side first",
    "We moved the data migration to the weekend to reduce risk",
    "The survey results show that people want more flexible hours",
    "Yes",
    "Right, exactly",
)
# Chat-like sentences never used as content: planted as natural_language, so no same-meeting
# content repeats them and the leak trips only that detector.
LEAKED_SENTENCES = (
    "Can you send me the updated deck before Friday?",
    "I think my manager is going to reject this proposal",
    "Honestly the new office chairs are really uncomfortable",
    "Please call me back when you get out of the meeting",
    "We should grab dinner after the conference next week",
    "My daughter is sick so I need to leave early today",
    "Let me know if the client agrees to the revised price",
    "I forgot to book the meeting room for tomorrow morning",
    "Does anyone know when the performance reviews are due?",
    "The deal with the hospital group is almost signed",
)
WHITEBOARD_TEXTS = (
    "Ship v2 in March", "Ask legal about data retention", "Top risks", "Q3 goals",
    "Pricing options A/B", "Hiring plan", "Owner: ops team", "Customer feedback themes",
    "Blocked on vendor", "Launch checklist", "Parking lot", "Open questions",
)  # fmt: skip
WHITEBOARD_KINDS = ("sticky", "text", "shape_label")
POLLS = (
    ("Which date works for the offsite?", ("Tuesday", "Wednesday", "Thursday")),
    ("How confident are you in the Q3 plan?", ("Very", "Somewhat", "Not at all")),
    ("Preferred lunch option?", ("Pizza", "Salad", "Sushi")),
    ("Should we move the launch?", ("Yes", "No", "Need more data")),
    ("Rate today's session", ("1", "2", "3", "4", "5")),
)
SHARED_FILES = (
    ("roadmap-q3.pdf", "application/pdf"),
    ("budget-2027.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (
        "meeting-notes.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("architecture.png", "image/png"),
    ("contract-draft-v3.pdf", "application/pdf"),
    ("customer-list.csv", "text/csv"),
    ("demo.mp4", "video/mp4"),
    ("offsite-agenda.pdf", "application/pdf"),
)
CHAT_FILE_NAMES = ("notes.docx", "screenshot.png", "agenda.pdf", "metrics.csv")
SUMMARIES = (
    "The team agreed on the Q3 roadmap and will revisit hiring next week.",
    "The group reviewed the incident timeline and agreed on three follow-ups.",
    "Launch stays on track; documentation and support training are the open items.",
    "Budget was approved with a smaller marketing line than proposed.",
    "The customer escalation is resolved; a root-cause write-up is due Friday.",
    "Design feedback was positive; the onboarding changes ship next sprint.",
)
NEXT_STEPS = (
    "{} shares the deck",
    "{} follows up with legal",
    "{} books the offsite venue",
    "{} updates the migration checklist",
    "{} sends the notes",
    "{} confirms the launch date with the customer",
)
RECORDING_TYPES = ("MP4", "M4A", "TRANSCRIPT", "CHAT", "CC", "TIMELINE")
OTHER_PURPOSES = ("product_analytics", "support_diagnostics", "marketing_research")

_Rand = Callable[[], float]

# Service free text that is clean: machine phrases and numbers, nothing personal, no prose.
_LOG_LINES: tuple[Callable[[_Rand], str], ...] = (
    lambda r: f"ICE restart after {80 + int(r() * 900)} ms",
    lambda r: "dtls handshake timeout after 10000 ms",
    lambda r: "jitter buffer underrun",
    lambda r: "audio device changed",
    lambda r: f"reconnect attempt {1 + int(r() * 5)} of 5",
    lambda r: f"video encoder switched to {VIDEO_CODECS[int(r() * 5)]}",
    lambda r: f"bandwidth estimate {150 + int(r() * 2500)} kbps",
    lambda r: f"packet loss {int(r() * 50) / 10}% over 10 s window",
    lambda r: f"renegotiation complete in {40 + int(r() * 400)} ms",
    lambda r: "turn allocation refreshed",
    lambda r: "keyframe requested",
    lambda r: "echo canceller reset",
    lambda r: f"frame decode slow: {30 + int(r() * 200)} ms",
    lambda r: "websocket closed code 1006",
    lambda r: f"sfu migrated to {DATA_CENTERS[int(r() * 6)]}",
    lambda r: "cpu overuse detected, lowering resolution",
    lambda r: f"stats report interval {5000 * (1 + int(r() * 3))} ms",
    lambda r: "audio route changed to bluetooth",
)


def _pick(r: _Rand, options: tuple[Any, ...] | list[Any]) -> Any:
    return options[int(r() * len(options))]


# -- clean payloads (rounding by int(): several times cheaper than round()) ------------------
def _qos_audio(r: _Rand) -> dict[str, Any]:
    avg = int(r() ** 3 * 250) / 100
    return {
        "direction": "input" if r() < 0.5 else "output",
        "bitrate_kbps": int(240 + r() * 400) / 10,
        "latency_ms": 20 + int(r() ** 2 * 380),
        "jitter_ms": int(r() ** 2 * 40),
        "avg_loss_pct": avg,
        "max_loss_pct": int(avg * 100 + r() * 250) / 100,
        "codec": "opus",
        "audio_level": int(r() * 100) / 100,
    }


def _qos_video(r: _Rand, screen: bool = False) -> dict[str, Any]:
    avg = int(r() ** 3 * 250) / 100
    resolution, fps = _pick(r, SHARE_MODES if screen else VIDEO_MODES)
    low, high = (100, 1500) if screen else (150, 2500)
    return {
        "direction": "input" if r() < 0.5 else "output",
        "bitrate_kbps": int(10 * low + r() * 10 * (high - low)) / 10,
        "latency_ms": 20 + int(r() ** 2 * 380),
        "jitter_ms": int(r() ** 2 * 40),
        "avg_loss_pct": avg,
        "max_loss_pct": int(avg * 100 + r() * 250) / 100,
        "resolution": resolution,
        "frame_rate": fps if r() < 0.8 else fps // 2,
        "codec": VIDEO_CODECS[int(r() * 5)],
    }


def _qos_system(r: _Rand, network_type: str) -> dict[str, Any]:
    return {
        "cpu_usage_pct": int(30 + r() * 920) / 10,
        "memory_mb": 200 + int(r() * 3800),
        "network_type": network_type,
        "data_center": DATA_CENTERS[int(r() * 6)],
        "connection_type": CONNECTION_TYPES[int(r() * 6)],
    }


def _feature(r: _Rand) -> dict[str, Any]:
    return {
        "feature": _pick(r, FEATURES),
        "action": "start" if r() < 0.6 else "stop",
        "count": 1 + int(r() ** 3 * 5),
    }


def _clean_log(r: _Rand) -> dict[str, Any]:
    return {
        "level": _pick(r, LOG_LEVELS),
        "component": _pick(r, LOG_COMPONENTS),
        "message": _pick(r, _LOG_LINES)(r),
    }


def _clean_crash(r: _Rand, user: _User) -> dict[str, Any]:
    frames = [_pick(r, STACK_FRAMES) for _ in range(3 + int(r() * 4))]
    return {
        "component": _pick(r, CRASH_COMPONENTS),
        "error_code": f"E{1000 + int(r() * 90) * 10 + int(r() * 3)}",
        "client_version": user.client_version,
        "os_version": user.os_version,
        "stack_trace": "\n".join(f"at {fn}({src}:{10 + int(r() * 900)})" for fn, src in frames),
        "message": _pick(r, CRASH_MESSAGES),
    }


# -- people and accounts -------------------------------------------------------------------
@dataclass(frozen=True)
class _User:
    pid: str
    name: str
    email: str | None
    ip: str
    location: str
    device: str
    os_version: str
    client_version: str
    network_type: str


@dataclass(frozen=True)
class _Account:
    account_id: str
    users: tuple[_User, ...]
    weight: int


@dataclass(frozen=True)
class _Attendee:
    user: _User
    role: str
    join_ms: int
    leave_ms: int
    leave_reason: str


_DEVICE_CUM = list(accumulate(w for _, _, w in DEVICES))


def _email_local(first: str, last: str) -> str:
    folded = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z.]", "", folded.lower())


def _make_user(rng: random.Random, domain: str, taken: set[str]) -> _User:
    r = rng.random
    pid = f"p-{rng.getrandbits(24):06x}"
    while pid in taken:
        pid = f"p-{rng.getrandbits(24):06x}"
    taken.add(pid)
    first, last = _pick(r, FIRST_NAMES), _pick(r, LAST_NAMES)
    x = r()
    mailbox = domain if x < 0.7 else PERSONAL_EMAIL_DOMAIN if x < 0.8 else None
    # Documentation ranges (RFC 5737, RFC 3849); leaks use 203.0.113.0/24 and
    # 2001:db8:ffff::/48, which no participant has.
    if r() < 0.85:
        ip = f"{'192.0.2' if r() < 0.5 else '198.51.100'}.{1 + int(r() * 254)}"
    else:
        ip = f"2001:db8:{1 + int(r() * 0xFFE):x}:{int(r() * 0xFFFF):x}::{1 + int(r() * 0xFFE):x}"
    city, country = _pick(r, CITIES)
    device, versions, _ = DEVICES[bisect_right(_DEVICE_CUM, r() * _DEVICE_CUM[-1])]
    return _User(
        pid=pid,
        name=f"{first} {last}",
        email=f"{_email_local(first, last)}@{mailbox}" if mailbox else None,
        ip=ip,
        location=f"{city} ({country})",
        device=device,
        os_version=_pick(r, versions),
        client_version=CLIENT_VERSIONS[int(r() ** 2 * len(CLIENT_VERSIONS))],
        network_type=_pick(r, NETWORK_TYPES),
    )


def _make_accounts(rng: random.Random, events: int, ledger: _ConsentLedger) -> list[_Account]:
    """Several accounts, each with its own staff; standing consent decisions for each person."""
    taken: set[str] = set()
    accounts = []
    for i in range(min(3 + events // 8000, 60)):
        account_id = f"acct-{rng.getrandbits(16):04x}"
        while account_id in taken:
            account_id = f"acct-{rng.getrandbits(16):04x}"
        taken.add(account_id)
        name, tld = COMPANY_DOMAINS[i % len(COMPANY_DOMAINS)].split(".", 1)
        domain = f"{name}{i // len(COMPANY_DOMAINS) or ''}.{tld}"
        users = tuple(_make_user(rng, domain, taken) for _ in range(12 + int(rng.random() * 40)))
        accounts.append(_Account(account_id, users, 1 + int(rng.random() ** 2 * 9)))
        ledger.account_history(account_id, [u.pid for u in users], i)
    return accounts


# -- consent ledger --------------------------------------------------------------------------
# The consent as-of time of the truth: noon the day after the generated day.
_AS_OF_MS = _DAY_MS + 12 * _HOUR
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


class _ConsentLedger:
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
                at_ms // _SECOND,
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
                    -int(r() * 30 * _DAY_MS),
                    purpose=_pick(r, OTHER_PURPOSES),
                )
        if number == 0 or r() < 0.25:  # an admin's grant: a host-only rule lets all through
            pid = pids[len(_STANDING) + int(r() * (len(pids) - len(_STANDING)))]
            before = -int((1 + r() * 60) * _DAY_MS)
            self._decide("admin_account", pid, account, "account", before, actor="admin")
            if r() < 0.3:
                at = int((6 + r() * 14) * _HOUR)
                self._decide("revoke_in_day", pid, account, "account", at, action="revoke")

    def _standing(self, kind: str, account: str, pid: str) -> None:
        r = self.rng.random
        decide = self._decide
        before = -int((1 + r() * 120) * _DAY_MS)
        if kind == "grant_after_as_of":
            decide(kind, pid, account, "account", _AS_OF_MS + int((1 + r() * 48) * _HOUR))
            return
        if kind == "other_purpose":
            decide(kind, pid, account, "account", before, purpose=_pick(r, OTHER_PURPOSES))
            return
        decide("self_account", pid, account, "account", before)
        if kind == "self_account":
            return
        revoke = {"action": "revoke"}
        if kind == "revoke_in_day":
            decide(kind, pid, account, "account", int((8 + r() * 12) * _HOUR), **revoke)
        elif kind == "regrant":  # revoked early in the day, granted again a little later
            at = int((5 + r() * 4) * _HOUR)
            decide("revoke_in_day", pid, account, "account", at, **revoke)
            decide(kind, pid, account, "account", at + int((1 + r() * 3) * _HOUR))
        elif kind == "revoke_next_day":
            decide(kind, pid, account, "account", int(_DAY_MS + (7 + r() * 4) * _HOUR), **revoke)
        elif kind == "revoke_at_as_of":
            decide(kind, pid, account, "account", _AS_OF_MS, **revoke)
        elif kind == "revoke_after_as_of":
            at = _AS_OF_MS + _SECOND + int(r() * 72 * _HOUR)
            decide(kind, pid, account, "account", at, **revoke)
        elif kind == "revoke_same_time":
            decide(kind, pid, account, "account", before, **revoke)
        elif kind == "revoke_by_admin":
            at = int((8 + r() * 12) * _HOUR)
            decide(kind, pid, account, "account", at, action="revoke", actor="admin")
        else:
            raise AssertionError(kind)

    def around_meeting(
        self, account: str, meeting_id: str, attendees: list[_Attendee], start: int, end: int
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
                at = end + int(_MINUTE + r() * 36 * _HOUR)
                decide(
                    "grant_after_meeting" if at <= _AS_OF_MS else "grant_after_as_of",
                    pid,
                    account,
                    scope,
                    at,
                )
            elif x < 0.22:  # part-way through: covers what comes after it
                at = a.join_ms + int(r() * (a.leave_ms - a.join_ms))
                decide("grant_mid_meeting", pid, account, scope, at)
            elif x < 0.26:  # granted on joining, revoked later: during, after, or too late
                decide("self_meeting", pid, account, scope, a.join_ms - int(r() * _MINUTE))
                y = r()
                if y < 0.4:
                    at = a.join_ms + int(r() * (a.leave_ms - a.join_ms))
                elif y < 0.75:
                    at = end + _HOUR
                else:
                    at = _AS_OF_MS + _MINUTE + int(r() * 24 * _HOUR)
                kind = "revoke_meeting" if at <= _AS_OF_MS else "revoke_after_as_of"
                decide(kind, pid, account, scope, at, action="revoke")
            elif x < 0.28:  # for this meeting alone: an account grant still holds elsewhere
                decide(
                    "revoke_meeting",
                    pid,
                    account,
                    scope,
                    end + int(r() * 3 * _HOUR),
                    action="revoke",
                )
            if r() < 0.05:
                decide(
                    "other_purpose",
                    pid,
                    account,
                    scope,
                    a.join_ms,
                    purpose=_pick(r, OTHER_PURPOSES),
                )
        owed = self.owed_meeting[0] if self.owed_meeting else None
        if r() < 0.25 or owed == "host":  # the host ticks "everyone agrees": for the host alone
            at = host.join_ms - int(r() * _MINUTE)
            if r() < 0.5 or owed == "host":
                decide("host_self", host.user.pid, account, scope, at)
            others = attendees[1:]
            for a in others[: 1 + int(r() * min(3, len(others)))]:
                decide("host_for_other", a.user.pid, account, scope, at, actor="host")
        if r() < 0.06 or owed == "admin":  # part-way through, for one participant
            subject = _pick(r, attendees).user.pid
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


# -- planted cases ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Mark:
    """What a record is beyond a clean one: a planted case, envelope edits, line damage."""

    kind: str | None = None
    reason: str | None = None
    expect: str = "quarantine"
    field: str | None = None
    needle: str | None = None
    id_known: bool = True  # False when a reader cannot see the event id (broken line)
    drop: str | None = None  # envelope key removed
    patch: tuple[tuple[str, Any], ...] = ()  # envelope keys overwritten
    damage: str | None = None  # "truncate", "latin1", "array" or "number"

    @property
    def edits(self) -> bool:
        return bool(self.drop or self.patch or self.damage)


# A clean record without a meeting (a client log written outside any meeting).
_NO_MEETING = _Mark(patch=(("meeting_id", None),))
_DUPLICATE = _Mark(kind="duplicate", reason="duplicate", expect="duplicate")
_CONFLICT = _Mark(kind="conflicting_duplicate", reason="conflicting_duplicate")


@dataclass(frozen=True)
class _Case:
    target: int  # record position the case should land near
    kind: str
    instance: int  # per-kind counter: picks the variant and the field

    @property
    def extra_records(self) -> int:
        """Records this case adds to its meeting, at most (a leave-reason leak adds none)."""
        return 2 if self.kind == "content_echo" else 1  # echo: the message and the log


def _plan_cases(rng: random.Random, events: int, kinds: tuple[str, ...]) -> list[_Case]:
    """Every planted case with a target position, stratified so they spread through the file."""
    per_kind = min(4 + events // 10_000, 40)  # 4: every variant of the 4-variant kinds
    cases = [(kind, i) for kind in kinds for i in range(per_kind)]
    rng.shuffle(cases)
    spacing = events / len(cases)
    return [_Case(int((j + rng.random()) * spacing), k, i) for j, (k, i) in enumerate(cases)]


def _luhn_complete(digits: str) -> str:
    """`digits` followed by their Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return digits + str((10 - total % 10) % 10)


def _digits(r: _Rand, n: int) -> str:
    return "".join(str(int(r() * 10)) for _ in range(n))


def _pattern_leak(rng: random.Random, kind: str, v: int) -> tuple[str, str]:
    """(needle, log phrase holding it) for the leak kinds found by their shape."""
    r = rng.random

    def hex_token(n: int) -> str:
        return f"{rng.getrandbits(4 * n):0{n}x}"

    if kind == "email":
        local = _email_local(_pick(r, FIRST_NAMES), _pick(r, LAST_NAMES))
        needle = (
            f"{local}@{LEAK_EMAIL_DOMAIN}",
            f"{local}\uff20{LEAK_EMAIL_DOMAIN}",  # fullwidth at sign, as some IMEs type it
            f"{local[:3]}\u200b{local[3:]}@{LEAK_EMAIL_DOMAIN}",  # zero-width space from rich text
        )[v % 3]
        templates: tuple[str, ...] = ("auth refresh failed for {}", "invite bounced for {}")
    elif kind == "phone":
        if v % 2 == 0:  # Ofcom's drama range
            needle = f"+44 20 7946 0{_digits(r, 3)}"
        else:  # 555-01xx, reserved for fiction
            needle = f"({_pick(r, ('415', '212', '312', '617'))}) 555-01{_digits(r, 2)}"
        templates = ("pstn callback to {} failed", "dial-out leg {} dropped")
    elif kind == "ip_address":
        if v % 2 == 0:
            needle = f"203.0.113.{1 + int(r() * 254)}"
        else:
            needle = f"2001:db8:ffff:{int(r() * 0xFFFF):x}::{1 + int(r() * 0xFFE):x}"
        templates = ("stun binding from {} timed out", "peer {} unreachable")
    elif kind == "secret_url":
        # Token values stay short of the blob detector's lengths: one leak, one detector.
        token = base64.urlsafe_b64encode(rng.getrandbits(168).to_bytes(21, "big")).decode()
        needle = (
            f"https://files.example.com/rec/download/{hex_token(12)}?access_token={token}",
            f"https://hooks.example.com/v2/notify/{hex_token(6)}?token={token}",
            f"https://sso.example.com/login?user=svc-sync&password=Harbor{_digits(r, 4)}!",
            f"https://rec-eu.s3.eu-west-1.amazonaws.com/{hex_token(12)}.mp4?X-Amz-Algorithm="
            f"AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature={hex_token(24)}",
        )[v % 4]
        templates = ("fetch failed for {}", "redirecting to {}", "upload retry {}")
    elif kind == "payment_card":
        variant = v % 3
        if variant == 0:  # Visa, grouped by spaces
            d = _luhn_complete("4" + _digits(r, 14))
            needle = " ".join(d[i : i + 4] for i in range(0, 16, 4))
        elif variant == 1:  # Mastercard, grouped by dashes
            d = _luhn_complete(f"5{1 + int(r() * 5)}" + _digits(r, 13))
            needle = "-".join(d[i : i + 4] for i in range(0, 16, 4))
        else:  # American Express, 4-6-5
            d = _luhn_complete(_pick(r, ("34", "37")) + _digits(r, 12))
            needle = f"{d[:4]} {d[4:10]} {d[10:]}"
        templates = ("billing webhook rejected card {}", "charge retry for card {}")
    elif kind == "blob":
        if v % 2 == 0:
            needle = base64.b64encode(rng.getrandbits(384).to_bytes(48, "big")).decode()
        else:
            needle = hex_token(_pick(r, (40, 64)))
        templates = ("session state dump {}", "cache key {}", "key material {}")
    elif kind == "natural_language":
        needle = _pick(r, LEAKED_SENTENCES)
        templates = ("{}", "notification text: {}", "chat render: {}")
    else:
        raise AssertionError(kind)
    return needle, _pick(r, templates).format(needle)


def _bad_record(
    kind: str, v: int, r: _Rand, user: _User, day: str, parquet: bool
) -> tuple[str, dict[str, Any], _Mark]:
    """(event_type, payload, mark) of a record that breaks the contract as `kind` says."""
    reason = _REASON_OF.get(kind, kind)
    mark = _Mark(kind=kind, reason=reason)
    if kind in ("not_json", "not_object"):
        damage = "truncate" if kind == "not_json" else ("array", "number")[v % 2]
        # A Parquet row cannot be broken JSON, but its payload column can.
        reason = f"payload_{kind}" if parquet else kind
        return "qos.audio", _qos_audio(r), _Mark(kind, reason, id_known=False, damage=damage)
    if kind == "not_utf8":  # one producer still writes Windows-1252
        device = _pick(r, ("Haut-parleurs (Realtek® Audio)", "Mikrofon (Realtek® Audio)"))
        payload = {"level": "info", "component": "audio", "message": f"device: {device}"}
        return "diagnostic.log", payload, _Mark(kind, reason, id_known=False, damage="latin1")
    if kind == "unknown_event_type":
        variants: tuple[tuple[str, dict[str, Any]], ...] = (
            ("qos.bandwidth", {"direction": "input", "estimate_kbps": int(300 + r() * 3000)}),
            ("usage.hand_raised", {"count": 1}),
            ("diagnostic.trace", {"component": "net", "span_ms": int(r() * 900)}),
            ("qos.network", {"rtt_ms": int(20 + r() * 300), "network_type": user.network_type}),
        )
    elif kind == "event_type_case":
        variants = (
            ("QoS.Audio", _qos_audio(r)),
            ("Qos.Video", _qos_video(r)),
            ("USAGE.FEATURE_USED", _feature(r)),
            ("Diagnostic.Log", _clean_log(r)),
        )
    elif kind == "event_type_spaces":
        variants = (
            (" qos.audio", _qos_audio(r)),
            ("qos.system ", _qos_system(r, user.network_type)),
            (" usage.feature_used ", _feature(r)),
            ("qos.video  ", _qos_video(r)),
        )
    elif kind == "wrong_type":
        audio, system = _qos_audio(r), _qos_system(r, user.network_type)
        variants = (
            ("qos.audio", {**audio, "latency_ms": str(audio["latency_ms"])}),
            ("qos.video", {**_qos_video(r), "frame_rate": True}),
            ("qos.system", {**system, "memory_mb": str(system["memory_mb"])}),
            ("usage.feature_used", {**_feature(r), "count": "2"}),
            ("qos.audio", {**audio, "codec": 111}),
        )
    elif kind == "missing_field":
        video, system = _qos_video(r), _qos_system(r, user.network_type)
        del video["resolution"], system["data_center"]
        variants = (
            ("qos.video", video),
            ("usage.feature_used", {"feature": "chat", "count": 1}),
            ("qos.system", system),
        )
        if not parquet and v % 2:  # every Parquet row has every column
            drop = ("account_id", "event_ts")[v // 2 % 2]
            return "qos.audio", _qos_audio(r), _Mark(kind, reason, drop=drop)
    elif kind == "undeclared_field":
        variants = (
            ("qos.audio", {**_qos_audio(r), "mos_score": int(30 + r() * 15) / 10}),
            ("qos.system", {**_qos_system(r, "wired"), "gpu_usage_pct": int(r() * 800) / 10}),
            ("usage.feature_used", {**_feature(r), "source": "toolbar"}),
            ("diagnostic.log", {**_clean_log(r), "thread": "media-3"}),
        )
    elif kind == "bad_timestamp":
        year, month, dd = day.split("-")
        bad = ("yesterday", f"{day}T25:61:00.000Z", f"{dd}/{month}/{year} 09:14:03")[v % 3]
        if v % 4 == 3:
            bad = f"{year}-02-30T10:00:00Z"
        return "qos.audio", _qos_audio(r), _Mark(kind, reason, patch=(("event_ts", bad),))
    else:
        raise AssertionError(kind)
    event_type, payload = variants[v % len(variants)]
    return event_type, payload, mark


# -- one meeting -----------------------------------------------------------------------------
# Before ids: (ms, event_type, participant_id, payload, mark).
_Item = tuple[int, str, str | None, Any, _Mark | None]
# After ids: (event_id, event_type, event_ts, participant_id, payload, mark).
_Row = tuple[str, str, str, str | None, Any, _Mark | None]
# (account_id, meeting_id, host ids, [(event_id, event_ts, content subjects)]).
_ConsentView = tuple[str, str, frozenset[str], list[tuple[str, str, tuple[str, ...]]]]

# The free-text field a leak goes into, rotated per instance so that each field gets some.
_LEAK_SLOTS = ("log", "crash_message", "log", "leave_reason", "crash_stack")
_FIELD_OF_SLOT = {
    "log": "message",
    "crash_message": "message",
    "crash_stack": "stack_trace",
    "leave_reason": "leave_reason",
}


class _Meeting:
    """One meeting of one account: attendees, timeline, records, its share of planted cases."""

    def __init__(self, run: _Run, number: int, start_ms: int):
        self.run = run
        rng = run.rng
        r = self.r = rng.random
        self.account = run.accounts[bisect_right(run.account_cum, r() * run.account_cum[-1])]
        self.meeting_id = f"mtg-{run.day.replace('-', '')}-{number:04d}"
        n = min(2 + int(r() ** 1.6 * 11), len(self.account.users))
        users = rng.sample(self.account.users, n)
        duration = int((10 + r() * 80) * _MINUTE)
        self.start = max(0, min(start_ms, _DAY_MS - 15 * _MINUTE - duration))
        self.end = self.start + duration
        co_host = 1 if r() < 0.3 else -1
        self.attendees = [self._attendee(u, i == 0, i == co_host) for i, u in enumerate(users)]
        self.recordings = (1 + int(r() * 3)) if r() < 0.4 else 0
        self.summary = r() < 0.3
        self.items: list[_Item] = []
        self.cases: list[_Case] = []

    def _attendee(self, user: _User, host: bool, co_host: bool) -> _Attendee:
        r = self.r
        if host:
            return _Attendee(user, "host", self.start, self.end, "meeting ended by host")
        join = self.start + int(r() * min(5 * _MINUTE, (self.end - self.start) // 4))
        role = "co_host" if co_host else "attendee"
        if r() < 0.8:
            reason = "meeting ended by host" if r() < 0.5 else "left the meeting"
            return _Attendee(user, role, join, self.end - int(r() * 30 * _SECOND), reason)
        leave = join + int((self.end - join) * (0.3 + 0.6 * r()))
        return _Attendee(user, role, join, leave, _pick(r, LEAVE_REASONS))

    # -- sizing ------------------------------------------------------------------------------
    def fixed_size(self) -> int:
        return 2 * len(self.attendees) + 2 + self.recordings + int(self.summary)

    def natural_size(self) -> int:
        return self.fixed_size() + int(len(self.attendees) * (10 + self.r() * 25))

    def min_size(self) -> int:
        """Fewest records that hold the fixed ones, the planted cases and a few clean ones."""
        return self.fixed_size() + sum(c.extra_records for c in self.cases) + 4

    def shrink(self) -> None:
        """Two attendees, no recordings, no summary: room for a crowded last meeting."""
        self.attendees = self.attendees[:2]
        self.recordings = 0
        self.summary = False

    # -- records -----------------------------------------------------------------------------
    def build(self, size: int) -> list[_Row]:
        """Exactly `size` records in file order, this meeting's planted cases included."""
        self.run.ledger.around_meeting(
            self.account.account_id, self.meeting_id, self.attendees, self.start, self.end
        )
        self._fixed()
        left_at = {it[2]: i for i, it in enumerate(self.items) if it[1] == "usage.participant_left"}
        copies = [c for c in self.cases if c.kind in DUPLICATE_KINDS]
        for case in self.cases:
            if case.kind in LEAK_KINDS:
                self._plant_leak(case, left_at)
            elif case.kind in BAD_INPUT_KINDS:
                a = _pick(self.r, self.attendees)
                user = a.user
                etype, payload, mark = _bad_record(
                    case.kind, case.instance, self.r, user, self.run.day, self.run.parquet
                )
                self.items.append((self._moment(a), etype, user.pid, payload, mark))
        fill = size - len(self.items) - len(copies)
        if fill < 0:
            raise RuntimeError(f"{self.meeting_id}: {size} records cannot hold its cases")
        self._fill(fill)
        self.items.sort(key=itemgetter(0))
        rows = self._with_ids()
        for case in copies:
            self._plant_copy(rows, case)
        return rows

    def _moment(self, a: _Attendee, not_before: int = 0) -> int:
        """A time while `a` is in the meeting, strictly between joining and leaving."""
        lo = max(a.join_ms, not_before)
        return lo + 1 + int(self.r() * max(1, a.leave_ms - lo - 1))

    def _fixed(self) -> None:
        r = self.r
        add = self.items.append
        host = self.attendees[0].user.pid
        started = {
            "topic": _pick(r, TOPICS),
            "host_id": host,
            "meeting_type": _pick(r, MEETING_TYPES),
            "scheduled_duration_min": _pick(r, (15, 30, 30, 45, 60, 60, 90)),
        }
        add((self.start, "usage.meeting_started", host, started, None))
        for a in self.attendees:
            u = a.user
            joined = {
                "user_name": u.name,
                "email": u.email,
                "ip_address": u.ip,
                "location": u.location,
                "device": u.device,
                "os_version": u.os_version,
                "client_version": u.client_version,
                "network_type": u.network_type,
                "role": a.role,
            }
            add((a.join_ms, "usage.participant_joined", u.pid, joined, None))
        for a in self.attendees:  # after every join: a host leaves at the very end
            left = {"leave_reason": a.leave_reason, "duration_s": (a.leave_ms - a.join_ms) // 1000}
            add((a.leave_ms, "usage.participant_left", a.user.pid, left, None))
        n = len(self.attendees)
        ended = {
            "duration_s": (self.end - self.start) // 1000,
            "participant_count": n,
            "peak_participants": n - int(r() * min(2, n - 1)),
        }
        add((self.end, "usage.meeting_ended", None, ended, None))
        everyone = [a.user.pid for a in self.attendees]
        for i in range(self.recordings):
            ms = self.end + int((30 + r() * 240) * _SECOND)
            add((ms, "content.recording_file", host, self._recording(i, everyone), None))
        if self.summary:
            ms = self.end + int((60 + r() * 240) * _SECOND)
            add((ms, "content.ai_summary", host, self._summary(everyone), None))

    def _recording(self, i: int, everyone: list[str]) -> dict[str, Any]:
        r, bits = self.r, self.run.rng.getrandbits
        file_type = RECORDING_TYPES[i] if i < 2 else _pick(r, RECORDING_TYPES[2:])
        media = file_type in ("MP4", "M4A")
        return {
            "file_type": file_type,
            "file_size": int((20 + r() * 400) * 1e6) if media else int(2000 + r() * 90_000),
            "download_url": f"https://files.example.com/rec/download/{bits(48):012x}"
            f"?access_token={bits(96):024x}",
            "participants": everyone,
        }

    def _summary(self, everyone: list[str]) -> dict[str, Any]:
        r = self.r
        firsts = [a.user.name.split(" ")[0] for a in self.attendees]
        steps = [_pick(r, NEXT_STEPS).format(_pick(r, firsts)) for _ in range(1 + int(r() * 3))]
        return {"summary_text": _pick(r, SUMMARIES), "next_steps": steps, "participants": everyone}

    def _fill(self, count: int) -> None:
        """The bulk: QoS (~60% of all records), content (~20%), logs, crashes, feature use."""
        r = self.r
        run = self.run
        attendees = self.attendees
        n = len(attendees)
        everyone = [a.user.pid for a in attendees]
        add = self.items.append
        for _ in range(count):
            a = attendees[int(r() * n)]
            pid = a.user.pid
            ms = a.join_ms + 1 + int(r() * (a.leave_ms - a.join_ms - 1))
            x = r()
            if x < 0.665:
                y = r()
                if y < 0.40:
                    add((ms, "qos.audio", pid, _qos_audio(r), None))
                elif y < 0.68:
                    add((ms, "qos.video", pid, _qos_video(r), None))
                elif y < 0.78:
                    add((ms, "qos.screen_share", pid, _qos_video(r, screen=True), None))
                else:
                    add((ms, "qos.system", pid, _qos_system(r, a.user.network_type), None))
            elif x < 0.88:
                y = r()
                if y < 0.27:
                    add((ms, "content.chat_message", pid, self._chat(pid), None))
                elif y < 0.54:
                    text = _pick(r, SPOKEN_SENTENCES)
                    add((ms, "content.transcript_segment", pid, self._segment(pid, ms, text), None))
                elif y < 0.76:
                    caption = {"speaker_id": pid, "text": _pick(r, SPOKEN_SENTENCES)}
                    add((ms, "content.caption", pid, caption, None))
                elif y < 0.85:
                    chunk = {
                        "codec": "opus",
                        "sample_rate": 48000 if r() < 0.8 else 16000,
                        "duration_ms": _pick(r, (20, 40, 60)),
                        "data_b64": _pick(r, run.audio_blobs),
                        "participants": everyone,
                    }
                    add((ms, "content.audio_chunk", pid, chunk, None))
                elif y < 0.94:
                    width, height = _pick(r, VIDEO_MODES)[0].split("x")
                    frame = {
                        "codec": VIDEO_CODECS[int(r() * 5)],
                        "width": int(width),
                        "height": int(height),
                        "data_b64": _pick(r, run.frame_blobs),
                    }
                    add((ms, "content.video_frame", pid, frame, None))
                else:
                    add(self._rare_content(ms, pid, y))
            elif x < 0.93:
                add((ms, "diagnostic.log", pid, _clean_log(r), _NO_MEETING if r() < 0.03 else None))
            elif x < 0.937:
                add((ms, "diagnostic.crash", pid, _clean_crash(r, a.user), None))
            else:
                add((ms, "usage.feature_used", pid, _feature(r), None))

    def _rare_content(self, ms: int, pid: str, y: float) -> _Item:
        r = self.r
        if y < 0.96:
            elements = [
                {"kind": _pick(r, WHITEBOARD_KINDS), "text": _pick(r, WHITEBOARD_TEXTS)}
                for _ in range(1 + int(r() * 3))
            ]
            board = {"board_id": f"wb-{1 + int(r() * 90)}", "elements": elements}
            return (ms, "content.whiteboard", pid, board, None)
        if y < 0.98:
            question, answers = _pick(r, POLLS)
            answer = {
                "poll_id": f"poll-{1 + int(r() * 40)}",
                "question": question,
                "answer": _pick(r, answers),
            }
            return (ms, "content.poll_answer", pid, answer, None)
        name, mime = _pick(r, SHARED_FILES)
        shared = {
            "file_name": name,
            "mime_type": mime,
            "size": int(1000 + r() * 8_000_000),
            "uri": f"https://files.example.com/f/{self.run.rng.getrandbits(32):08x}",
        }
        return (ms, "content.shared_file", pid, shared, None)

    def _chat(self, pid: str, text: str | None = None) -> dict[str, Any]:
        r = self.r
        recipients: str | list[str] = "everyone"
        if r() < 0.15:  # a private message to one or two others
            others = [a.user.pid for a in self.attendees if a.user.pid != pid]
            recipients = others[: 1 + int(r() * min(2, len(others)))]
        return {
            "sender_id": pid,
            "recipients": recipients,
            "message": text if text is not None else _pick(r, CHAT_MESSAGES),
            "file_name": _pick(r, CHAT_FILE_NAMES) if r() < 0.08 else None,
        }

    def _segment(self, pid: str, ms: int, text: str) -> dict[str, Any]:
        r = self.r
        start = ms - self.start
        return {
            "speaker_id": pid,
            "text": text,
            "start_ms": start,
            "end_ms": start + 300 * len(text.split()) + int(r() * 800),
            "language": "en",
            "confidence": int(60 + r() * 39) / 100,
        }

    # -- planted leaks -----------------------------------------------------------------------
    def _plant_leak(self, case: _Case, left_at: dict[str | None, int]) -> None:
        """A valid service record whose free text leaks `case.kind`, marked as planted."""
        r = self.r
        slot = _LEAK_SLOTS[(case.instance + LEAK_KINDS.index(case.kind)) % len(_LEAK_SLOTS)]
        if slot == "leave_reason" and (case.kind == "content_echo" or not left_at):
            slot = "log"
        if slot == "leave_reason":
            a = _pick(r, [x for x in self.attendees if x.user.pid in left_at])
        else:
            a = _pick(r, self.attendees)
        not_before = 0
        if case.kind == "content_echo":
            needle, not_before = self._echo_source(a)
            phrase = _pick(r, ("send failed: {}", "caption overflow: {}")).format(needle)
        elif case.kind == "known_identifier":
            needle = a.user.name
            templates = (
                "rendering tile for {}",
                "speaker label set to {}",
                "avatar fetch failed for {}",
            )
            phrase = _pick(r, templates).format(needle)
        else:
            needle, phrase = _pattern_leak(self.run.rng, case.kind, case.instance)
        field = _FIELD_OF_SLOT[slot]
        mark = _Mark(case.kind, f"detector:{case.kind}", field=field, needle=needle)
        pid = a.user.pid
        if slot == "leave_reason":
            i = left_at.pop(pid)
            ms, etype, _, payload, _ = self.items[i]
            self.items[i] = (
                ms,
                etype,
                pid,
                {**payload, field: f"{a.leave_reason} ({phrase})"},
                mark,
            )
            return
        ms = self._moment(a, not_before)
        if slot == "log":
            payload = {
                "level": _pick(r, ("warn", "error")),
                "component": _pick(r, LOG_COMPONENTS),
                field: phrase,
            }
            self.items.append((ms, "diagnostic.log", pid, payload, mark))
            return
        payload = _clean_crash(r, a.user)
        payload[field] = (
            phrase if slot == "crash_message" else f"{payload[field]}\ncaused by: {phrase}"
        )
        self.items.append((ms, "diagnostic.crash", pid, payload, mark))

    def _echo_source(self, echoing: _Attendee) -> tuple[str, int]:
        """Add a long chat message or transcript segment; (6 to 9 of its words, its time)."""
        r = self.r
        latest = echoing.leave_ms - 10 * _SECOND
        a = _pick(r, [x for x in self.attendees if x.join_ms < latest])
        ms = a.join_ms + 1 + int(r() * max(1, min(a.leave_ms, latest) - a.join_ms - 1))
        spoken = r() < 0.5
        pool = [s for s in (SPOKEN_SENTENCES if spoken else CHAT_MESSAGES) if len(s.split()) >= 8]
        text = _pick(r, pool)
        pid = a.user.pid
        if spoken:
            self.items.append(
                (ms, "content.transcript_segment", pid, self._segment(pid, ms, text), None)
            )
        else:
            self.items.append((ms, "content.chat_message", pid, self._chat(pid, text), None))
        words = text.split()
        k = 6 + int(r() * (min(9, len(words)) - 5))
        first = int(r() * (len(words) - k + 1))
        return " ".join(words[first : first + k]), ms

    # -- ids, duplicates ------------------------------------------------------------------------
    def _with_ids(self) -> list[_Row]:
        run = self.run
        prefix, day = f"ev-{run.seed}-", run.day
        rows: list[_Row] = []
        add = rows.append
        n = run.last_event
        for ms, etype, pid, payload, mark in self.items:
            n += 1
            s, milli = divmod(ms, 1000)
            m, s = divmod(s, 60)
            h, m = divmod(m, 60)
            ts = f"{day}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}Z"
            add((f"{prefix}{n}", etype, ts, pid, payload, mark))
        run.last_event = n
        return rows

    def _plant_copy(self, rows: list[_Row], case: _Case) -> None:
        """Redeliver an earlier clean record later: identical (duplicate) or changed (conflict)."""
        r = self.r
        copied = {row[0] for row in rows if row[5] is not None and row[5].kind in DUPLICATE_KINDS}
        clean = [i for i, row in enumerate(rows) if row[5] is None and row[0] not in copied]
        if case.kind == "duplicate":  # service only, so the original still goes to training
            pool = [i for i in clean if not rows[i][1].startswith("content.")]
        else:
            qos = [i for i in clean if rows[i][1].startswith("qos.")]
            pool = qos if case.instance % 2 and qos else clean
        if not pool:
            raise RuntimeError(f"{self.meeting_id}: no clean record to copy for {case.kind}")
        i = _pick(r, pool)
        event_id, etype, ts, pid, payload, _ = rows[i]
        j = i + 1 + int(r() * (len(rows) - i))
        if case.kind == "duplicate":
            rows.insert(j, (event_id, etype, ts, pid, payload, _DUPLICATE))
            return
        if etype.startswith("qos.") and case.instance % 2:  # re-measured
            key = "memory_mb" if "memory_mb" in payload else "latency_ms"
            changed = {**payload, key: payload[key] + 1 + int(r() * 20)}
            copy = (event_id, etype, ts, pid, changed, _CONFLICT)
        else:  # re-stamped
            second = (int(ts[17:19]) + 1 + int(r() * 5)) % 60
            copy = (event_id, etype, f"{ts[:17]}{second:02d}{ts[19:]}", pid, payload, _CONFLICT)
        rows[i] = (event_id, etype, ts, pid, payload, _CONFLICT)
        rows.insert(j, copy)

    # -- serialisation ----------------------------------------------------------------------------
    def record(self, row: _Row) -> dict[str, Any]:
        """The record as read: envelope and payload, the mark's envelope edits applied."""
        event_id, etype, ts, pid, payload, mark = row
        rec = {
            "event_id": event_id,
            "event_type": etype,
            "event_ts": ts,
            "account_id": self.account.account_id,
            "meeting_id": self.meeting_id,
            "participant_id": pid,
            "schema_version": 1,
            "payload": payload,
        }
        if mark is not None:
            rec.update(mark.patch)
            if mark.drop:
                del rec[mark.drop]
        return rec

    def jsonl_lines(self, rows: list[_Row]) -> list[bytes]:
        """One line per record; clean ones formatted directly (the same bytes orjson gives)."""
        envelope = f'"account_id":"{self.account.account_id}","meeting_id":"{self.meeting_id}",'
        dumps = orjson.dumps
        lines = []
        for row in rows:
            event_id, etype, ts, pid, payload, mark = row
            if mark is not None and mark.edits:
                lines.append(self._damaged_line(self.record(row), mark.damage))
                continue
            participant = "null" if pid is None else f'"{pid}"'
            head = (
                f'{{"event_id":"{event_id}","event_type":"{etype}","event_ts":"{ts}",{envelope}'
                f'"participant_id":{participant},"schema_version":1,"payload":'
            )
            lines.append(b"%b%b}\n" % (head.encode(), dumps(payload)))
        return lines

    def _damaged_line(self, rec: dict[str, Any], damage: str | None) -> bytes:
        line = orjson.dumps(rec)
        r = self.r
        if damage == "truncate":  # a writer killed mid-line
            line = line[: int(len(line) * (0.3 + 0.4 * r()))]
        elif damage == "latin1":
            line = line.replace("®".encode(), "®".encode("cp1252"))
        elif damage == "array":  # a batch posted as one JSON array
            line = b"[" + line + b"]"
        elif damage == "number":  # a bare epoch number
            line = str(int(1_700_000_000 + r() * 100_000_000)).encode()
        return line + b"\n"

    def parquet_rows(self, rows: list[_Row]) -> list[dict[str, Any]]:
        """One row per record, payload as JSON text (damaged where the case says)."""
        out = []
        for row in rows:
            rec = self.record(row)
            payload = orjson.dumps(rec["payload"]).decode()
            damage = row[5].damage if row[5] is not None else None
            if damage == "truncate":
                payload = payload[: int(len(payload) * (0.3 + 0.4 * self.r()))]
            elif damage == "array":
                payload = f"[{payload}]"
            elif damage == "number":
                payload = str(int(self.r() * 1000))
            rec["payload"] = payload
            out.append(rec)
        return out


class _Run:
    """Run-wide state: the random source, accounts and people, consent ledger, last event id."""

    def __init__(self, seed: int, events: int, day: str, parquet: bool):
        self.rng = rng = random.Random(seed)
        self.seed = seed
        self.day = day
        self.parquet = parquet
        self.last_event = 0
        # The ledger draws from its own child source: changing it leaves the events alone.
        self.ledger = _ConsentLedger(random.Random(rng.getrandbits(64)), day)
        self.accounts = _make_accounts(rng, events, self.ledger)
        self.account_cum = list(accumulate(a.weight for a in self.accounts))
        self.audio_blobs = [self._b64(24 + int(rng.random() * 40)) for _ in range(64)]
        self.frame_blobs = [self._b64(30 + int(rng.random() * 60)) for _ in range(64)]

    def _b64(self, n: int) -> str:
        return base64.b64encode(self.rng.getrandbits(8 * n).to_bytes(n, "big")).decode()


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


def _content_subjects(event_type: str, participant_id: str | None, payload: Any) -> tuple[str, ...]:
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


class _ConsentTruth:
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


# -- writers ---------------------------------------------------------------------------------
def _shard_names(ext: str, shards: int) -> list[str]:
    if shards == 1:
        return [f"events.{ext}"]
    return [f"events-{i:05d}-of-{shards:05d}.{ext}" for i in range(shards)]


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


class _JsonlShards:
    """Contiguous gzip JSON Lines shards, compressed on a second thread (zlib frees the GIL).

    Each file appears under its name only once complete. White-space-only lines go before
    the record positions in `blanks`.
    """

    def __init__(self, paths: list[Path], events: int, blanks: list[int]):
        self.paths = paths
        self.bounds = [events * (i + 1) // len(paths) for i in range(len(paths))]
        self.blanks = sorted(blanks, reverse=True)
        self.index = 0
        self.written = 0
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=16)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._compress, name="generate-gzip", daemon=True)
        self._thread.start()
        self._queue.put(("open", paths[0]))

    def _compress(self) -> None:
        raw: Any = None
        gz: gzip.GzipFile | None = None
        while True:
            op, arg = self._queue.get()
            if op == "stop":
                if raw is not None:
                    raw.close()
                return
            if self._error is not None:
                continue  # keep draining so the producer never blocks
            try:
                if op == "open":
                    raw = open(_tmp_path(arg), "wb")  # noqa: SIM115 - closed on "close"/"stop"
                    # No file name and mtime 0: the same records give the same bytes. Level 1:
                    # compression keeps pace with generation, at ~6x smaller than plain text.
                    gz = gzip.GzipFile(
                        filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1
                    )
                elif op == "data":
                    assert gz is not None
                    gz.write(arg)
                else:
                    assert gz is not None
                    gz.close()
                    raw.close()
                    raw = None
                    os.replace(_tmp_path(arg), arg)
            except BaseException as exc:  # re-raised by the producer in close()
                self._error = exc

    def write(self, lines: list[bytes]) -> None:
        i = 0
        while i < len(lines):
            if self.written == self.bounds[self.index]:
                self._queue.put(("close", self.paths[self.index]))
                self.index += 1
                self._queue.put(("open", self.paths[self.index]))
            end = min(len(lines), i + self.bounds[self.index] - self.written)
            chunk: list[bytes] = []
            while self.blanks and self.blanks[-1] < self.written + end - i:
                cut = i + max(0, self.blanks[-1] - self.written)
                chunk += lines[i:cut]
                chunk.append((b"\n", b"   \n", b"\t \n")[len(self.blanks) % 3])
                self.written += cut - i
                i = cut
                self.blanks.pop()
            chunk += lines[i:end]
            self.written += end - i
            i = end
            self._queue.put(("data", b"".join(chunk)))

    def close(self) -> None:
        self._queue.put(("close", self.paths[self.index]))
        self._queue.put(("stop", None))
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop after a failure elsewhere: no partial file left behind under a final name."""
        self._queue.put(("stop", None))
        self._thread.join()
        for path in self.paths:
            _tmp_path(path).unlink(missing_ok=True)


_PARQUET_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("event_ts", pa.string(), nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("meeting_id", pa.string()),
        pa.field("participant_id", pa.string()),
        pa.field("schema_version", pa.int64(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
    ]
)


class _ParquetShards:
    """Contiguous Parquet shards; each file appears under its name only once complete."""

    def __init__(self, paths: list[Path], events: int):
        self.paths = paths
        self.bounds = [events * (i + 1) // len(paths) for i in range(len(paths))]
        self.index = 0
        self.written = 0
        self._rows: list[dict[str, Any]] = []
        self._writer = pq.ParquetWriter(_tmp_path(paths[0]), _PARQUET_SCHEMA)

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=_PARQUET_SCHEMA))
            self._rows = []

    def _publish(self) -> None:
        self._flush()
        self._writer.close()
        os.replace(_tmp_path(self.paths[self.index]), self.paths[self.index])

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if self.written == self.bounds[self.index]:
                self._publish()
                self.index += 1
                self._writer = pq.ParquetWriter(_tmp_path(self.paths[self.index]), _PARQUET_SCHEMA)
            self._rows.append(row)
            self.written += 1
            if len(self._rows) >= _PARQUET_ROW_GROUP:
                self._flush()

    def close(self) -> None:
        self._publish()

    def abort(self) -> None:
        self._writer.close()
        for path in self.paths:
            _tmp_path(path).unlink(missing_ok=True)


# -- the command -----------------------------------------------------------------------------
def _check_arguments(events: int, seed: int, shards: int, fmt: str, date: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if isinstance(events, bool) or not isinstance(events, int) or events < MIN_EVENTS:
        raise ValueError(f"events must be an integer >= {MIN_EVENTS}, got {events!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= events // 100:
        raise ValueError(f"shards must be from 1 to events/100 ({events // 100}), got {shards!r}")
    try:
        valid_date = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)) and bool(
            Date.fromisoformat(date)
        )
    except (TypeError, ValueError):
        valid_date = False
    if not valid_date:
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}")


def generate(
    out_dir: str | Path,
    *,
    events: int = 20_000,
    seed: int = 0,
    shards: int = 1,
    fmt: str = "jsonl",
    date: str = "2026-11-26",
) -> dict[str, Any]:
    """Write a synthetic input set to `out_dir` and return its ground truth.

    Files: `events.jsonl.gz` (or `events-00000-of-0000N.jsonl.gz` shards; with
    `fmt="parquet"`, `events*.parquet`, `payload` as a JSON string column), the consent
    ledger `consent.jsonl`, and `truth.json` (the returned dict). `events` is the exact
    number of input records, planted bad lines and redelivered copies included; the few
    white-space-only lines are not records. All meetings fall on `date` (UTC). Planted
    cases (leaks in service free text, contract breaks, duplicates) are spread through the
    file; the truth lists each with the destination and reason it must get, and the count
    per destination under the default content policy. The ledger exercises every clause of
    the consent rule (3 of its rows break it); `truth["consent"]` holds, for a run with
    `--content-policy per_participant --as-of <consent.as_of>`, the content records every
    subject of which consented (`consented_event_ids`), those only a host-only rule would
    admit (`host_only_event_ids`), the valid content records (`content_events`), the
    planted decisions by kind (`clauses`) and the subjects' verdicts (`verdicts`). The same
    arguments give the same bytes. Earlier `events*` files in `out_dir` are replaced. Raises
    ValueError on a bad argument.
    """
    _check_arguments(events, seed, shards, fmt, date)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in sorted([*out.glob("events*.jsonl.gz"), *out.glob("events*.parquet")]):
        old.unlink()

    parquet = fmt == "parquet"
    run = _Run(seed, events, date, parquet)
    rng = run.rng
    kinds: tuple[str, ...] = (*LEAK_KINDS, *BAD_INPUT_KINDS, *DUPLICATE_KINDS)
    if parquet:  # a Parquet string column holds only valid UTF-8
        kinds = tuple(k for k in kinds if k != "not_utf8")
    cases = sorted(_plan_cases(rng, events, kinds), key=lambda c: c.target)
    names = _shard_names("parquet" if parquet else "jsonl.gz", shards)
    paths = [out / name for name in names]
    writer: _JsonlShards | _ParquetShards
    if parquet:
        writer = _ParquetShards(paths, events)
    else:
        writer = _JsonlShards(paths, events, rng.sample(range(1, events), 3 + events // 100_000))

    counts = {"training": 0, "restricted": 0, "quarantine": 0, "duplicates": 0}
    planted: list[dict[str, Any]] = []
    views: list[_ConsentView] = []
    try:
        consumed = next_case = number = 0
        while consumed < events:
            number += 1
            remaining = events - consumed
            # Meetings roughly in time order through the day, as an export would be.
            start = int(
                consumed / events * (_DAY_MS - 3 * _HOUR) + (rng.random() - 0.3) * 40 * _MINUTE
            )
            meeting = _Meeting(run, number, start)
            size = meeting.natural_size()
            last = remaining - size < _MIN_TAIL
            while next_case < len(cases) and (last or cases[next_case].target < consumed + size):
                meeting.cases.append(cases[next_case])
                next_case += 1
            size = max(size, meeting.min_size())
            if last or remaining - size < _MIN_TAIL:
                meeting.cases += cases[next_case:]
                next_case = len(cases)
                size = remaining
                if size < meeting.min_size():
                    meeting.shrink()
            rows = meeting.build(size)
            consumed += size
            content: list[tuple[str, str, tuple[str, ...]]] = []
            hosts: set[str] = set()
            _tally(rows, counts, planted, content, hosts)
            views.append(
                (meeting.account.account_id, meeting.meeting_id, frozenset(hosts), content)
            )
            if isinstance(writer, _ParquetShards):
                writer.write(meeting.parquet_rows(rows))
            else:
                writer.write(meeting.jsonl_lines(rows))
    except BaseException:
        writer.abort()
        raise
    writer.close()

    decisions = run.ledger.decisions()
    with open(out / "consent.jsonl", "wb") as f:
        f.writelines(run.ledger.delivered_lines(decisions))
    consent = _consent_truth(decisions, views, date, run.ledger.clauses, run.ledger.rejected)
    truth = {
        "generator": GENERATOR_ID,
        "seed": seed,
        "events": events,
        "date": date,
        "format": fmt,
        "files": names,
        "expected": {"input_records": events, **counts, "consented_content": 0},
        "planted": planted,
        "clean_service_events": counts["training"],
        "consent": consent,
    }
    (out / "truth.json").write_text(json.dumps(truth, sort_keys=True, indent=1) + "\n")
    return truth


def _consent_truth(
    decisions: list[dict[str, str]],
    views: list[_ConsentView],
    day: str,
    clauses: dict[str, int],
    rejected: list[tuple[str | None, str | None]],
) -> dict[str, Any]:
    """The consent part of the truth, for a run as of noon the day after `day`."""
    as_of = f"{Date.fromisoformat(day) + timedelta(days=1)}T12:00:00Z"
    truth = _ConsentTruth(decisions, as_of, rejected)
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


def _tally(
    rows: list[_Row],
    counts: dict[str, int],
    planted: list[dict[str, Any]],
    content: list[tuple[str, str, tuple[str, ...]]],
    hosts: set[str],
) -> None:
    """Count where each record must end up under the default policy; list the planted ones.

    Also gather what the consent truth needs of the meeting: its valid content records
    (event_id, event_ts, content subjects), a duplicate's original once, and its hosts.
    """
    for event_id, etype, ts, pid, payload, mark in rows:
        if mark is None or mark.kind is None:
            if etype.startswith("content."):
                counts["restricted"] += 1
                content.append((event_id, ts, _content_subjects(etype, pid, payload)))
            else:
                counts["training"] += 1
                if etype == "usage.meeting_started":
                    hosts.add(payload["host_id"])
                elif etype == "usage.participant_joined" and payload["role"] == "host" and pid:
                    hosts.add(pid)
            continue
        counts["duplicates" if mark.expect == "duplicate" else "quarantine"] += 1
        planted.append(
            {
                "kind": mark.kind,
                "event_id": event_id if mark.id_known else None,
                "expect": mark.expect,
                "reason": mark.reason,
                "field": mark.field,
                "needle": mark.needle,
            }
        )
