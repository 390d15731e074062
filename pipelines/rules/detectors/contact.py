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


def _phone_digits(digits: str) -> bool:
    return 9 <= len(digits) <= 15


def _find_phones(text: str, settings: DetectorSettings) -> Spans:
    for match in _PHONE.finditer(text):
        length = accepted_prefix(match.group(), _phone_digits)
        if length is not None:
            yield match.start(), match.start() + length


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
    r"(?<![\w+.\-/])(?:tel:\s?)?(?:\+|\b00)?\(?\d(?:[ .\-/\u00a0]?\(?\d\)?){6,18}\)?(?![\w])",
    re.ASCII | re.IGNORECASE,
)
# Shapes that are not phone numbers whatever a numbering plan allows: dates, times, amounts
# grouped in thousands.
_NOT_PHONE = (
    re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}"),
    re.compile(r"\d{1,2}[-./]\d{1,2}[-./]\d{2,4}"),
    re.compile(r"\d{1,3}(?:[.,\u00a0 ]\d{3}){2,}"),
)
_DIGITS = re.compile(r"\d")


def _phone_text(candidate: str) -> tuple[str, bool]:
    """(the number as libphonenumber should read it, whether it names its country)."""
    number = candidate.strip()
    if number[:4].lower() == "tel:":
        number = number[4:].strip()
    if number.startswith("00"):
        return "+" + number[2:], True
    return number, number.startswith("+")


def _is_phone(candidate: str) -> bool:
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
    if any(pattern.fullmatch(number) for pattern in _NOT_PHONE):
        return False
    for region in PHONE_REGIONS:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return True
    return False


def find_phone_numbers(text: str) -> Spans:
    """Phone numbers with or without a country code, in any common notation."""
    digits = ascii_digits(text)
    for match in _PHONE_CANDIDATE.finditer(digits):
        if _is_phone(match.group()):
            yield match.span()


EMAIL = TextDetector(
    "email",
    _find_emails,
    lambda settings: (
        r"[0-9A-Za-z_.%+\-]@[0-9A-Za-z_\-]"
        r"|(?i:[\[({<] *at *[\])}>]| at +[0-9A-Za-z_\-]+ *[\[({<]? *dot)"
    ),
)
PHONE = TextDetector(
    "phone",
    _find_phones,
    lambda settings: (
        r"(?:\+|\b00)[1-9]|\(\d{3}\)|\d{3}[.\-]\d{3}[.\-]\d{4}"
        r"|\b0[1-9]\d{0,3}[ .\-]\d{2}"
    ),
)
# RE2 pattern matching every ASCII text `find_phone_numbers` can flag (lookarounds dropped).
PHONE_NUMBER_PREFILTER = r"\d(?:[ .\-/()]{0,3}\d){6}"
