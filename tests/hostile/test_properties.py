"""Property tests: hostile input never crashes a stage, and every record is accounted for.

Parsing and the contract check get arbitrary bytes and arbitrary JSON; the pure chain the Beam
stages run (from_lines -> with_findings -> with_consent -> routed -> outputs) gets mutations of
the spec's example events; the detectors get arbitrary text with and without planted
identifiers; the pseudonymizer gets arbitrary values and keys.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.chunk import (
    ChunkOutputs,
    EventChunk,
    consented_schema,
    loc_of,
    training_schema,
)
from pipelines.config import Config, load_config
from pipelines.rules.classify import LOC
from pipelines.rules.consent import ConsentLedger, hosts_by_meeting
from pipelines.rules.deidentify import Pseudonymizer
from pipelines.rules.detectors import (
    DetectorSettings,
    EchoIndex,
    Finding,
    KnownIdentifiers,
    find_all,
    scan_column,
    scan_text,
)
from pipelines.rules.route import DESTINATIONS, find_duplicates
from pipelines.transforms.consent import ledger_part

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec"
CONFIG = load_config()
CONTRACT = CONFIG.contract()
DEFAULTS = DetectorSettings.default()
# The default policy, and the other branches: consent per participant, findings redacted.
CONFIGS = {
    "never_quarantine": CONFIG,
    "per_participant_redact": CONFIG.with_policy(
        content_policy="per_participant", on_detector_finding="redact"
    ),
}
EXAMPLES = [
    json.loads(line)
    for line in (SPEC / "examples-v1.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]
LEDGER = ConsentLedger.from_decisions(
    ledger_part(CONFIG, str(SPEC / "consent-examples-v1.jsonl")).decisions, as_of=2**62
)
PSEUDONYMS = Pseudonymizer(
    b"hostile-inputs-test-key-" + b"0" * 16,
    CONFIG.deidentify.pseudonym_prefix,
    CONFIG.deidentify.pseudonym_hex_chars,
)
# Reason codes a line may be rejected with before it becomes a typed record (README table).
REJECT_CODES = {
    "not_json",
    "not_utf8",
    "not_object",
    "unknown_event_type",
    "missing_field",
    "wrong_type",
    "undeclared_field",
    "bad_value",
    "too_deep",
    "bad_timestamp",
}
# Bounded for a slow shared machine; no example database, so the checkout stays clean.
BOUNDED = settings(max_examples=100, deadline=None, database=None)

# --------------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
# Characters that make the detectors' patterns and the normalised view work hardest.
tricky_text = st.lists(
    st.sampled_from(
        [
            *"@.%&#;:/+-_()[]{}<> 0123456789abcdefxATDOTrmn\t\n",
            *("\u200b", "\u00ad", "\uff20", "\uff0e", "\uff11", "\u3002", "e\u0301", "\u0430"),
            *("%40", "&#64;", "&commat;", "&#x2e;", " at ", " dot ", "[at]", "(dot)"),
        ]
    ),
    max_size=60,
).map("".join)
any_text = st.text(max_size=200) | tricky_text


def _json_line(value: Any) -> bytes:
    # The standard library writes what orjson refuses (integers beyond 64 bits): it must
    # come back as a reject, not an exception.
    return json.dumps(value).encode("utf-8")


# Identifiers of the examples' participants, to plant in free text.
IDENTIFIERS = sorted(
    EventChunk.from_lines(
        CONTRACT, 0, 0, "examples", [(n, _json_line(e)) for n, e in enumerate(EXAMPLES, 1)]
    ).identifier_values(CONTRACT)
)
NEEDLES = [*IDENTIFIERS, "carol@example.org", "+44 20 7946 0958", "4111 1111 1111 1111"]


@st.composite
def mutated_event(draw: st.DrawFn) -> dict[str, Any]:
    """One example event with up to three mutations: a field laced with an identifier, set to
    an identifier or any JSON value, deleted or added, or the event type swapped."""
    event = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(0, 3))):
        payload = event["payload"] if isinstance(event.get("payload"), dict) else {}
        target = draw(st.sampled_from(["envelope", "payload"]))
        record = event if target == "envelope" or not payload else payload
        names = [*sorted(record), "extra_field"]
        name = draw(st.sampled_from(names))
        # Lacing weighs most: it is what the detectors must stop.
        action = draw(st.sampled_from(["lace"] * 3 + ["identifier", "set", "delete", "event_type"]))
        if action == "set":
            record[name] = draw(json_values)
        elif action == "delete":
            record.pop(name, None)
        elif action == "lace":
            # A planted identifier, separated so that no detector may merge it with its
            # neighbours; in a payload string it must be caught or kept out of training.
            # (event_id is shape-checked and scanned too: see test_evasion's
            # test_an_identifier_in_the_event_id_is_stopped_first_line.)
            needle = draw(st.sampled_from(NEEDLES))
            strings = [key for key, value in sorted(payload.items()) if isinstance(value, str)]
            if strings:
                payload[draw(st.sampled_from(strings))] = (
                    f"{draw(any_text)} | {needle} | {draw(any_text)}"
                )
        elif action == "identifier" and payload:
            # A bare identifier as a payload value: pseudonymised, caught or kept out.
            payload[draw(st.sampled_from(sorted(payload)))] = draw(st.sampled_from(IDENTIFIERS))
        else:
            event["event_type"] = draw(st.sampled_from(sorted(CONTRACT.event_types)))
    return event


@st.composite
def event_batch(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Mutated events, mostly with ids of their own; some repeat an earlier record or id."""
    events: list[dict[str, Any]] = []
    for index in range(draw(st.integers(1, 10))):
        repeat = events and draw(st.integers(0, 7)) == 7
        if repeat:
            events.append(copy.deepcopy(draw(st.sampled_from(events))))
            continue
        event = draw(mutated_event())
        if isinstance(event.get("event_id"), str) and event["event_id"].startswith("ev-"):
            event["event_id"] = f"ev-h{index:03d}"
        events.append(event)
    return events


input_lines = st.lists(
    st.binary(max_size=120)
    | json_values.map(_json_line)
    | mutated_event().map(_json_line)
    | st.sampled_from(EXAMPLES).map(_json_line),
    max_size=12,
)

# --------------------------------------------------------------------------- parsing


def _numbered(lines: list[bytes]) -> list[tuple[int, bytes]]:
    return list(enumerate(lines, start=1))


@BOUNDED
@given(lines=input_lines)
def test_every_line_becomes_a_typed_row_or_a_reject(lines: list[bytes]) -> None:
    chunk = EventChunk.from_lines(CONTRACT, 3, 0, "hostile.jsonl", _numbered(lines))
    assert chunk.record_count() == len(lines)
    locs = [loc for table in chunk.tables.values() for loc in table[LOC].to_pylist()]
    locs += chunk.rejects[LOC].to_pylist()
    assert sorted(locs) == [loc_of(3, n) for n in range(1, len(lines) + 1)]
    assert set(chunk.rejects["reason"].to_pylist()) <= REJECT_CODES
    for name, table in chunk.tables.items():
        assert set(table["event_type"].to_pylist()) == {name}


@settings(BOUNDED, max_examples=200)
@given(lines=st.lists(st.binary(max_size=200), max_size=20))
def test_arbitrary_bytes_are_rejected_with_a_reason(lines: list[bytes]) -> None:
    chunk = EventChunk.from_lines(CONTRACT, 0, 0, "bytes.jsonl", _numbered(lines))
    assert chunk.record_count() == len(lines)
    assert set(chunk.rejects["reason"].to_pylist()) <= REJECT_CODES


# --------------------------------------------------------------------------- the whole chain


def _run_chain(config: Config, lines: list[bytes]) -> tuple[EventChunk, ChunkOutputs]:
    """The stages of the job on one chunk, with the run context built from that chunk."""
    chunk = EventChunk.from_lines(CONTRACT, 0, 0, "hostile.jsonl", _numbered(lines))
    settings_ = config.detectors
    known = KnownIdentifiers.from_values(
        chunk.identifier_values(CONTRACT), settings_.known_identifier_min_length
    )
    echo = EchoIndex.build(chunk.content_texts(CONTRACT), settings_.content_echo_shingle_words)
    hosts = dict(hosts_by_meeting(chunk.host_pairs()))
    verdicts = find_duplicates([chunk.dedup_keys()])
    routed = (
        chunk.with_findings(config, CONTRACT, known, echo)
        .with_consent(config, CONTRACT, LEDGER, hosts)
        .routed(config, CONTRACT, verdicts)
    )
    return chunk, routed.outputs(config, CONTRACT, PSEUDONYMS, verdicts)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _columns(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    return [(f.name, f.type) for f in schema]


@settings(BOUNDED, max_examples=120)
@given(
    policy=st.sampled_from(sorted(CONFIGS)),
    events=event_batch(),
    junk=st.lists(st.binary(max_size=60), max_size=2),
)
def test_mutated_examples_keep_training_clean_and_every_record_counted(
    policy: str, events: list[dict[str, Any]], junk: list[bytes]
) -> None:
    config = CONFIGS[policy]
    lines = [_json_line(e) for e in events] + junk
    chunk, out = _run_chain(config, lines)

    # Records in = records out, one audit row per input line, each destination counted.
    assert sorted(out.audit["source_line"].to_pylist()) == list(range(1, len(lines) + 1))
    assert out.counts["input_records"] == len(lines)
    assert sum(out.counts[d] for d in DESTINATIONS) == len(lines)
    assert sum(t.num_rows for t in out.training.values()) == out.counts["training"]
    assert sum(t.num_rows for t in out.consented.values()) == out.counts["consented_content"]
    assert out.restricted.num_rows == out.counts["restricted"]
    assert out.quarantine.num_rows == out.counts["quarantine"]

    identifiers = [
        v.casefold()
        for v in chunk.identifier_values(CONTRACT)
        if len(v) >= config.detectors.known_identifier_min_length
    ]
    for name, table in out.training.items():
        expected = training_schema(config, CONTRACT, CONTRACT.event_types[name])
        assert _columns(table.schema) == _columns(expected)
        assert set(table["record_class"].to_pylist()) == {"service_generated"}
        for text in _strings(table.to_pylist()):
            leaked = [v for v in identifiers if v in text.casefold()]
            assert not leaked, (name, text)
    # Consented content keeps its words (names included): only its shape is checked here.
    for name, table in out.consented.items():
        expected = consented_schema(CONTRACT, CONTRACT.event_types[name])
        assert _columns(table.schema) == _columns(expected)


# --------------------------------------------------------------------------- detectors


@settings(BOUNDED, max_examples=200)
@given(texts=st.lists(any_text, min_size=1, max_size=5))
def test_detectors_never_crash_and_spans_stay_in_bounds(texts: list[str]) -> None:
    exact = [scan_text(text, DEFAULTS) for text in texts]
    for text, findings in zip(texts, exact, strict=True):
        assert findings == sorted(findings, key=lambda f: (f.start, f.detector, f.end))
        for finding in findings:
            assert 0 <= finding.start < finding.end <= len(text)
    assert exact[0] == find_all(texts[0])
    # The column path (what the job runs) finds exactly what the text path finds.
    assert scan_column(pa.array(texts, pa.string()), DEFAULTS) == exact


@BOUNDED
@given(texts=st.lists(any_text, min_size=1, max_size=4), planted=st.sampled_from(IDENTIFIERS))
def test_context_detectors_agree_on_both_paths(texts: list[str], planted: str) -> None:
    known = KnownIdentifiers.from_values(IDENTIFIERS, DEFAULTS.known_identifier_min_length)
    echo = EchoIndex.build(
        [("mtg-1", "shall we move the launch review to thursday afternoon")],
        DEFAULTS.content_echo_shingle_words,
    )
    texts = [*texts, f"{texts[0]} | {planted} | move the launch review"]
    meetings = ["mtg-1"] * len(texts)
    context = {"known": known, "echo": echo}
    exact = [scan_text(t, DEFAULTS, **context, meeting_id="mtg-1") for t in texts]
    assert "known_identifier" in {f.detector for f in exact[-1]}
    column = scan_column(
        pa.array(texts, pa.string()), DEFAULTS, **context, meeting_ids=pa.array(meetings)
    )
    assert column == exact


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=15),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6),
)
_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=1)
phones = st.one_of(
    st.builds(
        lambda area, mid, end, sep: f"{area}{sep}{mid}{sep}{end}",
        st.integers(200, 999),
        st.integers(100, 999),
        st.integers(0, 9999).map("{:04d}".format),
        st.sampled_from(["-", "."]),
    ),
    st.builds(
        lambda country, groups: f"+{country} " + " ".join(groups),
        st.integers(1, 99),
        st.lists(st.integers(100, 9999).map(str), min_size=3, max_size=3),
    ),
)


def _luhn_complete(body: str) -> str:
    """`body` plus the check digit that makes it pass Luhn."""
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char)
        if position % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return body + str(-total % 10)


cards = st.builds(
    lambda body: " ".join(re.findall(".{4}", _luhn_complete("4" + body))),
    st.text(alphabet="0123456789", min_size=14, max_size=14),
)


@settings(BOUNDED, max_examples=150)
@given(
    prefix=any_text,
    suffix=any_text,
    planted=st.one_of(
        emails.map(lambda v: (v, "email")),
        phones.map(lambda v: (v, "phone")),
        cards.map(lambda v: (v, "payment_card")),
    ),
)
def test_a_planted_identifier_is_found_in_any_surroundings(
    prefix: str, suffix: str, planted: tuple[str, str]
) -> None:
    needle, detector = planted
    text = f"{prefix} | {needle} | {suffix}"
    start = len(prefix) + 3
    expected = Finding(detector, start, start + len(needle))
    assert expected in scan_text(text, DEFAULTS)
    assert expected in scan_column(pa.array(["clean", text], pa.string()), DEFAULTS)[1]


# --------------------------------------------------------------------------- pseudonyms

PSEUDONYM = re.compile(r"ps_[0-9a-f]{32}")


@settings(BOUNDED, max_examples=200)
@given(
    value=st.text(min_size=8, max_size=60),
    key=st.binary(min_size=32, max_size=64),
    other_key=st.binary(min_size=32, max_size=64),
)
def test_pseudonyms_are_keyed_deterministic_and_opaque(
    value: str, key: bytes, other_key: bytes
) -> None:
    first = Pseudonymizer(key, "ps_", 32)
    again = Pseudonymizer(key, "ps_", 32)
    pseudonym = first.one(value)
    assert PSEUDONYM.fullmatch(pseudonym)
    assert again.one(value) == pseudonym
    assert value not in pseudonym
    if other_key != key:
        assert Pseudonymizer(other_key, "ps_", 32).one(value) != pseudonym
    column = first.array(pa.array([value, None, value], pa.string()))
    assert column.to_pylist() == [pseudonym, None, pseudonym]
