"""Where a person is: GPS coordinates as decimal pairs, degrees, or labelled values."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pipelines.rules.detectors.detector import Spans, TextDetector
from pipelines.rules.detectors.normalise import outermost

if TYPE_CHECKING:
    from pipelines.rules.detectors.settings import DetectorSettings

__all__ = ["COORDINATES"]

_LAT = r"[-+]?(?:90(?:\.0+)?|[1-8]?\d\.\d+)"
_LON = r"[-+]?(?:180(?:\.0+)?|(?:1[0-7]\d|[1-9]?\d)\.\d+)"
# "37.77493, -122.41942": four decimals place a point within about 11 m. Fewer decimals in a
# bare pair are too often two measurements side by side.
_DECIMAL_PAIR = re.compile(rf"(?<![\w.])(?P<lat>{_LAT}) ?[,;] ?(?P<lon>{_LON})(?![\w.])")
_MIN_BARE_DECIMALS = 4
# "geo:37.78,-122.41", a "@37.78,-122.41" map link: the label says what the pair is.
_LABELLED_PAIR = re.compile(rf"(?i)(?:\bgeo:|@|\bll=|\bq=|\bcenter=)(?:{_LAT}),(?:{_LON})")
# "lat=37.7749", "\"lng\": -122.41": each labelled value with two decimals or more.
_LABELLED_VALUE = re.compile(
    r"(?i)\b(?:lat|latitude|lon|lng|long|longitude)[\"']?\s*[:=]\s*[\"']?(?P<value>[-+]?\d{1,3}\.\d{2,})"
)
# 37°46'29.6"N 122°25'09.8"W, 37.7749° N, 122.4194° W.
_DEGREES = re.compile(
    r"\d{1,2}(?:\.\d+)?° ?(?:\d{1,2}['\u2032] ?(?:\d{1,2}(?:\.\d+)?[\"\u2033] ?)?)?[NS]"
    r"[, ]{0,2}\d{1,3}(?:\.\d+)?° ?(?:\d{1,2}['\u2032] ?(?:\d{1,2}(?:\.\d+)?[\"\u2033] ?)?)?[EW]"
)


def _decimals(number: str) -> int:
    return len(number.partition(".")[2])


def _find_coordinates(text: str, settings: DetectorSettings) -> Spans:
    spans = [match.span() for match in _LABELLED_PAIR.finditer(text)]
    for match in _DECIMAL_PAIR.finditer(text):
        if min(_decimals(match.group("lat")), _decimals(match.group("lon"))) >= _MIN_BARE_DECIMALS:
            spans.append(match.span())
    spans.extend(match.span("value") for match in _LABELLED_VALUE.finditer(text))
    if "°" in text:
        spans.extend(match.span() for match in _DEGREES.finditer(text))
    yield from outermost(spans)


COORDINATES = TextDetector(
    "coordinates",
    _find_coordinates,
    lambda settings: (
        r"\d\.\d{4,} ?[,;] ?[-+]?\d{1,3}\.\d{4}|(?i:geo:|@|ll=|q=|center=)[-+]?\d{1,2}\.\d"
        r"|(?i:lat|lon|lng|long|longitude|latitude)[\"']?\s*[:=]|°"
    ),
)
