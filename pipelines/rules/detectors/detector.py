"""What a detector is and what it reports: the shape every family module fills in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.rules.detectors.settings import DetectorSettings

__all__ = ["Finding", "Spans", "TextDetector"]

Spans = Iterator[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector hit: `text[start:end]` of the original text."""

    detector: str
    start: int
    end: int


@dataclass(frozen=True)
class TextDetector:
    """One family's finder over normalised text, and the RE2 prefilter of the column path.

    `find` reads the NFKC view of a text (normalise.py) and yields spans into it; offsets are
    mapped back to the original text by the caller. `prefilter` returns an RE2 pattern that
    matches every ASCII text `find` can flag (lookarounds dropped, backreferences loosened),
    or None when no pattern can rule a row out.
    """

    name: str
    find: Callable[[str, DetectorSettings], Spans]
    prefilter: Callable[[DetectorSettings], str | None]
