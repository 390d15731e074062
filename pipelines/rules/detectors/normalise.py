"""The normalised view every detector reads, with offsets back into the original text.

NFKC per character cluster (fullwidth and styled letters read as ASCII), invisible and format
characters removed (zero-width joiners, bidi controls, tag characters: Unicode category Cf, and
combining marks that join nothing visible), URL and HTML escapes of an address's characters
decoded. Detectors report spans into the view; `View.original` maps them back.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from pipelines.rules.detectors.detector import Spans

__all__ = [
    "ESCAPE",
    "UNSPACED_SCRIPTS",
    "View",
    "accepted_prefix",
    "ascii_digits",
    "fold",
    "is_invisible",
    "normalise",
    "outermost",
]

# Marks that join or select but draw nothing: the combining grapheme joiner, variation
# selectors, Mongolian free variation selectors. Hangul fillers draw nothing either.
_INVISIBLE_MARKS = frozenset(
    "\u034f\u115f\u1160\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def is_invisible(char: str) -> bool:
    """Does `char` draw nothing (a format character: zero-width, bidi control, soft hyphen,
    word joiner, invisible operator, tag; or a joining mark or filler)?"""
    return unicodedata.category(char) == "Cf" or char in _INVISIBLE_MARKS


# Escapes that spell an address's characters in URLs and HTML (alice%40example.com,
# alice&#64;example.com, alice&commat;example.com). Percent escapes are decoded only for
# the characters of addresses and numbers, so other URL-encoded text reads as before.
ESCAPE = re.compile(
    r"%(?:40|2[BbDdEe]|5[Ff])"
    r"|&#(?:[0-9]{1,7}|[xX][0-9A-Fa-f]{1,6});"
    r"|&(?:commat|period|plus|lowbar|hyphen|dash|nbsp);"
)
_NAMED_ESCAPES = {
    "commat": "@",
    "period": ".",
    "plus": "+",
    "lowbar": "_",
    "hyphen": "-",
    "dash": "-",
    "nbsp": " ",
}


@dataclass(frozen=True, slots=True)
class View:
    """Normalised text plus, per character, the original span it came from."""

    text: str
    starts: list[int] | None = None  # None: the view is the original text
    ends: list[int] | None = None

    def original(self, start: int, end: int) -> tuple[int, int]:
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


def _unescaped(escape: str) -> str | None:
    """The character an escape stands for, or None for a code point that cannot be one."""
    if escape[0] == "%":
        return chr(int(escape[1:], 16))
    name = escape[1:-1]
    if not name.startswith("#"):
        return _NAMED_ESCAPES[name]
    code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
    if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return chr(code)
    return None


def normalise(text: str, fold: bool) -> View:
    """NFKC (and casefold if `fold`) per character cluster, zero-width characters dropped,
    URL and HTML escapes of single characters decoded."""
    escapes = list(ESCAPE.finditer(text)) if "%" in text or "&" in text else []
    if not escapes and text.isascii():
        return View(text.lower() if fold else text)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for escape in escapes:
        _normalise_span(text, position, escape.start(), fold, pieces, starts, ends)
        char = _unescaped(escape.group())
        if char is None:
            _normalise_span(text, escape.start(), escape.end(), fold, pieces, starts, ends)
        elif not is_invisible(char):
            piece = unicodedata.normalize("NFKC", char)
            if fold:
                piece = piece.casefold()
            pieces.append(piece)
            starts.extend([escape.start()] * len(piece))
            ends.extend([escape.end()] * len(piece))
        position = escape.end()
    _normalise_span(text, position, len(text), fold, pieces, starts, ends)
    return View("".join(pieces), starts, ends)


def _normalise_span(
    text: str,
    position: int,
    stop: int,
    fold: bool,
    pieces: list[str],
    starts: list[int],
    ends: list[int],
) -> None:
    """Append the normalised `text[position:stop]` and its original offsets."""
    plain = text[position:stop]
    if plain.isascii():
        pieces.append(plain.lower() if fold else plain)
        starts.extend(range(position, stop))
        ends.extend(range(position + 1, stop + 1))
        return
    while position < stop:
        if is_invisible(text[position]):
            position += 1
            continue
        # A base character and its combining marks normalise together (e + U+0301 -> é).
        cluster_end = position + 1
        while cluster_end < stop and unicodedata.combining(text[cluster_end]):
            cluster_end += 1
        piece = unicodedata.normalize("NFKC", text[position:cluster_end])
        if fold:
            piece = piece.casefold()
        pieces.append(piece)
        starts.extend([position] * len(piece))
        ends.extend([cluster_end] * len(piece))
        position = cluster_end


def fold(value: str) -> str:
    """The normalised, casefolded form of `value`."""
    return normalise(value, fold=True).text


def outermost(spans: list[tuple[int, int]]) -> Spans:
    """The spans not inside another span, in order."""
    reach = -1
    for start, end in sorted(spans, key=lambda span: (span[0], -span[1])):
        if end > reach:
            yield start, end
            reach = end


_DIGIT = re.compile(r"\d")
_GROUP_SEPARATOR = re.compile(r"[ .-]")


def accepted_prefix(number: str, accept: Callable[[str], bool]) -> int | None:
    """Length of the longest prefix of `number`, cut before a separator, whose digits pass.

    A number followed by another group (a year, a count) is matched as one run;
    cutting trailing groups recovers it.
    """
    separators = [separator.start() for separator in _GROUP_SEPARATOR.finditer(number)]
    for cut in [len(number), *reversed(separators)]:
        if accept("".join(_DIGIT.findall(number[:cut]))):
            return cut
    return None


def _to_ascii_digit(match: re.Match[str]) -> str:
    return str(unicodedata.digit(match.group()))


def ascii_digits(text: str) -> str:
    """`text` with decimal digits of every script written as ASCII digits (same length, so
    offsets stay)."""
    return text if text.isascii() else _DIGIT.sub(_to_ascii_digit, text)


# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, kana, Han).
UNSPACED_SCRIPTS = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
)
