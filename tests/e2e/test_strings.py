"""Hostile strings planted in service fields never reach training; common telemetry does; the
same input publishes the same strings whatever the worker count or input order."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.generate import generate
from pipelines.rules.strings import template_of
from pipelines.rules.templates import TEMPLATES_PATH, template_reference

pytestmark = pytest.mark.e2e

KEY = "e2e-strings-key-" + "x" * 32
EVENTS = 3000
SEED = 29
MULTI_PROCESS = ["--", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]

# (field, hostile value, what of it must never be published). Detectors catch some of these;
# the string rule must catch all of them: no k accounts produce any of them.
HOSTILE = [
    ("message", "Привет, перезвони мне вечером, ладно?", "перезвони"),
    ("message", "مرحبا، هل يمكنك الاتصال بي لاحقا", "الاتصال"),
    ("message", "明日の会議は中止になりました", "会議"),
    ("message", "我们明天再谈这个合同", "合同"),
    ("message", "Kannst du mich nach dem Termin anrufen", "anrufen"),
    ("message", "see you at 5", "see you at"),
    ("message", "rtc: text=hey%20can%20you%20call%20me%20later", "call%20me"),
    ("message", "upload failed: Acme_layoffs_2027.xlsx", "Acme_layoffs"),
    ("message", "mic init ok, ps I'll miss the all-hands, tell Dana", "tell Dana"),
    ("message", "wifi ap 00:1A:2B:3C:4D:5E signal weak", "00:1A:2B:3C:4D:5E"),
    ("message", "geo fix 37.77493,-122.41942 accuracy 5 m", "37.77493"),
    ("stack_trace", "at Loader.read(/Users/jdoe/Projects/merger/plan.cc:12)", "jdoe"),
    ("device", "Alice's iPhone", "Alice's"),
    ("device", "LAPTOP-MARIA-GONZALEZ", "MARIA"),
    ("event_id", "p-alice-raw-participant-7", "p-alice-raw"),
]


def _record(event_type: str, account: str, number: int, payload: dict, event_id: str) -> dict:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "event_ts": f"2026-11-26T10:{number % 60:02d}:00Z",
        "account_id": account,
        "meeting_id": f"mtg-strings-{number}",
        "participant_id": f"p-strings-{number}",
        "schema_version": 1,
        "payload": payload,
    }


def _planted() -> list[dict]:
    """Hostile strings, each from one account; `ICE restart after N failures` from eight
    accounts, each with its own N (only the template is common)."""
    records = []
    for i, (field, value, _) in enumerate(HOSTILE):
        account = f"acct-hostile-{i}"
        if field == "device":
            payload = {
                "user_name": f"Hostile User{i}",
                "email": f"hostile{i}@example.com",
                "ip_address": "192.0.2.1",
                "location": "Lyon (FR)",
                "device": value,
                "os_version": "14.6",
                "client_version": "6.2.5",
                "network_type": "wifi",
                "role": "attendee",
            }
            records.append(
                _record("usage.participant_joined", account, i, payload, f"ev-hostile-{i}")
            )
        elif field == "stack_trace":
            payload = {
                "component": "video",
                "error_code": "E1042",
                "client_version": "6.2.5",
                "os_version": "11",
                "stack_trace": value,
                "message": "decoder crashed",
            }
            records.append(_record("diagnostic.crash", account, i, payload, f"ev-hostile-{i}"))
        else:
            message = "jitter buffer underrun" if field == "event_id" else value
            payload = {"level": "warn", "component": "net", "message": message}
            event_id = value if field == "event_id" else f"ev-hostile-{i}"
            records.append(_record("diagnostic.log", account, i, payload, event_id))
    for j in range(8):
        payload = {
            "level": "info",
            "component": "rtc",
            "message": f"ICE restart after {j + 2} failures",
        }
        records.append(_record("diagnostic.log", f"acct-ice-{j}", 100 + j, payload, f"ev-ice-{j}"))
    return records


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("strings-in")
    generate(folder, events=EVENTS, seed=SEED)
    with gzip.open(folder / "events.jsonl.gz", "rb") as f:
        lines = [line for line in f.read().split(b"\n") if line.strip()]
    lines += [json.dumps(r, ensure_ascii=False).encode() for r in _planted()]
    plain = folder / "plain"
    plain.mkdir()
    (plain / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    shuffled = folder / "shuffled"
    shuffled.mkdir()
    order = lines[:]
    random.Random(5).shuffle(order)
    (shuffled / "events.jsonl").write_bytes(b"\n".join(order) + b"\n")
    return {"plain": plain, "shuffled": shuffled, "consent": folder / "consent.jsonl"}


def _run(inputs: dict[str, Path], which: str, out: Path, beam: list[str]) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
        return main(
            [
                "-q",
                "run",
                "--input",
                str(inputs[which] / "events.jsonl"),
                "--consent",
                str(inputs["consent"]),
                "--out",
                str(out),
                *beam,
            ]
        )


@pytest.fixture(scope="module")
def runs(inputs, tmp_path_factory) -> dict[str, Path]:
    outs = {}
    for name, which, beam in (
        ("one", "plain", []),
        ("two", "plain", MULTI_PROCESS),
        ("shuffled", "shuffled", []),
    ):
        out = tmp_path_factory.mktemp(f"strings-{name}") / "out"
        assert _run(inputs, which, out, beam) == 0
        outs[name] = out
    return outs


def _training_files(out: Path) -> dict[str, bytes]:
    root = out / "training" / "service_generated"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def _strings(out: Path) -> list[str]:
    values = []
    for path in sorted((out / "training").rglob("*.parquet")):
        table = pq.read_table(path)
        for column in table.columns:
            column = column.combine_chunks()
            while pa.types.is_list(column.type):
                column = column.flatten()
            if pa.types.is_string(column.type):
                values.extend(v for v in column.to_pylist() if v is not None)
    return values


def test_no_hostile_string_reaches_any_training_file(runs):
    published = "\n".join(_strings(runs["one"]))
    leaked = [needle for _, _, needle in HOSTILE if needle in published]
    assert leaked == []


def test_the_gate_passed_and_said_so(runs):
    manifest = json.loads((runs["one"] / "manifest.json").read_text())
    assert manifest["status"] == "published"
    checks = manifest["gate"]["checks"]
    assert checks["strings_earned"]["passed"] is True
    assert checks["strings_earned"]["rows_checked"] > 0


def test_common_telemetry_survives_as_value_or_template(runs):
    published = _strings(runs["one"])
    assert "6.2.5" in published  # a client version dozens of accounts run
    assert "ICE restart after <num> failures" in published
    assert not any(v.startswith("ICE restart after ") and v[18].isdigit() for v in published)


def test_withheld_fields_name_what_was_withheld(runs):
    root = runs["one"] / "training" / "service_generated"
    joined = pq.read_table(root / "event_type=usage.participant_joined").to_pylist()
    withheld = [r for r in joined if "device" in r["withheld_fields"]]
    assert withheld and all(r["device"] is None for r in withheld)


def test_two_workers_publish_byte_identical_training_files(runs):
    one, two = _training_files(runs["one"]), _training_files(runs["two"])
    assert one and one.keys() == two.keys()
    assert [name for name in one if one[name] != two[name]] == []


def test_input_order_does_not_change_what_is_published(runs):
    def rows(out: Path) -> dict[str, list]:
        root = out / "training" / "service_generated"
        found = {}
        for folder in sorted(root.iterdir()):
            table = pq.read_table(folder)
            found[folder.name] = sorted(map(repr, table.to_pylist()))
        return found

    assert rows(runs["one"]) == rows(runs["shuffled"])


# The planted strings of HOSTILE that sit in a string field the rule counts, by field key.
_COUNTED = {
    "message": "diagnostic.log.message",
    "stack_trace": "diagnostic.crash.stack_trace",
    "device": "usage.participant_joined.device",
}


def _templates_json(out: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["templates", str(out), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_rare_strings_are_registry_candidates_by_reference_never_by_text(runs, capsys):
    out = runs["one"]
    found = _templates_json(out, capsys)
    by_ref = {c["ref"]: c for c in found["candidates"]}
    for field, value, _ in HOSTILE:
        if field not in _COUNTED:
            continue
        ref = template_reference(KEY.encode(), _COUNTED[field], template_of(value))
        assert by_ref[ref]["accounts"] == 1, value
        assert by_ref[ref]["masked"] is None and by_ref[ref]["hidden_because"], value
    counts = [c["accounts"] for c in found["candidates"]]
    assert counts == sorted(counts, reverse=True) and max(counts) < found["k"] == 5
    capsys.readouterr()
    assert main(["templates", str(out)]) == 0
    printed = json.dumps(found, ensure_ascii=False) + capsys.readouterr().out
    report = "".join((out / name).read_text("utf-8") for name in ("report.json", "report.html"))
    summary = pq.read_table(next((out / ".runs").glob(f"*/{TEMPLATES_PATH}")))
    kept = "\n".join(v for v in summary["masked"].to_pylist() if v)
    for _, value, needle in HOSTILE:
        for text in (printed, report, kept):
            assert needle not in text and value not in text


def test_report_templates_section_has_the_runs_figures(runs, capsys):
    out = runs["one"]
    data = json.loads((out / "report.json").read_text("utf-8"))
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    section = data["templates"]
    decisions = manifest["counts"]["string_decisions"]
    assert section["available"] and section["k"] == 5
    assert section["decisions"] == dict(sorted(decisions.items()))
    for way in ("value", "template", "withheld"):
        assert section["totals"][way] == sum(d[way] for d in decisions.values()) > 0
    listed = {(r["field"], r["masked"]): r["accounts"] for r in section["published"]["listed"]}
    assert listed[("diagnostic.log.message", "ICE restart after <num> failures")] == 5
    found = _templates_json(out, capsys)
    assert section["short_of_k"]["count"] == len(found["candidates"]) > 0
    assert [r["ref"] for r in section["short_of_k"]["listed"]] == [
        c["ref"] for c in found["candidates"][: len(section["short_of_k"]["listed"])]
    ]
    html = (out / "report.html").read_text("utf-8")
    assert 'id="templates"' in html and "configs/strings.json" in html


def test_template_summary_is_the_same_whatever_the_workers_or_order(runs):
    def summary(out: Path) -> list[dict]:
        return pq.read_table(next((out / ".runs").glob(f"*/{TEMPLATES_PATH}"))).to_pylist()

    assert summary(runs["one"]) == summary(runs["two"]) == summary(runs["shuffled"])
