"""Adapters on hand-written vendor payloads: kinds, columns, units, secrets, drift; no Beam."""

from __future__ import annotations

import copy
import json
from typing import Any

import pyarrow as pa
import pytest

from pipelines.config import load_config
from pipelines.sources import source_modules
from pipelines.sources.adapt import adapt_lines
from pipelines.sources.declared import compile_sources
from tests.sources import payloads as P

CONFIG = load_config().with_policy(input_source="auto")
CONTRACT = CONFIG.contract()
SOURCES = compile_sources(CONFIG.schemas)


def adapt(source: str, records: list[Any]):
    lines = [(i + 1, json.dumps(r).encode()) for i, r in enumerate(records)]
    return adapt_lines(CONTRACT, SOURCES, source_modules(source), 0, lines)


def rows(found, event_type: str) -> list[dict[str, Any]]:
    return found.tables[event_type].to_pylist()


def all_text(found) -> str:
    parts = [json.dumps(t.to_pylist(), default=str) for t in found.tables.values()]
    parts.append(json.dumps(found.rejects.drop_columns(["raw"]).to_pylist(), default=str))
    parts += [r.decode() for r in found.rejects["raw"].to_pylist() if r]
    return "\n".join(parts)


def test_webrtc_stats_become_one_record_per_report_in_si_units():
    found = adapt("webrtc-stats", P.webrtc_snapshots())
    assert found.rejects.num_rows == 0
    audio = [r for r in rows(found, "webrtc-stats.inbound-rtp") if r["kind"] == "audio"]
    assert [r["jitter_ms"] for r in audio] == pytest.approx([4.0, 4.0])
    assert audio[0]["jitter_buffer_delay_ms"] == pytest.approx(12_500.0)
    rtt = rows(found, "webrtc-stats.remote-inbound-rtp")[0]
    assert rtt["round_trip_time_ms"] == pytest.approx(42.0)
    # The collector's ISO time and epoch ms; the report's float ms, as UTC microseconds.
    times = pa.array([r["event_ts"] for r in audio]).cast(pa.int64()).to_pylist()
    assert times == [1_796_047_205_250_123, 1_796_047_210_250_456]
    assert sum(t.num_rows for t in found.tables.values()) == 2 * 13


def test_webrtc_secrets_never_become_columns():
    found = adapt("webrtc-stats", P.webrtc_snapshots())
    text = all_text(found)
    for secret in (P.ICE_UFRAG, P.CERT_FINGERPRINT, P.BASE64_CERT):
        assert secret not in text
    columns = {c for t in found.tables.values() for c in t.column_names}
    assert not {"fingerprint", "base64_certificate", "username_fragment"} & columns


def test_webrtc_derived_and_address_fields_carry_their_categories():
    kinds = {f.name: f.category for f in CONTRACT.event_types["webrtc-stats.inbound-rtp"].fields}
    assert kinds["audio_level"] == kinds["total_audio_energy"] == "derived"
    assert kinds["qp_sum"] == "derived"
    candidate = {
        f.name: f.category for f in CONTRACT.event_types["webrtc-stats.local-candidate"].fields
    }
    assert candidate["ip_address"] == candidate["related_ip_address"] == "identifier"
    assert CONFIG.deidentify.field_rules["ip_address"] == "drop"
    assert CONFIG.deidentify.field_rules["related_ip_address"] == "drop"


def test_zoom_qos_unit_strings_and_drift():
    found = adapt("zoom-qos", P.zoom_qos_pages())
    assert found.rejects.num_rows == 0, found.rejects.to_pylist()
    audio = rows(found, "zoom-qos.audio_input")[0]
    assert (audio["bitrate_bps"], audio["latency_ms"], audio["jitter_ms"]) == (23_000, 126, 3)
    assert audio["avg_loss_pct"] == pytest.approx(0.3)
    silent = rows(found, "zoom-qos.audio_output")[0]
    assert silent["bitrate_bps"] is None and silent["latency_ms"] is None
    video = rows(found, "zoom-qos.video_input")[0]
    assert (video["resolution_width"], video["resolution_height"]) == (1280, 720)
    assert video["bitrate_bps"] == pytest.approx(1_200_000)
    assert video["frame_rate_fps"] == 25
    share = rows(found, "zoom-qos.as_output")[0]
    assert (share["resolution_width"], share["bitrate_bps"]) == (0, 310_000)
    cpu = rows(found, "zoom-qos.cpu_usage")[0]
    assert cpu["system_max_cpu_pct"] == 64
    # The meeting id: a string on one page, a number on the next; the same id either way.
    people = rows(found, "zoom-qos.participant")
    assert {p["meeting_id"] for p in people} == {"85746065432"}


def test_zoom_webhook_kinds_ids_and_secrets():
    found = adapt("zoom-webhook", P.zoom_webhooks())
    types = set(found.tables)
    assert {
        "zoom-webhook.meeting.started",
        "zoom-webhook.meeting.participant_joined",
        "zoom-webhook.meeting.participant_left",
        "zoom-webhook.meeting.chat_message_sent",
        "zoom-webhook.recording.completed",
        "zoom-webhook.recording.file",
        "zoom-webhook.recording.participant_audio_file",
        "zoom-webhook.meeting.summary_completed",
        "zoom-webhook.meeting.participant_feedback",
    } <= types
    # `id` as a string in one body and a number in the next: one meeting id.
    meetings = {r["meeting_id"] for t in found.tables.values() for r in t.to_pylist()}
    assert meetings == {str(P.MEETING_NUMBER)}
    joined = rows(found, "zoom-webhook.meeting.participant_joined")[0]
    assert joined["email"] is None  # "" for a guest is no identifier
    assert joined["participant_id"] == P.GUEST_UUID
    files = rows(found, "zoom-webhook.recording.file")
    assert [f["file_type"] for f in files] == ["MP4", "CC"]
    assert files[1]["file_size"] is None  # CC files carry no size
    text = all_text(found)
    for secret in (P.DOWNLOAD_TOKEN, P.RECORDING_PASSWORD, P.PLAY_PASSCODE):
        assert secret not in text


def test_zoom_content_records_and_their_subjects():
    chat = CONTRACT.event_types["zoom-webhook.meeting.chat_message_sent"]
    assert chat.record_class == "customer_content" and chat.subjects == {
        "field": "sender_session_id"
    }
    summary = CONTRACT.event_types["zoom-webhook.meeting.summary_completed"]
    assert summary.record_class == "customer_content"
    categories = {f.name: f.category for f in summary.fields}
    assert categories["summary_overview"] == categories["next_steps"] == "content"
    started = {
        f.name: f.category for f in CONTRACT.event_types["zoom-webhook.meeting.started"].fields
    }
    assert started["topic"] == "content"  # "<Host Name>'s Zoom Meeting"


def test_an_undeclared_field_is_quarantined_and_its_value_withheld():
    found = adapt("zoom-webhook", P.zoom_webhooks())
    drift = [r for r in found.rejects.to_pylist() if r["reason"] == "undeclared_field"]
    assert len(drift) == 1
    assert drift[0]["detail"] == "$.payload.object.ai_companion_notes_token"
    assert drift[0]["event_type"] == "zoom-webhook.meeting.started"
    assert b"ai_companion_notes_token" in drift[0]["raw"]
    assert P.DOWNLOAD_TOKEN.encode() not in drift[0]["raw"]


def test_an_undeclared_webrtc_field_quarantines_only_its_report():
    snapshots = P.webrtc_snapshots()[:1]
    snapshots[0]["stats"][1]["voiceActivityFlag"] = True
    found = adapt("webrtc-stats", snapshots)
    assert found.rejects["reason"].to_pylist() == ["undeclared_field"]
    assert found.rejects["detail"].to_pylist() == ["$.stat.voiceActivityFlag"]
    assert sum(t.num_rows for t in found.tables.values()) == 12


def test_an_unknown_stats_type_is_quarantined():
    snapshots = P.webrtc_snapshots()[:1]
    snapshots[0]["stats"].append({"id": "X", "type": "track", "timestamp": 1.0})
    found = adapt("webrtc-stats", snapshots)
    reject = found.rejects.to_pylist()[0]
    assert (reject["reason"], reject["event_type"]) == ("unknown_event_type", "webrtc-stats.track")


def test_livekit_maps_and_relayed_content():
    found = adapt("livekit-webhook", P.livekit_events())
    assert found.rejects.num_rows == 0, found.rejects.to_pylist()
    joined = rows(found, "livekit-webhook.participant_joined")[0]
    assert json.loads(joined["participant_attributes"]) == {"household": P.LK_ATTR}
    fields = {
        f.name: f.category
        for f in CONTRACT.event_types["livekit-webhook.participant_joined"].fields
    }
    assert fields["participant_metadata"] == fields["participant_attributes"] == "content"
    assert fields["participant_tracks"] == "identifier"
    segment = rows(found, "livekit-webhook.transcription_received")[0]
    assert segment["participant_id"] == "PA_Xz9GQhGh3kTx"
    assert segment["account_id"] == "livekit-project"
    assert P.TURN_PASSWORD not in all_text(found)


def test_auto_picks_a_shape_per_record_and_quarantines_the_rest():
    contract_line = json.loads(
        (P.Path(__file__).resolve().parents[3] / "shared/spec/examples-v1.jsonl")
        .read_text()
        .splitlines()[0]
    )
    mixed = [
        P.webrtc_snapshots()[0],
        P.zoom_qos_pages()[0],
        P.zoom_webhooks()[0],
        P.livekit_events()[0],
        contract_line,
        {"hello": "world", "password": "hunter2"},
    ]
    found = adapt("auto", mixed)
    sources = {name.split(".", 1)[0] for name in found.tables}
    assert {"webrtc-stats", "zoom-qos", "zoom-webhook", "livekit-webhook"} <= sources
    assert contract_line["event_type"] in found.tables
    reject = found.rejects.to_pylist()
    assert [r["reason"] for r in reject] == ["unknown_source_shape"]
    assert b"hunter2" not in reject[0]["raw"]


def test_one_source_refuses_another_source_s_shape():
    found = adapt("zoom-webhook", [P.webrtc_snapshots()[0]])
    assert found.rejects["reason"].to_pylist() == ["unknown_source_shape"]
    assert not found.tables


def test_a_redelivered_body_gets_the_same_event_ids():
    body = P.zoom_webhooks()[0]
    found = adapt("zoom-webhook", [body, copy.deepcopy(body)])
    ids = rows(found, "zoom-webhook.meeting.started")
    assert ids[0]["event_id"] == ids[1]["event_id"]


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [("audio", "audio", None), ("video", "video", None), ("audio ", "audio ", "bad_value")],
    ids=["audio", "video", "outside-the-enum"],
)
def test_a_declared_enum_is_a_closed_vocabulary(kind, value, reason):
    """RTCStats `kind` is declared with an enum: its values are kept, any other quarantines."""
    snapshot = copy.deepcopy(P.webrtc_snapshots()[0])
    stat = next(s for s in snapshot["stats"] if s["type"] == "inbound-rtp")
    stat["kind"] = value
    snapshot["stats"] = [stat]
    found = adapt("webrtc-stats", [snapshot])
    if reason is None:
        assert [r["kind"] for r in rows(found, "webrtc-stats.inbound-rtp")] == [kind]
    else:
        assert found.rejects["reason"].to_pylist() == [reason]
        assert found.rejects["detail"].to_pylist() == ["$.stat.kind"]


def test_enum_vocabularies_reach_the_string_rules():
    from pipelines.rules.strings import closed_vocabularies, published_vocabularies

    closed = closed_vocabularies(CONFIG.schemas)
    assert closed["webrtc-stats.inbound-rtp.kind"] == {"audio", "video"}
    assert "MP4" in closed["zoom-webhook.recording.file.file_type"]
    published = published_vocabularies(CONFIG.schemas)
    assert published["zoom-qos.audio_input.record_class"] == {"service_generated"}
    assert "livekit-webhook.chat_received" in published["webrtc-stats.codec.event_type"]
