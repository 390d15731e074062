"""Financial numbers: payment cards (Luhn, any separators) and IBANs (length and mod 97)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pipelines.rules.detectors.detector import Spans, TextDetector
from pipelines.rules.detectors.normalise import accepted_prefix, ascii_digits, outermost

if TYPE_CHECKING:
    from pipelines.rules.detectors.settings import DetectorSettings

__all__ = ["IBAN", "PAYMENT_CARD", "find_card_numbers", "find_ibans", "luhn_valid"]

_CARD = re.compile(
    r"""
    (?<![\w.+-])
    (?:
        [2-6]\d{12,18}                           # contiguous; epoch timestamps start with 1
      | 1\d{14}                                 # UATP (airline) cards: 15 digits from 1
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
    """Card numbers in the common groupings, and 13-19 digits with any separators."""
    spans: list[tuple[int, int]] = []
    for match in _CARD.finditer(text):
        length = accepted_prefix(match.group(), _card_digits)
        if length is not None:
            spans.append((match.start(), match.start() + length))
    spans.extend(find_card_numbers(text))
    yield from outermost(spans)


# --------------------------------------------------------------------------- cards

# 13-19 digits in groups of 1-6 with any one-character separator between groups.
_CARD_CANDIDATE = re.compile(
    r"(?<![\w.+-])\d(?:[ .\-/_\u00a0]?\d){12,18}(?![\w]|[.\-]\d)", re.ASCII
)


_SEPARATOR = re.compile(r"[^0-9]")
_DIGITS = re.compile(r"\d")


def find_card_numbers(text: str) -> Spans:
    """Payment card numbers (13-19 digits passing Luhn), whatever separates their groups."""
    digits = ascii_digits(text)
    for match in _CARD_CANDIDATE.finditer(digits):
        run = match.group()
        # Undivided, only the networks' leading digits count: 13 digits from 1 are epoch
        # milliseconds, in ids and logs alike.
        if run.isdigit() and run[0] not in "23456" and not (run[0] == "1" and len(run) == 15):
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


# Thirteen digits with at most one separator between neighbours: every card above has them.
PAYMENT_CARD = TextDetector(
    "payment_card", _find_payment_cards, lambda settings: r"\d(?:[ .\-/_]?\d){12}"
)
IBAN = TextDetector(
    "iban", lambda text, settings: find_ibans(text), lambda settings: r"[A-Za-z]{2}\d{2}"
)
