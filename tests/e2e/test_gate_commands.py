"""`consentgate validate` and `consentgate audit` on a real run folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.generate import generate

pytestmark = pytest.mark.e2e

KEY = "gate-commands-key-" + "q" * 32


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gate")
    generate(root / "in", events=2000, seed=4)
    mp = pytest.MonkeyPatch()
    mp.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    try:
        code = main(
            [
                "-q",
                "run",
                "--input",
                str(root / "in" / "events.jsonl.gz"),
                "--out",
                str(root / "out"),
            ]
        )
    finally:
        mp.undo()
    assert code == 0
    return root / "out"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)


def test_validate_passes_a_published_run(run_dir, key, capsys):
    assert main(["validate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    run_id = json.loads((run_dir / "manifest.json").read_text())["run_id"]
    assert out.startswith(f"checking run {run_id} (status published) in {run_dir}\n")
    assert "gate passed" in out and "FAIL" not in out
    assert "content_fingerprints" in out and "expectations" in out


def test_validate_fails_when_a_published_file_was_tampered_with(run_dir, key, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, symlinks=True)
    target = next(
        (copy / "training" / "service_generated" / "event_type=diagnostic.log").glob("*.parquet")
    )
    table = pq.read_table(target)
    messages = table["message"].to_pylist()
    messages[0] = "paged the on-call at oncall.lead@corp.example"
    pq.write_table(
        table.set_column(table.schema.get_field_index("message"), "message", [messages]), target
    )
    assert main(["validate", str(copy)]) == 3
    out = capsys.readouterr().out
    assert "detectors_clean" in out and "FAIL" in out
    assert "oncall.lead@corp.example" not in out


def test_validate_needs_a_run_folder(tmp_path, key):
    assert main(["validate", str(tmp_path)]) == 2


def test_validate_refuses_a_folder_whose_latest_run_failed_unless_told_which(
    run_dir, key, tmp_path, capsys
):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, symlinks=True)
    published = json.loads((copy / "manifest.json").read_text())["run_id"]
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"this is not gzip\n")
    assert main(["-q", "run", "--input", str(broken), "--out", str(copy)]) not in (0, 2)
    latest = json.loads((copy / "manifest.json").read_text())
    assert latest["status"] != "published" and latest["published_run_id"] == published
    capsys.readouterr()
    assert main(["validate", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"latest run {latest['run_id']} did not publish" in err
    assert f"--run-id {published}" in err and len(err.strip().splitlines()) == 1
    assert main(["validate", str(copy), "--run-id", published]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"checking run {published} (status published)")
    assert "gate passed" in out


@pytest.mark.parametrize("run_id", ["no-such-run", "../../etc"], ids=["unknown", "not-an-id"])
def test_validate_refuses_an_unknown_run_id(run_dir, key, run_id):
    assert main(["validate", str(run_dir), "--run-id", run_id]) == 2


def test_validate_refuses_another_key(run_dir, monkeypatch, capsys):
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", "another-key-" + "z" * 32)
    assert main(["validate", str(run_dir)]) == 2
    assert "not the key run" in capsys.readouterr().err


def test_audit_finds_nothing_in_the_service_bucket(run_dir, capsys):
    assert main(["audit", "--format", "json", str(run_dir / "training" / "service_generated")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows_with_findings"] == 0 and report["rows_scanned"] > 1000


def test_audit_finds_the_planted_leaks_in_the_quarantine(run_dir, capsys):
    assert main(["audit", "--format", "json", str(run_dir / "quarantine")]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["rows_with_findings"] > 0
    for name in ("email", "phone", "ip_address", "secret_url", "payment_card", "blob"):
        assert report["by_detector"].get(name, 0) > 0, name


def test_audit_leaves_ordinary_client_logs_alone(tmp_path, capsys):
    lines = [
        "ICE restart after 412 ms",
        "dtls handshake timeout after 10000 ms",
        "at com.zoom.media.Decoder.feed(Decoder.java:214)",
        "at org.webrtc.PeerConnection.nativeCreateOffer(Native Method)",
        "java.lang.IllegalStateException: socket closed",
        "jitter buffer underrun, 3 frames dropped",
    ]
    path = tmp_path / "logs.jsonl"
    path.write_text("".join(json.dumps({"level": "warn", "message": m}) + "\n" for m in lines))
    assert main(["audit", "--format", "json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "by_detector": {},
        "rows_scanned": 6,
        "rows_with_findings": 0,
    }
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        json.dumps({"message": "hey can you send me the budget numbers before friday"}) + "\n"
    )
    assert main(["audit", "--format", "json", str(chat)]) == 3
    assert json.loads(capsys.readouterr().out)["by_detector"] == {"natural_language": 1}
