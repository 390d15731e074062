"""Numbers that point at a person: phone numbers in any format, payment cards, bank accounts.

Each finder reads text already normalised by the caller (NFKC), maps every decimal digit of
any script to ASCII (Arabic-Indic and other digits keep their positions), takes candidates
with a cheap pattern and keeps those a validator accepts: libphonenumber for phones, Luhn for
cards, the ISO 13616 length and mod-97 check for IBANs. Spans are offsets into the given text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

import phonenumbers

from pipelines.rules.detect import luhn_valid

__all__ = [
    "NUMBER_PREFILTERS",
    "PHONE_REGIONS",
    "ascii_digits",
    "find_cards",
    "find_ibans",
    "find_phones",
]

Spans = Iterator[tuple[int, int]]

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


_ANY_DIGIT = re.compile(r"\d")


def _to_ascii_digit(match: re.Match[str]) -> str:
    return str(unicodedata.digit(match.group()))


def ascii_digits(text: str) -> str:
    """`text` with decimal digits of every script written as ASCII digits (same length, so
    offsets stay)."""
    return text if text.isascii() else _ANY_DIGIT.sub(_to_ascii_digit, text)


# --------------------------------------------------------------------------- phones

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


def find_phones(text: str) -> Spans:
    """Phone numbers with or without a country code, in any common notation."""
    digits = ascii_digits(text)
    for match in _PHONE_CANDIDATE.finditer(digits):
        if _is_phone(match.group()):
            yield match.span()


# --------------------------------------------------------------------------- cards

# 13-19 digits in groups of 1-6 with any one-character separator between groups.
_CARD_CANDIDATE = re.compile(
    r"(?<![\w.+-])\d(?:[ .\-/_\u00a0]?\d){12,18}(?![\w]|[.\-]\d)", re.ASCII
)


_SEPARATOR = re.compile(r"[^0-9]")


def find_cards(text: str) -> Spans:
    """Payment card numbers (13-19 digits passing Luhn), whatever separates their groups."""
    digits = ascii_digits(text)
    for match in _CARD_CANDIDATE.finditer(digits):
        run = match.group()
        # Undivided, only the networks' leading digits count: 13 digits from 1 are epoch
        # milliseconds, in ids and logs alike.
        if run.isdigit() and run[0] not in "23456":
            continue
        # A card followed by another group (a year, a count) is one run: cut groups off.
        cuts = [len(run)] + [m.start() for m in reversed(list(_SEPARATOR.finditer(run)))]
        for cut in cuts:
            number = "".join(_DIGITS.findall(run[:cut]))
            if 13 <= len(number) <= 19 and luhn_valid(number):
                yield match.start(), match.start() + cut
                break


# --------------------------------------------------------------------------- IBAN

# ISO 13616 lengths of the registry's countries (the check digits alone let 1 in 97 random
# strings through; the length per country cuts that further).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
# Country, check digits, then the account in groups of letters and digits (print format
# groups of four, or none), any one separator between groups.
_IBAN_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ .\-\u00a0]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])",
    re.ASCII,
)
_ALNUM = re.compile(r"[A-Za-z0-9]")


def _iban_valid(compact: str) -> bool:
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def find_ibans(text: str) -> Spans:
    """International bank account numbers whose length and mod-97 check digits hold."""
    digits = ascii_digits(text)
    for match in _IBAN_CANDIDATE.finditer(digits):
        raw = match.group()
        compact = "".join(_ALNUM.findall(raw)).upper()
        # A candidate may run on into the next word's letters: try each shorter prefix too.
        for cut in range(len(compact), 14, -1):
            if _iban_valid(compact[:cut]):
                kept = 0
                end = match.start()
                for index, char in enumerate(raw):
                    if char.isalnum():
                        kept += 1
                        if kept == cut:
                            end = match.start() + index + 1
                            break
                yield match.start(), end
                break


# RE2 patterns that match every ASCII text the finders above can flag (lookarounds dropped).
NUMBER_PREFILTERS = {
    "phone": r"\d(?:[ .\-/()]{0,3}\d){6}",
    "payment_card": r"\d(?:[ .\-/_]?\d){12}",
    "iban": r"[A-Za-z]{2}\d{2}",
}
