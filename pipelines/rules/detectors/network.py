"""Network addresses: IPv4 and IPv6 addresses."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from pipelines.rules.detectors.detector import Spans, TextDetector
from pipelines.rules.detectors.normalise import outermost

if TYPE_CHECKING:
    from pipelines.rules.detectors.settings import DetectorSettings

__all__ = ["IP_ADDRESS"]


_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)",
    re.ASCII,
)
# A run of hex digits, colons and dots holding at least two colons; ipaddress decides.
_IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]++(?!\w)", re.ASCII
)


def _find_ip_addresses(text: str, settings: DetectorSettings) -> Spans:
    spans = [match.span() for match in _IPV4.finditer(text)]
    for match in _IPV6_CANDIDATE.finditer(text):
        candidate = match.group().rstrip(".")
        if candidate.endswith(":") and not candidate.endswith("::"):
            candidate = candidate[:-1]
        # "::" alone and C++ global calls like "::feed" parse as IPv6 but hold no digit.
        if not any(char.isdigit() for char in candidate):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        spans.append((match.start(), match.start() + len(candidate)))
    yield from outermost(spans)


# A valid IPv6 address has "::", eight groups, or ends in a dotted quad.
IP_ADDRESS = TextDetector(
    "ip_address",
    _find_ip_addresses,
    lambda settings: (
        r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|::|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}"
    ),
)
