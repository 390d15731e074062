"""Tests for pipelines.rules.detectors: every detector, its near misses, and the column path."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipelines.rules.arrays import hashes64
from pipelines.rules.detectors import (
    DETECTORS,
    DetectorSettings,
    EchoIndex,
    Finding,
    KnownIdentifiers,
    find_all,
    scan,
    scan_column,
    scan_columns,
    scan_text,
    shingle_hashes,
)


def fullwidth(text: str) -> str:
    """`text` in fullwidth forms (U+FF01..U+FF5E), which NFKC maps back to ASCII."""
    return "".join(chr(ord(char) + 0xFEE0) for char in text)


CONFIG = Path(__file__).parents[3] / "configs" / "detectors.json"
DEFAULTS = DetectorSettings.default()

# Machine log lines from the platform's telemetry: no detector may flag them.
CLEAN_LOG_LINES = [
    "ICE restart after 412 ms",
    "dtls handshake timeout after 10000 ms",
    "bitrate 1450 kbps",
    "client version 6.2.5",
    "scheduled at 2026-11-26T09:00:00Z",
    "error E1042",
    "decoder.cc:214",
    "took 00:01:23.456",
    "pc at 0x7ffd5e8a3b20",
    "left the meeting",
    "decoder crashed",
    "Connection reset by peer",
    "failed to open camera device",
    "at com.zoom.media.Decoder.feed(Decoder.java:214)",
    "at Decoder.feed(decoder.cc:214)",
    "java.lang.NullPointerException: Attempt to invoke virtual method "
    "'int java.lang.String.length()' on a null object reference",
    'Exception in thread "main" java.lang.IllegalStateException: socket closed',
    "audio device changed from default to headset",
    "user left the meeting because of network",
]


def spans(text: str, detector: str, **kwargs: object) -> list[str]:
    """The substrings of `text` that `detector` flags."""
    findings = scan_text(text, DEFAULTS, detectors=[detector], **kwargs)  # type: ignore[arg-type]
    return [text[finding.start : finding.end] for finding in findings]


@pytest.mark.parametrize("line", CLEAN_LOG_LINES, ids=range(len(CLEAN_LOG_LINES)))
def test_clean_log_lines_have_no_findings(line: str) -> None:
    assert find_all(line) == []


# --------------------------------------------------------------------------- email

EMAIL_CASES = [
    (
        "plain",
        "invite sent to alice.example+work@example.co.uk.",
        "alice.example+work@example.co.uk",
    ),
    (
        "fullwidth",
        "mail " + fullwidth("alice@example.com") + " now",
        fullwidth("alice@example.com"),
    ),
    ("zero_width", "mail ali\u200bce@exam\u00adple.com now", "ali\u200bce@exam\u00adple.com"),
    (
        "fullwidth_at",
        "from bob" + fullwidth("@") + "example.org",
        "bob" + fullwidth("@") + "example.org",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in EMAIL_CASES], ids=[c[0] for c in EMAIL_CASES]
)
def test_email_found(text: str, expected: str) -> None:
    assert spans(text, "email") == [expected]


@pytest.mark.parametrize(
    "text",
    ["@Override public void run()", "host bob@localhost", "a@b.c", "back at the dot com era"],
    ids=["annotation", "no_tld", "one_letter_tld", "spelled_out_english"],
)
def test_email_near_misses(text: str) -> None:
    assert spans(text, "email") == []


def test_offsets_point_into_the_original_text() -> None:
    text = "\u200b\u200b" + fullwidth("x") + " " + fullwidth("alice@example.com")
    assert scan_text(text, DEFAULTS, detectors=["email"]) == [Finding("email", 4, len(text))]


# --------------------------------------------------------------------------- phone

PHONES = [
    "+44 20 7946 0958",
    "+1-415-555-0132",
    "+33 6 12 34 56 78",
    "+1 (415) 555-0132",
    "+14155550132",
    "(415) 555-0132",
    "415-555-0132",
    "415.555.0132",
    "020 7946 0958",
    "06 12 34 56 78",
    "07700 900123",
]


@pytest.mark.parametrize("phone", PHONES, ids=PHONES)
def test_phone_found(phone: str) -> None:
    assert spans(f"call me on {phone}, thanks", "phone") == [phone]


PHONE_NEAR_MISSES = [
    *CLEAN_LOG_LINES[:9],
    "epoch 1732611600000",
    "meeting 845 1234",
    "date 26.11.2026 09:00",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "ip 192.168.100.200",
    "offset +3600 s",
]


def test_phone_span_stops_before_trailing_numbers() -> None:
    assert spans("call +44 20 7946 0958 12345 678", "phone") == ["+44 20 7946 0958"]


@pytest.mark.parametrize("text", PHONE_NEAR_MISSES, ids=PHONE_NEAR_MISSES)
def test_phone_near_misses(text: str) -> None:
    assert spans(text, "phone") == []


# --------------------------------------------------------------------------- ip_address

IPS = [
    "10.0.0.1",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "2001:db8::8a2e:370:7334",
    "fe80::1",
    "::ffff:192.0.2.1",
]


@pytest.mark.parametrize("ip", IPS, ids=IPS)
def test_ip_address_found(ip: str) -> None:
    assert spans(f"peer {ip}: connected", "ip_address") == [ip]


IP_NEAR_MISSES = [
    "broadcast 255.255.255.255",
    "loopback ::1 up",
    "listening on 127.0.0.1:9001",
    "at 09:00:00",
    "scheduled at 2026-11-26T09:00:00Z",
    "took 00:01:23.456",
    "client version 6.2.5",
    "octet too big 256.1.1.1",
    "mac 00:1a:2b:3c:4d:5e",
    "at Decoder::feed",
    "separator :: here",
    "at ::feed(buffer)",
]


@pytest.mark.parametrize("text", IP_NEAR_MISSES, ids=IP_NEAR_MISSES)
def test_ip_address_near_misses(text: str) -> None:
    assert spans(text, "ip_address") == []


# --------------------------------------------------------------------------- secret_url

SECRETS = [
    "access_token=ya29.a0AfH6SM",
    "token=abc123",
    "password=hunter2",
    "passwd=hunter2",
    "pwd=hunter2",
    "api_key=AKIA1234",
    "apikey=AKIA1234",
    "client_secret=s3cr3t",
    "X-Amz-Signature=5d41402abc4b2a76",
    "X-Goog-Signature=5d41402abc4b2a76",
    "Signature=5d41402abc4b2a76",
    "sig=5d41402abc",
    "https://bob:hunter2@db.example.com",
]


@pytest.mark.parametrize("secret", SECRETS, ids=SECRETS)
def test_secret_url_found(secret: str) -> None:
    text = f"GET https://cdn.example.com/a?b=1&{secret}&c=2"
    if "://" in secret:
        text = f"connecting to {secret}/db"
    assert spans(text, "secret_url") == [secret]


def test_secret_url_value_stops_at_punctuation() -> None:
    text = "auth (token=abc123), Signature=ff00;"
    assert spans(text, "secret_url") == ["token=abc123", "Signature=ff00"]


SECRET_NEAR_MISSES = [
    "max_tokens=512",
    "design=flat",
    "signature_version=4",
    "token= (empty)",
    "https://example.com/path?page=2",
    "ssh://git@github.com/org/repo",
]


@pytest.mark.parametrize("text", SECRET_NEAR_MISSES, ids=SECRET_NEAR_MISSES)
def test_secret_url_near_misses(text: str) -> None:
    assert spans(text, "secret_url") == []


# --------------------------------------------------------------------------- payment_card

CARDS = [
    ("visa_spaces", "4111 1111 1111 1111"),
    ("visa_dashes", "4111-1111-1111-1111"),
    ("visa_plain", "4111111111111111"),
    ("mastercard", "5555 5555 5555 4444"),
    ("amex_4_6_5", "3782 822463 10005"),
    ("amex_plain", "378282246310005"),
]


@pytest.mark.parametrize("card", [c[1] for c in CARDS], ids=[c[0] for c in CARDS])
def test_payment_card_found(card: str) -> None:
    assert spans(f"card {card} exp 2028", "payment_card") == [card]


CARD_NEAR_MISSES = [
    ("luhn_invalid_grouped", "card 4111 1111 1111 1112"),
    ("luhn_invalid_plain", "card 4111111111111112"),
    ("epoch_ms", "ts 1732611600000"),
    ("too_short", "card 4111 1111 11"),
]


@pytest.mark.parametrize(
    "text", [c[1] for c in CARD_NEAR_MISSES], ids=[c[0] for c in CARD_NEAR_MISSES]
)
def test_payment_card_near_misses(text: str) -> None:
    assert spans(text, "payment_card") == []


def test_payment_card_is_not_also_a_phone_number() -> None:
    text = "card 4847 0486 4401 1338"
    assert [f.detector for f in find_all(text)] == ["payment_card"]


def test_payment_card_span_stops_before_a_trailing_group() -> None:
    assert spans("card 4111 1111 1111 1111 2026", "payment_card") == ["4111 1111 1111 1111"]


# --------------------------------------------------------------------------- blob

JWT_HEAD = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9eyJzdWIiOiIxMjM0NTY3ODkwIn0"
HEX_32 = "3f9a2c0d4e5f60718293a4b5c6d7e8f9"
PADDED = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaDEyMw=="
BLOBS = [
    ("base64", f"payload {JWT_HEAD} end", JWT_HEAD),
    ("base64_padded", f"k={PADDED} x", PADDED),
    ("hex", f"session {HEX_32} started", HEX_32),
    ("pseudonym", f"subject ps_{HEX_32}", HEX_32),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BLOBS], ids=[c[0] for c in BLOBS])
def test_blob_found(text: str, expected: str) -> None:
    assert spans(text, "blob") == [expected]


BLOB_NEAR_MISSES = [
    ("base64_39", "x " + JWT_HEAD[:39]),
    ("letters_only", "x " + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"),
    ("hex_31", "x " + HEX_32[:31]),
    ("uuid", "x 123e4567-e89b-12d3-a456-426614174000"),
    ("dotted_class", "x com.zoom.media.VideoRendererFactoryImpl2.createDecoderInstance"),
]


@pytest.mark.parametrize(
    "text", [c[1] for c in BLOB_NEAR_MISSES], ids=[c[0] for c in BLOB_NEAR_MISSES]
)
def test_blob_near_misses(text: str) -> None:
    assert spans(text, "blob") == []


def test_blob_thresholds_come_from_settings() -> None:
    strict = DetectorSettings(blob_min_hex=40, blob_min_base64=80)
    text = f"{HEX_32} {JWT_HEAD}"
    assert scan_text(text, strict, detectors=["blob"]) == []
    assert len(scan_text(text, DEFAULTS, detectors=["blob"])) == 2


# --------------------------------------------------------------------------- natural_language

CHAT_LINES = [
    "hey can you send me the budget numbers before friday",
    "I think we should move the launch to March",
    "Thanks everyone, see you next week!",
    "sorry I was on mute, can you repeat that?",
    "we\u2019re gonna need your slides",
    "The deal with the hospital group is almost signed",
]


@pytest.mark.parametrize("line", CHAT_LINES, ids=range(len(CHAT_LINES)))
def test_natural_language_found(line: str) -> None:
    assert spans(line, "natural_language") == [line]


def test_natural_language_span_is_the_sentence_inside_a_log_line() -> None:
    text = "2026-11-26T09:00:00Z INFO chat: hey can you send me the budget numbers before friday"
    assert spans(text, "natural_language") == [
        "hey can you send me the budget numbers before friday"
    ]


def test_natural_language_sentence_stops_at_a_code_like_token() -> None:
    text = "hey can you send me config.json before friday"
    assert spans(text, "natural_language") == ["hey can you send me"]


def test_natural_language_aside_in_parentheses_is_its_own_sentence() -> None:
    text = "left the meeting (Please call me back when you get out of the meeting)"
    assert spans(text, "natural_language") == [
        "Please call me back when you get out of the meeting"
    ]


NATURAL_NEAR_MISSES = [
    *CLEAN_LOG_LINES,
    "Could not connect to server, retrying in 5 s",
    "we are unable to connect you to the meeting",
    "recording stopped because the disk on the host is full",
    "see you",
]


@pytest.mark.parametrize("line", NATURAL_NEAR_MISSES, ids=range(len(NATURAL_NEAR_MISSES)))
def test_natural_language_near_misses(line: str) -> None:
    assert spans(line, "natural_language") == []


def test_natural_language_thresholds_come_from_settings() -> None:
    strict = DetectorSettings(natural_language_min_words=12)
    assert scan_text(CHAT_LINES[0], strict, detectors=["natural_language"]) == []
    prose = "The deal with the hospital group is almost signed"
    no_prose = DetectorSettings(natural_language_min_prose_words=20)
    assert scan_text(prose, no_prose, detectors=["natural_language"]) == []
    assert len(scan_text(prose, DEFAULTS, detectors=["natural_language"])) == 1


# --------------------------------------------------------------------------- known_identifier

PARTICIPANTS = ["Alice Example", "alice@example.com", "p-3f9a2c", None, "Al", "   "]
KNOWN = KnownIdentifiers.from_values(PARTICIPANTS, min_length=4)

KNOWN_CASES = [
    ("name_split_over_whitespace", "user alice  example joined", "alice  example"),
    ("name_other_case", "ALICE EXAMPLE left", "ALICE EXAMPLE"),
    (
        "name_fullwidth",
        fullwidth("user") + " " + fullwidth("Alice") + " Example left",
        fullwidth("Alice") + " Example",
    ),
    ("email_token", "invite (Alice@Example.com) sent", "Alice@Example.com"),
    ("id_token", "participant p-3f9a2c muted", "p-3f9a2c"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in KNOWN_CASES], ids=[c[0] for c in KNOWN_CASES]
)
def test_known_identifier_found(text: str, expected: str) -> None:
    assert spans(text, "known_identifier", known=KNOWN) == [expected]


KNOWN_NEAR_MISSES = [
    ("first_name_alone", "alice joined"),
    ("longer_id", "participant p-3f9a2c9 muted"),
    ("short_value_skipped", "Al left"),
    ("other_email", "alice@example.org"),
]


@pytest.mark.parametrize(
    "text", [c[1] for c in KNOWN_NEAR_MISSES], ids=[c[0] for c in KNOWN_NEAR_MISSES]
)
def test_known_identifier_near_misses(text: str) -> None:
    assert spans(text, "known_identifier", known=KNOWN) == []


def test_known_identifiers_normalise_and_skip() -> None:
    assert KNOWN.keys == frozenset({"alice example", "alice@example.com", "p-3f9a2c"})


def test_known_identifiers_merge_and_max_words() -> None:
    merged = KNOWN.merge(KnownIdentifiers.from_values(["Bob Q Public Jr"], 4))
    text = "bob q public jr and p-3f9a2c"
    assert spans(text, "known_identifier", known=merged) == ["p-3f9a2c"]
    wide = DetectorSettings(known_identifier_max_words=4)
    findings = scan_text(text, wide, known=merged, detectors=["known_identifier"])
    assert [text[f.start : f.end] for f in findings] == ["bob q public jr", "p-3f9a2c"]


# --------------------------------------------------------------------------- content_echo

CONTENT = [
    ("m-1", "Hey, can you send me the budget numbers before Friday?"),
    ("m-2", "I think we should move the launch to March"),
    ("m-1", "see you soon"),
    ("m-1", "ok thanks"),
]
ECHO = EchoIndex.build(CONTENT, k=4)


ECHO_HITS = [
    ("same_meeting", "m-1", "upload failed: send me the budget (retry 2)", "send me the budget"),
    ("case_and_punctuation", "m-2", "note: MOVE THE LAUNCH, TO March", "MOVE THE LAUNCH, TO"),
    ("short_record_exactly", "m-1", "See you soon!", "See you soon"),
    ("short_record_inside", "m-1", "they said see you soon to everyone", "see you soon"),
]


@pytest.mark.parametrize(
    ("meeting", "text", "expected"), [c[1:] for c in ECHO_HITS], ids=[c[0] for c in ECHO_HITS]
)
def test_content_echo_found(meeting: str, text: str, expected: str) -> None:
    finding = ECHO.find(meeting, text)
    assert finding is not None
    assert text[finding.start : finding.end] == expected
    assert spans(text, "content_echo", echo=ECHO, meeting_id=meeting) == [expected]


ECHO_MISSES = [
    ("other_meeting", "m-2", "send me the budget"),
    ("unknown_meeting", "m-9", "send me the budget"),
    ("no_meeting", None, "send me the budget"),
    ("three_of_four_words", "m-1", "send me the report"),
    ("two_word_record", "m-1", "ok thanks"),
]


@pytest.mark.parametrize(
    ("meeting", "text"), [c[1:] for c in ECHO_MISSES], ids=[c[0] for c in ECHO_MISSES]
)
def test_content_echo_misses(meeting: str | None, text: str) -> None:
    assert ECHO.find(meeting, text) is None


def test_shingle_hashes_chain_the_meeting_and_word_hashes() -> None:
    # Written out in Python integers: the meeting's hash, then each word's folded in by
    # splitmix64's finaliser (after adding its constant), all modulo 2**64.
    mask = (1 << 64) - 1

    def mixed(value: int) -> int:
        z = (value + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    def one(text: str) -> int:
        return int(hashes64([text]).view(np.uint64)[0])

    def expected(words: str) -> int:
        value = one("m-1")
        for word in words.split():
            value = mixed(value ^ one(word))
        return value

    hashes = shingle_hashes("m-1", "Send ME the, budget now", 4)
    assert hashes.dtype == np.uint64
    assert hashes.tolist() == [expected("send me the budget"), expected("me the budget now")]
    assert shingle_hashes("m-1", "see you soon", 4).tolist() == [expected("see you soon")]
    assert len(shingle_hashes("m-1", "ok thanks", 4)) == 0
    # The same words in another meeting, or in another order, are another shingle.
    assert shingle_hashes("m-2", "see you soon", 4).tolist() != [expected("see you soon")]
    assert shingle_hashes("m-1", "soon you see", 4).tolist() != [expected("see you soon")]


def test_echo_index_is_sorted_unique_and_merges() -> None:
    assert np.all(np.diff(ECHO.hashes.astype(np.float64)) > 0)
    first = EchoIndex.build(CONTENT[:1], k=4)
    second = EchoIndex.build(CONTENT[1:], k=4)
    assert first.merge(second) == ECHO
    assert first.find("m-2", "move the launch to") is None
    assert first.merge(second).find("m-2", "move the launch to") is not None
    with pytest.raises(ValueError, match="3 and 4"):
        EchoIndex.build(CONTENT, k=3).merge(ECHO)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merging_many_indexes_is_indexing_all_their_content_at_once(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vocabulary = ["budget", "launch", "Ünïcode", "é", "the", "to", "move", "q3", "ok", "日本"]
    content = [
        (
            f"m-{rng.integers(0, 12)}",
            " ".join(rng.choice(vocabulary, size=int(rng.integers(0, 9))).tolist()),
        )
        for _ in range(300)
    ]
    cuts = sorted(rng.choice(np.arange(1, 300), size=7, replace=False).tolist())
    parts = [content[a:b] for a, b in zip([0, *cuts], [*cuts, 300], strict=True)]
    parts.append([])  # a chunk without content merges as nothing
    merged = EchoIndex.merge_all(4, [EchoIndex.build(part, k=4) for part in parts])
    assert merged == EchoIndex.build(content, k=4)
    assert EchoIndex.merge_all(4, []) == EchoIndex.build([], k=4)


def test_reprs_hold_no_personal_data_or_content() -> None:
    assert "alice" not in repr(KNOWN).lower()
    assert "budget" not in repr(ECHO)


# --------------------------------------------------------------------------- pickling


def test_known_identifiers_survive_pickling() -> None:
    restored = pickle.loads(pickle.dumps(KNOWN))
    assert restored == KNOWN
    assert spans("user alice example", "known_identifier", known=restored) == ["alice example"]


def test_echo_index_survives_pickling() -> None:
    restored = pickle.loads(pickle.dumps(ECHO))
    assert restored == ECHO
    assert restored.find("m-1", "send me the budget") == Finding("content_echo", 0, 18)


# --------------------------------------------------------------------------- scan_text, scan_column

MIXED_ROWS = [
    "ICE restart after 412 ms",
    "refund to DE89 3704 0044 0532 0130 00 via 00:1a:2b:3c:4d:5e",
    "fix at 37.77493, -122.41942 key sk_live_4eC39HqLyjWDarjtT1zdp7dc password: hunter2",
    None,
    "mail " + fullwidth("alice@example.com") + " from 10.0.0.1",
    "card 4111 1111 1111 1111 token=abc123",
    "at com.zoom.media.Decoder.feed(Decoder.java:214)",
    "hey can you send me the budget numbers before friday",
    "user Alice\u200b Example joined from fe80::1",
    "",
    "Grüße an alle, ich denke wir sollten gehen",
    f"session {HEX_32} call +44 20 7946 0958",
    "participant p-3f9a2c said see you soon",
    "See you soon!",
    "retrying: move the launch, to March",
    "retrying: move the launch, to March",
    "The contract renewal is coming up at the end of the quarter",
]
MIXED_MEETINGS = ["m-1"] * 12 + [None, "m-1", "m-2", "m-1", "m-1"]


def test_scan_text_sorts_by_start_then_detector() -> None:
    text = "alice@example.com 10.0.0.1 hey can you hear me?"
    findings = scan_text(text, DEFAULTS)
    assert [f.detector for f in findings] == ["email", "ip_address", "natural_language"]
    assert findings == sorted(findings, key=lambda f: (f.start, f.detector))


def test_scan_text_runs_only_the_chosen_detectors() -> None:
    text = "alice@example.com from 10.0.0.1"
    assert [f.detector for f in scan_text(text, DEFAULTS, detectors=["ip_address"])] == [
        "ip_address"
    ]
    only_ip = DetectorSettings(enabled=("ip_address",))
    assert [f.detector for f in scan_text(text, only_ip)] == ["ip_address"]
    with pytest.raises(ValueError, match="'mail'"):
        scan_text(text, DEFAULTS, detectors=["mail"])


def test_scan_column_equals_scan_text_per_value() -> None:
    column = pa.chunked_array([MIXED_ROWS[:5], MIXED_ROWS[5:]], pa.string())
    got = scan_column(
        column, DEFAULTS, known=KNOWN, echo=ECHO, meeting_ids=pa.array(MIXED_MEETINGS)
    )
    want = [
        [] if text is None else scan_text(text, DEFAULTS, known=KNOWN, echo=ECHO, meeting_id=m)
        for text, m in zip(MIXED_ROWS, MIXED_MEETINGS, strict=True)
    ]
    assert got == want
    found = {f.detector for row in want for f in row}
    assert found == set(DETECTORS)
    assert [f.detector for f in want[-3]] == ["content_echo"]
    assert want[-2] == []
    assert [f.detector for f in want[-1]] == ["natural_language"]


def test_scan_column_on_large_strings_without_context() -> None:
    column = pa.array(MIXED_ROWS, pa.large_string())
    assert scan_column(column, DEFAULTS) == [
        [] if text is None else scan_text(text, DEFAULTS) for text in MIXED_ROWS
    ]


def test_scan_column_sends_clean_ascii_rows_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    exact_calls: list[str] = []
    real_scan = scan._scan

    def counting_scan(text: str, *args: object) -> list[Finding]:
        exact_calls.append(text)
        return real_scan(text, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(scan, "_scan", counting_scan)
    rows = CLEAN_LOG_LINES * 50 + ["mail alice@example.com", "Grüße"]
    result = scan_column(
        pa.array(rows), DEFAULTS, known=KNOWN, echo=ECHO, meeting_ids=pa.array(["m-1"] * len(rows))
    )
    assert exact_calls == ["mail alice@example.com", "Grüße"]
    assert [f.detector for f in result[-2]] == ["email", "known_identifier"]


def test_scan_column_rejects_misaligned_meeting_ids() -> None:
    with pytest.raises(ValueError, match="meeting_ids has 1 rows"):
        scan_column(pa.array(["a", "b"]), DEFAULTS, echo=ECHO, meeting_ids=pa.array(["m-1"]))


def test_rules_module_does_not_import_beam() -> None:
    code = "import sys, pipelines.rules.detectors; print('apache_beam' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- settings


def test_config_file_equals_the_defaults() -> None:
    data = json.loads(CONFIG.read_text(encoding="utf-8"))
    assert data == DEFAULTS.to_mapping()
    assert DetectorSettings.from_file(CONFIG) == DEFAULTS


def with_change(section: str | None, key: str, value: object) -> dict[str, object]:
    data = DEFAULTS.to_mapping()
    target = data if section is None else data[section]
    if value is KeyError:
        del target[key]
    else:
        target[key] = value
    return data


SETTINGS_ERRORS = [
    (
        "missing",
        with_change("natural_language", "min_words", KeyError),
        "natural_language.min_words",
    ),
    ("string", with_change("natural_language", "min_words", "4"), "natural_language.min_words"),
    (
        "zero",
        with_change("natural_language", "min_words", 0),
        "natural_language.min_words must be an integer >= 1",
    ),
    ("bool", with_change("blob", "min_hex", True), "blob.min_hex"),
    ("too_big_for_re2", with_change("blob", "min_base64", 5000), "blob.min_base64"),
    (
        "share",
        with_change("natural_language", "min_function_share", 1.5),
        "natural_language.min_function_share",
    ),
    ("echo_k", with_change("content_echo", "shingle_words", 2), "content_echo.shingle_words"),
    (
        "unknown_detector",
        with_change(None, "enabled", ["email", "mail"]),
        "enabled names unknown detector 'mail'",
    ),
    ("enabled_type", with_change(None, "enabled", "email"), "enabled"),
    ("unknown_key", with_change("blob", "min_b64", 40), "blob.min_b64"),
    ("missing_section", with_change(None, "known_identifier", KeyError), "known_identifier"),
]


@pytest.mark.parametrize(
    ("data", "message"), [c[1:] for c in SETTINGS_ERRORS], ids=[c[0] for c in SETTINGS_ERRORS]
)
def test_settings_errors_name_file_and_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=r"^configs/detectors\.json: ") as error:
        DetectorSettings.from_mapping(data, "configs/detectors.json")
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"blob_min_hex": 0}, "blob.min_hex"), ({"enabled": ("mail",)}, "'mail'")],
    ids=["threshold", "detector"],
)
def test_settings_built_in_code_are_checked_too(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=r"^DetectorSettings: ") as error:
        DetectorSettings(**changes)  # type: ignore[arg-type]
    assert message in str(error.value)


def test_settings_accept_a_changed_valid_value() -> None:
    data = with_change("known_identifier", "min_length", 6)
    assert DetectorSettings.from_mapping(data, "x.json").known_identifier_min_length == 6


def test_settings_file_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "detectors.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"detectors\.json: cannot read"):
        DetectorSettings.from_file(path)


# --------------------------------------------------------------------------- echo in any script

ECHO_SOURCES = [
    ("m-9", "我明天把文件发给你，好吗"),  # noqa: RUF001
    ("m-9", "let us move the launch to march please"),
]


@pytest.mark.parametrize(
    ("text", "echoed"),
    [
        ("upload failed: 文件发给你 code=E1", "文件发"),
        ("retry: move the launch x", "move the launch"),
        ("note launch to march", "launch to march"),
    ],
    ids=["chinese_unspaced", "three_words", "three_words_at_end"],
)
def test_echo_catches_unspaced_scripts_and_three_word_runs(text: str, echoed: str) -> None:
    index = EchoIndex.build(ECHO_SOURCES, DEFAULTS.content_echo_shingle_words)
    found = scan_text(text, DEFAULTS, echo=index, meeting_id="m-9", detectors=["content_echo"])
    assert [text[f.start : f.end] for f in found] == [echoed]
    assert scan_text(text, DEFAULTS, echo=index, meeting_id="m-1", detectors=["content_echo"]) == []


def test_scanning_columns_together_finds_what_each_column_alone_finds() -> None:
    # The chunk stage scans all its columns as one; each row must still be scanned alone.
    columns = [
        (pa.array(["mail alice@example.com", None, "ICE restart after 412 ms"]), ["m-1"] * 3),
        (pa.array(["upload failed: send me the budget (retry 2)"]), ["m-1"]),
        (
            pa.array(["send me the budget", "participant p-3f9a2c muted"], pa.large_string()),
            ["m-2", None],
        ),
        (pa.nulls(2), ["m-1", "m-2"]),
        (pa.array([], pa.string()), []),
        (pa.array(["card 4111 1111 1111 1111", fullwidth("Alice") + " Example"]), ["m-9", "m-1"]),
    ]
    pairs = [(values, pa.array(ids, pa.string())) for values, ids in columns]

    together = scan_columns(pairs, DEFAULTS, known=KNOWN, echo=ECHO)
    alone = [
        scan_column(values, DEFAULTS, known=KNOWN, echo=ECHO, meeting_ids=ids)
        for values, ids in pairs
    ]

    # Sparse: only the rows with findings, each under its row within its own column.
    assert together == [{row: f for row, f in enumerate(found) if f} for found in alone]
    assert [len(found) for found in alone] == [3, 1, 2, 2, 0, 2]
    assert sum(len(found) for found in together) >= 5  # leaks were there
    assert all(list(found) == sorted(found) for found in together)
    with pytest.raises(ValueError, match="meeting_ids has 1 rows"):
        scan_columns([(pa.array(["a", "b"]), pa.array(["m-1"]))], DEFAULTS)


def test_echo_and_fingerprint_words_match_their_unicode_definitions() -> None:
    """The ASCII shortcut and the class-based word pattern find exactly the words of the
    definitions: a run of word characters outside the unspaced scripts, or one character of
    them (echo); a run of word characters after NFKC and case folding (fingerprints)."""
    import random
    import re
    import unicodedata

    from pipelines.gate.fingerprint import _words
    from pipelines.rules.detectors.echo import _words_of
    from pipelines.rules.detectors.normalise import UNSPACED_SCRIPTS

    echo_word = re.compile(f"[{UNSPACED_SCRIPTS}]|(?:(?![{UNSPACED_SCRIPTS}])\\w)+")
    alphabet = (
        "aZ9_ -.,!:/@\t\nßİ\u00e9\u0301\u200b\u00b2\u0661\u0e01\u1000\u1780\u3042\u30a2"
        "\u4e00\u9fff\uf900\U00020000\U0003134f\U00031350\u3000\uff21"
    )
    rng = random.Random(11)
    for _ in range(20_000):
        size = rng.randint(0, 24)
        text = "".join(rng.choices(alphabet if rng.random() < 0.5 else alphabet[:9], k=size))
        spans = [m.span() for m in _words_of(text).finditer(text)]
        assert spans == [m.span() for m in echo_word.finditer(text)], repr(text)
        folded = unicodedata.normalize("NFKC", text).casefold()
        assert _words(text) == re.findall(r"\w+", folded), repr(text)
