"""What consented content may not carry: each redaction family and the other-subject echo rule,
as pass/fail pairs (the rules are pure: no Beam)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipelines.rules.consented import (
    CONSENTED_DETECTORS,
    ID_DETECTORS,
    MEDIA_DETECTORS,
    ConsentedScanner,
    column_detectors,
)
from pipelines.rules.detectors import DetectorSettings, KnownIdentifiers, echo

KNOWN = KnownIdentifiers.from_values(
    [
        "Alice Example",
        "alice@example.com",
        "p-alice",
        "Carol Danvers",
        "p-carol",
        "acct-7f3e",
        "José Núñez",
        "王小明",
    ],
    4,
)
SCANNER = ConsentedScanner.build(KNOWN)


def fullwidth(text: str) -> str:
    """`text` in fullwidth forms (what NFKC folds back to ASCII)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


WIDE_NAME = fullwidth("carol danvers")
WIDE_PHONE = fullwidth("020 7946 0958")


def found(text: str, detectors=CONSENTED_DETECTORS) -> list[tuple[str, str]]:
    return [(f.detector, text[f.start : f.end]) for f in SCANNER.scan(text, detectors)]


# (id, text, detector, the span it must find)
CAUGHT = [
    ("name_full", "ask Carol Danvers first", "known_identifier", "Carol Danvers"),
    ("name_part_capitalised", "Carol said so", "known_identifier", "Carol"),
    ("name_fullwidth", f"{WIDE_NAME} agreed", "known_identifier", WIDE_NAME),
    ("name_without_accents", "jose nunez called", "known_identifier", "jose nunez"),
    ("name_unspaced_script", "王小明说你好", "known_identifier", "王小明"),
    ("raw_participant_id", "ping p-carol now", "known_identifier", "p-carol"),
    ("account_id", "billing for ACCT-7F3E", "known_identifier", "ACCT-7F3E"),
    ("id_in_a_file_name", "see p-carol.txt", "known_identifier", "p-carol"),
    ("name_in_an_address", "carol.Danvers@corp", "known_identifier", "carol.Danvers"),
    ("phone_international", "call +44 20 7946 0958", "phone", "+44 20 7946 0958"),
    ("phone_trunk_national", "call 020 7946 0958 today", "phone", "020 7946 0958"),
    ("phone_brackets", "call (415)555-0132", "phone", "(415)555-0132"),
    ("phone_toll_free", "dial 1-800-555-0199", "phone", "1-800-555-0199"),
    ("phone_dots", "dial 415.555.0132", "phone", "415.555.0132"),
    ("phone_spaces_us", "dial 415 555 0132", "phone", "415 555 0132"),
    ("phone_tel_uri", "tel:+33612345678", "phone", "+33612345678"),
    ("phone_arabic_indic", "رقمي ٠٢٠ ٧٩٤٦ ٠٩٥٨", "phone", "٠٢٠ ٧٩٤٦ ٠٩٥٨"),
    ("phone_fullwidth", f"call {WIDE_PHONE}", "phone", WIDE_PHONE),
    ("card_dots", "card 4111.1111.1111.1111 ok", "payment_card", "4111.1111.1111.1111"),
    ("card_mixed_separators", "4111 1111-1111/1111", "payment_card", "4111 1111-1111/1111"),
    ("iban_print", "IBAN DE89 3704 0044 0532 0130 00 ok", "iban", "DE89 3704 0044 0532 0130 00"),
    ("iban_compact_lower", "to gb82west12345698765432", "iban", "gb82west12345698765432"),
    ("url_tk", "see https://x.example/d?tk=9f8a7b6c", "token", "9f8a7b6c"),
    (
        "url_access_token",
        "https://x.example/a?lang=en&access_token=eyJhbGciOi",
        "token",
        "eyJhbGciOi",
    ),
    ("download_token", "download_token: AbC123xyz", "token", "AbC123xyz"),
    ("capability_path", "https://files.example.com/rec/abc123def456", "token", "abc123def456"),
    ("bearer", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9", "token", "eyJhbGciOiJIUzI1NiJ9"),
    ("passcode", "meeting passcode: 482913", "token", "482913"),
    ("opaque_hex", "ref 9f86d081884c7d659a2f3b here", "opaque_id", "9f86d081884c7d659a2f3b"),
    ("opaque_alnum", "order ORDER123456789ABCDEFG", "opaque_id", "ORDER123456789ABCDEFG"),
    (
        "uuid",
        "id 123e4567-e89b-12d3-a456-426614174000 x",
        "opaque_id",
        "123e4567-e89b-12d3-a456-426614174000",
    ),
    ("email", "mail dana.r@example.org now", "email", "dana.r@example.org"),
    ("mac", "my laptop is 3c:22:fb:12:34:56", "mac_address", "3c:22:fb:12:34:56"),
    ("coordinates", "we are at 40.41678, -3.70379", "coordinates", "40.41678, -3.70379"),
    (
        "stripe_key",
        "use sk_live_51Habc23DEFghi45JKLmno",
        "api_key",
        "sk_live_51Habc23DEFghi45JKLmno",
    ),
    ("password", "the wifi password: hunter2", "credential", "hunter2"),
    ("spaced_email", "write dana @ example . org", "email", "dana @ example . org"),
]
# (id, text, detector that must stay silent)
PASSED = [
    ("name_part_lowercase_word", "i will carol the hymn", "known_identifier"),
    ("unrelated_name", "ask Bobby first", "known_identifier"),
    ("date_iso", "on 2026-11-26 at 10", "phone"),
    ("amount_thousands", "budget 1.500.000 eur", "phone"),
    ("short_number", "room 4120 at 3", "phone"),
    ("latency", "ICE restart after 640 ms", "phone"),
    ("card_bad_luhn", "card 4111.1111.1111.1112 ok", "payment_card"),
    ("iban_bad_check", "IBAN DE88 3704 0044 0532 0130 00", "iban"),
    ("url_plain_parameter", "https://x.example/a?lang=en&page=2", "token"),
    ("key_as_a_word", "The key: Tuesday", "token"),
    ("marker_value", "access_token=[REDACTED:token]", "token"),
    ("hyphenated_words", "state-of-the-art-2026-roadmap-planning", "opaque_id"),
    ("short_id", "ticket AB-1234", "opaque_id"),
    ("long_word", "internationalisation-of-everything", "opaque_id"),
]


@pytest.mark.parametrize(
    ("text", "detector", "span"), [c[1:] for c in CAUGHT], ids=[c[0] for c in CAUGHT]
)
def test_a_family_finds_its_kind(text: str, detector: str, span: str) -> None:
    assert (detector, span) in found(text)


@pytest.mark.parametrize(("text", "detector"), [c[1:] for c in PASSED], ids=[c[0] for c in PASSED])
def test_a_family_lets_ordinary_text_be(text: str, detector: str) -> None:
    assert [f for f in found(text) if f[0] == detector] == []


@pytest.mark.parametrize(
    "event_id",
    [
        "123e4567-e89b-12d3-a456-426614174000",
        "ev-7-1",
        "evt_01HZX3K5Q8R7T2VWXYZ4",
        "1701234567890-42",
        "ev-20261126-4155550132",
    ],
    ids=["uuid", "short", "ulid", "epoch_ms", "dated_counter"],
)
def test_ids_of_common_shapes_pass_the_id_scan(event_id: str) -> None:
    assert SCANNER.scan(event_id, ID_DETECTORS) == []


@pytest.mark.parametrize(
    ("event_id", "detector"),
    [("ev-alice@example.com", "email"), ("ev p-carol 1", "known_identifier")],
    ids=["email", "participant_id"],
)
def test_ids_holding_personal_data_fail_the_id_scan(event_id: str, detector: str) -> None:
    assert [f.detector for f in SCANNER.scan(event_id, ID_DETECTORS)] == [detector]


def test_without_identifiers_names_are_not_known() -> None:
    assert ConsentedScanner.build(None).scan("Carol Danvers and p-carol") == []


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("event_id", ID_DETECTORS),
        ("data_b64", MEDIA_DETECTORS),
        ("mime_type", CONSENTED_DETECTORS),
        ("text", CONSENTED_DETECTORS),
        ("event_type", ()),
    ],
    ids=["event_id", "media", "metadata", "content", "closed_vocabulary"],
)
def test_each_column_kind_has_its_families(column: str, expected: tuple[str, ...]) -> None:
    assert column_detectors(column) == expected
    assert ("opaque_id" in expected) == (column in ("mime_type", "text"))


def test_column_scan_equals_the_text_scan() -> None:
    texts = [c[1] for c in CAUGHT] + [c[1] for c in PASSED] + [None, ""]
    by_column = SCANNER.scan_column(pa.array(texts, pa.string()))
    assert by_column == [SCANNER.scan(t) if t else [] for t in texts]


@pytest.mark.parametrize(
    "text",
    [
        "Carol: call 020 7946 0958, https://x.example/d/abc123def456?tk=9f8a7b6c",
        "access_token=abc123456789 and token=[REDACTED:token]9f8a7b",
        "4111 1111 p-carol 1111 1111",
    ],
    ids=["several_families", "marker_then_token", "card_around_an_id"],
)
def test_redaction_leaves_a_value_that_scans_clean(text: str) -> None:
    redacted, findings = SCANNER.redact_column(pa.array([text, "plain words"]))
    assert findings[0] and not findings[1]
    assert SCANNER.scan(redacted[0].as_py()) == []
    assert redacted[1].as_py() == "plain words"


def test_an_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown consented-content detector 'mail'"):
        SCANNER.scan("x", ("mail",))


# --------------------------------------------------------------------------- other-subject echo

SETTINGS = echo.EchoSettings.of(DetectorSettings.default())
QUOTE = "we should move the Lisbon launch to the second week of April"
COMMON = "can everyone see my screen before the board call starts"


def _sources(records: list[tuple[int, str, str, int, list[str], list[str]]], buckets: int = 4):
    table = echo.entries(records, SETTINGS)
    grouped: dict[int, list[pa.Table]] = {}
    for bucket, part in echo.bucket_entries(table, buckets):
        grouped.setdefault(bucket, []).append(part)
    return echo.EchoSources.of(echo.judge_bucket(parts, SETTINGS) for parts in grouped.values())


def _echoed(sources: echo.EchoSources, loc: int, meeting: str, text: str) -> list[str]:
    _, keyed = echo.record_runs([text], meeting, SETTINGS, all_sizes=True)
    return sorted({author for author, _, _ in sources.sources(keyed, loc)})


def _other_meetings(meetings: int, text: str, first_loc: int):
    return [
        (first_loc + i, f"m-{i}", "acct", 0, [f"p-{i}"], [text]) for i in range(1, meetings + 1)
    ]


ECHO_CASES = [
    # (id, text of bob's chat, the summary's text, meetings that also hold bob's text, authors)
    ("quoted_sentence", f"I think {QUOTE}.", f"Bob said {QUOTE}.", 0, ["p-bob"]),
    ("quoted_short_message", "Ship v2 in March", "Summary: ship v2 in March", 0, ["p-bob"]),
    ("different_words", f"I think {QUOTE}.", "The team agreed on the Q3 roadmap.", 0, []),
    # m-0 and `elsewhere` other meetings hold the phrase: common from `common_meetings` on.
    ("common_phrase", COMMON, f"Alice asked: {COMMON}", SETTINGS.common_meetings - 1, []),
    (
        "one_meeting_short_of_common",
        COMMON,
        f"Alice asked: {COMMON}",
        SETTINGS.common_meetings - 2,
        ["p-bob"],
    ),
]


@pytest.mark.parametrize(
    ("chat", "summary", "elsewhere", "authors"),
    [c[1:] for c in ECHO_CASES],
    ids=[c[0] for c in ECHO_CASES],
)
def test_a_distinctive_run_of_another_subject_is_an_echo(
    chat: str, summary: str, elsewhere: int, authors: list[str]
) -> None:
    records = [
        (1, "m-0", "acct", 10, ["p-bob"], [chat]),
        (2, "m-0", "acct", 20, ["p-alice"], [summary]),
        *_other_meetings(elsewhere, chat, 100),
    ]
    assert _echoed(_sources(records), 2, "m-0", summary) == authors


def test_the_same_words_in_another_meeting_are_not_an_echo() -> None:
    records = [
        (1, "m-1", "acct", 10, ["p-bob"], [QUOTE]),
        (2, "m-2", "acct", 20, ["p-alice"], [QUOTE]),
    ]
    assert _echoed(_sources(records), 2, "m-2", QUOTE) == []


def test_a_record_is_not_its_own_source() -> None:
    records = [(1, "m-0", "acct", 10, ["p-alice"], [QUOTE])]
    assert _echoed(_sources(records), 1, "m-0", QUOTE) == []


def test_unspaced_script_runs_are_characters() -> None:
    said = "我们应该把里斯本的发布推迟到四月第二周"
    records = [
        (1, "m-0", "acct", 10, ["p-bob"], [said]),
        (2, "m-0", "acct", 20, ["p-alice"], [f"总结{said[2:12]}。"]),
        (3, "m-0", "acct", 30, ["p-carol"], ["发布很顺利"]),
    ]
    sources = _sources(records)
    assert _echoed(sources, 2, "m-0", f"总结{said[2:12]}。") == ["p-bob"]
    assert _echoed(sources, 3, "m-0", "发布很顺利") == []


def test_a_record_without_subjects_counts_as_nobody_consenting() -> None:
    records = [
        (1, "m-0", "acct", 10, [], [QUOTE]),
        (2, "m-0", "acct", 20, ["p-alice"], [QUOTE]),
    ]
    assert _echoed(_sources(records), 2, "m-0", QUOTE) == [""]


def test_the_index_does_not_depend_on_buckets_or_order() -> None:
    records = [
        (i, f"m-{i % 3}", "acct", i, [f"p-{i % 4}"], [f"{QUOTE} {i % 2}", COMMON])
        for i in range(12)
    ]
    one = _sources(records, buckets=1)
    assert len(one) > 0
    assert _sources(list(reversed(records)), buckets=7) == one
    halves = [echo.entries(records[:5], SETTINGS), echo.entries(records[5:], SETTINGS)]
    parts: dict[int, list[pa.Table]] = {}
    for table in reversed(halves):
        for bucket, part in echo.bucket_entries(table, 3):
            parts.setdefault(bucket, []).append(part)
    assert echo.EchoSources.of(echo.judge_bucket(p, SETTINGS) for p in parts.values()) == one


def test_the_index_holds_hashes_not_words() -> None:
    table = echo.entries([(1, "m-0", "acct", 10, ["p-bob"], [QUOTE])], SETTINGS)
    assert table.column_names == echo.ENTRY_SCHEMA.names
    assert all(QUOTE.split()[1] not in str(v) for v in table.to_pylist())


SETTINGS_ERRORS = [
    ("words_too_few", "shingle_words", 3, "other_subject_echo.shingle_words must be"),
    ("chars_too_few", "shingle_chars", 2, "other_subject_echo.shingle_chars must be"),
    ("one_meeting", "common_meetings", 1, "other_subject_echo.common_meetings must be"),
    ("not_integer", "common_meetings", "5", "other_subject_echo.common_meetings must be"),
]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [c[1:] for c in SETTINGS_ERRORS],
    ids=[c[0] for c in SETTINGS_ERRORS],
)
def test_echo_settings_are_checked(key: str, value: object, message: str) -> None:
    data = DetectorSettings.default().to_mapping()
    data["other_subject_echo"][key] = value
    with pytest.raises(ValueError, match=r"configs/detectors\.json: ") as error:
        DetectorSettings.from_mapping(data, "configs/detectors.json")
    assert message in str(error.value)


def test_echo_settings_accept_a_valid_change() -> None:
    data = DetectorSettings.default().to_mapping()
    data["other_subject_echo"]["common_meetings"] = 12
    settings = DetectorSettings.from_mapping(data, "x.json")
    assert echo.EchoSettings.of(settings).common_meetings == 12
