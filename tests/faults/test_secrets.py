"""The pseudonym key never leaves the environment: not in logs, manifests, reports, audit rows,
lineage or error messages; a short key is refused; raw records are owner-only on disk."""

from __future__ import annotations

import base64
import gzip
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.generate import generate

pytestmark = pytest.mark.e2e

MARKER_KEY = "MARKER-KEY-7c1d-do-not-leak-" + "Q" * 16


def _forms(key: str) -> list[bytes]:
    """The key as it could show up: raw, hex, base64 (with and without padding)."""
    raw = key.encode()
    b64 = base64.b64encode(raw)
    return [raw, raw.hex().encode(), b64, b64.rstrip(b"=")]


def _run(args: list[str], key: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CONSENTGATE_PSEUDONYM_KEY": key},
        timeout=300,
    )


def _every_file_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess]]:
    folder = tmp_path_factory.mktemp("secret-in")
    generate(folder, events=1500, seed=5)
    out = tmp_path_factory.mktemp("secret-out") / "out"
    common = ["--consent", str(folder / "consent.jsonl"), "--out", str(out)]
    ok = _run(["run", "--input", str(folder / "events.jsonl.gz"), *common], MARKER_KEY)
    # A failing run too: its error message and failed manifest must not carry the key either.
    broken = folder / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(b"{}\n" * 1000)[:40])
    failed = _run(["run", "--input", str(broken), *common], MARKER_KEY)
    report = _run(["report", str(out)], MARKER_KEY)
    # The latest run failed: validate checks the published one only when told to.
    published = json.loads((out / "manifest.json").read_text())["published_run_id"]
    validate = _run(["validate", str(out), "--run-id", published], MARKER_KEY)
    return out, [ok, failed, report, validate]


def test_the_runs_did_what_they_should(runs):
    _, (ok, failed, report, validate) = runs
    assert ok.returncode == 0, ok.stderr
    assert failed.returncode == 4 and "not a readable gzip file" in failed.stderr
    assert report.returncode == 0, report.stderr
    assert validate.returncode == 0, validate.stderr


def test_the_key_is_in_no_output_file_and_no_captured_output(runs):
    out, done = runs
    files = _every_file_under(out)
    assert any(p.name == "manifest.json" for p in files)
    assert any(p.suffix == ".parquet" and "audit" in p.parts for p in files)
    assert any(p.name == "lineage.jsonl" for p in files)
    for path in files:
        data = path.read_bytes()
        for form in _forms(MARKER_KEY):
            assert form not in data, f"{path} holds the key"
    for process in done:
        for form in _forms(MARKER_KEY):
            assert form.decode() not in process.stdout + process.stderr


def test_a_short_key_is_refused_before_anything_is_read(tmp_path: Path):
    done = _run(["run", "--input", str(tmp_path), "--out", str(tmp_path / "o")], "short-key")
    assert done.returncode == 2
    assert "at least 32 bytes" in done.stderr
    assert "short-key" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_quarantine_and_restricted_are_owner_only(runs):
    out, _ = runs
    for table in ("quarantine", "restricted"):
        folder = (out / table).resolve()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, table
        files = list(folder.glob("*.parquet"))
        assert files, table
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    training = (out / "training").resolve()
    assert stat.S_IMODE(training.stat().st_mode) & 0o044  # training stays readable to readers
