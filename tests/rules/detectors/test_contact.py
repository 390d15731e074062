"""Contact family: phone numbers through libphonenumber, emails behind invisible characters."""

from __future__ import annotations

import pytest

from pipelines.rules.detectors import DetectorSettings, scan_text

DEFAULTS = DetectorSettings.default()


def spans(text: str, detector: str, settings: DetectorSettings = DEFAULTS) -> list[str]:
    return [text[f.start : f.end] for f in scan_text(text, settings, detectors=(detector,))]


# "+44 20 7946 0958" in fullwidth forms, which NFKC maps to ASCII.
FULLWIDTH_PHONE = "".join(chr(ord(c) + 0xFEE0) if c != " " else c for c in "+44 20 7946 0958")
PHONES = [
    ("us_toll_free_dashes", "call 1-800-555-0199 now", "1-800-555-0199"),
    ("us_brackets_no_space", "call (415)5550132 now", "(415)5550132"),
    ("us_spaces_only", "call 415 555 0132 now", "415 555 0132"),
    ("tel_uri", "link tel:+14155550132 here", "+14155550132"),
    ("tel_uri_national", "tel:020 7946 0958", "020 7946 0958"),
    ("arabic_indic_digits", "رقمي ٠٢٠٧٩٤٦٠٩٥٨ شكرا", "٠٢٠٧٩٤٦٠٩٥٨"),
    ("devanagari_digits", "नंबर +९१ ९८७६५ ४३२१० है", "+९१ ९८७६५ ४३२१०"),
    ("zero_width_separators", "ring 415\u200b555\u200b0132", "415\u200b555\u200b0132"),
    ("word_joiner_separators", "ring 415\u2060555\u20600132", "415\u2060555\u20600132"),
    ("uk_trunk_prefix", "ring me on 07700 900123", "07700 900123"),
    ("uk_trunk_compact", "ring me on 07700900123", "07700900123"),
    ("de_trunk_slash", "Tel. 030/12345678", "030/12345678"),
    ("fr_pairs", "appelle 06 12 34 56 78", "06 12 34 56 78"),
    ("fr_dots", "appelle 06.12.34.56.78", "06.12.34.56.78"),
    ("es_groups", "llámame 612 34 56 78", "612 34 56 78"),
    ("in_mobile", "call +91 98765 43210", "+91 98765 43210"),
    ("br_mobile", "liga (11) 91234-5678", "(11) 91234-5678"),
    ("jp_national", "電話 03-1234-5678 まで", "03-1234-5678"),
    ("cn_mobile", "电话13812345678", "13812345678"),
    ("double_zero_intl", "call 0049 30 12345678", "0049 30 12345678"),
    ("fullwidth", f"call {FULLWIDTH_PHONE}", FULLWIDTH_PHONE),
    ("nbsp_separated", "call 415\u00a0555\u00a00132", "415\u00a0555\u00a00132"),
]


@pytest.mark.parametrize(("text", "number"), [c[1:] for c in PHONES], ids=[c[0] for c in PHONES])
def test_phone_found(text: str, number: str) -> None:
    assert spans(text, "phone") == [number]


PHONE_MISSES = [
    ("meeting_number", "meeting 845 1234"),
    ("date_time", "date 26.11.2026 09:00"),
    ("iso_date", "scheduled at 2026-11-26T09:00:00Z"),
    ("epoch_ms", "epoch 1732611600000"),
    ("duration", "took 00:01:23.456"),
    ("bytes_thousands", "sent 1,234,567 bytes"),
    ("version", "client version 6.2.5.18230"),
    ("uuid_tail", "uuid 123e4567-e89b-12d3-a456-426614174000"),
    ("short_local", "call 555 0132"),
    ("hex_address", "pc at 0x7ffd5e8a3b20"),
]


@pytest.mark.parametrize("text", [c[1] for c in PHONE_MISSES], ids=[c[0] for c in PHONE_MISSES])
def test_phone_near_misses(text: str) -> None:
    assert spans(text, "phone") == []


def test_phone_regions_come_from_settings() -> None:
    # A Brazilian national number is valid only where Brazilian numbering applies.
    text = "liga (11) 91234-5678"
    assert spans(text, "phone") == ["(11) 91234-5678"]
    only_us = DetectorSettings.from_mapping(
        {**DEFAULTS.to_mapping(), "phone": {"regions": ["US"]}}, "t"
    )
    assert spans(text, "phone", only_us) == []


@pytest.mark.parametrize(
    ("regions", "message"),
    [
        (["US", "XX"], "phone.regions names unknown region 'XX'"),
        ("US", "phone.regions must be a list of region codes"),
        (["US", "US"], "phone.regions lists a region twice"),
    ],
    ids=["unknown", "not_a_list", "twice"],
)
def test_phone_regions_are_checked(regions: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DetectorSettings.from_mapping({**DEFAULTS.to_mapping(), "phone": {"regions": regions}}, "t")


INVISIBLE = ["\u2063", "\u200e", "\u200f", "\u202e", "\u202a", "\u2066", "\u034f", "\u061c",
             "\u180e", "\ufe0f", "\U000e0041", "\u2061", "\u00ad", "\u200b", "\ufeff"]  # fmt: skip


@pytest.mark.parametrize("mark", INVISIBLE, ids=[f"U+{ord(m):04X}" for m in INVISIBLE])
def test_email_with_an_invisible_character_inside(mark: str) -> None:
    address = f"ali{mark}ce@exa{mark}mple.com"
    assert spans(f"mail {address} now", "email") == [address]


EMAILS = [
    ("spaced_at_and_dot", "mail alice @ example . com now", "alice @ example . com"),
    (
        "letter_spaced",
        "mail a l i c e @ e x a m p l e . c o m",
        "a l i c e @ e x a m p l e . c o m",
    ),
    ("bracketed_at", "alice [at] example [dot] com", "alice [at] example [dot] com"),
    ("spelled_at_dot", "alice at example dot com", "alice at example dot com"),
    ("fullwidth_at", "alice\uff20example.com", "alice\uff20example.com"),
    ("url_escaped", "to=alice%40example.com", "alice%40example.com"),
]


@pytest.mark.parametrize(("text", "address"), [c[1:] for c in EMAILS], ids=[c[0] for c in EMAILS])
def test_email_found(text: str, address: str) -> None:
    assert spans(text, "email") == [address]


EMAIL_MISSES = [
    ("at_time", "meet @ 5 pm"),
    ("handle", "ping @alice in the channel"),
    ("decorator", "@Override public void run()"),
    ("look_at", "look at the dot com era"),
    ("version_at", "lib@6.2.5 resolved"),
]


@pytest.mark.parametrize("text", [c[1] for c in EMAIL_MISSES], ids=[c[0] for c in EMAIL_MISSES])
def test_email_near_misses(text: str) -> None:
    assert spans(text, "email") == []
