"""`consentgate run --source NAME` on each generated vendor corpus, checked against its truth.

Every line is accounted for, every planted line is quarantined with its reason, content
lines reach `restricted`, and no value the truth lists as never published (identifiers,
secrets, content strings) is in any training file; no withheld field (derived from the media,
secret) is a training column; service telemetry is published as numbers in SI units with UTC
microsecond timestamps. One `run --source auto` over both webhook shapes and a few unknown ones
checks that every record is read by its own source and the rest quarantined.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from pipelines.cli import main
from pipelines.generate import SOURCES, generate

KEY = "test-key-not-secret-0123456789abcdef0123"
LINES = 300
DESTINATIONS = ("training", "consented_content", "restricted", "quarantine", "duplicates")


def run_consentgate(*args: str) -> None:
    """`consentgate -q run ARGS` through the CLI's entry point, in this process (the imports of
    Beam and Great Expectations cost seconds a run in a fresh interpreter)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
        assert main(["-q", "run", *args]) == 0


@pytest.fixture(scope="module", params=SOURCES[1:])
def published(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, dict[str, Any]]:
    source = request.param
    folder = tmp_path_factory.mktemp(source)
    truth = generate(folder / "in", source=source, events=LINES, seed=13)
    out = folder / "out"
    run_consentgate(
        "--source",
        source,
        "--input",
        str(folder / "in" / "events.jsonl.gz"),
        "--consent",
        str(folder / "in" / "consent.jsonl"),
        "--out",
        str(out),
    )
    return source, out, truth


def training_columns_and_strings(out: Path) -> tuple[set[str], list[str]]:
    """(every column name, every string value) of every training Parquet file."""
    names: set[str] = set()
    values: list[str] = []
    files = sorted((out / "training").rglob("*.parquet"))
    assert files, "training holds files"
    for path in files:
        table = ds.dataset(path).to_table()
        names |= set(table.schema.names)
        for column in table.columns:
            if pa.types.is_list(column.type):
                column = column.combine_chunks().flatten()
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                values.extend(v for v in column.to_pylist() if v is not None)
    return names, values


def test_every_line_is_accounted_for(published: Any) -> None:
    _, out, truth = published
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "published"
    counts = manifest["counts"]
    # An adapter may split a line (a QoS page, a stats snapshot) into several records.
    assert counts["input_records"] >= truth["expected"]["input_records"]
    assert sum(counts.get(d, 0) for d in DESTINATIONS) == counts["input_records"]
    assert counts["training"] > 0


def test_planted_lines_are_quarantined_with_their_reason(published: Any) -> None:
    _, out, truth = published
    reasons = json.loads((out / "manifest.json").read_text())["counts"]["quarantine_reasons"]
    wanted = Counter(p["reason"] for p in truth["planted"])
    short = {r: (n, reasons.get(r, 0)) for r, n in wanted.items() if reasons.get(r, 0) < n}
    assert short == {}


def test_content_lines_are_restricted(published: Any) -> None:
    _, out, truth = published
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["restricted"] >= truth["expected"]["restricted"]


def test_nothing_never_published_reaches_training(published: Any) -> None:
    _, out, truth = published
    _, values = training_columns_and_strings(out)
    joined = "\n".join(values)
    leaked = [item for item in truth["never_published"] if item["value"] in joined]
    assert leaked == []


def test_no_withheld_field_is_a_training_column(published: Any) -> None:
    _, out, truth = published
    names, _ = training_columns_and_strings(out)
    squash = lambda name: re.sub(r"[^a-z0-9]", "", name.lower())  # noqa: E731
    withheld = {squash(f) for f in truth["withheld_fields"]}
    assert sorted(n for n in names if squash(n) in withheld) == []


def _audit_rows(out: Path) -> int:
    return sum(ds.dataset(p).count_rows() for p in (out / "audit").rglob("*.parquet"))


def test_every_record_has_its_audit_row(published: Any) -> None:
    _, out, _ = published
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert _audit_rows(out) == counts["input_records"]


def test_service_telemetry_is_published_in_si_units(published: Any) -> None:
    """Numbers, not unit strings: the columns each source's facts make SI units of."""
    source, out, _ = published
    wanted = {
        "zoom-webhook": ("duration_min",),
        "zoom-qos": ("bitrate_bps", "latency_ms", "jitter_ms", "resolution_width"),
        "webrtc-stats": ("jitter_ms", "round_trip_time_ms", "frame_width", "bytes_sent"),
        "livekit-webhook": ("track_width", "num_participants"),
    }[source]
    found: dict[str, list[Any]] = {}
    for path in sorted((out / "training" / "service_generated").rglob("*.parquet")):
        table = ds.dataset(path).to_table()
        assert pa.types.is_timestamp(table.schema.field("event_ts").type), path
        assert table.schema.field("event_ts").type.tz == "UTC"
        assert table.schema.field("event_ts").type.unit == "us"
        for name in wanted:
            if name in table.schema.names:
                column = table[name]
                assert pa.types.is_integer(column.type) or pa.types.is_floating(column.type), name
                found.setdefault(name, []).extend(v for v in column.to_pylist() if v is not None)
    assert sorted(n for n in wanted if found.get(n)) == sorted(wanted)
    if source == "zoom-qos":
        # "23 kbps" is 23,000 bits per second: no audio bitrate below 1 kbps survives as kbps.
        assert min(found["bitrate_bps"]) >= 1_000


# -- `--source auto`: vendor shapes in one input, and shapes no source declares -------------
# The two webhook shapes (both have `event`), their heads only: each event type is a partition
# the gate validates, so this run stays small. The page and snapshot shapes are told apart by
# keys of their own (tests/sources covers them under `auto`).
AUTO_SOURCES = ("zoom-webhook", "livekit-webhook")
AUTO_SLICE = 60  # lines from the head of each corpus
UNKNOWN_SHAPES = (
    {"type": "message", "text": "a chat app's own body", "api_key": "k-unknown-shape-55"},
    {"records": [{"id": 1}], "token": "t-unknown-shape-56"},
    {"event": "room_started"},  # an event name without a body is no source's shape
)


@pytest.fixture(scope="module")
def auto_published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One `run --source auto` over the heads of both webhook corpora and a few unknown shapes."""
    folder = tmp_path_factory.mktemp("auto")
    lines: list[bytes] = []
    expect: dict[str, Any] = {"lines": {}, "not_json": 0, "never": set()}
    for source in AUTO_SOURCES:
        truth = generate(folder / source, source=source, events=200, seed=17)
        with gzip.open(folder / source / truth["files"][0], "rb") as f:
            head = f.read().splitlines(keepends=True)[:AUTO_SLICE]
        lines += head
        records = truth["records"][:AUTO_SLICE]
        broken = sum(1 for r in records if r["reason"] == "not_json")
        expect["lines"][source] = len(records) - broken
        expect["not_json"] += broken
        text = b"".join(head).decode()
        expect["never"] |= {i["value"] for i in truth["never_published"] if i["value"] in text}
    lines += [json.dumps(u).encode() + b"\n" for u in UNKNOWN_SHAPES]
    (folder / "mixed.jsonl").write_bytes(b"".join(lines))
    out = folder / "out"
    run_consentgate("--source", "auto", "--input", str(folder / "mixed.jsonl"), "--out", str(out))
    return out, expect


def test_auto_reads_every_source_and_quarantines_unknown_shapes(auto_published: Any) -> None:
    out, expect = auto_published
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["status"], manifest["source"]) == ("published", "auto")
    counts = manifest["counts"]
    by_source = counts["by_source"]
    for source, lines in expect["lines"].items():
        assert sum(by_source[source].values()) >= lines, source
        assert by_source[source].get("training", 0) > 0, source
    assert counts["quarantine_reasons"]["unknown_source_shape"] == len(UNKNOWN_SHAPES)
    assert by_source["unknown"] == {"quarantine": len(UNKNOWN_SHAPES) + expect["not_json"]}
    assert sum(counts.get(d, 0) for d in DESTINATIONS) == counts["input_records"]
    assert _audit_rows(out) == counts["input_records"]


def test_auto_publishes_nothing_it_must_not(auto_published: Any) -> None:
    out, expect = auto_published
    _, values = training_columns_and_strings(out)
    joined = "\n".join(values)
    assert len(expect["never"]) > 50
    assert sorted(v for v in expect["never"] if v in joined) == []
    everything = "\n".join(
        str(v)
        for part in ("training", "restricted", "quarantine", "audit")
        for path in (out / part).rglob("*.parquet")
        for column in ds.dataset(path).to_table().columns
        for v in column.to_pylist()
    )
    assert "k-unknown-shape-55" not in everything and "t-unknown-shape-56" not in everything
