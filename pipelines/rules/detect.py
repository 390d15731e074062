"""Detectors for customer content and personal data that leaked into free text.

Every detector reads a normalised view of the text (NFKC, zero-width characters
removed) so that fullwidth or split-up identifiers are still seen, and reports
offsets into the original text. `scan_text` is the exact path; `scan_column`
runs conservative RE2 prefilters over a whole Arrow column first and sends only
candidate rows (and every row with a non-ASCII character) down the exact path.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import ipaddress
import json
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DETECTORS",
    "DetectorSettings",
    "EchoIndex",
    "Finding",
    "KnownIdentifiers",
    "find_all",
    "luhn_valid",
    "outermost",
    "scan_column",
    "scan_text",
    "shingle_hashes",
]

DETECTORS: tuple[str, ...] = (
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


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector hit: `text[start:end]` of the original text."""

    detector: str
    start: int
    end: int


# --------------------------------------------------------------------------- settings

# (section, key, lowest, highest) of every integer setting; field name is section_key.
# RE2 refuses counted repetitions above 1000, hence the blob ceilings.
_INTEGER_KEYS: tuple[tuple[str, str, int, int], ...] = (
    ("blob", "min_base64", 8, 1000),
    ("blob", "min_hex", 8, 1000),
    ("natural_language", "min_words", 1, 1000),
    ("natural_language", "min_function_words", 1, 1000),
    ("natural_language", "min_prose_words", 1, 1000),
    ("known_identifier", "min_length", 1, 1000),
    ("known_identifier", "max_words", 1, 20),
    # Three words is the shortest content record the echo index keeps.
    ("content_echo", "shingle_words", 3, 100),
    # Below four words (or characters) a run is a stock phrase; two meetings at least, or
    # every run would be common.
    ("other_subject_echo", "shingle_words", 4, 100),
    ("other_subject_echo", "shingle_chars", 4, 100),
    ("other_subject_echo", "common_meetings", 2, 1_000_000),
)
_SHARE_KEYS: tuple[tuple[str, str], ...] = (("natural_language", "min_function_share"),)
_SETTING_KEYS = [(section, key) for section, key, _, _ in _INTEGER_KEYS] + list(_SHARE_KEYS)
_SECTIONS: dict[str, set[str]] = {
    section: {key for other, key in _SETTING_KEYS if other == section}
    for section, _ in _SETTING_KEYS
}


@dataclass(frozen=True)
class DetectorSettings:
    """Which detectors run and their thresholds (configs/detectors.json)."""

    enabled: tuple[str, ...] = DETECTORS
    # Shorter base64 runs are common in ordinary ids; 40 chars is 240 bits of payload.
    blob_min_base64: int = 40
    # 32 hex chars = 128 bits: a key, digest or token, not a counter or address.
    blob_min_hex: int = 32
    # Machine log messages are short and impersonal; chat has pronouns and modals. A
    # sentence of >= min_words words is flagged when its conversational words (plus one
    # for a closing ? or !, minus its machine words) reach min_function_words and make up
    # >= min_function_share of it, or when it runs to min_prose_words with no machine word.
    natural_language_min_words: int = 4
    natural_language_min_function_words: int = 2
    natural_language_min_function_share: float = 0.15
    natural_language_min_prose_words: int = 8
    # Shorter values ("Al", "Bob", "1") hit ordinary words and numbers.
    known_identifier_min_length: int = 4
    known_identifier_max_words: int = 3
    content_echo_shingle_words: int = 4
    # A consented record is restricted when it shares a run with content of a subject who did
    # not consent for it (rules/echo.py). Six words is a clause of a sentence: quoted, it is
    # someone's words; five or fewer are often set phrases. Eight characters of Chinese,
    # Japanese or Thai carry about as much as six English words.
    other_subject_echo_shingle_words: int = 6
    other_subject_echo_shingle_chars: int = 8
    # A run that content of five or more meetings of the run holds is common speech ("before
    # the board call", "can everyone see my screen"), not a quotation of one person: a quote
    # lives in its meeting and maybe a follow-up or two.
    other_subject_echo_common_meetings: int = 5

    @classmethod
    def default(cls) -> DetectorSettings:
        """The shipped defaults; configs/detectors.json holds the same values."""
        return cls()

    @classmethod
    def from_file(cls, path: str | Path) -> DetectorSettings:
        """Read and check a detectors JSON file."""
        source = str(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{source}: cannot read detector settings: {error}") from error
        return cls.from_mapping(data, source)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> DetectorSettings:
        """Check `data` key by key; errors name `source` and the offending key."""
        return cls(**_checked_values(data, source))

    def __post_init__(self) -> None:
        _checked_values(self.to_mapping(), type(self).__name__)

    def to_mapping(self) -> dict[str, Any]:
        """The JSON shape of these settings (inverse of `from_mapping`)."""
        data: dict[str, Any] = {"enabled": list(self.enabled)}
        for item in fields(self):
            if item.name != "enabled":
                section, key = _split_field(item.name)
                data.setdefault(section, {})[key] = getattr(self, item.name)
        return data


def _split_field(name: str) -> tuple[str, str]:
    for section in _SECTIONS:
        if name.startswith(section + "_"):
            return section, name[len(section) + 1 :]
    raise AssertionError(f"settings field {name} belongs to no section")


def _checked_values(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The DetectorSettings fields held in `data`; ValueError names `source` and the key."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"enabled", *_SECTIONS})
    if unknown:
        raise ValueError(f"{source}: unknown key {unknown[0]!r}")
    values: dict[str, Any] = {"enabled": _read_enabled(data, source)}
    for section, keys in _SECTIONS.items():
        block = data.get(section)
        if not isinstance(block, Mapping):
            raise ValueError(f"{source}: {section} must be an object with keys {sorted(keys)}")
        extra = sorted(set(block) - keys)
        if extra:
            raise ValueError(f"{source}: unknown key {section}.{extra[0]}")
    for section, key, lowest, highest in _INTEGER_KEYS:
        value = data[section].get(key)
        name = f"{section}.{key}"
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ValueError(f"{source}: {name} must be an integer >= {lowest}, got {value!r}")
        if value > highest:
            raise ValueError(f"{source}: {name} must be an integer <= {highest}, got {value!r}")
        values[f"{section}_{key}"] = value
    for section, key in _SHARE_KEYS:
        value = data[section].get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(
                f"{source}: {section}.{key} must be a number between 0 and 1, got {value!r}"
            )
        values[f"{section}_{key}"] = float(value)
    return values


def _read_enabled(data: Mapping[str, Any], source: str) -> tuple[str, ...]:
    enabled = data.get("enabled")
    if not isinstance(enabled, list) or not all(isinstance(name, str) for name in enabled):
        raise ValueError(f"{source}: enabled must be a list of detector names, got {enabled!r}")
    for name in enabled:
        if name not in DETECTORS:
            raise ValueError(
                f"{source}: enabled names unknown detector {name!r} (known: {', '.join(DETECTORS)})"
            )
    if len(set(enabled)) != len(enabled):
        raise ValueError(f"{source}: enabled lists a detector twice: {enabled!r}")
    return tuple(enabled)


# --------------------------------------------------------------------------- normalised view

_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")
# Escapes that spell an address's characters in URLs and HTML (alice%40example.com,
# alice&#64;example.com, alice&commat;example.com). Percent escapes are decoded only for
# the characters of addresses and numbers, so other URL-encoded text reads as before.
_ESCAPE = re.compile(
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
class _View:
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


def _normalise(text: str, fold: bool) -> _View:
    """NFKC (and casefold if `fold`) per character cluster, zero-width characters dropped,
    URL and HTML escapes of single characters decoded."""
    escapes = list(_ESCAPE.finditer(text)) if "%" in text or "&" in text else []
    if not escapes and text.isascii():
        return _View(text.lower() if fold else text)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0
    for escape in escapes:
        _normalise_span(text, position, escape.start(), fold, pieces, starts, ends)
        char = _unescaped(escape.group())
        if char is None:
            _normalise_span(text, escape.start(), escape.end(), fold, pieces, starts, ends)
        elif char not in _ZERO_WIDTH:
            piece = unicodedata.normalize("NFKC", char)
            if fold:
                piece = piece.casefold()
            pieces.append(piece)
            starts.extend([escape.start()] * len(piece))
            ends.extend([escape.end()] * len(piece))
        position = escape.end()
    _normalise_span(text, position, len(text), fold, pieces, starts, ends)
    return _View("".join(pieces), starts, ends)


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
        if text[position] in _ZERO_WIDTH:
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


def _fold(value: str) -> str:
    return _normalise(value, fold=True).text


# --------------------------------------------------------------------------- text detectors

Spans = Iterator[tuple[int, int]]

# U+3002 (and U+FF61, which NFKC maps to it) separates domain labels like "." does.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:[.\u3002][\w-]+)*[.\u3002][^\W\d_]{2,}(?![\w-])"
)
# Addresses with "at" and "dot" spelled out. A bracketed at ("[at]", "(at)", "{at}", "<at>")
# is written only to hide an address, so any domain with a letter TLD counts. A bare " at "
# is ordinary English, so the dots must be spelled out too, the TLD must be a common one
# and the domain must not start with a determiner ("look at the dot com era").
_SPELLED_DOT = r"(?: *[\[({<] *dot *[\])}>] *| +dot +)"
_COMMON_TLDS = (
    "com|org|net|edu|gov|mil|info|biz|io|co|ai|app|dev|eu|uk|us|ca|au|nz|ie|de|fr|nl|be"
    "|es|pt|it|ch|se|dk|fi|pl|cz|jp|cn|kr|in|br|mx|ru"
)
_DETERMINERS = "the|a|an|this|that|these|those|my|your|our|their|his|her|its|some|any|each|every"
_EMAIL_BRACKETED_AT, _EMAIL_WORD_AT = (
    re.compile(
        rf"(?<![\w.%+-])[\w.%+-]+ *[\[({{<] *at *[\])}}>] *"
        rf"[\w-]+(?:(?:{_SPELLED_DOT}|\.)[\w-]+)*(?:{_SPELLED_DOT}|\.)[^\W\d_]{{2,}}"
        r"(?![\w-]|\.\w)",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?<![\w.%+-])[\w.%+-]+ +at +(?!(?:{_DETERMINERS}) )"
        rf"[\w-]+(?:{_SPELLED_DOT}[\w-]+)*{_SPELLED_DOT}(?:{_COMMON_TLDS})"
        r"(?![\w-]|\.\w)",
        re.IGNORECASE,
    ),
)


def _find_emails(text: str, settings: DetectorSettings) -> Spans:
    spans = [match.span() for match in _EMAIL.finditer(text)]
    # Most texts hold no spelled-out address: cheap substring tests spare the patterns.
    lowered = text.lower()
    if "at" in lowered:
        if "dot" in lowered:
            spans.extend(match.span() for match in _EMAIL_WORD_AT.finditer(text))
        if "[" in text or "(" in text or "{" in text or "<" in text:
            spans.extend(match.span() for match in _EMAIL_BRACKETED_AT.finditer(text))
    yield from outermost(spans)


_PHONE = re.compile(
    r"""
    (?<![\w+.-])
    (?<!\d[ .-])                                # not the tail of a longer number (a card)
    (?:
        (?:\+|00)[1-9]\d{0,2}                   # country code
        (?:[ .-]?\(\d{1,4}\))?                  # optional (area) or (0)
        (?:[ .-]?\d{1,5}){1,6}
      | \([2-9]\d{2}\)[ .-]?\d{3}[ .-]\d{4}     # (415) 555-0132
      | [2-9]\d{2}(?P<nanp>[.-])\d{3}(?P=nanp)\d{4}   # 415-555-0132
      | 0[1-9]\d{0,3}(?P<trunk>[ .-])\d{2,4}(?:(?P=trunk)\d{2,4}){1,3}  # 020 7946 0958
      | 0[1-9]\d{1,3}[ -]\d{6,8}                # 07700 900123
    )
    (?![\w]|[.-]\d)
    """,
    re.VERBOSE,
)
_DIGIT = re.compile(r"\d")
_GROUP_SEPARATOR = re.compile(r"[ .-]")


def _accepted_prefix(number: str, accept: Callable[[str], bool]) -> int | None:
    """Length of the longest prefix of `number`, cut before a separator, whose digits pass.

    A number followed by another group (a year, a count) is matched as one run;
    cutting trailing groups recovers it.
    """
    separators = [separator.start() for separator in _GROUP_SEPARATOR.finditer(number)]
    for cut in [len(number), *reversed(separators)]:
        if accept("".join(_DIGIT.findall(number[:cut]))):
            return cut
    return None


def _phone_digits(digits: str) -> bool:
    return 9 <= len(digits) <= 15


def _find_phones(text: str, settings: DetectorSettings) -> Spans:
    for match in _PHONE.finditer(text):
        length = _accepted_prefix(match.group(), _phone_digits)
        if length is not None:
            yield match.start(), match.start() + length


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


_SECRET_PARAMETER = re.compile(
    r"(?<![\w.-])[\w.-]*?(?:token|passw(?:or)?d|pwd|api[_-]?key|secret|signature|sig)"
    r"=[^\s&#\"'<>,;)\]}]+",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"(?<![\w+.-])[A-Za-z][\w+.-]*://[^\s/?#@:]*:[^\s/?#@]+@[\w.-]+")


def _find_secret_urls(text: str, settings: DetectorSettings) -> Spans:
    for pattern in (_SECRET_PARAMETER, _URL_CREDENTIALS):
        for match in pattern.finditer(text):
            yield match.span()


_CARD = re.compile(
    r"""
    (?<![\w.+-])
    (?:
        [2-6]\d{12,18}                           # contiguous; epoch timestamps start with 1
      | \d{4}(?P<sep>[ -])\d{3,6}(?:(?P=sep)\d{1,6}){1,3}   # grouped 4-4-4-4, 4-6-5 ...
    )
    (?![\w]|[.-]\d)
    """,
    re.VERBOSE,
)


def luhn_valid(digits: str) -> bool:
    """Does a digit string pass the Luhn checksum (payment cards)?"""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_digits(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _find_payment_cards(text: str, settings: DetectorSettings) -> Spans:
    for match in _CARD.finditer(text):
        length = _accepted_prefix(match.group(), _card_digits)
        if length is not None:
            yield match.start(), match.start() + length


@functools.lru_cache(maxsize=16)
def _blob_patterns(min_base64: int, min_hex: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    return (
        re.compile(rf"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{{{min_base64},}}+={{0,2}}"),
        re.compile(rf"(?<![A-Za-z0-9])[0-9A-Fa-f]{{{min_hex},}}+(?![A-Za-z0-9])"),
    )


def _find_blobs(text: str, settings: DetectorSettings) -> Spans:
    base64, hexadecimal = _blob_patterns(settings.blob_min_base64, settings.blob_min_hex)
    spans = []
    for match in base64.finditer(text):
        run = match.group()
        # Words and paths rarely mix all three classes; encoded bytes almost always do.
        if re.search("[A-Z]", run) and re.search("[a-z]", run) and re.search("[0-9]", run):
            spans.append(match.span())
    spans.extend(match.span() for match in hexadecimal.finditer(text))
    yield from outermost(spans)


def outermost(spans: list[tuple[int, int]]) -> Spans:
    """The spans not inside another span, in order."""
    reach = -1
    for start, end in sorted(spans, key=lambda span: (span[0], -span[1])):
        if end > reach:
            yield start, end
            reach = end


# Words people use in chat and speech but log messages rarely do.
_CONVERSATIONAL = frozenset(
    {
        *("i", "i'm", "i've", "i'll", "i'd", "me", "my", "mine", "myself"),
        *("you", "you're", "you've", "you'll", "you'd", "your", "yours", "yourself"),
        *("we", "we're", "we've", "we'll", "we'd", "us", "our", "ours", "let's", "let"),
        *("he", "she", "they", "them", "his", "her", "their", "someone", "anyone", "everyone"),
        *("everybody", "somebody", "nobody", "guys", "folks"),
        *("can", "could", "would", "should", "shall", "might", "gonna", "wanna"),
        *("please", "pls", "plz", "thanks", "thank", "thx", "sorry"),
        *("hey", "hi", "hello", "bye", "ok", "okay", "yes", "yeah", "yep", "nope", "sure", "lol"),
        *("think", "guess", "feel", "hope", "want", "need", "know", "see", "forgot"),
        *("honestly", "really", "actually", "maybe", "probably", "almost", "just", "so"),
        *("today", "tomorrow", "tonight", "yesterday", "morning", "afternoon", "evening"),
        *("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        *("week", "weekend", "lunch", "dinner"),
        *("don't", "can't", "won't", "didn't", "doesn't", "isn't", "it's", "that's"),
    }
)
# Words of client telemetry: each one counts against a sentence being someone's words.
_MACHINE = frozenset(
    {
        *("error", "errors", "failed", "failure", "fail", "timeout", "timed", "exception"),
        *("null", "invalid", "unknown", "unexpected", "unable", "denied", "permission"),
        *("retry", "retrying", "restart", "reset", "reconnect", "reconnecting", "crashed"),
        *("crash", "assertion", "fault", "abort", "aborted", "watchdog", "warning", "debug"),
        *("connection", "connect", "connected", "disconnected", "socket", "handshake", "peer"),
        *("server", "client", "host", "network", "bandwidth", "bitrate", "packet", "packets"),
        *("buffer", "frame", "frames", "stream", "codec", "decoder", "encoder", "renderer"),
        *("thread", "method", "invoke", "object", "reference", "process", "memory", "cpu"),
        *("gpu", "device", "devices", "audio", "video", "camera", "microphone", "headset"),
        *("bluetooth", "screen", "resolution", "default", "session", "token", "request"),
        *("response", "status", "code", "config", "user", "meeting", "ms", "kbps", "fps"),
        *("upload", "download", "uploaded", "downloaded", "stalled", "queued", "cache", "disk"),
    }
)
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"
_OPENERS = _QUOTES + "(\u00a1\u00bf"
_CLOSERS = _QUOTES + ")"
_TRAILERS = _CLOSERS + ",.!?;:\u2026"
_TERMINATORS = frozenset(".!?;:)\u2026")
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*[^\W\d_]{0,3}")
_DASHES = re.compile(r"[-\u2013\u2014\u2026]+")
_TOKEN = re.compile(r"\S+")


def _find_natural_language(text: str, settings: DetectorSettings) -> Spans:
    sentence: list[tuple[re.Match[str], bool]] = []  # (token, is a word)
    for token in _TOKEN.finditer(text):
        raw = token.group()
        stripped = raw.rstrip(_TRAILERS)
        core = stripped.lstrip(_OPENERS)
        if "(" in stripped[: len(stripped) - len(core)]:
            # An aside in parentheses is a sentence of its own.
            yield from _judge_sentence(sentence, settings)
            sentence = []
        if _WORD.fullmatch(core):
            sentence.append((token, True))
        elif not core or _NUMBER.fullmatch(core) or _DASHES.fullmatch(core):
            sentence.append((token, False))
        else:
            # Code-like token (dotted name, call, key=value, path): the sentence ends here.
            yield from _judge_sentence(sentence, settings)
            sentence = []
            continue
        if _TERMINATORS.intersection(raw[len(stripped) :]):
            yield from _judge_sentence(sentence, settings)
            sentence = []
    yield from _judge_sentence(sentence, settings)


# Share of telemetry words a long sentence with a conversational word may hold and still read
# as prose (measured on the generator's chat and log corpora and the tests' lists: no new false
# positive among ~700 machine lines; without the conversational word, "recording stopped
# because the disk on the host is full" would be flagged).
_PROSE_MACHINE_SHARE = 0.2


def _judge_sentence(
    sentence: list[tuple[re.Match[str], bool]], settings: DetectorSettings
) -> Spans:
    words = [
        token.group().rstrip(_TRAILERS).lstrip(_OPENERS).lower().replace("\u2019", "'")
        for token, is_word in sentence
        if is_word
    ]
    if len(words) < settings.natural_language_min_words:
        return
    function_words = sum(word in _CONVERSATIONAL for word in words)
    machine_words = sum(word in _MACHINE for word in words)
    last = sentence[-1][0].group()
    asks_or_exclaims = "?" in last or "!" in last
    cues = function_words + asks_or_exclaims - machine_words
    conversational = (
        cues >= settings.natural_language_min_function_words
        and function_words / len(words) >= settings.natural_language_min_function_share
    )
    # Long sentences are prose even with a telemetry word or two in them ("my camera is off
    # because the bandwidth here is terrible"): machine messages are short or dense with jargon.
    few_machine = machine_words <= _PROSE_MACHINE_SHARE * len(words)
    prose = (len(words) >= settings.natural_language_min_prose_words and not machine_words) or (
        len(words) >= settings.natural_language_min_prose_words and few_machine and function_words
    )
    if conversational or prose:
        first = next(token for token, is_word in sentence if is_word)
        opening = len(first.group()) - len(first.group().lstrip(_OPENERS))
        closing = len(last) - len(last.rstrip(_CLOSERS))
        yield first.start() + opening, sentence[-1][0].end() - closing


_TEXT_DETECTORS: dict[str, Callable[[str, DetectorSettings], Spans]] = {
    "email": _find_emails,
    "phone": _find_phones,
    "ip_address": _find_ip_addresses,
    "secret_url": _find_secret_urls,
    "payment_card": _find_payment_cards,
    "blob": _find_blobs,
    "natural_language": _find_natural_language,
}


# --------------------------------------------------------------------------- known identifiers

_ID_TOKEN = re.compile(r"\w(?:[\w.@+-]*\w)?")
# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, kana, Han).
UNSPACED_SCRIPTS = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
)
_UNSPACED = re.compile(f"[{UNSPACED_SCRIPTS}]")


@dataclass(frozen=True)
class KnownIdentifiers:
    """Names, emails and ids of a run's participants, normalised for lookup."""

    # Personal data: kept out of repr so it never lands in a log or traceback.
    keys: frozenset[str] = field(default=frozenset(), repr=False)
    first_tokens: frozenset[str] = field(default=frozenset(), repr=False)
    longest: int = 0  # most tokens in one key

    @classmethod
    def from_values(cls, values: Iterable[str | None], min_length: int) -> KnownIdentifiers:
        """Normalise (NFKC, casefold, tokens joined by one space); skip None and short values."""
        keys = set()
        for value in values:
            if value is None:
                continue
            key = " ".join(_ID_TOKEN.findall(_fold(value)))
            # A name in a script written without spaces is two or three characters long.
            if key and (len(key) >= min_length or (len(key) >= 2 and _UNSPACED.search(key))):
                keys.add(key)
        return cls._of(keys)

    @classmethod
    def _of(cls, keys: set[str] | frozenset[str]) -> KnownIdentifiers:
        tokenised = [key.split(" ") for key in keys]
        return cls(
            keys=frozenset(keys),
            first_tokens=frozenset(tokens[0] for tokens in tokenised),
            longest=max((len(tokens) for tokens in tokenised), default=0),
        )

    def merge(self, other: KnownIdentifiers) -> KnownIdentifiers:
        """Both sets of identifiers."""
        return self._of(self.keys | other.keys)

    @classmethod
    def merge_all(cls, parts: Iterable[KnownIdentifiers]) -> KnownIdentifiers:
        """All the sets at once (merging pairwise would copy the growing set each time)."""
        keys: set[str] = set()
        for part in parts:
            keys.update(part.keys)
        return cls._of(keys)

    def spans(self, folded: str, max_words: int) -> Spans:
        """Spans of `folded` text (already normalised) whose 1..max_words tokens are known."""
        tokens = list(_ID_TOKEN.finditer(folded))
        words = [token.group() for token in tokens]
        longest = min(max_words, self.longest)
        for index, word in enumerate(words):
            if word not in self.first_tokens:
                continue
            for size in range(1, min(longest, len(words) - index) + 1):
                if " ".join(words[index : index + size]) in self.keys:
                    yield tokens[index].start(), tokens[index + size - 1].end()


# --------------------------------------------------------------------------- content echo

_ECHO_WORD = re.compile(r"\w+")
_MIN_ECHO_WORDS = 3


def _shingle_hash(meeting_id: str, words: list[str]) -> int:
    data = (meeting_id + "\x1f" + " ".join(words)).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _windows(count: int, k: int) -> range:
    """Start of each shingle window over `count` words ([] below three words)."""
    if count < _MIN_ECHO_WORDS:
        return range(0)
    return range(max(count - k, 0) + 1)


def shingle_hashes(meeting_id: str, text: str, k: int) -> np.ndarray:
    """Hashes of the k-word shingles of `text` for one meeting (uint64, in text order)."""
    words = _ECHO_WORD.findall(_fold(text))
    size = min(k, len(words))
    return np.fromiter(
        (
            _shingle_hash(meeting_id, words[start : start + size])
            for start in _windows(len(words), k)
        ),
        dtype=np.uint64,
    )


def _code(sorted_values: tuple[str, ...], value: str) -> int:
    """Position of `value` in `sorted_values`, or -1."""
    position = bisect.bisect_left(sorted_values, value)
    found = position < len(sorted_values) and sorted_values[position] == value
    return position if found else -1


def _in_sorted(sorted_array: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per value, whether it is in `sorted_array`."""
    if len(sorted_array) == 0:
        return np.zeros(len(values), dtype=bool)
    positions = np.minimum(np.searchsorted(sorted_array, values), len(sorted_array) - 1)
    return np.asarray(sorted_array[positions] == values)


@dataclass(frozen=True)
class EchoIndex:
    """Shingle hashes of a run's content records, to spot content repeated in free text.

    Besides the hashes it keeps which words each meeting's content uses: a window
    can only echo if every word is one, which spares hashing (and lets
    `scan_column` rule out most rows in Arrow).
    """

    k: int
    hashes: np.ndarray = field(repr=False)  # sorted unique uint64 shingle hashes
    # Customer content and meeting ids: kept out of repr so they never reach a log.
    words: tuple[str, ...] = field(repr=False)  # sorted; a word's code is its position
    meetings: tuple[str, ...] = field(repr=False)  # sorted; likewise
    pairs: np.ndarray = field(repr=False)  # sorted unique int64 meeting_code * len(words) + word

    @classmethod
    def build(cls, pairs: Iterable[tuple[str, str]], k: int) -> EchoIndex:
        """Index (meeting_id, content_text) pairs."""
        hashes: list[np.ndarray] = []
        used: set[tuple[str, str]] = set()
        for meeting_id, text in pairs:
            hashes.append(shingle_hashes(meeting_id, text, k))
            used.update((meeting_id, word) for word in _ECHO_WORD.findall(_fold(text)))
        merged = np.unique(np.concatenate(hashes)) if hashes else np.empty(0, np.uint64)
        return cls._of(k, merged.astype(np.uint64), used)

    @classmethod
    def _of(cls, k: int, hashes: np.ndarray, used: Collection[tuple[str, str]]) -> EchoIndex:
        words = tuple(sorted({word for _, word in used}))
        meetings = tuple(sorted({meeting for meeting, _ in used}))
        word_codes = {word: code for code, word in enumerate(words)}
        meeting_codes = {meeting: code for code, meeting in enumerate(meetings)}
        keys = np.fromiter(
            (meeting_codes[meeting] * len(words) + word_codes[word] for meeting, word in used),
            dtype=np.int64,
            count=len(used),
        )
        return cls(k, hashes, words, meetings, np.unique(keys))

    def _used(self) -> set[tuple[str, str]]:
        """The (meeting_id, word) pairs of the content."""
        meeting_codes, word_codes = np.divmod(self.pairs, max(len(self.words), 1))
        return {
            (self.meetings[meeting], self.words[word])
            for meeting, word in zip(meeting_codes.tolist(), word_codes.tolist(), strict=True)
        }

    def merge(self, other: EchoIndex) -> EchoIndex:
        """Both indexes; they must use the same shingle size."""
        return EchoIndex.merge_all(self.k, [self, other])

    @classmethod
    def merge_all(cls, k: int, parts: Iterable[EchoIndex]) -> EchoIndex:
        """All the indexes at once; each must use shingles of `k` words."""
        hashes = [np.empty(0, dtype=np.uint64)]
        used: set[tuple[str, str]] = set()
        for part in parts:
            if part.k != k:
                raise ValueError(f"cannot merge echo indexes of {k} and {part.k} word shingles")
            hashes.append(part.hashes)
            used |= part._used()
        return cls._of(k, np.unique(np.concatenate(hashes)).astype(np.uint64), used)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, EchoIndex)
            and (self.k, self.words, self.meetings) == (other.k, other.words, other.meetings)
            and np.array_equal(self.hashes, other.hashes)
            and np.array_equal(self.pairs, other.pairs)
        )

    __hash__ = None  # type: ignore[assignment]

    def find(self, meeting_id: str | None, text: str) -> Finding | None:
        """The first window of `text` that repeats content of the same meeting."""
        if meeting_id is None:
            return None
        return self._find(meeting_id, _normalise(text, fold=True))

    def _find(self, meeting_id: str, view: _View) -> Finding | None:
        meeting = _code(self.meetings, meeting_id)
        tokens = list(_ECHO_WORD.finditer(view.text))
        if meeting < 0 or len(tokens) < _MIN_ECHO_WORDS:
            return None
        words = [token.group() for token in tokens]
        codes = np.array([_code(self.words, word) for word in words], dtype=np.int64)
        in_meeting = (codes >= 0) & _in_sorted(self.pairs, meeting * len(self.words) + codes)
        # Windows of k words match shingles; of 3..k-1 words, whole short records. Only
        # windows made entirely of this meeting's content words can match: hash just those.
        windows: list[tuple[int, int]] = []  # (start, size)
        run = 0
        for index, present in enumerate(in_meeting.tolist()):
            run = run + 1 if present else 0
            for size in range(_MIN_ECHO_WORDS, min(run, self.k) + 1):
                windows.append((index - size + 1, size))
        if not windows:
            return None
        wanted = np.fromiter(
            (_shingle_hash(meeting_id, words[start : start + size]) for start, size in windows),
            dtype=np.uint64,
            count=len(windows),
        )
        hits = [windows[hit] for hit in np.flatnonzero(_in_sorted(self.hashes, wanted)).tolist()]
        if not hits:
            return None
        start, size = min(hits, key=lambda window: (window[0], -window[1]))
        end = tokens[start + size - 1].end()
        return Finding("content_echo", *view.original(tokens[start].start(), end))


# --------------------------------------------------------------------------- entry points


def _active(
    settings: DetectorSettings,
    detectors: Collection[str] | None,
    known: KnownIdentifiers | None,
    echo: EchoIndex | None,
) -> tuple[str, ...]:
    chosen = settings.enabled if detectors is None else tuple(detectors)
    unknown = sorted(set(chosen) - set(DETECTORS))
    if unknown:
        raise ValueError(f"unknown detector {unknown[0]!r} (known: {', '.join(DETECTORS)})")
    return tuple(
        name
        for name in DETECTORS
        if name in chosen
        and (name != "known_identifier" or known is not None)
        and (name != "content_echo" or echo is not None)
    )


def _scan(
    text: str,
    settings: DetectorSettings,
    names: Iterable[str],
    known: KnownIdentifiers | None,
    echo: EchoIndex | None,
    meeting_id: str | None,
) -> list[Finding]:
    findings: list[Finding] = []
    view: _View | None = None
    folded: _View | None = None
    for name in names:
        if name in _TEXT_DETECTORS:
            if view is None:
                view = _normalise(text, fold=False)
            for start, end in _TEXT_DETECTORS[name](view.text, settings):
                findings.append(Finding(name, *view.original(start, end)))
            continue
        if folded is None:
            folded = _normalise(text, fold=True)
        if name == "known_identifier" and known is not None:
            for start, end in known.spans(folded.text, settings.known_identifier_max_words):
                findings.append(Finding(name, *folded.original(start, end)))
        elif name == "content_echo" and echo is not None and meeting_id is not None:
            echoed = echo._find(meeting_id, folded)
            if echoed is not None:
                findings.append(echoed)
    findings.sort(key=lambda finding: (finding.start, finding.detector, finding.end))
    return findings


def scan_text(
    text: str,
    settings: DetectorSettings,
    *,
    known: KnownIdentifiers | None = None,
    echo: EchoIndex | None = None,
    meeting_id: str | None = None,
    detectors: Collection[str] | None = None,
) -> list[Finding]:
    """All findings in `text`, sorted by (start, detector)."""
    names = _active(settings, detectors, known, echo)
    return _scan(text, settings, names, known, echo, meeting_id)


def find_all(text: str) -> list[Finding]:
    """`scan_text` with the default settings and no run context."""
    return scan_text(text, DetectorSettings.default())


# RE2 prefilters for ASCII rows. Each matches every ASCII text its detector can flag:
# it is the exact pattern with lookarounds dropped and backreferences loosened.
_PREFILTERS: dict[str, str] = {
    "email": (
        r"[0-9A-Za-z_.%+\-]@[0-9A-Za-z_\-]"
        r"|(?i:[\[({<] *at *[\])}>]| at +[0-9A-Za-z_\-]+ *[\[({<]? *dot)"
    ),
    "phone": (
        r"(?:\+|\b00)[1-9]|\(\d{3}\)|\d{3}[.\-]\d{3}[.\-]\d{4}"
        r"|\b0[1-9]\d{0,3}[ .\-]\d{2}"
    ),
    # A valid IPv6 address has "::", eight groups, or ends in a dotted quad.
    "ip_address": (
        r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|::|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}"
    ),
    "secret_url": (
        r"(?i:token|passw(?:or)?d|pwd|api[_\-]?key|secret|signature|sig)="
        r"|://[^/?#@]*:[^/?#@]*@"
    ),
    "payment_card": r"\b[2-6]\d{12}|\b\d{4}[ \-]\d{3}",
}
_CONVERSATIONAL_STEMS = sorted({word.split("'")[0] for word in _CONVERSATIONAL})
# RE2 spellings of the natural-language tokens in ASCII text: whitespace as Python's \s
# (RE2's \s lacks \v and \x1c-\x1f), a word token, and a number or dash token.
_S = r"[\t-\r\x1c-\x1f ]"
_W = r"[\"'(]*[A-Za-z]+(?:['\-][A-Za-z]+)*[\"'),.!?;:]*"
_U = r"[\"'(]*(?:[0-9]+(?:[.,:/\-][0-9]+)*[A-Za-z]{0,3}|-+)?[\"'),.!?;:]*"


_ESCAPED = "(escaped)"  # the prefilter key of rows holding an escape _normalise decodes


def _regex_prefilters(settings: DetectorSettings) -> dict[str, str]:
    patterns = dict(_PREFILTERS)
    patterns["blob"] = (
        f"[A-Za-z0-9+/_\\-]{{{settings.blob_min_base64}}}|[0-9A-Fa-f]{{{settings.blob_min_hex}}}"
    )
    # A conversational sentence holds a conversational word unless a closing ? or ! alone
    # can qualify it; a prose sentence holds min_prose_words words with nothing but
    # numbers or dashes between them (as _find_natural_language tokenises ASCII text).
    if (
        settings.natural_language_min_function_share > 0
        or settings.natural_language_min_function_words > 1
    ):
        stems = "|".join(_CONVERSATIONAL_STEMS)
        more = settings.natural_language_min_prose_words - 1
        prose = f"(?:^|{_S}){_W}(?:{_S}+(?:{_U}{_S}+)*{_W}){{{more}}}(?:{_S}|$)"
        patterns["natural_language"] = f"(?i:\\b(?:{stems})\\b)|{prose}"
    return patterns


def _as_strings(values: pa.Array | pa.ChunkedArray, what: str) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), pa.string())
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise TypeError(f"{what} must be a string array, got {values.type}")
    return values


def _to_mask(array: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _rows_with(flags: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    mask = np.zeros(count, dtype=bool)
    mask[rows[flags]] = True
    return mask


@dataclass(frozen=True)
class _Tokens:
    """The lower-cased whitespace tokens of a column, each distinct token kept once.

    Python's identifier tokens and words never span whitespace, so splitting the
    few distinct tokens further finds every one of them in ASCII rows.
    """

    distinct: pa.Array
    which: np.ndarray  # distinct index of every token occurrence
    rows: np.ndarray  # row of every token occurrence

    @classmethod
    def of(cls, column: pa.Array) -> _Tokens:
        parts = pc.ascii_split_whitespace(pc.ascii_lower(column))
        encoded = pc.dictionary_encode(pc.list_flatten(parts))
        return cls(
            encoded.dictionary,
            encoded.indices.to_numpy(),
            pc.list_parent_indices(parts).to_numpy(),
        )

    def split(self, separators: str) -> pa.ListArray:
        """The distinct tokens split at `separators`."""
        return pc.split_pattern_regex(self.distinct, separators)

    def in_order(self, parts: pa.ListArray) -> tuple[np.ndarray, np.ndarray]:
        """For every piece of every token occurrence, in column order: where the piece is
        in the flattened `parts`, and its row."""
        offsets = np.asarray(parts.offsets)
        counts = np.diff(offsets)[self.which]
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(offsets[:-1][self.which], counts) + within, np.repeat(self.rows, counts)


def _known_candidates(tokens: _Tokens, known: KnownIdentifiers, count: int) -> np.ndarray:
    """Rows holding a token that starts a known identifier."""
    parts = tokens.split(r"[^0-9a-z_.@+\-]+")
    trimmed = pc.utf8_trim(pc.list_flatten(parts), ".@+-")
    first = pa.array(sorted(known.first_tokens), trimmed.type)
    found = _to_mask(pc.is_in(trimmed, value_set=first))
    holds = np.zeros(len(tokens.distinct), dtype=bool)
    holds[pc.list_parent_indices(parts).to_numpy()[found]] = True
    return _rows_with(holds[tokens.which], tokens.rows, count)


def _echo_candidates(
    tokens: _Tokens, echo: EchoIndex, meetings: pa.Array | None, count: int
) -> np.ndarray:
    """Rows with a run of three or more words of their own meeting's content."""
    if meetings is None:
        return np.zeros(count, dtype=bool)
    meeting_set = pa.array(echo.meetings, meetings.type)
    meeting = pc.fill_null(pc.index_in(meetings, value_set=meeting_set), -1).to_numpy()
    parts = tokens.split(r"[^0-9a-z_]+")
    pieces = pc.list_flatten(parts)
    index, rows = tokens.in_order(parts)
    # Splitting leaves empty pieces at token edges; they are not words and must not cut runs.
    nonempty = _to_mask(pc.greater(pc.binary_length(pieces), 0))[index]
    index, rows = index[nonempty], rows[nonempty]
    word_set = pa.array(echo.words, pieces.type)
    word = pc.fill_null(pc.index_in(pieces, value_set=word_set), -1).to_numpy()[index]
    row_meeting = meeting[rows].astype(np.int64)
    keys = row_meeting * len(echo.words) + word
    found = (word >= 0) & (row_meeting >= 0) & np.isin(keys, echo.pairs)
    # Length of the run of found words ending at each word, runs restarting at each row.
    position = np.arange(len(rows))
    run_starts = found & np.r_[True, (rows[1:] != rows[:-1]) | ~found[:-1]]
    latest_start = np.maximum.accumulate(np.where(run_starts, position, 0))
    run = np.where(found, position - latest_start + 1, 0)
    return _rows_with(run >= _MIN_ECHO_WORDS, rows, count)


def scan_column(
    values: pa.Array | pa.ChunkedArray,
    settings: DetectorSettings,
    *,
    known: KnownIdentifiers | None = None,
    echo: EchoIndex | None = None,
    meeting_ids: pa.Array | pa.ChunkedArray | None = None,
    detectors: Collection[str] | None = None,
) -> list[list[Finding]]:
    """`scan_text` of every value (null -> []), prefiltered column-wide with RE2."""
    column = _as_strings(values, "values")
    meetings = None if meeting_ids is None else _as_strings(meeting_ids, "meeting_ids")
    if meetings is not None and len(meetings) != len(column):
        raise ValueError(f"meeting_ids has {len(meetings)} rows, values has {len(column)}")
    names = _active(settings, detectors, known, echo)
    count = len(column)
    results: list[list[Finding]] = [[] for _ in range(count)]
    if not names or count == 0:
        return results
    masks = _candidate_masks(column, settings, names, known, echo, meetings)
    if "content_echo" in masks:
        masks["content_echo"] &= _to_mask(pc.is_valid(meetings)) if meetings is not None else False
    selected = np.flatnonzero(np.logical_or.reduce(list(masks.values())))
    if len(selected) == 0:
        return results
    take = pa.array(selected, pa.int64())
    texts = column.take(take).to_pylist()
    ids = meetings.take(take).to_pylist() if meetings is not None else [None] * len(selected)
    for row, text, meeting_id in zip(selected.tolist(), texts, ids, strict=True):
        if text is not None:
            row_names = [name for name in names if masks[name][row]]
            results[row] = _scan(text, settings, row_names, known, echo, meeting_id)
    return results


def _candidate_masks(
    column: pa.Array,
    settings: DetectorSettings,
    names: tuple[str, ...],
    known: KnownIdentifiers | None,
    echo: EchoIndex | None,
    meetings: pa.Array | None,
) -> dict[str, np.ndarray]:
    """Per detector, the rows its prefilter cannot rule out."""
    count = len(column)
    # Confusables and zero-width characters defeat ASCII patterns: such rows always go exact.
    non_ascii = _to_mask(pc.invert(pc.string_is_ascii(column)))
    masks = {name: non_ascii.copy() for name in names}
    patterns = {name: rx for name, rx in _regex_prefilters(settings).items() if name in names}
    if "natural_language" in names and "natural_language" not in patterns:
        masks["natural_language"][:] = True
    # One pass over every row; each detector's own pattern then runs on the few hits. Rows
    # with a URL or HTML escape read differently once decoded: every detector sees them.
    patterns[_ESCAPED] = _ESCAPE.pattern
    union = "|".join(f"(?:{pattern})" for pattern in patterns.values())
    hits = np.flatnonzero(_to_mask(pc.match_substring_regex(column, union)))
    subset = column.take(pa.array(hits, pa.int64()))
    for name, pattern in patterns.items():
        found = _rows_with(_to_mask(pc.match_substring_regex(subset, pattern)), hits, count)
        for detector in names if name == _ESCAPED else (name,):
            masks[detector] |= found
    if "known_identifier" in names or "content_echo" in names:
        tokens = _Tokens.of(column)
        if known is not None and "known_identifier" in names:
            masks["known_identifier"] |= _known_candidates(tokens, known, count)
        if echo is not None and "content_echo" in names:
            masks["content_echo"] |= _echo_candidates(tokens, echo, meetings, count)
    return masks
