"""Vendor values -> numbers in SI-style units and UTC microseconds; pure, no Beam.

Zoom's QoS API writes measurements as strings with units ("23 kbps", "126 ms", "0.3%",
"1280*720", "12 fps"), often "" or "-"; WebRTC stats write seconds and float milliseconds;
timestamps come as RFC 3339 text, epoch seconds, epoch milliseconds or float milliseconds.
Each rule named in a source schema (`x-unit`) is one function here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from pipelines.contract import parse_instant

__all__ = [
    "UNIT_RULES",
    "BadValue",
    "parse_time",
    "parse_unit",
    "unit_columns",
]


class BadValue(ValueError):
    """A value its declared unit rule cannot read (the record goes to quarantine)."""


# Values that mean "no measurement" in Zoom's QoS pages.
_EMPTY = frozenset({"", "-", "--", "N/A", "n/a"})
_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
_WITH_UNIT = re.compile(rf"^\s*{_NUMBER}\s*([A-Za-z%/]*)\s*$")
_RESOLUTION = re.compile(r"^\s*([0-9]{1,5})\s*[*xX\u00d7]\s*([0-9]{1,5})\s*$")

# Unit suffix -> factor to the column's unit, per rule; "" is the bare number some fixtures use.
_FACTORS: dict[str, dict[str, float]] = {
    "bitrate_bps": {"": 1000.0, "bps": 1.0, "kbps": 1000.0, "mbps": 1_000_000.0},
    "duration_ms": {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001},
    "percent": {"": 1.0, "%": 1.0},
    "frame_rate_fps": {"": 1.0, "fps": 1.0},
    "plain_number": {"": 1.0},
    # WebRTC stats: seconds (jitter, round-trip times) as milliseconds.
    "seconds_to_ms": {"": 1000.0},
}


def _number_with_unit(rule: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadValue(f"{value!r} is not a number")
    factors = _FACTORS[rule]
    if isinstance(value, int | float):
        number, unit = float(value), ""
    elif isinstance(value, str):
        if value.strip() in _EMPTY:
            return None
        m = _WITH_UNIT.match(value)
        if m is None:
            raise BadValue(f"{value[:40]!r} is not a number with a unit")
        number, unit = float(m.group(1)), m.group(2).lower()
    else:
        raise BadValue(f"a {type(value).__name__} is not a number")
    if unit not in factors:
        raise BadValue(f"unit {unit!r} is not one of {sorted(factors)}")
    result = number * factors[unit]
    if not math.isfinite(result) or result < 0:
        raise BadValue(f"{value!r} is out of range")
    return result


def _resolution(value: Any) -> tuple[int | None, int | None]:
    if value is None or (isinstance(value, str) and value.strip() in _EMPTY):
        return None, None
    if not isinstance(value, str):
        raise BadValue(f"a {type(value).__name__} is not a resolution")
    m = _RESOLUTION.match(value)
    if m is None:
        # Some fixtures give only the height ("720"): no width can be read from it.
        if value.strip().isdigit():
            return None, int(value)
        raise BadValue(f"{value[:40]!r} is not a resolution like 1280*720")
    return int(m.group(1)), int(m.group(2))


def _numeric_rule(rule: str) -> Callable[[Any], Any]:
    return partial(_number_with_unit, rule)


UNIT_RULES: dict[str, Callable[[Any], Any]] = {rule: _numeric_rule(rule) for rule in _FACTORS}
UNIT_RULES["resolution"] = _resolution


def unit_columns(rule: str, name: str) -> tuple[tuple[str, str], ...]:
    """(column name, JSON type) of the columns a unit rule writes for a field called `name`."""
    if rule == "resolution":
        return ((f"{name}_width", "integer"), (f"{name}_height", "integer"))
    return ((name, "number"),)


def parse_unit(rule: str, value: Any) -> tuple[Any, ...]:
    """The column values of `value` under `rule` (one per `unit_columns` entry); BadValue if
    the value cannot be read."""
    if rule not in UNIT_RULES:
        raise BadValue(f"no unit rule {rule!r}")
    found = UNIT_RULES[rule](value)
    return found if isinstance(found, tuple) else (found,)


# Epoch numbers by size: seconds up to 1e11 (year 5138), milliseconds up to 1e14, microseconds
# up to 1e17, else nanoseconds (LiveKit's egress times are Go's UnixNano).
_SECONDS_BELOW = 1e11
_MILLIS_BELOW = 1e14
_MICROS_BELOW = 1e17
_NANOS_BELOW = 1e20
_EPOCH_TEXT = re.compile(r"^[0-9]{1,20}(?:\.[0-9]+)?$")


def parse_time(value: Any) -> int | None:
    """UTC microseconds since the epoch from RFC 3339 text, or epoch seconds, milliseconds,
    microseconds or nanoseconds (told apart by size); None for a missing value; BadValue for
    anything else."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadValue(f"{value!r} is not a time")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0 or value >= _NANOS_BELOW:
            raise BadValue(f"{value!r} is not an epoch time")
        if value < _SECONDS_BELOW:
            return round(value * 1_000_000)
        if value < _MILLIS_BELOW:
            return round(value * 1_000)
        if value < _MICROS_BELOW:
            return int(value)
        return int(value) // 1_000
    if isinstance(value, str) and _EPOCH_TEXT.match(value):
        # Protobuf's JSON writes int64 fields (LiveKit's created_at) as strings of digits.
        return parse_time(float(value) if "." in value else int(value))
    if isinstance(value, str):
        instant = parse_instant(value)
        if instant is None:
            raise BadValue(f"{value[:40]!r} is not an RFC 3339 timestamp")
        return instant.micros
    raise BadValue(f"a {type(value).__name__} is not a time")
