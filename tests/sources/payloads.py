"""Hand-written vendor payloads, shaped after the facts in shared/sources/vendor-payloads.md.

Every hard case of that file appears here at least once; the strings planted below (names,
tokens, addresses, chat text) must never reach a training file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HOST_NAME = "Rosalind Okonkwo-Varga"
GUEST_NAME = "Teodor Blumqvist"
GUEST_EMAIL = "teodor.blumqvist@example.org"
DOWNLOAD_TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LWRvd25sb2FkLXRva2Vu.q7w3-Xs9Lk"
RECORDING_PASSWORD = "Xq7!pass-4411"
PLAY_PASSCODE = "pl4y-Passcode-9"
CHAT_TEXT = "the vendor contract renewal closes on Friday, keep it quiet"
SUMMARY_TEXT = "Rosalind agreed to move the launch; Teodor will brief the board"
NEXT_STEP = "Teodor sends the revised budget by Monday"
FEEDBACK_COMMENT = "audio kept cutting out when Rosalind shared her screen"
HOST_IP = "192.168.17.42"
PUBLIC_IP = "203.0.113.77"
ICE_UFRAG = "Zk9q"
CERT_FINGERPRINT = "3A:9F:11:C2:7B:0E:55:AA:91:4D:2C:6E:08:F3:B7:19"
BASE64_CERT = "MIIBFjCBvaADAgECAgkAw2x5secretcertificatebody"
TRACK_LABEL = "Rosalind's MacBook Pro Microphone"
LK_METADATA = '{"crm_contact":"teodor.blumqvist@example.org","tier":"gold"}'
LK_ATTR = "Blumqvist household"
LK_TRANSCRIPT = "I think the merger numbers are wrong in slide four"
LK_CHAT = "can someone resend the dial-in for the board call"
TURN_PASSWORD = "turn-Pa55-secret-77"
PC_NAME = "Teodor's Phone"
MAC_ADDR = "3c:22:fb:91:0a:7e"

# Values that must appear in no training file.
NEVER_IN_TRAINING = (
    HOST_NAME,
    GUEST_NAME,
    GUEST_EMAIL,
    DOWNLOAD_TOKEN,
    RECORDING_PASSWORD,
    PLAY_PASSCODE,
    CHAT_TEXT,
    SUMMARY_TEXT,
    NEXT_STEP,
    FEEDBACK_COMMENT,
    HOST_IP,
    PUBLIC_IP,
    ICE_UFRAG,
    CERT_FINGERPRINT,
    BASE64_CERT,
    TRACK_LABEL,
    LK_METADATA,
    LK_ATTR,
    LK_TRANSCRIPT,
    LK_CHAT,
    TURN_PASSWORD,
    PC_NAME,
    MAC_ADDR,
)
# Secrets appear in no output table at all (quarantine and audit included).
SECRETS = (
    DOWNLOAD_TOKEN,
    RECORDING_PASSWORD,
    PLAY_PASSCODE,
    ICE_UFRAG,
    CERT_FINGERPRINT,
    BASE64_CERT,
    TURN_PASSWORD,
)


def webrtc_snapshots() -> list[dict[str, Any]]:
    """Two collector snapshots of one participant, as getStats() gives them."""

    def snapshot(collected_at: Any, t: float, packets: int) -> dict[str, Any]:
        return {
            "collected_at": collected_at,
            "account_id": "acct-webrtc-1",
            "meeting_id": "room-7781",
            "participant_id": "p-teodor",
            "stats": [
                {
                    "id": "COT01_111_minptime=10;useinbandfec=1",
                    "type": "codec",
                    "timestamp": t,
                    "payloadType": 111,
                    "transportId": "T01",
                    "mimeType": "audio/opus",
                    "clockRate": 48000,
                    "channels": 2,
                    "sdpFmtpLine": "minptime=10;useinbandfec=1",
                },
                {
                    "id": "IT01A1234",
                    "type": "inbound-rtp",
                    "timestamp": t,
                    "ssrc": 1234,
                    "kind": "audio",
                    "transportId": "T01",
                    "codecId": "COT01_111",
                    "mid": "0",
                    "packetsReceived": packets,
                    "packetsLost": 3,
                    "bytesReceived": packets * 120,
                    "jitter": 0.004,
                    "jitterBufferDelay": 12.5,
                    "jitterBufferEmittedCount": 9600,
                    "audioLevel": 0.21,
                    "totalAudioEnergy": 0.73,
                    "silentConcealedSamples": 40,
                    "totalSamplesReceived": 96000,
                    "concealedSamples": 120,
                    "trackIdentifier": "7f1c0b5e-2a44-4c1e-9b9e-15a1d2f0c0aa",
                    "playoutId": "AP",
                    "lastPacketReceivedTimestamp": t - 5,
                },
                {
                    "id": "IT01V5678",
                    "type": "inbound-rtp",
                    "timestamp": t,
                    "ssrc": 5678,
                    "kind": "video",
                    "transportId": "T01",
                    "codecId": "CIT01_96",
                    "packetsReceived": packets * 3,
                    "packetsLost": 0,
                    "jitter": 0.011,
                    "framesDecoded": 240,
                    "framesDropped": 2,
                    "frameWidth": 1280,
                    "frameHeight": 720,
                    "framesPerSecond": 29.97,
                    "freezeCount": 0,
                    "qpSum": 5120,
                    "decoderImplementation": "libvpx",
                    "powerEfficientDecoder": False,
                },
                {
                    "id": "OT01V9",
                    "type": "outbound-rtp",
                    "timestamp": t,
                    "ssrc": 9,
                    "kind": "video",
                    "packetsSent": packets,
                    "bytesSent": packets * 900,
                    "targetBitrate": 1_500_000,
                    "framesEncoded": 240,
                    "hugeFramesSent": 0,
                    "qualityLimitationReason": "bandwidth",
                    "qualityLimitationDurations": {
                        "none": 1.2,
                        "bandwidth": 3.4,
                        "cpu": 0,
                        "other": 0,
                    },
                    "qpSum": 4800,
                    "rid": "h",
                    "scalabilityMode": "L1T3",
                },
                {
                    "id": "RI01A",
                    "type": "remote-inbound-rtp",
                    "timestamp": t,
                    "ssrc": 1234,
                    "kind": "audio",
                    "roundTripTime": 0.042,
                    "totalRoundTripTime": 1.26,
                    "roundTripTimeMeasurements": 30,
                    "fractionLost": 0.01,
                    "packetsLost": 2,
                    "jitter": 0.003,
                    "localId": "OT01A",
                },
                {
                    "id": "SA1",
                    "type": "media-source",
                    "timestamp": t,
                    "kind": "audio",
                    "trackIdentifier": "mic-track",
                    "audioLevel": 0.33,
                    "totalAudioEnergy": 1.9,
                    "totalSamplesDuration": 12.1,
                    "echoReturnLoss": -30.0,
                },
                {
                    "id": "D1",
                    "type": "data-channel",
                    "timestamp": t,
                    "label": "chat",
                    "protocol": "",
                    "dataChannelIdentifier": 1,
                    "state": "open",
                    "messagesSent": 4,
                    "messagesReceived": 3,
                    "bytesSent": 210,
                    "bytesReceived": 188,
                },
                {
                    "id": "T01",
                    "type": "transport",
                    "timestamp": t,
                    "bytesSent": 99000,
                    "bytesReceived": 120000,
                    "dtlsState": "connected",
                    "iceState": "connected",
                    "iceRole": "controlling",
                    "iceLocalUsernameFragment": ICE_UFRAG,
                    "selectedCandidatePairId": "CP1",
                    "tlsVersion": "FEFD",
                    "dtlsCipher": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                    "srtpCipher": "AES_CM_128_HMAC_SHA1_80",
                    "localCertificateId": "CF1",
                },
                {
                    "id": "CP1",
                    "type": "candidate-pair",
                    "timestamp": t,
                    "transportId": "T01",
                    "localCandidateId": "I1",
                    "remoteCandidateId": "I2",
                    "state": "succeeded",
                    "nominated": True,
                    "bytesSent": 99000,
                    "bytesReceived": 120000,
                    "currentRoundTripTime": 0.041,
                    "availableOutgoingBitrate": 2_400_000,
                },
                {
                    "id": "I1",
                    "type": "local-candidate",
                    "timestamp": t,
                    "transportId": "T01",
                    "address": HOST_IP,
                    "port": 53211,
                    "protocol": "udp",
                    "candidateType": "host",
                    "priority": 2122260223,
                    "usernameFragment": ICE_UFRAG,
                    "networkType": "wifi",
                },
                {
                    "id": "I2",
                    "type": "remote-candidate",
                    "timestamp": t,
                    "transportId": "T01",
                    "address": PUBLIC_IP,
                    "port": 3478,
                    "protocol": "udp",
                    "candidateType": "srflx",
                    "relatedAddress": HOST_IP,
                    "relatedPort": 53211,
                    "url": "stun:stun.example.net:3478",
                },
                {
                    "id": "CF1",
                    "type": "certificate",
                    "timestamp": t,
                    "fingerprint": CERT_FINGERPRINT,
                    "fingerprintAlgorithm": "sha-256",
                    "base64Certificate": BASE64_CERT,
                },
                {
                    "id": "P",
                    "type": "peer-connection",
                    "timestamp": t,
                    "dataChannelsOpened": 1,
                    "dataChannelsClosed": 0,
                },
            ],
        }

    return [
        snapshot("2026-11-30T14:00:05.250Z", 1796047205250.123, 500),
        # The collector's clock as epoch milliseconds this time: both forms are read.
        snapshot(1796047210250, 1796047210250.456, 760),
    ]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def zoom_qos_pages() -> list[dict[str, Any]]:
    """A participants/qos page and a participants page of one meeting, collector-stamped."""
    qos = {
        "account_id": "acct-zoom-1",
        "meeting_id": "85746065432",
        "page_size": 30,
        "total_records": 2,
        "next_page_token": "Tva2CuIdTgsv8wAnhyAdU3m06Y2HuLQtlh3",
        "participants": [
            {
                "id": "d52f19c548b88490b1a9c6d5fd2e5b8e",
                "user_id": "16778240",
                "user_name": GUEST_NAME,
                "device": "Android",
                "client": "Zoom",
                "version": "5.16.2",
                "ip_address": PUBLIC_IP,
                "internal_ip_addresses": [HOST_IP],
                "location": "San Jose (US)",
                "domain": "blumqvist-home.local",
                "harddisk_id": "WD-WCC4N0XP7K21",
                "mac_addr": MAC_ADDR,
                "pc_name": PC_NAME,
                "join_time": "2026-11-30T14:00:00Z",
                "leave_time": "2026-11-30T14:40:00Z",
                "user_qos": [
                    {
                        "date_time": "2026-11-30T14:01:00Z",
                        "audio_input": {
                            "bitrate": "23 kbps",
                            "latency": "126 ms",
                            "jitter": "3 ms",
                            "avg_loss": "0.3%",
                            "max_loss": "1.2%",
                        },
                        "audio_output": {
                            "bitrate": "",
                            "latency": "-",
                            "jitter": "",
                            "avg_loss": "",
                            "max_loss": "",
                        },
                        "video_input": {
                            "bitrate": "1.2 mbps",
                            "latency": "88 ms",
                            "jitter": "6 ms",
                            "avg_loss": "0%",
                            "max_loss": "0.5%",
                            "resolution": "1280*720",
                            "frame_rate": "25 fps",
                        },
                        "as_output": {
                            "bitrate": "310",
                            "latency": "60",
                            "jitter": "2",
                            "avg_loss": "0",
                            "max_loss": "0",
                            "resolution": "0*0",
                            "frame_rate": "15",
                        },
                        "cpu_usage": {
                            "zoom_min_cpu_usage": "2%",
                            "zoom_avg_cpu_usage": "12%",
                            "zoom_max_cpu_usage": "31%",
                            "system_max_cpu_usage": "64%",
                        },
                        "wifi_rssi": {
                            "max_rssi": -48,
                            "avg_rssi": -55,
                            "min_rssi": -61,
                            "rssi_unit": "dBm",
                        },
                    }
                ],
            }
        ],
    }
    participants = {
        "account_id": "acct-zoom-1",
        "meeting_id": 85746065432,  # a number on this page, a string on the other
        "page_count": 1,
        "page_size": 30,
        "total_records": 1,
        "participants": [
            {
                "id": "d52f19c548b88490b1a9c6d5fd2e5b8e",
                "user_name": GUEST_NAME,
                "email": GUEST_EMAIL,
                "device": "Mac",
                "join_time": "2026-11-30T14:00:00Z",
                "leave_time": "2026-11-30T14:40:00Z",
                "audio_quality": "good",
                "video_quality": "fair",
                "screen_share_quality": "",
                "network_type": "Wifi",
                "connection_type": "UDP",
                "data_center": "SC",
                "share_application": False,
                "recording": False,
                "role": "attendee",
                "os": "Mac",
                "os_version": "14.1",
                "camera": "FaceTime HD Camera",
                "microphone": TRACK_LABEL,
                "leave_reason": f"{GUEST_NAME} left the meeting. Reason : Host ended the meeting.",
                "customer_key": "crm-991-" + GUEST_NAME,
            }
        ],
    }
    return [qos, participants]


ZOOM_ACCOUNT = "AAAAAbbbbbCCCCC12345"
MEETING_NUMBER = 85746065432
MEETING_UUID = "4444AAAiAAAAAiAiAiiAii=="
HOST_ID = "z8yCxjabcdEFGH1234567"
GUEST_UUID = "Gk7QWdTeQvCxN3mBJ8Hs1A=="
HOST_UUID = "Rs8TvQw2SxOxx4Y0mZ9bCg=="


def _meeting(**more: Any) -> dict[str, Any]:
    return {
        "id": str(MEETING_NUMBER),  # a string here, a number in chat events
        "uuid": MEETING_UUID,
        "host_id": HOST_ID,
        "topic": f"{HOST_NAME}'s Zoom Meeting",
        "type": 2,
        "start_time": "2026-11-30T14:00:00Z",
        "timezone": "Europe/Berlin",
        "duration": 60,
        **more,
    }


def zoom_webhooks() -> list[dict[str, Any]]:
    """Webhook bodies of one meeting, every hard case of the facts file among them."""
    joined = {
        "event": "meeting.participant_joined",
        "event_ts": 1796047200123,
        "payload": {
            "account_id": ZOOM_ACCOUNT,
            "object": _meeting(
                participant={
                    "user_id": "16778240",
                    "user_name": GUEST_EMAIL,  # a guest typed their email as their name
                    "id": "",
                    "participant_uuid": GUEST_UUID,
                    "email": "",
                    "join_time": "2026-11-30T14:00:00Z",
                    "registrant_id": "",
                    "customer_key": f"crm:{GUEST_NAME}",
                    "phone_number": "+4915112345678",
                }
            ),
        },
    }
    left = {
        "event": "meeting.participant_left",
        "event_ts": 1796049600456,
        "payload": {
            "account_id": ZOOM_ACCOUNT,
            "object": _meeting(
                id=MEETING_NUMBER,  # the same meeting, its id a number this time
                participant={
                    "user_id": "16778240",
                    "user_name": GUEST_NAME,
                    "participant_uuid": GUEST_UUID,
                    "leave_time": "2026-11-30T14:40:00Z",
                    "leave_reason": f"{GUEST_NAME} left the meeting. Reason : Host ended the "
                    "meeting.",
                },
            ),
        },
    }
    started = {
        "event": "meeting.started",
        "event_ts": 1796047199000,
        "payload": {"account_id": ZOOM_ACCOUNT, "object": _meeting()},
    }
    chat = {
        "event": "meeting.chat_message_sent",
        "event_ts": 1796047500000,
        "payload": {
            "account_id": ZOOM_ACCOUNT,
            "operator": "rosalind@example.com",
            "object": {
                "id": MEETING_NUMBER,
                "uuid": MEETING_UUID,
                "chat_message": {
                    "date_time": "2026-11-30T14:05:00Z",
                    "sender_session_id": HOST_UUID,
                    "sender_name": HOST_NAME,
                    "sender_email": "rosalind@example.com",
                    "sender_type": "host",
                    "recipient_session_id": "",
                    "recipient_name": "",
                    "recipient_email": "",
                    "recipient_type": "everyone",
                    "message_id": "msg-5aa1",
                    "message_content": CHAT_TEXT,
                    "file_ids": [],
                },
            },
        },
    }
    recording = {
        "event": "recording.completed",
        "event_ts": 1796051000000,
        "download_token": DOWNLOAD_TOKEN,
        "payload": {
            "account_id": ZOOM_ACCOUNT,
            "object": {
                **_meeting(),
                "host_email": "rosalind@example.com",
                "account_id": ZOOM_ACCOUNT,
                "password": RECORDING_PASSWORD,
                "recording_play_passcode": PLAY_PASSCODE,
                "share_url": f"https://example.zoom.us/rec/share/abc?pwd={RECORDING_PASSWORD}",
                "total_size": 529758,
                "recording_count": 2,
                "recording_files": [
                    {
                        "id": "ed6c2f27-2ae7-42f4-b3d0-835b493e4fa8",
                        "meeting_id": MEETING_UUID,
                        "recording_start": "2026-11-30T14:00:10Z",
                        "recording_end": "2026-11-30T14:40:00Z",
                        "file_type": "MP4",
                        "file_size": 508170,
                        "file_extension": "MP4",
                        "file_name": f"{HOST_NAME} board prep",
                        "play_url": "https://example.zoom.us/rec/play/xyz",
                        "download_url": "https://example.zoom.us/rec/download/xyz?access_token="
                        + DOWNLOAD_TOKEN,
                        "status": "completed",
                        "recording_type": "shared_screen_with_speaker_view",
                    },
                    {  # a CC file: no id, status, size or play_url
                        "meeting_id": MEETING_UUID,
                        "recording_start": "2026-11-30T14:00:10Z",
                        "recording_end": "2026-11-30T14:40:00Z",
                        "file_type": "CC",
                        "file_extension": "VTT",
                        "download_url": "https://example.zoom.us/rec/download/cc",
                    },
                ],
                "participant_audio_files": [
                    {
                        "id": "a1b2",
                        "recording_start": "2026-11-30T14:00:10Z",
                        "recording_end": "2026-11-30T14:40:00Z",
                        "file_type": "M4A",
                        "file_name": f"Audio only - {GUEST_NAME}",
                        "file_size": 21000,
                        "download_url": "https://example.zoom.us/rec/download/a1b2",
                        "status": "completed",
                    }
                ],
            },
        },
    }
    summary = {
        "event": "meeting.summary_completed",
        "event_ts": 1796051100000,
        "payload": {
            "account_id": ZOOM_ACCOUNT,
            "operator": "rosalind@example.com",
            "object": {
                "meeting_host_id": HOST_ID,
                "meeting_host_email": "rosalind@example.com",
                "meeting_uuid": MEETING_UUID,
                "meeting_id": MEETING_NUMBER,
                "meeting_topic": f"{HOST_NAME}'s Zoom Meeting",
                "meeting_start_time": "2026-11-30T14:00:00Z",
                "meeting_end_time": "2026-11-30T14:40:00Z",
                "summary_start_time": "2026-11-30T14:00:00Z",
                "summary_end_time": "2026-11-30T14:40:00Z",
                "summary_created_time": "2026-11-30T14:41:00Z",
                "summary_last_modified_time": "2026-11-30T14:41:00Z",
                "summary_title": "Board prep",
                "summary_overview": SUMMARY_TEXT,
                "summary_details": [{"label": "Launch", "summary": SUMMARY_TEXT}],
                "next_steps": [NEXT_STEP],
            },
        },
    }
    feedback = {
        "event": "meeting.participant_feedback",
        "event_ts": 1796049700000,
        "payload": {
            "account_id": ZOOM_ACCOUNT,
            "object": _meeting(
                participant={
                    "participant_uuid": GUEST_UUID,
                    "user_name": GUEST_NAME,
                    "feedback": {
                        "satisfied": False,
                        "feedback_details": [{"id": "1", "name": "Audio quality"}],
                        "comments": FEEDBACK_COMMENT,
                    },
                }
            ),
        },
    }
    drifted = {  # a field no schema declares yet: held for review, not published
        "event": "meeting.started",
        "event_ts": 1796047199500,
        "payload": {
            "account_id": ZOOM_ACCOUNT,
            "object": _meeting(ai_companion_notes_token=DOWNLOAD_TOKEN),
        },
    }
    return [started, joined, left, chat, recording, summary, feedback, drifted]


LK_ROOM_SID = "RM_hycBMAjmt6Ub"


def livekit_events() -> list[dict[str, Any]]:
    """WebhookEvents of one room (protobuf JSON: int64 as strings), and relayed content."""
    participant = {
        "sid": "PA_Xz9GQhGh3kTx",
        "identity": "teodor-b",
        "name": GUEST_NAME,
        "state": "ACTIVE",
        "metadata": LK_METADATA,
        "attributes": {"household": LK_ATTR},
        "joined_at": "1796047201",
        "region": "eu-central",
        "kind": "STANDARD",
        "tracks": [
            {"sid": "TR_AMkX", "type": "AUDIO", "name": TRACK_LABEL, "source": "MICROPHONE"}
        ],
    }
    room = {
        "sid": LK_ROOM_SID,
        "name": f"{HOST_NAME} 1:1",
        "empty_timeout": 300,
        "max_participants": 10,
        "creation_time": "1796047200",
        "turn_password": TURN_PASSWORD,
        "metadata": LK_METADATA,
        "num_participants": 1,
    }
    return [
        {"event": "room_started", "room": room, "id": "EV_3XQjM8Ee", "created_at": "1796047200"},
        {
            "event": "participant_joined",
            "room": room,
            "participant": participant,
            "id": "EV_7YtxK2aa",
            "created_at": 1796047201,
        },
        {
            "event": "track_published",
            "room": room,
            "participant": participant,
            "track": {
                "sid": "TR_AMkX",
                "type": "AUDIO",
                "name": TRACK_LABEL,
                "muted": False,
                "source": "MICROPHONE",
                "mime_type": "audio/red",
            },
            "id": "EV_9aZpq1bb",
            "created_at": "1796047202",
        },
        {
            "event": "transcription_received",
            "room": room,
            "participant": participant,
            "segment": {
                "id": "SG_1",
                "text": LK_TRANSCRIPT,
                "start_time": "1000",
                "end_time": "4200",
                "final": True,
                "language": "en",
            },
            "id": "EV_tr1",
            "created_at": "1796047210",
        },
        {
            "event": "chat_received",
            "room": room,
            "participant": participant,
            "chat_message": {"id": "CM_1", "timestamp": "1796047215000", "message": LK_CHAT},
            "id": "EV_ch1",
            "created_at": "1796047215",
        },
    ]
