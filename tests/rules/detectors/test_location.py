"""Location family: GPS coordinates as decimal pairs, labelled values and degrees."""

from __future__ import annotations

import pytest

from pipelines.rules.detectors import DetectorSettings, scan_text

DEFAULTS = DetectorSettings.default()


def spans(text: str) -> list[str]:
    found = scan_text(text, DEFAULTS, detectors=("coordinates",))
    return [text[f.start : f.end] for f in found]


FOUND = [
    ("decimal_pair", "fix 37.77493, -122.41942 ok", ["37.77493, -122.41942"]),
    ("geo_uri", "open geo:37.78,-122.41 now", ["geo:37.78,-122.41"]),
    ("map_link", "maps/@51.5074,-0.1278,15z", ["@51.5074,-0.1278"]),
    ("labelled", "lat=37.7749&lon=-122.4194", ["37.7749", "-122.4194"]),
    ("json", '{"lat": 48.8566, "lng": 2.3522}', ["48.8566", "2.3522"]),
    ("degrees", "at 37.7749° N, 122.4194° W", ["37.7749° N, 122.4194° W"]),
    ("dms", "at 37°46'29.6\"N 122°25'09.8\"W", ["37°46'29.6\"N 122°25'09.8\"W"]),
]


@pytest.mark.parametrize(("text", "want"), [c[1:] for c in FOUND], ids=[c[0] for c in FOUND])
def test_coordinates_found(text: str, want: list[str]) -> None:
    assert spans(text) == want


MISSES = [
    ("two_measurements", "jitter 12.5, 30.1 ms"),
    ("version_list", "versions 6.2.5, 6.2.6"),
    ("latency_pair", "rtt 101.25, 99.75"),
    ("out_of_range", "values 95.12345, 200.12345"),
    ("timestamp", "at 1732611600.1234"),
]


@pytest.mark.parametrize("text", [c[1] for c in MISSES], ids=[c[0] for c in MISSES])
def test_coordinates_near_misses(text: str) -> None:
    assert spans(text) == []
