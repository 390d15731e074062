"""Contact details: email addresses (plain, escaped, spelled out) and phone numbers."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import phonenumbers

from pipelines.rules.detectors.detector import Spans, TextDetector
from pipelines.rules.detectors.normalise import accepted_prefix, ascii_digits, outermost

if TYPE_CHECKING:
    from pipelines.rules.detectors.settings import DetectorSettings

__all__ = ["EMAIL", "PHONE", "PHONE_REGIONS", "find_phone_numbers"]

# U+3002 (and U+FF61, which NFKC maps to it) separates domain labels like "." does; a
# top-level domain is letters, or punycode (xn--p1ai).
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:[.\u3002][\w-]+)*[.\u3002]"
    r"(?:[^\W\d_]{2,}|xn--[a-z0-9-]+)(?![\w-])"
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


# Addresses spaced out to slip past a pattern: spaces around "@" and the dots
# ("alice @ example . com"), or every character apart ("a l i c e @ e x a m p l e . c o m").
# Without its spaces, the run must be an address.
_EMAIL_SPACED = re.compile(
    r"(?<![\w.%+-])(?:"
    r"[\w.%+-]+ ?@ ?[\w-]+(?: ?[.\u3002] ?[\w-]+)+"
    r"|(?:[\w.%+-] )+[\w.%+-]? ?@ ?(?:[\w-] )*[\w-](?: ?[.\u3002] ?(?:[\w-] )*[\w-])+"
    r")(?![\w-])"
)


def _find_emails(text: str, settings: DetectorSettings) -> Spans:
    spans = [match.span() for match in _EMAIL.finditer(text)]
    if " @" in text or "@ " in text:
        for match in _EMAIL_SPACED.finditer(text):
            if _EMAIL.fullmatch(match.group().replace(" ", "")):
                spans.append(match.span())
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


def _phone_digits(digits: str) -> bool:
    return 9 <= len(digits) <= 15


def _find_phones(text: str, settings: DetectorSettings) -> Spans:
    """Phone numbers: the common written shapes, and any run libphonenumber accepts."""
    spans: list[tuple[int, int]] = []
    for match in _PHONE.finditer(text):
        length = accepted_prefix(match.group(), _phone_digits)
        if length is not None:
            spans.append((match.start(), match.start() + length))
    # libphonenumber is the slow part: a candidate inside a span already found needs no parse.
    digits = ascii_digits(text)
    for match in _PHONE_CANDIDATE.finditer(digits):
        start, end = match.span("number")
        if any(a <= start and end <= b for a, b in spans):
            continue
        if _is_phone(match.group("number"), settings.phone_regions):
            spans.append((start, end))
    yield from outermost(spans)


# --------------------------------------------------------------------------- libphonenumber

# Regions whose national formats (trunk 0, area codes in brackets) are tried for a number
# written without a country code: the platform's largest markets. A number valid in none of
# them and written without "+" is not redacted; one with "+" or "00" needs no region.
PHONE_REGIONS = (
    "US",
    "GB",
    "DE",
    "FR",
    "ES",
    "IT",
    "NL",
    "IN",
    "BR",
    "MX",
    "JP",
    "AU",
    "CN",
    "SE",
    "PL",
)


# A run that could be a phone number: an optional "tel:", "+" or "00", then digits with
# single separators (space, dot, dash, slash, brackets), not the tail of a longer token (the
# last group of a UUID, "ev-1701234567"). Validation decides.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+.\-/])(?:tel:\s?)?"
    r"(?P<number>(?:\+|\b00)?\(?\d(?:[ .\-/\u00a0]?\(?\d\)?){6,18}\)?)(?![\w])",
    re.ASCII | re.IGNORECASE,
)
# Shapes that are not phone numbers whatever a numbering plan allows: a number that opens
# with a date, amounts grouped in thousands.
_DATE_FIRST = re.compile(
    r"\d{4}[-./]\d{1,2}[-./]\d{1,2}(?!\d)|\d{1,2}[-./]\d{1,2}[-./](?:\d{4}|\d{2})(?!\d)"
)
_THOUSANDS = re.compile(r"\d{1,3}(?:[.,\u00a0 ]\d{3}){2,}")
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")  # an address or a netmask
_DIGITS = re.compile(r"\d")
# Digits of a number written without a country code. Shorter national numbers are local
# numbers without their area code ("555 0132"), which counters, ids and meeting numbers
# ("845 1234") also look like; every plan of PHONE_REGIONS dials nine digits or more.
_MIN_NATIONAL_DIGITS = 9


def _phone_text(candidate: str) -> tuple[str, bool]:
    """(the number as libphonenumber should read it, whether it names its country)."""
    number = candidate.strip()
    if number.startswith("00"):
        return "+" + number[2:], True
    return number, number.startswith("+")


def _is_phone(candidate: str, regions: tuple[str, ...]) -> bool:
    digits = len(_DIGITS.findall(candidate))
    if not 7 <= digits <= 15:
        return False
    number, international = _phone_text(candidate)
    if international:
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            return False
        # Written with a country code, a possible length is enough: that is how people
        # write numbers they want dialled, and fictional ranges (555) are still numbers.
        return phonenumbers.is_possible_number(parsed)
    if (
        digits < _MIN_NATIONAL_DIGITS
        or _DATE_FIRST.match(number)
        or _THOUSANDS.fullmatch(number)
        or _DOTTED_QUAD.fullmatch(number)
    ):
        return False
    for region in regions:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return True
    return False


def find_phone_numbers(text: str, regions: tuple[str, ...] = PHONE_REGIONS) -> Spans:
    """Phone numbers libphonenumber accepts: with a country code, any possible number; without,
    a valid number of one of `regions`. Digits of any script count."""
    digits = ascii_digits(text)
    for match in _PHONE_CANDIDATE.finditer(digits):
        if _is_phone(match.group("number"), regions):
            yield match.span("number")


EMAIL = TextDetector(
    "email",
    _find_emails,
    lambda settings: (
        r"[0-9A-Za-z_.%+\-] ?@ ?[0-9A-Za-z_\-]"
        r"|(?i:[\[({<] *at *[\])}>]| at +[0-9A-Za-z_\-]+ *[\[({<]? *dot)"
    ),
)
# Nine digits with at most three separators between neighbours, or an international prefix:
# every number above has one.
PHONE = TextDetector(
    "phone",
    _find_phones,
    lambda settings: r"\d(?:[ .\-/()]{0,3}\d){8}|\+ ?\(?\d|\b00\d",
)
