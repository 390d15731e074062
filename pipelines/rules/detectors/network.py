"""Network addresses of a person's device: IPv4 and IPv6 addresses in every written form, MAC
addresses. Loopback, unspecified, multicast and reserved addresses are not personal data."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from pipelines.rules.detectors.detector import Spans, TextDetector
from pipelines.rules.detectors.normalise import outermost

if TYPE_CHECKING:
    from pipelines.rules.detectors.settings import DetectorSettings

__all__ = ["IP_ADDRESS", "MAC_ADDRESS"]


# An octet may be zero-padded ("010.001.002.003" is 10.1.2.3 to most resolvers).
_OCTET = r"(?:25[0-5]|2[0-4]\d|[01]?\d?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d)", re.ASCII)
# An address inside a host name, its dots written as dashes: "ip-10-1-2-3",
# "host-192-168-1-20.example.net", "10-1-2-3.nip.io". Four dashed numbers alone are too
# common (dates, versions), so a name must surround them.
_IPV4_IN_HOSTNAME = re.compile(
    rf"(?<![\w-])(?P<name>[A-Za-z][A-Za-z0-9]*-)?(?P<ip>(?:{_OCTET}-){{3}}{_OCTET})"
    r"(?:(?P<domain>(?=\.[A-Za-z]))|(?![\w-]))",
    re.ASCII,
)
# A URL whose host is the address as one decimal or hex number (http://167772161/).
_IPV4_AS_NUMBER = re.compile(
    r"(?i)(?<=://)(?:[^\s/@]*@)?(?P<ip>0x[0-9a-f]{1,8}|\d{8,10})(?=[:/?#]|\s|$)"
)
# A run of hex digits, colons and dots holding at least two colons; ipaddress decides. A
# prefix length ("/64") belongs to the address.
_IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]++(?:%[\w.]+)?(?:/\d{1,3}(?!\d))?(?!\w)",
    re.ASCII,
)


def _personal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Can the address point at a person's device? Loopback (127.0.0.1:9001, ::1), the
    unspecified address, multicast, and IPv4's reserved range (netmasks, broadcast) cannot."""
    return not (
        address.is_loopback
        or address.is_unspecified
        or address.is_multicast
        # IPv6 calls every range outside 2000::/3 reserved, yet such addresses are written.
        or (address.version == 4 and address.is_reserved)
    )


def _find_ip_addresses(text: str, settings: DetectorSettings) -> Spans:
    spans = []
    for match in _IPV4.finditer(text):
        octets = ".".join(str(int(part)) for part in match.group().split("."))
        if _personal(ipaddress.IPv4Address(octets)):
            spans.append(match.span())
    if "-" in text:
        for match in _IPV4_IN_HOSTNAME.finditer(text):
            if match.group("name") is None and match.group("domain") is None:
                continue
            octets = ".".join(str(int(part)) for part in match.group("ip").split("-"))
            if _personal(ipaddress.IPv4Address(octets)):
                spans.append(match.span("ip"))
    if "://" in text:
        for match in _IPV4_AS_NUMBER.finditer(text):
            value = int(match.group("ip"), 0 if match.group("ip")[:2].lower() == "0x" else 10)
            if 1 << 24 <= value < 1 << 32 and _personal(ipaddress.IPv4Address(value)):
                spans.append(match.span("ip"))
    for match in _IPV6_CANDIDATE.finditer(text):
        candidate = match.group()
        address, _, prefix = candidate.partition("/")
        address = address.rstrip(".")
        if not prefix and address.endswith(":") and not address.endswith("::"):
            address = address[:-1]
        # "::" alone and C++ global calls like "::feed" parse as IPv6 but hold no digit.
        if not any(char.isdigit() for char in address):
            continue
        try:
            parsed = ipaddress.IPv6Address(address.split("%")[0])
        except ValueError:
            continue
        if not _personal(parsed.ipv4_mapped or parsed):
            continue
        end = match.start() + len(address) + (len(prefix) + 1 if prefix else 0)
        spans.append((match.start(), end))
    yield from outermost(spans)


_MAC = re.compile(
    r"(?<![0-9A-Fa-f:.\-])(?:[0-9A-Fa-f]{2}(?P<sep>[:\-])(?:[0-9A-Fa-f]{2}(?P=sep)){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![0-9A-Fa-f:.\-]*\w)",
    re.ASCII,
)
_NOT_A_DEVICE = frozenset({"000000000000", "ffffffffffff"})


def _find_mac_addresses(text: str, settings: DetectorSettings) -> Spans:
    """Hardware (MAC) addresses: six colon or dash separated pairs, or Cisco's three dotted
    quads; not the all-zero or broadcast address, and a dotted form must hold a letter (three
    dotted four-digit numbers are versions and dates)."""
    for match in _MAC.finditer(text):
        digits = re.sub(r"[^0-9A-Fa-f]", "", match.group()).lower()
        if digits in _NOT_A_DEVICE:
            continue
        if "." in match.group() and digits.isdigit():
            continue
        yield match.span()


# A valid IPv6 address has "::", eight groups, or ends in a dotted quad; an address in a host
# name has four dashed numbers; a numeric host follows "://".
IP_ADDRESS = TextDetector(
    "ip_address",
    _find_ip_addresses,
    lambda settings: (
        r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|::|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}"
        r"|\d{1,3}-\d{1,3}-\d{1,3}-\d{1,3}|://(?:[^\s/@]*@)?(?:\d{8}|0[xX])"
    ),
)
MAC_ADDRESS = TextDetector(
    "mac_address",
    _find_mac_addresses,
    lambda settings: (
        r"[0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}"
        r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"
    ),
)
