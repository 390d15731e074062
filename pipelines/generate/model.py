"""The shared meeting model: time units, people, accounts and attendees.

Every source's generator draws its accounts and staff here (`make_accounts`), so that the
same seed gives the same people whichever shape their records take.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING

from pipelines.generate.vocab import (
    CITIES,
    CLIENT_VERSIONS,
    COMPANY_DOMAINS,
    DEVICES,
    FIRST_NAMES,
    LAST_NAMES,
    NETWORK_TYPES,
    PERSONAL_EMAIL_DOMAIN,
    pick,
)

if TYPE_CHECKING:
    from pipelines.generate.ledger import ConsentLedger

SECOND = 1000
MINUTE = 60_000
HOUR = 3_600_000
DAY_MS = 86_400_000


# -- people and accounts -------------------------------------------------------------------
@dataclass(frozen=True)
class User:
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
class Account:
    account_id: str
    users: tuple[User, ...]
    weight: int


@dataclass(frozen=True)
class Attendee:
    user: User
    role: str
    join_ms: int
    leave_ms: int
    leave_reason: str


_DEVICE_CUM = list(accumulate(w for _, _, w in DEVICES))


def platform_user_id(user: User) -> str:
    """A platform's 22-character user id for a person (Zoom's shape): stable, from the pid."""
    digest = hashlib.sha256(user.pid.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]


def email_local(first: str, last: str) -> str:
    folded = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z.]", "", folded.lower())


def make_user(rng: random.Random, domain: str, taken: set[str]) -> User:
    r = rng.random
    pid = f"p-{rng.getrandbits(24):06x}"
    while pid in taken:
        pid = f"p-{rng.getrandbits(24):06x}"
    taken.add(pid)
    first, last = pick(r, FIRST_NAMES), pick(r, LAST_NAMES)
    x = r()
    mailbox = domain if x < 0.7 else PERSONAL_EMAIL_DOMAIN if x < 0.8 else None
    # Documentation ranges (RFC 5737, RFC 3849); leaks use 203.0.113.0/24 and
    # 2001:db8:ffff::/48, which no participant has.
    if r() < 0.85:
        ip = f"{'192.0.2' if r() < 0.5 else '198.51.100'}.{1 + int(r() * 254)}"
    else:
        ip = f"2001:db8:{1 + int(r() * 0xFFE):x}:{int(r() * 0xFFFF):x}::{1 + int(r() * 0xFFE):x}"
    city, country = pick(r, CITIES)
    device, versions, _ = DEVICES[bisect_right(_DEVICE_CUM, r() * _DEVICE_CUM[-1])]
    return User(
        pid=pid,
        name=f"{first} {last}",
        email=f"{email_local(first, last)}@{mailbox}" if mailbox else None,
        ip=ip,
        location=f"{city} ({country})",
        device=device,
        os_version=pick(r, versions),
        client_version=CLIENT_VERSIONS[int(r() ** 2 * len(CLIENT_VERSIONS))],
        network_type=pick(r, NETWORK_TYPES),
    )


def default_accounts(events: int) -> int:
    """Accounts a generated set has unless told: at least 50, so that strings common across
    accounts (the string rule's k) occur as in real traffic, and one per 400 events above
    that, up to 500."""
    return min(max(50, events // 400), 500)


def make_accounts(rng: random.Random, count: int, ledger: ConsentLedger) -> list[Account]:
    """`count` accounts, each with its own staff; standing consent decisions for each person."""
    taken: set[str] = set()
    accounts = []
    for i in range(count):
        account_id = f"acct-{rng.getrandbits(16):04x}"
        while account_id in taken:
            account_id = f"acct-{rng.getrandbits(16):04x}"
        taken.add(account_id)
        name, tld = COMPANY_DOMAINS[i % len(COMPANY_DOMAINS)].split(".", 1)
        domain = f"{name}{i // len(COMPANY_DOMAINS) or ''}.{tld}"
        users = tuple(make_user(rng, domain, taken) for _ in range(12 + int(rng.random() * 40)))
        accounts.append(Account(account_id, users, 1 + int(rng.random() ** 2 * 9)))
        ledger.account_history(account_id, [u.pid for u in users], i)
    return accounts
