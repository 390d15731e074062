"""Planted cases: which kinds there are, where they land, and the leaks found by their shape."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from typing import Any

from pipelines.generate.model import email_local
from pipelines.generate.vocab import (
    FIRST_NAMES,
    LAST_NAMES,
    LEAK_EMAIL_DOMAIN,
    LEAKED_SENTENCES,
    Rand,
    pick,
)
from pipelines.rules.detectors import DETECTORS

# Leaks planted in service free text, one kind per detector; each must be quarantined as
# `detector:<kind>`. The detector families added since are measured on
# tests/rules/detectors/vectors.py instead.
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


# -- planted cases ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Mark:
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


@dataclass(frozen=True)
class Case:
    target: int  # record position the case should land near
    kind: str
    instance: int  # per-kind counter: picks the variant and the field

    @property
    def extra_records(self) -> int:
        """Records this case adds to its meeting, at most (a leave-reason leak adds none)."""
        return 2 if self.kind == "content_echo" else 1  # echo: the message and the log


def plan_cases(rng: random.Random, events: int, kinds: tuple[str, ...]) -> list[Case]:
    """Every planted case with a target position, stratified so they spread through the file."""
    per_kind = min(4 + events // 10_000, 40)  # 4: every variant of the 4-variant kinds
    cases = [(kind, i) for kind in kinds for i in range(per_kind)]
    rng.shuffle(cases)
    spacing = events / len(cases)
    return [Case(int((j + rng.random()) * spacing), k, i) for j, (k, i) in enumerate(cases)]


def _luhn_complete(digits: str) -> str:
    """`digits` followed by their Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return digits + str((10 - total % 10) % 10)


def _digits(r: Rand, n: int) -> str:
    return "".join(str(int(r() * 10)) for _ in range(n))


def pattern_leak(rng: random.Random, kind: str, v: int) -> tuple[str, str]:
    """(needle, log phrase holding it) for the leak kinds found by their shape."""
    r = rng.random

    def hex_token(n: int) -> str:
        return f"{rng.getrandbits(4 * n):0{n}x}"

    if kind == "email":
        local = email_local(pick(r, FIRST_NAMES), pick(r, LAST_NAMES))
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
            needle = f"({pick(r, ('415', '212', '312', '617'))}) 555-01{_digits(r, 2)}"
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
            d = _luhn_complete(pick(r, ("34", "37")) + _digits(r, 12))
            needle = f"{d[:4]} {d[4:10]} {d[10:]}"
        templates = ("billing webhook rejected card {}", "charge retry for card {}")
    elif kind == "blob":
        if v % 2 == 0:
            needle = base64.b64encode(rng.getrandbits(384).to_bytes(48, "big")).decode()
        else:
            needle = hex_token(pick(r, (40, 64)))
        templates = ("session state dump {}", "cache key {}", "key material {}")
    elif kind == "natural_language":
        needle = pick(r, LEAKED_SENTENCES)
        templates = ("{}", "notification text: {}", "chat render: {}")
    else:
        raise AssertionError(kind)
    return needle, pick(r, templates).format(needle)
