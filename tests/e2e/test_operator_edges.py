"""A new user's edges on real runs: a folder input without a ledger reads only its event files,
`--quiet` is quiet with two worker processes, `audit RUN_DIR` audits the published tables, and
no command lets a control character from an input reach the terminal raw."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from pipelines.generate import generate

pytestmark = pytest.mark.e2e

KEY = "edges-test-key-" + "e" * 32
# ESC sequences (window title, clear screen), BEL, CR, a bidi override, C1 NEL, a line
# separator and a zero-width no-break space.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\r\u202egnp\x85\u2028\ufeff"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CONSENTGATE_PSEUDONYM_KEY": KEY},
        timeout=300,
    )


def _raw_controls(text: str) -> list[str]:
    return sorted(
        {c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")}
    )


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """A generated day read as a folder, without --consent, on two worker processes, quiet.

    Beside the events the folder holds what a careless layout puts there: the ledger, the
    generator's truth, and the records of an old run (lineage, report, purge log)."""
    root = tmp_path_factory.mktemp("edges")
    folder = root / "day"
    generate(folder, events=600, seed=12)
    line = json.dumps({"event_id": "x", "event_type": "diagnostic.log", "note": "a@b.example"})
    for name in ("lineage.jsonl", "purge-log.jsonl", "report.jsonl", "ledger-copy.jsonl"):
        (folder / name).write_text(line + "\n")
    out = root / "out"
    done = _cli(
        "-q",
        "run",
        "--input",
        str(folder),
        "--out",
        str(out),
        "--",
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
    )
    assert done.returncode == 0, done.stderr
    return folder, out, done


def test_a_folder_without_a_ledger_reads_only_its_event_files(folder_run):
    folder, out, _ = folder_run
    manifest = json.loads((out / "manifest.json").read_text())
    truth = json.loads((folder / "truth.json").read_text())
    assert [Path(i["path"]).name for i in manifest["inputs"]] == ["events.jsonl.gz"]
    assert manifest["counts"]["input_records"] == truth["events"]


def test_quiet_is_quiet_with_two_worker_processes(folder_run):
    _, out, done = folder_run
    assert done.stderr == "" and done.stdout == ""
    # What Beam's worker processes said went to the run's own log instead.
    manifest = json.loads((out / "manifest.json").read_text())
    log = out / ".runs" / manifest["run_id"] / "workers.log"
    assert log.stat().st_mode & 0o077 == 0
    assert "sdk_worker" in log.read_text() or "harness" in log.read_text()


def test_audit_of_a_run_folder_scans_its_published_tables(folder_run, tmp_path):
    _, out, _ = folder_run
    manifest = json.loads((out / "manifest.json").read_text())
    # A leak planted in the run's lineage file is not a table: audit RUN_DIR does not read it...
    lineage = out / "lineage.jsonl"
    lineage.write_text(lineage.read_text() + json.dumps({"note": "leak@example.com"}) + "\n")
    done = _cli("audit", str(out), "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    scanned = json.loads(done.stdout)
    assert scanned["rows_scanned"] == manifest["counts"]["training"]
    assert scanned["rows_with_findings"] == 0
    # ...while the file audited by itself shows the leak is there to find.
    assert _cli("audit", str(lineage)).returncode == 3
    # The quarantine table holds the planted leaks: audit finds them there when asked.
    table = _cli("audit", str(out), "--table", "quarantine")
    assert table.returncode == 3
    assert f"run {manifest['published_run_id']}, published tables quarantine" in table.stdout


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> tuple[Path, Path, str, subprocess.CompletedProcess[str]]:
    """A run over a file whose name and one event id carry terminal control characters."""
    root = tmp_path_factory.mktemp("hostile-terminal")
    generate(root / "gen", events=600, seed=13)
    with gzip.open(root / "gen" / "events.jsonl.gz", "rb") as f:
        lines = f.read().split(b"\n")  # some planted lines are not UTF-8: kept as bytes
    index, record = next(
        (i, json.loads(line))
        for i, line in enumerate(lines)
        if b'"event_type":"diagnostic.log"' in line and line.startswith(b'{"event_id":"ev-')
    )
    event_id = "ev-" + HOSTILE
    record["event_id"] = event_id
    record["payload"]["message"] = "contact ops at pager@example.com " + HOSTILE
    lines[index] = json.dumps(record).encode()
    folder = root / f"in{HOSTILE}"
    folder.mkdir()
    (folder / f"events{HOSTILE}.jsonl").write_bytes(b"\n".join(lines))
    out = root / "out"
    done = _cli("run", "--input", str(folder), "--out", str(out))
    assert done.returncode in (0, 3), done.stderr
    return folder, out, event_id, done


def test_no_command_prints_a_raw_control_character(hostile_run, tmp_path):
    folder, out, event_id, run = hostile_run
    day = tmp_path / "days"
    commands = {
        "explain": ["explain", str(out), event_id],
        "explain-json": ["explain", str(out), event_id, "--format", "json"],
        "explain-unknown-id": ["explain", str(out), event_id + "x"],
        "audit-folder": ["audit", str(folder)],
        "audit-quarantine": ["audit", str(out), "--table", "quarantine"],
        "report": ["report", str(out)],
        "run-missing-file": [
            "run",
            "--input",
            str(folder / f"gone{HOSTILE}.jsonl"),
            "--out",
            str(tmp_path / "o"),
        ],
        "backfill-not-landed": [
            "backfill",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-02",
            "--input",
            str(day / f"{{date}}{HOSTILE}.jsonl"),
            "--out",
            str(day / "out-{date}"),
        ],
        "bad-argument": ["run", "--date", HOSTILE],
        "generate-unwritable": [
            "generate",
            "--out",
            str(folder / f"events{HOSTILE}.jsonl" / "x"),
            "--events",
            "600",
        ],
        "purge-missing-ledger": [
            "purge",
            "--consent",
            str(tmp_path / f"l{HOSTILE}.jsonl"),
            "--published",
            str(out),
        ],
    }
    printed = {"run": run.stdout + run.stderr}
    for name, argv in commands.items():
        done = _cli(*argv)
        assert "Traceback" not in done.stderr, (name, done.stderr)
        printed[name] = done.stdout + done.stderr
    for name, text in printed.items():
        assert _raw_controls(text) == [], (name, text)
    # The values are there, shown: the id in explain, the file name in the audit and errors.
    shown = "\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\u202egnp\\x85\\u2028\\ufeff"
    for name in ("explain", "audit-folder", "run-missing-file", "backfill-not-landed"):
        assert shown in printed[name], (name, printed[name])
