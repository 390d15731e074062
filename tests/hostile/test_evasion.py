"""Evasion of the detectors: identifiers disguised to slip past them, each case on both paths.

Every case runs through `scan_text` (the exact path) and `scan_column` (the RE2-prefiltered
path the job uses); the column path must find whatever the text path finds. Cases the
detectors miss are held here as documented limits (README, "Limits"): if one starts to be
caught, move it to the caught cases and update the README.
"""

from __future__ import annotations

import base64
import functools
import json
from pathlib import Path

import pyarrow as pa
import pytest

from pipelines.chunk import FINDINGS, EventChunk
from pipelines.config import Config, load_config
from pipelines.contract import Contract
from pipelines.rules.detectors import DetectorSettings, EchoIndex, KnownIdentifiers, scan_column
from pipelines.rules.detectors import scan_text as scan_one
from pipelines.rules.route import DedupVerdicts

DEFAULTS = DetectorSettings.default()
SPEC_EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "spec" / "examples-v1.jsonl"


def fullwidth(text: str) -> str:
    """`text` in fullwidth forms; a space becomes the ideographic space (NFKC: a space)."""
    return "".join("\u3000" if char == " " else chr(ord(char) + 0xFEE0) for char in text)


def flagged(text: str, detector: str) -> list[str]:
    """The substrings of `text` that `detector` flags, checked equal on both paths."""
    exact = scan_one(text, DEFAULTS, detectors=[detector])
    # The hit sits among clean rows, as in a real column.
    column = scan_column(
        pa.array(["bitrate 1450 kbps", text, None, "decoder crashed"], pa.string()),
        DEFAULTS,
        detectors=[detector],
    )
    assert column == [[], exact, [], []]
    return [text[finding.start : finding.end] for finding in exact]


def all_flagged(text: str) -> set[str]:
    """Names of every detector that fires on `text`, checked equal on both paths."""
    exact = scan_one(text, DEFAULTS)
    assert scan_column(pa.array([text], pa.string()), DEFAULTS) == [exact]
    return {finding.detector for finding in exact}


# --------------------------------------------------------------------------- confusables


def test_fullwidth_at_sign_in_an_email() -> None:
    text = "invite sent to alice" + fullwidth("@") + "example.com today"
    assert flagged(text, "email") == ["alice" + fullwidth("@") + "example.com"]


def test_fullwidth_email_with_fullwidth_dot() -> None:
    address = fullwidth("bob@example.org")
    assert flagged(f"mail {address} now", "email") == [address]


def test_fullwidth_digits_in_a_phone_number() -> None:
    number = fullwidth("+1 415 555 0132")
    assert flagged(f"call me on {number} later", "phone") == [number]


def test_fullwidth_digits_in_a_bracketed_us_phone_number() -> None:
    number = fullwidth("(415) 555-0132")
    assert flagged(f"callback {number}", "phone") == [number]


def test_cyrillic_look_alike_letters_in_an_email_are_still_word_characters() -> None:
    # Cyrillic a (U+0430) for Latin a: the address reads the same and is still flagged.
    address = "\u0430lice@ex\u0430mple.com"
    assert flagged(f"send to {address}", "email") == [address]


def test_ideographic_full_stop_between_domain_labels() -> None:
    # U+3002 and the halfwidth U+FF61 separate labels in internationalised domain names.
    for stop in ("\u3002", "\uff61"):
        address = f"alice@example{stop}com"
        assert flagged(f"mail {address} now", "email") == [address]


# --------------------------------------------------------------------------- zero-width


def test_zero_width_characters_inside_an_email() -> None:
    address = "al\u200bice@exa\u2060mple.c\ufeffom"
    assert flagged(f"mail {address} now", "email") == [address]


def test_zero_width_characters_inside_a_phone_number() -> None:
    number = "+1 41\u200b5 555\u200d 0132"
    assert flagged(f"ring {number} now", "phone") == [number]


def test_zero_width_as_the_only_phone_separator() -> None:
    # Dropping the invisible characters leaves ten bare digits: libphonenumber knows them
    # for a valid US number.
    assert flagged("ring 415\u200b555\u200b0132 now", "phone") == ["415\u200b555\u200b0132"]
    assert flagged("ring 415-555\u200b-0132 now", "phone") == ["415-555\u200b-0132"]


# --------------------------------------------------------------------------- escapes


def test_percent_encoded_at_sign_in_a_url() -> None:
    text = "GET /invite?to=alice%40example.com&lang=en 302"
    assert flagged(text, "email") == ["alice%40example.com"]


def test_percent_encoded_at_sign_and_dots() -> None:
    text = "redirect u=alice.smith%40mail%2Eexample%2ecom"
    assert flagged(text, "email") == ["alice.smith%40mail%2Eexample%2ecom"]


@pytest.mark.parametrize(
    "address",
    ["alice&#64;example.com", "alice&#x40;example.com", "alice&commat;example.com"],
    ids=["decimal", "hex", "named"],
)
def test_html_escaped_at_sign(address: str) -> None:
    assert flagged(f"<p>contact {address}</p>", "email") == [address]


def test_html_escaped_phone_plus() -> None:
    assert flagged("tel:&#43;44 20 7946 0958", "phone") == ["&#43;44 20 7946 0958"]


def test_escapes_that_hold_no_identifier_stay_clean() -> None:
    for text in (
        "GET /search?q=hello%20world&page=2 200",
        "Tom &amp; Jerry &lt;3 &#169; 2026",
        "cpu at 100% &amp; memory at 40%",
    ):
        assert all_flagged(text) == set(), text


def test_limit_double_percent_encoding() -> None:
    # %2540 decodes to %40, which is decoded only once: missed (README limits).
    assert flagged("to=alice%2540example.com", "email") == []


# --------------------------------------------------------------------------- encoded sentences

SENTENCE = b"hey bob, can you call me back after lunch? thanks, alice"


def test_base64_wrapped_sentence_in_a_debug_field() -> None:
    encoded = base64.b64encode(SENTENCE).decode()
    assert flagged(f"debug ctx={encoded} seq=4", "blob") == [encoded]


def test_hex_wrapped_sentence_in_a_debug_field() -> None:
    encoded = SENTENCE.hex()
    assert flagged(f"debug dump {encoded} end", "blob") == [encoded]


def test_limit_short_base64_sentence_is_missed() -> None:
    # Under 40 base64 characters (30 bytes) a blob looks like an ordinary id: missed.
    encoded = base64.b64encode(b"call me at 5 pm").decode()
    assert len(encoded) < DEFAULTS.blob_min_base64
    assert all_flagged(f"debug ctx={encoded}") == set()


# --------------------------------------------------------------------------- spelled out

SPELLED = [
    ("words", "alice at example dot com"),
    ("brackets", "alice [at] example [dot] com"),
    ("parentheses", "alice(at)example(dot)com"),
    ("braces_upper", "alice {AT} example {DOT} org"),
    ("bracketed_at_literal_dot", "alice [at] mail.example.co.uk"),
    ("country_domain", "alice at example dot co dot uk"),
]


@pytest.mark.parametrize("address", [s for _, s in SPELLED], ids=[i for i, _ in SPELLED])
def test_email_with_at_and_dot_spelled_out(address: str) -> None:
    assert flagged(f"ping me: {address} thanks", "email") == [address]


NOT_EMAILS = [
    ("noon_dot_matrix", "meet at noon dot matrix"),
    ("dot_com_era", "we were back at the dot com era"),
    ("stack_frame", "crash at decoder.cc:214"),
    ("host_name", "request failed at api.example.com after 3 retries"),
    ("english_at", "we met at the office at noon and left at 5"),
    ("at_no_domain", "alice(at)home"),
    ("numbers", "retry at 10 dot 5 seconds"),
]


@pytest.mark.parametrize("text", [s for _, s in NOT_EMAILS], ids=[i for i, _ in NOT_EMAILS])
def test_spelled_out_look_alikes_are_not_emails(text: str) -> None:
    assert flagged(text, "email") == []


def test_limit_spelled_at_with_a_literal_dot_is_missed() -> None:
    # "x at host.tld" is how stack traces and logs name code and hosts: left alone.
    assert flagged("mail alice at example.com", "email") == []


# --------------------------------------------------------------------------- long lines

FILLER = "frame=1234 ok; " * (500_000 // 15)


@pytest.mark.parametrize(
    ("needle", "detector"),
    [("alice@example.com", "email"), ("+44 20 7946 0958", "phone")],
    ids=["email", "phone"],
)
def test_leak_at_the_end_of_a_500_kb_line(needle: str, detector: str) -> None:
    text = FILLER + needle
    assert len(text) > 500_000
    assert flagged(text, detector) == [needle]


def test_leak_at_the_end_of_a_500_kb_escaped_line() -> None:
    # Escapes anywhere send the row down the exact path; the mapping back must hold far out.
    text = "q=a%2Eb&amp;" * 40_000 + " alice%40example.com"
    assert flagged(text, "email") == ["alice%40example.com"]


# --------------------------------------------------------------------------- across fields


@functools.cache
def _shipped() -> tuple[Config, Contract]:
    config = load_config()
    return config, config.contract()


def _crash_chunk(message: str, stack_trace: str) -> EventChunk:
    config, contract = _shipped()
    events = [json.loads(line) for line in SPEC_EXAMPLES.read_text().splitlines() if line]
    (crash,) = [e for e in events if e["event_type"] == "diagnostic.crash"]
    crash["payload"].update(message=message, stack_trace=stack_trace)
    chunk = EventChunk.from_lines(contract, 0, 0, "split.jsonl", [(1, json.dumps(crash).encode())])
    found = chunk.with_findings(
        config,
        contract,
        KnownIdentifiers(),
        EchoIndex.build([], DEFAULTS.content_echo_shingle_words),
    )
    return found.routed(config, contract, DedupVerdicts())


@pytest.mark.parametrize(
    ("message", "stack_trace"),
    [("contact alice", "@example.com at Decoder.feed"), ("call +1 415", "555 0132 at Decoder")],
    ids=["email", "phone"],
)
def test_limit_text_split_across_two_fields_of_one_record(message: str, stack_trace: str) -> None:
    # with_findings scans each field on its own: a leak cut in two between fields passes
    # (README limits). Joined into one field, the same text is caught.
    split = _crash_chunk(message, stack_trace).tables["diagnostic.crash"]
    assert split[FINDINGS].to_pylist() == [[]]
    assert split["_destination"].to_pylist() == ["training"]
    joined = _crash_chunk(message + stack_trace, "at Decoder.feed").tables["diagnostic.crash"]
    assert joined["_destination"].to_pylist() == ["quarantine"]


@pytest.mark.parametrize(
    ("event_id", "destination", "reason"),
    [
        ("ev-9 alice@example.com", None, "bad_value"),
        ("4111111111111111", "quarantine", "detector:payment_card"),
        ("ev-9", "training", "service_deidentified"),
    ],
    ids=["email-refused-by-shape", "card-found-by-detector", "plain-id-trains"],
)
def test_an_identifier_in_the_event_id_is_stopped_first_line(
    event_id: str, destination: str | None, reason: str
) -> None:
    # event_id has a declared shape (no @, no space) and DetectLeaks scans it like a log line,
    # so an identifier there never waits for the leak gate (which would fail the whole run).
    config, contract = _shipped()
    events = [json.loads(line) for line in SPEC_EXAMPLES.read_text().splitlines() if line]
    (log,) = [e for e in events if e["event_type"] == "diagnostic.log"]
    log["event_id"] = event_id
    chunk = EventChunk.from_lines(contract, 0, 0, "id.jsonl", [(1, json.dumps(log).encode())])
    echo = EchoIndex.build([], DEFAULTS.content_echo_shingle_words)
    routed = chunk.with_findings(config, contract, KnownIdentifiers(), echo).routed(
        config, contract, DedupVerdicts()
    )
    if destination is None:
        assert "diagnostic.log" not in routed.tables
        assert routed.rejects["reason"].to_pylist() == [reason]
        return
    table = routed.tables["diagnostic.log"]
    assert table["_destination"].to_pylist() == [destination]
    assert table["_reason"].to_pylist() == [reason]
