"""W3C `getStats()` snapshots in the collector's line format, one per line.

A line is `{"collected_at", "account_id", "meeting_id", "participant_id", "stats": [...]}`
with the RTCStats dictionaries as a Chromium-style browser returns them (facts file,
section 3): RTP counters, codecs, the transport and candidate pair, and the hard cases:
`audioLevel` and `totalAudioEnergy` (derived from the audio), local and remote ICE
candidates with IP addresses (or mDNS names when the browser hides them), ICE username
fragments, DTLS certificates (`fingerprint`, `base64Certificate`) and data-channel labels.
`collected_at` comes as ISO, epoch seconds or epoch ms; `timestamp` is float ms.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from pipelines.generate.model import SECOND, Attendee
from pipelines.generate.vendor import (
    Corpus,
    Line,
    VendorMeeting,
    VendorSource,
    VendorWorld,
    broken_line,
    plant_on,
)
from pipelines.generate.vocab import pick

# Derived from the media itself or gated against fingerprinting (W3C Security and Privacy).
WITHHELD = (
    "audioLevel",
    "totalAudioEnergy",
    "silentConcealedSamples",
    "qpSum",
    "psnrSum",
    "echoReturnLoss",
    "echoReturnLossEnhancement",
    "encoderImplementation",
    "decoderImplementation",
    "powerEfficientEncoder",
    "powerEfficientDecoder",
    "address",
    "relatedAddress",
    "usernameFragment",
    "iceLocalUsernameFragment",
    "fingerprint",
    "base64Certificate",
)
_TURN = ("turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:443?transport=tcp")
_STUN = "stun:stun.example.com:19302"
_LABELS = ("chat", "chat", "reactions", "file-transfer", "whiteboard-sync")
# Fields a newer browser sends that no schema has declared yet.
_NEW_FIELDS = (
    ("inbound-rtp", "totalCorruptionProbability", 0.0),
    ("outbound-rtp", "encoderFallbackCount", 1),
    ("transport", "iceLocalUsernameFragmentHash", "a1b2"),
)


def _ufrag(world: VendorWorld) -> str:
    return base64.b64encode(world.rng.getrandbits(24).to_bytes(3, "big")).decode()


def _certificate(world: VendorWorld) -> tuple[str, str]:
    bits = world.rng.getrandbits
    fingerprint = ":".join(f"{bits(8):02X}" for _ in range(32))
    der = b"\x30\x82\x01\x7d" + bits(8 * 96).to_bytes(96, "big")
    return fingerprint, base64.b64encode(der).decode()


class _Session:
    """One participant's peer connection: ids that stay put, counters that grow."""

    def __init__(self, world: VendorWorld, line_of: Attendee, hide_local_ips: bool):
        r, bits = world.r, world.rng.getrandbits
        self.world = world
        self.attendee = line_of
        self.audio_ssrc, self.video_ssrc = bits(32), bits(32)
        self.remote_audio_ssrc, self.remote_video_ssrc = bits(32), bits(32)
        self.local_track = f"{bits(128):032x}"
        self.remote_track = f"{bits(128):032x}"
        self.ufrag_local, self.ufrag_remote = _ufrag(world), _ufrag(world)
        self.local_cert = _certificate(world)
        self.remote_cert = _certificate(world)
        self.relay = r() < 0.2
        self.hide = hide_local_ips
        self.label = pick(r, _LABELS)
        self.host_ip = f"192.168.{int(r() * 255)}.{2 + int(r() * 250)}"
        self.mdns = (
            f"{bits(32):08x}-{bits(16):04x}-4{bits(12):03x}-a{bits(12):03x}-{bits(48):012x}.local"
        )
        self.public_ip = line_of.user.ip
        self.remote_ip = f"198.18.{int(r() * 255)}.{2 + int(r() * 250)}"
        self.psnr = r() < 0.3  # reported only where the browser enables it
        self.width, self.height, self.fps = pick(
            r, ((1280, 720, 30), (640, 360, 30), (960, 540, 24))
        )

    def stats(self, ms: int, elapsed_s: float) -> list[dict[str, Any]]:
        """Every report of one `getStats()` call, `elapsed_s` seconds into the call."""
        r = self.world.r
        ts = self.world.epoch_ms(ms) + int(r() * 1000) / 1000
        t = max(elapsed_s, 1.0)
        pkts_a, pkts_v = int(50 * t), int(90 * t * (0.8 + 0.4 * r()))
        lost = int(pkts_a * r() ** 3 * 0.03)
        local_address = self.mdns if self.hide else self.host_ip
        local_kind = "relay" if self.relay else "srflx" if r() < 0.5 else "host"
        local_cand: dict[str, Any] = {
            "id": "I" + self.ufrag_local.replace("+", "x").replace("/", "y"),
            "type": "local-candidate",
            "timestamp": ts,
            "transportId": "T01",
            "isRemote": False,
            "networkType": pick(r, ("ethernet", "wifi")),
            "ip": local_address if local_kind == "host" else self.public_ip,
            "address": local_address if local_kind == "host" else self.public_ip,
            "port": 50_000 + int(r() * 15_000),
            "protocol": "udp",
            "candidateType": local_kind,
            "priority": 2_122_260_223 if local_kind == "host" else 1_686_052_607,
            "foundation": str(int(r() * 4_000_000_000)),
            "usernameFragment": self.ufrag_local,
        }
        if local_kind == "host" and r() < 0.3:  # ICE over TCP
            local_cand.update({"protocol": "tcp", "tcpType": "passive", "port": 9})
        if local_kind != "host":
            local_cand["relatedAddress"] = local_address
            local_cand["relatedPort"] = 50_000 + int(r() * 15_000)
            local_cand["url"] = pick(r, _TURN) if local_kind == "relay" else _STUN
        remote_cand: dict[str, Any] = {
            "id": "I" + self.ufrag_remote.replace("+", "x").replace("/", "y"),
            "type": "remote-candidate",
            "timestamp": ts,
            "transportId": "T01",
            "isRemote": True,
            "ip": self.remote_ip,
            "address": self.remote_ip,
            "port": 3478 + int(r() * 10),
            "protocol": "udp",
            "candidateType": "host",
            "priority": 2_122_194_687,
            "foundation": str(int(r() * 4_000_000_000)),
            "usernameFragment": self.ufrag_remote,
        }
        pair_id = f"CP{local_cand['id'][1:5]}_{remote_cand['id'][1:5]}"
        rtt = int(10 + r() ** 2 * 200) / 1000
        energy = int(t * (0.001 + r() * 0.05) * 1e6) / 1e6
        audio_codec = "CIT01_111_minptime=10;useinbandfec=1"
        video_codec = "CIT01_96"
        reports: list[dict[str, Any]] = [
            {
                "id": "P",
                "type": "peer-connection",
                "timestamp": ts,
                "dataChannelsOpened": 1,
                "dataChannelsClosed": 0,
            },
            {
                "id": "T01",
                "type": "transport",
                "timestamp": ts,
                "bytesSent": pkts_a * 120 + pkts_v * 1100,
                "bytesReceived": pkts_a * 118 + pkts_v * 1050,
                "packetsSent": pkts_a + pkts_v,
                "packetsReceived": pkts_a + pkts_v - lost,
                "dtlsState": "connected",
                "dtlsRole": "client",
                "iceRole": "controlling",
                "iceState": "connected",
                "iceLocalUsernameFragment": self.ufrag_local,
                "selectedCandidatePairId": pair_id,
                "selectedCandidatePairChanges": 1,
                "localCertificateId": f"CF{self.local_cert[0]}",
                "remoteCertificateId": f"CF{self.remote_cert[0]}",
                "tlsVersion": "FEFD",
                "dtlsCipher": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "srtpCipher": "AEAD_AES_128_GCM",
            },
            {
                "id": pair_id,
                "type": "candidate-pair",
                "timestamp": ts,
                "transportId": "T01",
                "localCandidateId": local_cand["id"],
                "remoteCandidateId": remote_cand["id"],
                "state": "succeeded",
                "priority": 9_115_005_270_282_354_000,
                "nominated": True,
                "writable": True,
                "packetsSent": pkts_a + pkts_v,
                "packetsReceived": pkts_a + pkts_v - lost,
                "bytesSent": pkts_a * 120 + pkts_v * 1100,
                "bytesReceived": pkts_a * 118 + pkts_v * 1050,
                "totalRoundTripTime": int(rtt * t * 1000) / 1000,
                "currentRoundTripTime": rtt,
                "availableOutgoingBitrate": int(300_000 + r() * 2_500_000),
                "requestsReceived": int(t / 2.5),
                "requestsSent": int(t / 2.5) + 1,
                "responsesReceived": int(t / 2.5),
                "responsesSent": int(t / 2.5),
                "consentRequestsSent": int(t / 5),
                "packetsDiscardedOnSend": 0,
                "bytesDiscardedOnSend": 0,
                "lastPacketReceivedTimestamp": ts - int(r() * 20),
                "lastPacketSentTimestamp": ts - int(r() * 20),
            },
            local_cand,
            remote_cand,
        ]
        for cert_id, (fingerprint, der) in (
            (f"CF{self.local_cert[0]}", self.local_cert),
            (f"CF{self.remote_cert[0]}", self.remote_cert),
        ):
            reports.append(
                {
                    "id": cert_id,
                    "type": "certificate",
                    "timestamp": ts,
                    "fingerprint": fingerprint,
                    "fingerprintAlgorithm": "sha-256",
                    "base64Certificate": der,
                }
            )
        reports += [
            {
                "id": audio_codec,
                "type": "codec",
                "timestamp": ts,
                "transportId": "T01",
                "payloadType": 111,
                "mimeType": "audio/opus",
                "clockRate": 48000,
                "channels": 2,
                "sdpFmtpLine": "minptime=10;useinbandfec=1",
            },
            {
                "id": video_codec,
                "type": "codec",
                "timestamp": ts,
                "transportId": "T01",
                "payloadType": 96,
                "mimeType": pick(r, ("video/VP8", "video/VP9", "video/H264", "video/AV1")),
                "clockRate": 90000,
            },
            {
                "id": f"IT01A{self.remote_audio_ssrc}",
                "type": "inbound-rtp",
                "timestamp": ts,
                "ssrc": self.remote_audio_ssrc,
                "kind": "audio",
                "transportId": "T01",
                "codecId": audio_codec,
                "trackIdentifier": self.remote_track,
                "mid": "0",
                "remoteId": f"ROA{self.remote_audio_ssrc}",
                "playoutId": "AP",
                "packetsReceived": pkts_a - lost,
                "packetsLost": lost,
                "jitter": int(r() ** 2 * 40) / 1000,
                "bytesReceived": pkts_a * 118,
                "headerBytesReceived": pkts_a * 28,
                "jitterBufferDelay": int(t * 48000 * 0.06 * 100) / 100,
                "jitterBufferEmittedCount": int(t * 48000),
                "totalSamplesReceived": int(t * 48000),
                "concealedSamples": int(r() * t * 200),
                "silentConcealedSamples": int(r() * t * 50),
                "concealmentEvents": int(r() * t / 10),
                "audioLevel": int(r() * 4000) / 10000,
                "totalAudioEnergy": energy,
                "totalSamplesDuration": t,
                "mediaType": "audio",
                "fecPacketsReceived": int(r() * t),
                "fecPacketsDiscarded": 0,
                "insertedSamplesForDeceleration": int(r() * t * 20),
                "removedSamplesForAcceleration": int(r() * t * 20),
                "jitterBufferTargetDelay": int(t * 48000 * 0.08 * 100) / 100,
                "jitterBufferMinimumDelay": int(t * 48000 * 0.04 * 100) / 100,
                "lastPacketReceivedTimestamp": ts - int(r() * 20),
                "packetsDiscarded": 0,
                "packetsReceivedWithCe": 0,
                "packetsReceivedWithEct1": 0,
                "totalProcessingDelay": int(t * 48000 * 0.07 * 100) / 100,
            },
            {
                "id": f"IT01V{self.remote_video_ssrc}",
                "type": "inbound-rtp",
                "timestamp": ts,
                "ssrc": self.remote_video_ssrc,
                "kind": "video",
                "transportId": "T01",
                "codecId": video_codec,
                "trackIdentifier": f"{self.remote_track[:-4]}beef",
                "mid": "1",
                "packetsReceived": pkts_v,
                "packetsLost": int(pkts_v * r() ** 3 * 0.02),
                "jitter": int(r() ** 2 * 30) / 1000,
                "bytesReceived": pkts_v * 1050,
                "framesReceived": int(self.fps * t),
                "framesDecoded": int(self.fps * t) - 2,
                "keyFramesDecoded": 1 + int(t / 30),
                "framesDropped": int(r() * 3),
                "frameWidth": self.width,
                "frameHeight": self.height,
                "framesPerSecond": self.fps - int(r() * 3),
                "qpSum": int(t * self.fps * 28),
                "totalDecodeTime": int(t * 0.004 * self.fps * 1000) / 1000,
                "freezeCount": int(r() ** 4 * 3),
                "pauseCount": 0,
                "decoderImplementation": "libvpx",
                "powerEfficientDecoder": False,
                "nackCount": int(r() * 5),
                "pliCount": int(r() * 3),
                "firCount": 0,
                "mediaType": "video",
                "remoteId": f"ROV{self.remote_video_ssrc}",
                "rtxSsrc": self.remote_video_ssrc ^ 1,
                "headerBytesReceived": pkts_v * 40,
                "retransmittedPacketsReceived": int(r() * 4),
                "retransmittedBytesReceived": int(r() * 4000),
                "framesAssembledFromMultiplePackets": int(self.fps * t * 0.6),
                "totalAssemblyTime": int(t * 0.3 * 1000) / 1000,
                "jitterBufferDelay": int(self.fps * t * 0.05 * 1000) / 1000,
                "jitterBufferEmittedCount": int(self.fps * t),
                "jitterBufferTargetDelay": int(self.fps * t * 0.07 * 1000) / 1000,
                "jitterBufferMinimumDelay": int(self.fps * t * 0.03 * 1000) / 1000,
                "lastPacketReceivedTimestamp": ts - int(r() * 20),
                "packetsReceivedWithCe": 0,
                "packetsReceivedWithEct1": 0,
                "totalFreezesDuration": 0,
                "totalPausesDuration": 0,
                "totalInterFrameDelay": int(t * 1000) / 1000,
                "totalSquaredInterFrameDelay": int(t / self.fps * 1000) / 1000,
                "totalProcessingDelay": int(self.fps * t * 0.02 * 1000) / 1000,
                # Chromium's legacy timing string: comma-separated numbers.
                "googTimingFrameInfo": ",".join(str(int(r() * 1e6)) for _ in range(13)),
            },
            {
                "id": f"OT01A{self.audio_ssrc}",
                "type": "outbound-rtp",
                "timestamp": ts,
                "ssrc": self.audio_ssrc,
                "kind": "audio",
                "transportId": "T01",
                "codecId": audio_codec,
                "mediaSourceId": "SA1",
                "mid": "0",
                "remoteId": f"RIA{self.audio_ssrc}",
                "packetsSent": pkts_a,
                "bytesSent": pkts_a * 120,
                "headerBytesSent": pkts_a * 28,
                "retransmittedPacketsSent": 0,
                "targetBitrate": 32000,
                "totalPacketSendDelay": int(t * 0.01 * 1000) / 1000,
                "active": True,
                "mediaType": "audio",
                "nackCount": 0,
                "packetsSentWithEct1": 0,
                "retransmittedBytesSent": 0,
            },
            {
                "id": f"OT01V{self.video_ssrc}",
                "type": "outbound-rtp",
                "timestamp": ts,
                "ssrc": self.video_ssrc,
                "kind": "video",
                "transportId": "T01",
                "codecId": video_codec,
                "mediaSourceId": "SV2",
                "mid": "1",
                "remoteId": f"RIV{self.video_ssrc}",
                "packetsSent": pkts_v,
                "bytesSent": pkts_v * 1100,
                "targetBitrate": int(300_000 + r() * 2_000_000),
                "framesEncoded": int(self.fps * t),
                "keyFramesEncoded": 1 + int(t / 30),
                "framesSent": int(self.fps * t),
                "hugeFramesSent": int(r() * 2),
                "frameWidth": self.width,
                "frameHeight": self.height,
                "framesPerSecond": self.fps,
                "qpSum": int(t * self.fps * 30),
                "totalEncodeTime": int(t * 0.005 * self.fps * 1000) / 1000,
                "qualityLimitationReason": pick(r, ("none", "none", "bandwidth", "cpu")),
                "qualityLimitationDurations": {
                    "none": t * 0.9,
                    "cpu": 0,
                    "bandwidth": t * 0.1,
                    "other": 0,
                },
                "qualityLimitationResolutionChanges": int(r() * 3),
                "encoderImplementation": pick(r, ("libvpx", "SimulcastEncoderAdapter (libvpx)")),
                "powerEfficientEncoder": False,
                "scalabilityMode": "L1T1",
                "mediaType": "video",
                "encodingIndex": 0,
                "headerBytesSent": pkts_v * 40,
                "packetsSentWithEct1": 0,
                "retransmittedPacketsSent": int(r() * 4),
                "retransmittedBytesSent": int(r() * 4000),
                "rtxSsrc": self.video_ssrc ^ 1,
                "totalEncodedBytesTarget": 0,
                "totalPacketSendDelay": int(t * 0.02 * 1000) / 1000,
                "nackCount": int(r() * 5),
                "pliCount": int(r() * 3),
                "firCount": 0,
                "active": True,
            },
            {
                "id": f"RIA{self.audio_ssrc}",
                "type": "remote-inbound-rtp",
                "timestamp": ts,
                "ssrc": self.audio_ssrc,
                "kind": "audio",
                "transportId": "T01",
                "codecId": audio_codec,
                "localId": f"OT01A{self.audio_ssrc}",
                "packetsLost": lost,
                "jitter": int(r() ** 2 * 40) / 1000,
                "roundTripTime": rtt,
                "totalRoundTripTime": int(rtt * t / 5 * 1000) / 1000,
                "roundTripTimeMeasurements": max(1, int(t / 5)),
                "fractionLost": int(r() ** 3 * 25) / 256,
                "mediaType": "audio",
            },
            {
                "id": f"ROA{self.remote_audio_ssrc}",
                "type": "remote-outbound-rtp",
                "timestamp": ts,
                "ssrc": self.remote_audio_ssrc,
                "kind": "audio",
                "transportId": "T01",
                "codecId": audio_codec,
                "localId": f"IT01A{self.remote_audio_ssrc}",
                "remoteTimestamp": ts - 12.5,
                "reportsSent": max(1, int(t / 5)),
                "packetsSent": pkts_a,
                "bytesSent": pkts_a * 120,
                "roundTripTimeMeasurements": 0,
                "totalRoundTripTime": 0,
                "mediaType": "audio",
            },
            {
                "id": f"RIV{self.video_ssrc}",
                "type": "remote-inbound-rtp",
                "timestamp": ts,
                "ssrc": self.video_ssrc,
                "kind": "video",
                "transportId": "T01",
                "codecId": video_codec,
                "localId": f"OT01V{self.video_ssrc}",
                "packetsLost": int(pkts_v * r() ** 3 * 0.02),
                "jitter": int(r() ** 2 * 30) / 1000,
                "roundTripTime": rtt,
                "totalRoundTripTime": int(rtt * t / 5 * 1000) / 1000,
                "roundTripTimeMeasurements": max(1, int(t / 5)),
                "fractionLost": 0,
                "mediaType": "video",
            },
            {
                "id": f"ROV{self.remote_video_ssrc}",
                "type": "remote-outbound-rtp",
                "timestamp": ts,
                "ssrc": self.remote_video_ssrc,
                "kind": "video",
                "transportId": "T01",
                "codecId": video_codec,
                "localId": f"IT01V{self.remote_video_ssrc}",
                "remoteTimestamp": ts - 8.25,
                "reportsSent": max(1, int(t / 5)),
                "packetsSent": pkts_v,
                "bytesSent": pkts_v * 1100,
                "roundTripTime": rtt,
                "roundTripTimeMeasurements": 1,
                "totalRoundTripTime": rtt,
                "mediaType": "video",
            },
            {
                "id": "SA1",
                "type": "media-source",
                "timestamp": ts,
                "trackIdentifier": self.local_track,
                "kind": "audio",
                "audioLevel": int(r() * 5000) / 10000,
                "totalAudioEnergy": energy * 1.1,
                "totalSamplesDuration": t,
                "echoReturnLoss": -100,
                "echoReturnLossEnhancement": 0.18,
            },
            {
                "id": "SV2",
                "type": "media-source",
                "timestamp": ts,
                "trackIdentifier": f"{self.local_track[:-4]}cafe",
                "kind": "video",
                "width": self.width,
                "height": self.height,
                "frames": int(self.fps * t),
                "framesPerSecond": self.fps,
            },
            {
                "id": "AP",
                "type": "media-playout",
                "timestamp": ts,
                "kind": "audio",
                "synthesizedSamplesDuration": int(r() * 100) / 1000,
                "synthesizedSamplesEvents": int(r() * 3),
                "totalSamplesDuration": t,
                "totalPlayoutDelay": int(t * 48000 * 0.05),
                "totalSamplesCount": int(t * 48000),
            },
            {
                "id": "D1",
                "type": "data-channel",
                "timestamp": ts,
                "label": self.label,
                "protocol": "",
                "dataChannelIdentifier": 1,
                "state": "open",
                "messagesSent": int(r() * t / 20),
                "bytesSent": int(r() * t * 4),
                "messagesReceived": int(r() * t / 20),
                "bytesReceived": int(r() * t * 4),
            },
        ]
        if self.psnr:
            video_out = next(x for x in reports if x["id"] == f"OT01V{self.video_ssrc}")
            video_out["psnrSum"] = {"y": int(t * 3800) / 100, "u": int(t * 4100) / 100}
            video_out["psnrMeasurements"] = int(t)
        return reports


def _snapshot(
    world: VendorWorld, corpus: Corpus, m: VendorMeeting, session: _Session, ms: int
) -> Line:
    a = session.attendee
    line = corpus.add(None, "webrtc.stats_snapshot", m)
    stats = session.stats(ms, (ms - a.join_ms) / SECOND)
    body = {
        "collected_at": world.any_time(ms),
        "account_id": m.account.account_id,
        "meeting_id": m.meeting_id,
        "participant_id": a.user.pid,
        "stats": stats,
    }
    line.case("collected_at_" + type(body["collected_at"]).__name__)
    line.case("audio_level_and_energy")
    line.case("certificates")
    for report in stats:
        kind = report["type"]
        if kind in ("local-candidate", "remote-candidate"):
            line.case(f"candidate_{report['candidateType']}")
            for key in ("address", "ip", "relatedAddress"):
                if report.get(key):
                    line.must_not_publish(report[key], "identifier", f"{kind}.{key}")
            line.must_not_publish(report["usernameFragment"], "secret", f"{kind}.usernameFragment")
            if str(report.get("address", "")).endswith(".local"):
                line.case("mdns_hidden_host_address")
        elif kind == "certificate":
            line.must_not_publish(report["fingerprint"], "secret", "certificate.fingerprint")
            line.must_not_publish(
                report["base64Certificate"], "secret", "certificate.base64Certificate"
            )
        elif "trackIdentifier" in report:
            line.must_not_publish(
                report["trackIdentifier"], "identifier", f"{kind}.trackIdentifier"
            )
    line.set_body(body)
    return line


def _meeting_lines(world: VendorWorld, corpus: Corpus, m: VendorMeeting, every: bool) -> None:
    r = world.r
    for a in m.attendees:
        session = _Session(world, a, hide_local_ips=r() < 0.6 and not (every and a is m.host))
        snapshots = 1 + int(r() * 4)
        step = (a.leave_ms - a.join_ms) // (snapshots + 1)
        for i in range(1, snapshots + 1):
            _snapshot(world, corpus, m, session, a.join_ms + i * step)


def _plant(world: VendorWorld, corpus: Corpus, kind: str, instance: int, m: VendorMeeting) -> Line:
    a = pick(world.r, m.attendees)
    session = _Session(world, a, hide_local_ips=False)
    line = _snapshot(world, corpus, m, session, (a.join_ms + a.leave_ms) // 2)
    body = orjson.loads(line.raw)
    if kind == "not_json":
        corpus.lines = []
        return broken_line(corpus, m, body, line.event)
    if kind == "undeclared_field":
        stats_type, name, value = _NEW_FIELDS[instance % len(_NEW_FIELDS)]
        next(s for s in body["stats"] if s["type"] == stats_type)[name] = value
        line.set_body(body)
        return plant_on(line, kind, "undeclared_field", f"{stats_type}.{name}", None)
    # A data channel's sub-protocol is whatever string the app chose (RFC 8831), and unlike
    # its label (content, never published) a service string that may reach training.
    needle, phrase = world.leak(kind, instance)
    next(s for s in body["stats"] if s["type"] == "data-channel")["protocol"] = phrase
    line.set_body(body)
    return plant_on(line, kind, f"detector:{kind}", "data-channel.protocol", needle)


SOURCE = VendorSource("webrtc-stats", _meeting_lines, _plant, withheld_fields=WITHHELD)
