"""`consentgate run --source NAME` end to end on hand-written vendor payloads: every output
Parquet file is read back and searched for what must never be there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from tests.sources import payloads as P

KEY = "test-key-not-secret-0123456789abcdef0123"
CONSENTED_LIVEKIT_CHAT = P.LK_CHAT  # the one content text the ledger below lets through


def _run(tmp: Path, source: str, records: list[Any], ledger: list[dict] | None = None) -> Path:
    inputs = tmp / "in"
    inputs.mkdir()
    P.write_jsonl(inputs / f"{source}.jsonl", records)
    out = tmp / "out"
    args = ["-q", "run", "--source", source, "--input", str(inputs), "--out", str(out)]
    if ledger is not None:
        consent = P.write_jsonl(tmp / "consent.jsonl", ledger)
        args += ["--consent", str(consent), "--content-policy", "per_participant"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
        code = main(args)
    assert code == 0
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes):
        return [value.decode("utf-8", "replace")]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _table_text(out: Path, part: str) -> str:
    """Every string of every Parquet file under `out/part`, as one text."""
    files = sorted((out / part).rglob("*.parquet"))
    return "\n".join(
        s for f in files for row in pq.read_table(f).to_pylist() for s in _strings(row)
    )


def _rows(out: Path, event_type: str) -> list[dict[str, Any]]:
    folder = out / "training" / "service_generated" / f"event_type={event_type}"
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def _check_nothing_leaks(out: Path, allowed_in_consented: tuple[str, ...] = ()) -> None:
    training = _table_text(out, "training/service_generated")
    consented = _table_text(out, "training/consented_content")
    everything = "\n".join(
        _table_text(out, part) for part in ("training", "restricted", "quarantine", "audit")
    )
    for value in P.NEVER_IN_TRAINING:
        assert value not in training, value
        if value not in allowed_in_consented:
            assert value not in consented, value
    published = [(out / name).read_text() for name in ("report.json", "manifest.json")]
    for secret in P.SECRETS:
        assert secret not in everything, secret
        assert not any(secret in text for text in published), secret


def _check_counted(out: Path, expected_records: int, source: str) -> dict[str, Any]:
    counts = _manifest(out)["counts"]
    assert counts["input_records"] == expected_records
    destinations = ("training", "consented_content", "restricted", "quarantine", "duplicates")
    assert sum(counts[d] for d in destinations) == expected_records
    assert sum(counts["by_source"][source].values()) == expected_records
    audit = [r for f in (out / "audit").rglob("*.parquet") for r in pq.read_table(f).to_pylist()]
    assert len(audit) == expected_records
    assert {r["source"] for r in audit} == {source}
    return counts


def test_webrtc_stats_run(tmp_path):
    out = _run(tmp_path, "webrtc-stats", P.webrtc_snapshots())
    _check_nothing_leaks(out)
    counts = _check_counted(out, 26, "webrtc-stats")
    assert counts["training"] == 26
    audio = [r for r in _rows(out, "webrtc-stats.inbound-rtp") if r["kind"] == "audio"]
    assert [r["jitter_ms"] for r in audio] == pytest.approx([4.0, 4.0])
    assert "audio_level" not in audio[0] and "total_audio_energy" not in audio[0]
    assert audio[0]["packets_received"] in (500, 760)
    candidate = _rows(out, "webrtc-stats.local-candidate")[0]
    assert "ip_address" not in candidate and candidate["candidate_type"] == "host"
    assert candidate["participant_id"].startswith("ps_")
    codec = _rows(out, "webrtc-stats.codec")[0]
    assert codec["clock_rate"] == 48000
    channel = _rows(out, "webrtc-stats.data-channel")[0]
    assert "messages_sent" not in channel and "channel_label" not in channel


def test_zoom_qos_run(tmp_path):
    out = _run(tmp_path, "zoom-qos", P.zoom_qos_pages())
    _check_nothing_leaks(out)
    _check_counted(out, 8, "zoom-qos")
    audio = _rows(out, "zoom-qos.audio_input")[0]
    assert (audio["bitrate_bps"], audio["latency_ms"], audio["avg_loss_pct"]) == (
        23_000,
        126,
        pytest.approx(0.3),
    )
    video = _rows(out, "zoom-qos.video_input")[0]
    assert (video["resolution_width"], video["resolution_height"]) == (1280, 720)
    people = _rows(out, "zoom-qos.participant")
    assert people and all("ip_address" not in p and "mac_addr" not in p for p in people)
    assert [p["location_country"] for p in people] == ["US"]  # "San Jose (US)", generalised
    # The participants page names the guest in its leave reason: held back, not published.
    assert _manifest(out)["counts"]["quarantine_reasons"] == {"detector:known_identifier": 1}


def test_zoom_webhook_run(tmp_path):
    bodies = P.zoom_webhooks()
    # 8 bodies; the recording splits into itself, 2 files and 1 participant audio file.
    out = _run(tmp_path, "zoom-webhook", bodies, ledger=[])
    _check_nothing_leaks(out)
    counts = _check_counted(out, 11, "zoom-webhook")
    assert counts["quarantine_reasons"].get("undeclared_field") == 1
    started = _rows(out, "zoom-webhook.meeting.started")
    assert started and "topic" not in started[0]
    assert started[0]["duration_min"] == 60
    files = _rows(out, "zoom-webhook.recording.file")
    assert sorted(f["file_type"] for f in files) == ["CC", "MP4"]
    assert all("download_url" not in f and "file_name" not in f for f in files)
    restricted = [
        r for f in (out / "restricted").rglob("*.parquet") for r in pq.read_table(f).to_pylist()
    ]
    assert sorted(r["event_type"] for r in restricted) == [
        "zoom-webhook.meeting.chat_message_sent",
        "zoom-webhook.meeting.summary_completed",
    ]


def test_livekit_run_routes_content_by_participant_consent(tmp_path):
    grant = {
        "subject_id": "PA_Xz9GQhGh3kTx",
        "account_id": "livekit-project",
        "scope": f"meeting:{P.LK_ROOM_SID}",
        "purpose": "ai_training",
        "action": "grant",
        "actor": "self",
        # after the transcript segment (…210) and before the chat line (…215)
        "decided_at": "2026-11-30T14:00:12Z",
    }
    out = _run(tmp_path, "livekit-webhook", P.livekit_events(), ledger=[grant])
    _check_nothing_leaks(out, allowed_in_consented=(CONSENTED_LIVEKIT_CHAT,))
    counts = _check_counted(out, 5, "livekit-webhook")
    assert counts["consented_content"] == 1 and counts["restricted"] == 1
    consented = _table_text(out, "training/consented_content")
    assert P.LK_CHAT in consented and P.LK_TRANSCRIPT not in consented
    joined = _rows(out, "livekit-webhook.participant_joined")[0]
    assert "participant_metadata" not in joined and "participant_attributes" not in joined


def test_auto_run_counts_every_source(tmp_path):
    records = [
        *P.webrtc_snapshots()[:1],
        *P.zoom_qos_pages()[:1],
        *P.zoom_webhooks()[:2],
        {"not": "a known shape", "api_key": "k-55"},
    ]
    out = _run(tmp_path, "auto", records)
    counts = _manifest(out)["counts"]
    assert counts["by_source"]["unknown"] == {"quarantine": 1}
    assert sum(counts["by_source"]["webrtc-stats"].values()) == 13
    assert sum(counts["by_source"]["zoom-webhook"].values()) == 2
    assert counts["quarantine_reasons"]["unknown_source_shape"] == 1
    assert "k-55" not in _table_text(out, "quarantine")
    assert _manifest(out)["source"] == "auto"
