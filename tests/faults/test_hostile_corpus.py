"""A corpus of hostile files run as a new user would: malformed JSON, wrong encodings, a huge
line, confusable text, a Parquet file with the wrong schema, a ledger with bad rows. The run
completes, every record is counted, no planted string reaches training, and every quarantine
reason that appears is a code the README documents, and every documented code appears."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipelines.generate import LEAK_KINDS, generate

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SPEC_EXAMPLES = ROOT.parent / "shared" / "spec" / "examples-v1.jsonl"
KEY = "hostile-corpus-key-" + "h" * 32
HUGE_NEEDLE = "huge-line-needle@example.org"
# mallory@example.com in fullwidth forms (U+FF41..., U+FF20 for @, U+FF0E for the dot).
CONFUSABLE = "".join(chr(ord(c) + 0xFEE0) for c in "mallory@example.com")
# More than the string rule's k (configs/strings.json).
HEX_ACCOUNTS = 5
# Codes produced only when records come in a vendor shape (`--source`); this corpus is v1
# envelopes. tests/e2e/test_source_corpora.py produces and checks them.
SOURCE_ONLY_CODES = {"unknown_source_shape"}
NEEDLES = (HUGE_NEEDLE, "mallory@example.com", CONFUSABLE, "café-latin1", "utf16-needle")


def _examples() -> list[dict]:
    return [json.loads(x) for x in SPEC_EXAMPLES.read_text().splitlines() if x.strip()]


def _event(base: dict, event_id: str, **payload: object) -> dict:
    return {**base, "event_id": event_id, "payload": {**base["payload"], **payload}}


def hostile_lines() -> list[bytes]:
    """One line per hostile case; each must end in quarantine (or, if clean, in training)."""
    examples = _examples()
    log = next(e for e in examples if e["event_type"] == "diagnostic.log")
    qos = next(e for e in examples if e["event_type"] == "qos.audio")
    dump = lambda record: json.dumps(record, ensure_ascii=False).encode()  # noqa: E731
    lines = [
        b'{"event_id": "cut-off", "event_type": "qos.audio", ',  # not_json
        b"[1, 2, 3]",  # not_object
        # Latin-1 bytes where UTF-8 was promised: not_utf8.
        json.dumps(_event(log, "h-latin1", message="café-latin1"))
        .encode()
        .replace(b"caf\\u00e9", "café".encode("latin-1")),
        # A whole record in UTF-16 (with its byte-order mark): not_utf8.
        b"\xff\xfe"
        + json.dumps(_event(log, "h-utf16", message="utf16-needle")).encode("utf-16-le"),
        # 2 MiB on one line, the leak at its very end: line_too_large.
        b'{"event_id": "h-huge", "pad": "' + b"x" * (2 << 20) + HUGE_NEEDLE.encode() + b'"}',
        # Fullwidth confusables in a log message: detector:email after NFKC.
        dump(_event(log, "h-confusable", message=f"contact {CONFUSABLE} for access")),
        # The same id twice with different records: conflicting_duplicate, every copy.
        dump(_event(qos, "h-conflict", latency_ms=10)),
        dump(_event(qos, "h-conflict", latency_ms=11)),
        # An enum broken: bad_value.
        dump({**qos, "event_id": "h-version", "schema_version": 2}),
        # Clean records still get through around all of this.
        dump(_event(qos, "h-clean-1")),
        dump(_event(log, "h-clean-2", message="ICE restart after 120 ms")),
        # Nested past policy.max_nesting_depth: too_deep, before any parser sees it.
        dump(_event(log, "h-deep", message=json.loads("[" * 300 + "]" * 300))),
    ]
    # A hex run inside a word: the detectors pass it, the gate's suite would not. Sent by
    # HEX_ACCOUNTS accounts, the string rule publishes it as it is (rare, it would be
    # withheld), so the gate's twin quarantines each before staging: gate_twin:expectations.
    for i in range(HEX_ACCOUNTS):
        record = _event(log, f"h-hex-in-word-{i}", message="sum zz" + "deadbeef" * 4 + "zz")
        lines.append(dump({**record, "account_id": f"acct-hex-{i}"}))
    return lines


def hostile_parquet(folder: Path) -> None:
    qos = next(e for e in _examples() if e["event_type"] == "qos.audio")
    envelope = {k: v for k, v in qos.items() if k != "payload"}
    # A payload column that does not hold JSON: payload_not_json.
    rows = [
        {**envelope, "event_id": "pq-ok", "payload": json.dumps(qos["payload"])},
        {**envelope, "event_id": "pq-bad-payload", "payload": "{not json mallory@example.com"},
    ]
    pq.write_table(pa.Table.from_pylist(rows), folder / "hostile-payload.parquet")
    # The wrong schema altogether: every row quarantined one by one.
    wrong = pa.table({"id": ["w1", "w2"], "body": ["mallory@example.com", "x"]})
    pq.write_table(wrong, folder / "hostile-schema.parquet")


def hostile_ledger(folder: Path, good: Path) -> Path:
    ledger = folder / "ledger.jsonl"
    with ledger.open("wb") as f:
        f.write(good.read_bytes())
        f.write(b"{not json\n")
        f.write(b'{"subject_id": "p-x", "purpose": "ai_training"}\n')  # fields missing
    return ledger


def documented_quarantine_codes() -> set[str]:
    """The codes of the README's reason-code table whose records end in quarantine."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Reason codes", 1)[1].split("\n#", 1)[0]
    return {
        m.group(1)
        for m in re.finditer(r"^\| `([^`]+)`[^|]*\| quarantine \|", section, re.MULTILINE)
    }


def family(code: str) -> str:
    """A produced reason as its documented code: `detector:email` -> `detector:<name>`."""
    for prefix, placeholder in (
        ("detector:", "detector:<name>"),
        ("payload_", "payload_<code>"),
        ("consent_", "consent_<code>"),
        ("gate_twin:", "gate_twin:<check>"),
    ):
        if code.startswith(prefix):
            return placeholder
    return code


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, int, int]:
    folder = tmp_path_factory.mktemp("hostile")
    generate(folder, events=2000, seed=77)
    lines = hostile_lines()
    (folder / "hostile.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    hostile_parquet(folder)
    ledger = hostile_ledger(folder, folder / "consent.jsonl")
    out = tmp_path_factory.mktemp("hostile-out") / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "run",
            "--input",
            str(folder / "events.jsonl.gz"),
            "--input",
            str(folder / "hostile.jsonl"),
            "--input",
            str(folder / "hostile-*.parquet"),
            "--consent",
            str(ledger),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "CONSENTGATE_PSEUDONYM_KEY": KEY},
        timeout=300,
    )
    truth = json.loads((folder / "truth.json").read_text())
    expected_records = truth["events"] + len(lines) + 2 + 2
    return out, done, expected_records, truth["consent"]["bad_ledger_rows"] + 2


def test_the_corpus_runs_to_completion_and_every_record_is_counted(corpus_run):
    out, done, expected, bad_ledger_rows = corpus_run
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["input_records"] == expected
    parts = ("training", "consented_content", "restricted", "quarantine", "duplicates")
    assert sum(counts[k] for k in parts) == expected
    audit = ds.dataset(out / "audit").to_table()
    assert audit.num_rows == expected
    assert counts["consent_ledger"]["quarantined"] == bad_ledger_rows


def test_no_planted_string_reaches_training(corpus_run):
    out, done, *_ = corpus_run
    assert done.returncode == 0, done.stderr
    files = sorted((out / "training").rglob("*.parquet"))
    assert files
    blob = b"".join(
        json.dumps(pq.read_table(f).to_pylist(), ensure_ascii=False, default=str).encode()
        for f in files
    )
    for needle in NEEDLES:
        assert needle.encode() not in blob, needle
    # Training names records by their event id's pseudonym; the audit maps one to the other.
    audit = ds.dataset(out / "audit").to_table(columns=["event_id", "event_pseudonym"])
    pseudonym = dict(
        zip(audit["event_id"].to_pylist(), audit["event_pseudonym"].to_pylist(), strict=True)
    )
    ids = set(ds.dataset(out / "training").to_table(columns=["event_id"])["event_id"].to_pylist())
    assert {pseudonym[i] for i in ("h-clean-1", "h-clean-2", "pq-ok")} <= ids


def test_each_hostile_case_is_quarantined_with_its_code(corpus_run):
    out, done, *_ = corpus_run
    assert done.returncode == 0, done.stderr
    rows = ds.dataset(out / "quarantine").to_table().to_pylist()
    hostile = {
        r["source_line"]: r["reason"]
        for r in rows
        if r["source_file"].endswith(".jsonl") and "hostile" in r["source_file"]
    }
    assert hostile[1] == "not_json"
    assert hostile[2] == "not_object"
    assert hostile[3] == "not_utf8"
    assert hostile[4] in ("not_utf8", "not_json")
    assert hostile[5] == "line_too_large"
    assert hostile[6] == "detector:email"
    assert hostile[7] == hostile[8] == "conflicting_duplicate"
    assert hostile[9] == "bad_value"
    assert hostile[12] == "too_deep"
    assert [hostile[13 + i] for i in range(HEX_ACCOUNTS)] == ["gate_twin:expectations"] * 5
    huge = next(r for r in rows if r["reason"] == "line_too_large")
    assert len(huge["raw"]) == 1024  # only the first KiB was kept
    payload_rows = [r for r in rows if r["source_file"].endswith("hostile-payload.parquet")]
    assert [(r["source_line"], r["reason"]) for r in payload_rows] == [(2, "payload_not_json")]
    schema_rows = [r for r in rows if r["source_file"].endswith("hostile-schema.parquet")]
    assert len(schema_rows) == 2 and {r["reason"] for r in schema_rows} <= {
        "missing_field",
        "undeclared_field",
    }
    ledger = {r["source_line"]: r["reason"] for r in rows if r["reason"].startswith("consent_")}
    planted = max(ledger)  # our two rows come after the generator's ledger
    assert ledger[planted - 1] == "consent_not_json"
    assert ledger[planted] == "consent_missing_field"


def test_every_quarantine_code_is_documented_and_every_documented_code_is_produced(corpus_run):
    out, done, *_ = corpus_run
    assert done.returncode == 0, done.stderr
    reasons = set(ds.dataset(out / "quarantine").to_table(columns=["reason"])["reason"].to_pylist())
    documented = documented_quarantine_codes()
    assert len(documented) >= 12
    produced = {family(r) for r in reasons}
    assert produced == documented - SOURCE_ONLY_CODES
    # Every detector the generator plants is a code of its own in the family, and the corpus
    # produces each.
    assert {f"detector:{name}" for name in LEAK_KINDS} <= reasons
