"""Financial family: cards with any separators in every issuer range, IBANs by mod 97."""

from __future__ import annotations

import pytest

from pipelines.rules.detectors import DetectorSettings, luhn_valid, scan_text

DEFAULTS = DetectorSettings.default()


def spans(text: str, detector: str) -> list[str]:
    return [text[f.start : f.end] for f in scan_text(text, DEFAULTS, detectors=(detector,))]


# Test numbers the networks publish for their ranges (each passes Luhn).
CARDS = [
    ("visa_spaces", "4111 1111 1111 1111"),
    ("visa_dots", "4111.1111.1111.1111"),
    ("visa_slashes", "4111/1111/1111/1111"),
    ("visa_mixed", "4111 1111-1111.1111"),
    ("visa_underscores", "4111_1111_1111_1111"),
    ("mastercard_2_series", "2223003122003222"),
    ("mastercard_5", "5555-5555-5555-4444"),
    ("amex_4_6_5", "3782 822463 10005"),
    ("discover", "6011 1111 1111 1117"),
    ("diners_14", "3056 9309 0259 04"),
    ("jcb", "3530111333300000"),
    ("unionpay_19", "6212345678901265"),
    ("maestro_dots", "6759.6498.2643.8453"),
    ("mir", "2200 0000 0000 0004"),
    ("nbsp", "4111\u00a01111\u00a01111\u00a01111"),
]


@pytest.mark.parametrize("card", [c[1] for c in CARDS], ids=[c[0] for c in CARDS])
def test_card_found(card: str) -> None:
    digits = "".join(ch for ch in card if ch.isdigit())
    assert luhn_valid(digits)
    assert spans(f"paid with {card} ok", "payment_card") == [card]


def test_card_in_arabic_indic_digits() -> None:
    card = "".join(chr(0x0660 + int(ch)) if ch.isdigit() else ch for ch in "4111 1111 1111 1111")
    assert spans(f"بطاقة {card}", "payment_card") == [card]


CARD_MISSES = [
    ("luhn_fails", "card 4111 1111 1111 1112"),
    ("epoch_ms", "ts 1732611600000"),
    ("short", "card 4111 1111 11"),
    ("uuid", "id 123e4567-e89b-12d3-a456-426614174000"),
]


@pytest.mark.parametrize("text", [c[1] for c in CARD_MISSES], ids=[c[0] for c in CARD_MISSES])
def test_card_near_misses(text: str) -> None:
    assert spans(text, "payment_card") == []


IBANS = [
    ("de_print", "DE89 3704 0044 0532 0130 00"),
    ("de_compact", "DE89370400440532013000"),
    ("gb", "GB29 NWBK 6016 1331 9268 19"),
    ("fr", "FR14 2004 1010 0505 0001 3M02 606"),
    ("nl_dashes", "NL91-ABNA-0417-1643-00"),
    ("lowercase", "gb29nwbk60161331926819"),
]


@pytest.mark.parametrize("iban", [c[1] for c in IBANS], ids=[c[0] for c in IBANS])
def test_iban_found(iban: str) -> None:
    assert spans(f"refund to {iban} today", "iban") == [iban]


IBAN_MISSES = [
    ("check_digits_wrong", "refund to DE88 3704 0044 0532 0130 00"),
    ("length_wrong", "refund to DE89 3704 0044 0532 0130"),
    ("unknown_country", "code ZZ89370400440532013000"),
    ("build_tag", "build AB12CD34EF56GH78"),
]


@pytest.mark.parametrize("text", [c[1] for c in IBAN_MISSES], ids=[c[0] for c in IBAN_MISSES])
def test_iban_near_misses(text: str) -> None:
    assert spans(text, "iban") == []
