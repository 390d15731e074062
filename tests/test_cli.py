"""The command line's edges: bad arguments of every command end in one line and exit 2, never a
traceback; folder inputs read only event files; an output inside an input is refused; a day
whose input has not landed exits 5; terminal text is inert."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from pipelines.backfill import DayResult, exit_code_of
from pipelines.cli import main
from pipelines.errors import ConfigError, InputError, InputMissing
from pipelines.run import check_out_apart, expand_inputs, is_event_file_name
from pipelines.terminal import inert, inert_lines

KEY = "cli-test-key-" + "c" * 32


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env=env or {**os.environ, "CONSENTGATE_PSEUDONYM_KEY": KEY},
        timeout=120,
    )


# command line -> a word the one-line message must hold
BAD_ARGS = {
    "no-command": ([], "COMMAND"),
    "unknown-command": (["nope"], "nope"),
    "generate-too-few-events": (["generate", "--out", "{tmp}/g", "--events", "10"], "--events"),
    "generate-zero-shards": (["generate", "--out", "{tmp}/g", "--shards", "0"], "--shards"),
    "generate-bad-date": (["generate", "--out", "{tmp}/g", "--date", "2026-02-30"], "--date"),
    "generate-events-not-a-number": (
        ["generate", "--out", "{tmp}/g", "--events", "ten"],
        "--events",
    ),
    "generate-unwritable-folder": (
        ["generate", "--out", "{tmp}/file/sub", "--events", "600"],
        "{tmp}/file/sub",
    ),
    "run-bad-date": (
        ["run", "--input", "{tmp}", "--out", "{tmp}/o", "--date", "26-11-1"],
        "--date",
    ),
    "run-bad-as-of": (["run", "--input", "x", "--out", "y", "--as-of", "yesterday"], "--as-of"),
    "run-no-input": (["run", "--out", "{tmp}/o"], "--input"),
    "run-bad-policy": (["run", "--input", "x", "--out", "y", "--content-policy", "all"], "all"),
    "run-missing-config": (
        ["run", "--input", "{tmp}", "--out", "{tmp}/o", "--config", "{tmp}/none.json"],
        "none.json",
    ),
    "run-unknown-beam-option": (
        ["run", "--input", "{tmp}", "--out", "{tmp}/o", "--", "--bogus_option=1"],
        "--bogus_option",
    ),
    "run-out-inside-input": (["run", "--input", "{tmp}", "--out", "{tmp}/o"], "inside"),
    "backfill-reversed-range": (
        ["backfill", "--from", "2026-11-02", "--to", "2026-11-01", "--out", "o{date}"],
        "before",
    ),
    "backfill-bad-day": (["backfill", "--from", "2026-11-31", "--to", "2026-12-01"], "--from"),
    "validate-not-a-run-folder": (["validate", "{tmp}"], "manifest"),
    "audit-nothing-to-audit": (["audit", "{tmp}/none"], "none"),
    "audit-bad-table": (["audit", "{tmp}", "--table", "lineage"], "--table"),
    "purge-not-a-run-folder": (
        ["purge", "--consent", "{tmp}/no-ledger.jsonl", "--published", "{tmp}"],
        "--published",
    ),
    "explain-not-a-run-folder": (["explain", "{tmp}", "ev-1"], "manifest"),
    "report-not-a-run-folder": (["report", "{tmp}"], "manifest"),
    "templates-not-a-run-folder": (["templates", "{tmp}", "--json"], "manifest"),
    "report-bad-threshold": (["report", "{tmp}", "--share-threshold", "500"], "--share-threshold"),
    "detect-with-beam-options": (["detect", "--", "--runner=DirectRunner"], "Beam options"),
}


@pytest.mark.parametrize(("argv", "word"), BAD_ARGS.values(), ids=BAD_ARGS.keys())
def test_bad_arguments_exit_2_with_one_line_and_no_traceback(tmp_path, argv, word):
    (tmp_path / "file").write_text("a file where a folder is expected")
    (tmp_path / "events.jsonl").write_text("{}\n")
    done = _cli(*(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("consentgate"), done.stderr
    assert word.replace("{tmp}", str(tmp_path)) in lines[0], lines[0]


def test_debug_shows_the_traceback_of_an_error(tmp_path):
    done = _cli("--debug", "report", str(tmp_path))
    assert done.returncode == 2
    assert "Traceback" in done.stderr and done.stderr.strip().endswith(
        f"is {tmp_path} a run folder?"
    )


@pytest.mark.parametrize(
    ("name", "read"),
    [
        ("events.jsonl.gz", True),
        ("events-00001-of-00004.jsonl.gz", True),
        ("events.parquet", True),
        ("part-0001.jsonl", True),
        ("consent.jsonl", False),
        ("consent-2026-11-26.parquet", False),
        ("ledger.jsonl.gz", False),
        ("lineage.jsonl", False),
        ("purge-log.jsonl", False),
        ("report.json", False),
        ("manifest.json", False),
        ("truth.json", False),
        ("_summary.jsonl", False),
        (".hidden.jsonl", False),
        ("notes.txt", False),
    ],
    ids=lambda v: str(v),
)
def test_which_names_a_folder_input_reads_as_events(name, read):
    assert is_event_file_name(name) is read


def test_a_folder_reads_only_event_files_even_without_a_ledger(tmp_path):
    names = ["events.jsonl.gz", "events-2.parquet", "consent.jsonl", "lineage.jsonl"]
    names += ["purge-log.jsonl", "report.json", "truth.json", "ledger.parquet"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "old-run" / ".runs").mkdir(parents=True)
    (tmp_path / "old-run" / "events.jsonl").write_bytes(b"x")
    found = [Path(f.path).name for f in expand_inputs([str(tmp_path)])]
    assert found == ["events-2.parquet", "events.jsonl.gz"]


def test_a_glob_skips_run_folders_and_the_output(tmp_path):
    (tmp_path / "day").mkdir()
    (tmp_path / "day" / "events.jsonl").write_bytes(b"x")
    for sub in ("out", "old-run"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "events.jsonl").write_bytes(b"x")
    (tmp_path / "old-run" / "manifest.json").write_text("{}")
    found = expand_inputs([str(tmp_path / "*" / "events.jsonl")], out=str(tmp_path / "out"))
    assert [f.path for f in found] == [str(tmp_path / "day" / "events.jsonl")]


def test_a_run_folder_given_as_input_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "events.jsonl").write_bytes(b"x")
    with pytest.raises(InputError, match="run folder"):
        expand_inputs([str(tmp_path)])


@pytest.mark.parametrize(
    ("out", "refused"),
    [("in", True), ("in/run", True), ("in/a/b", True), ("elsewhere", False), ("in-2", False)],
    ids=["equal", "inside", "deep-inside", "apart", "sibling-with-prefix"],
)
def test_an_output_inside_an_input_folder_is_refused(tmp_path, out, refused):
    (tmp_path / "in").mkdir()
    if refused:
        with pytest.raises(ConfigError, match="inside the input folder"):
            check_out_apart([str(tmp_path / "in")], str(tmp_path / out))
    else:
        check_out_apart([str(tmp_path / "in")], str(tmp_path / out))


@pytest.mark.parametrize(
    "pattern", ["day/*.jsonl.gz", "day/events.jsonl", "empty-day"], ids=["glob", "file", "folder"]
)
def test_input_that_has_not_landed_is_status_5(tmp_path, pattern):
    (tmp_path / "empty-day").mkdir()
    with pytest.raises(InputMissing) as err:
        expand_inputs([str(tmp_path / pattern)])
    assert err.value.exit_code == 5


def test_a_run_whose_input_has_not_landed_exits_5(tmp_path):
    done = _cli(
        "run",
        "--input",
        str(tmp_path / "dt=2026-11-26" / "*.jsonl.gz"),
        "--out",
        str(tmp_path / "out"),
    )
    assert done.returncode == 5, done.stderr
    assert "has the day's data landed?" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("codes", "expected"),
    [([0, 0], 0), ([0, 3], 3), ([5, 0, 5], 5), ([3, 5], 4), ([4], 4), ([2, 0], 4)],
    ids=["all-published", "gates", "not-landed", "mixed", "failed", "locked"],
)
def test_backfill_status_of_its_days(codes, expected):
    results = [DayResult(f"2026-11-0{i + 1}", "x", code) for i, code in enumerate(codes)]
    assert exit_code_of(results) == expected


HOSTILE = "ev-\x1b]0;pwned\x07\x1b[2J\r\u202egnp.exe\x85\u2028\ufeff"


def _raw_controls(text: str) -> list[str]:
    return [
        c for c in text if c not in "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
    ]


def test_inert_shows_every_control_character():
    shown = inert(HOSTILE)
    assert _raw_controls(shown) == []
    assert shown == ("ev-\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\u202egnp.exe\\x85\\u2028\\ufeff")
    assert inert("plain text, ünïcode, 名前") == "plain text, ünïcode, 名前"
    assert inert_lines("a\x1b\nb") == "a\\x1b\nb"


def test_a_corrupt_input_fails_with_the_clear_message_and_no_beam_traceback(tmp_path):
    (tmp_path / "events.jsonl.gz").write_bytes(b"this is not gzip")
    done = _cli("run", "--input", str(tmp_path / "events.jsonl.gz"), "--out", str(tmp_path / "out"))
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr and "apache_beam" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("consentgate: error: run ") and "not a readable gzip file" in last
    with_debug = _cli(
        "--debug",
        "run",
        "--input",
        str(tmp_path / "events.jsonl.gz"),
        "--out",
        str(tmp_path / "out2"),
    )
    assert with_debug.returncode == 4 and "Traceback" in with_debug.stderr


# manifest.json of RUN_DIR (None: none) -> a word the message of `templates RUN_DIR` must hold
NOT_FINISHED = {
    "no-manifest": (None, "no manifest"),
    "run-failed": ({"run_id": "r1", "status": "failed"}, "did not finish"),
    "no-summary": ({"run_id": "r1", "status": "published"}, "no template summary"),
}


@pytest.mark.parametrize(("manifest", "word"), NOT_FINISHED.values(), ids=NOT_FINISHED.keys())
def test_templates_of_a_folder_that_is_not_a_finished_run_exits_2(tmp_path, capsys, manifest, word):
    if manifest is not None:
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert main(["templates", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and word in captured.err and "Traceback" not in captured.err
