"""Unit strings and time forms of vendor payloads -> numbers and UTC microseconds."""

from __future__ import annotations

import pytest

from pipelines.sources.units import BadValue, parse_time, parse_unit

T0 = 1_796_047_205_250_000  # 2026-11-30T14:00:05.250Z in microseconds


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ("bitrate_bps", "23 kbps", (23_000.0,)),
        ("bitrate_bps", "1.2 mbps", (1_200_000.0,)),
        ("bitrate_bps", "310", (310_000.0,)),  # bare numbers are Zoom's kbps
        ("bitrate_bps", "", (None,)),
        ("bitrate_bps", "-", (None,)),
        ("duration_ms", "126 ms", (126.0,)),
        ("duration_ms", "60", (60.0,)),
        ("percent", "0.3%", (0.3,)),
        ("percent", "12%", (12.0,)),
        ("frame_rate_fps", "12 fps", (12.0,)),
        ("resolution", "1280*720", (1280, 720)),
        ("resolution", "0*0", (0, 0)),
        ("resolution", "720", (None, 720)),
        ("resolution", "", (None, None)),
        ("seconds_to_ms", 0.004, (4.0,)),
        ("plain_number", "4200", (4200.0,)),
    ],
    ids=lambda v: repr(v),
)
def test_unit_strings_become_numbers(rule, value, expected):
    assert parse_unit(rule, value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        ("bitrate_bps", "23 parsecs"),
        ("bitrate_bps", "fast"),
        ("percent", "-3%"),
        ("resolution", "wide"),
        ("duration_ms", True),
        ("bitrate_bps", {"value": 3}),
    ],
    ids=repr,
)
def test_unreadable_unit_values_are_refused(rule, value):
    with pytest.raises(BadValue):
        parse_unit(rule, value)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-30T14:00:05.250Z",
        "2026-11-30T15:00:05.250+01:00",
        1_796_047_205.25,  # epoch seconds
        1_796_047_205_250,  # epoch milliseconds
        1_796_047_205_250.0,  # float milliseconds (WebRTC)
        "1796047205250",  # protobuf JSON writes int64 as text
        1_796_047_205_250_000,  # epoch microseconds
        "1796047205250000000",  # epoch nanoseconds as text (LiveKit egress times)
    ],
    ids=repr,
)
def test_every_time_form_names_the_same_instant(value):
    assert parse_time(value) == T0


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-11-30 14:00:05", -5, True, [1], 10**20], ids=repr
)
def test_unreadable_times_are_refused(value):
    with pytest.raises(BadValue):
        parse_time(value)


def test_a_missing_time_is_none():
    assert parse_time(None) is None and parse_time("") is None
