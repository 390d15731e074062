"""Zoom Dashboard metrics pages, one per line: participants' QoS and participant details.

Shapes follow the facts file (section 2): `GET /metrics/meetings/{id}/participants/qos`
pages (`participants[].user_qos[]` samples of audio, video and screen-share groups, CPU and
Wi-Fi) and `GET /metrics/meetings/{id}/participants` pages, paged with `next_page_token`,
each with the `account_id` and `meeting_id` the collector adds (docs/input-contract.md).
Values are unit strings as Zoom writes them ("23 kbps", "126 ms", "0.3%", "1280*720",
"12 fps", "12%"), often "" and sometimes bare ("15", "720", "0*0"); device identity
(`pc_name`, `mac_addr`, `harddisk_id`, `domain`), IP addresses and location ride along.
"""

from __future__ import annotations

from typing import Any

import orjson

from pipelines.generate.model import MINUTE, Attendee
from pipelines.generate.vendor import (
    Corpus,
    Line,
    VendorMeeting,
    VendorSource,
    VendorWorld,
    broken_line,
    plant_on,
)
from pipelines.generate.vocab import DATA_CENTERS, pick

_PAGE_SIZE = 3
_SAMPLE_EVERY = MINUTE
_CAMERAS = ("FaceTime HD Camera", "Logitech BRIO", "Integrated Webcam", "OBS Virtual Camera")
_MICROPHONES = ("MacBook Pro Microphone", "Jabra Evolve2 65", "AirPods Pro", "Realtek Audio")
_PC_NAMES = ("{first}'s MacBook Pro", "DESKTOP-{tag}", "{first}'s iPhone", "User's Phone")
_QUALITY = ("good", "good", "good", "fair", "poor", "")
_RESOLUTIONS = ("1280*720", "640*360", "1920*1080", "960*540")
# Group and field names Zoom has not sent before: a schema must declare them first.
_NEW_FIELDS = (("audio_input", "mos"), ("video_input", "codec"), ("cpu_usage", "gpu_usage"))


def _units(world: VendorWorld, value: float, unit: str) -> str:
    """A value as Zoom writes it: with a unit, bare now and then, rarely blank."""
    x = world.r()
    if x < 0.05:
        return ""
    text = f"{value:g}"
    if x < 0.12:
        return text
    return f"{text}%" if unit == "%" else f"{text} {unit}"


def _audio(world: VendorWorld) -> dict[str, str]:
    r = world.r
    loss = int(r() ** 3 * 40) / 10
    return {
        "bitrate": _units(world, int(20 + r() * 60), "kbps"),
        "latency": _units(world, int(20 + r() ** 2 * 380), "ms"),
        "jitter": _units(world, int(r() ** 2 * 40), "ms"),
        "avg_loss": _units(world, loss, "%"),
        "max_loss": _units(world, int(loss * 10 + r() * 30) / 10, "%"),
    }


def _video(world: VendorWorld, on: bool) -> dict[str, str]:
    r = world.r
    if not on:  # camera off or nothing shared: every field blank
        return dict.fromkeys(
            ("bitrate", "latency", "jitter", "avg_loss", "max_loss", "resolution", "frame_rate"),
            "",
        )
    group = _audio(world)
    group["bitrate"] = _units(world, int(150 + r() * 2500), "kbps")
    x = r()
    group["resolution"] = pick(r, _RESOLUTIONS) if x < 0.9 else "0*0" if x < 0.95 else "720"
    group["frame_rate"] = _units(world, pick(r, (30, 24, 15, 12, 7)), "fps")
    return group


def _sample(world: VendorWorld, ms: int, camera: bool, sharing: bool) -> dict[str, Any]:
    r = world.r
    rssi = -30 - int(r() * 50)
    return {
        "date_time": world.iso(ms),
        "audio_input": _audio(world),
        "audio_output": _audio(world),
        "video_input": _video(world, camera),
        "video_output": _video(world, r() < 0.8),
        "as_input": _video(world, sharing),
        "as_output": _video(world, r() < 0.3),
        "cpu_usage": {
            "zoom_min_cpu_usage": _units(world, int(r() * 10), "%"),
            "zoom_avg_cpu_usage": _units(world, int(5 + r() * 30), "%"),
            "zoom_max_cpu_usage": _units(world, int(20 + r() * 60), "%"),
            "system_max_cpu_usage": _units(world, int(30 + r() * 70), "%"),
        },
        "wifi_rssi": {
            "max_rssi": rssi + 5,
            "avg_rssi": rssi,
            "min_rssi": rssi - 7,
            "rssi_unit": "dBm",
        },
    }


def _who(world: VendorWorld, line: Line, m: VendorMeeting, a: Attendee) -> dict[str, Any]:
    """The identity part of a participant: all of it identifiers, device names included."""
    r, bits = world.r, world.rng.getrandbits
    u = a.user
    first = u.name.split(" ")[0]
    pc_name = pick(r, _PC_NAMES).format(first=first, tag=f"{bits(28):07X}")
    if pc_name == "User's Phone" or first in pc_name:
        line.case("pc_name_names_device_or_person")
    who = {
        "id": u.pid[2:] if r() < 0.7 else "",
        "user_id": str(16_778_240 + a.join_ms % 100_000)
        if r() < 0.5
        else 16_778_240 + a.join_ms % 100_000,
        "user_name": u.name,
        "device": u.device,
        "ip_address": u.ip,
        "internal_ip_addresses": [f"10.{int(r() * 255)}.{int(r() * 255)}.{1 + int(r() * 253)}"],
        "location": u.location,
        "join_time": world.iso(a.join_ms),
        "leave_time": world.iso(a.leave_ms),
        "pc_name": pc_name,
        "domain": u.email.split("@")[1] if u.email else "",
        "mac_addr": ":".join(f"{bits(8):02x}" for _ in range(6)),
        "harddisk_id": f"{bits(64):016X}",
        "version": u.client_version,
    }
    line.case("user_id_as_" + type(who["user_id"]).__name__)
    for key in ("user_name", "ip_address", "location", "pc_name", "mac_addr", "harddisk_id"):
        line.must_not_publish(who[key], "identifier", f"participants.{key}")
    line.must_not_publish(
        who["internal_ip_addresses"][0], "identifier", "participants.internal_ip_addresses"
    )
    line.case("ip_and_location")
    return who


def _collected(m: VendorMeeting) -> dict[str, Any]:
    """What the collector adds to each page it fetched: the page names neither the account
    (the collector's Zoom credentials do) nor the meeting (its path does)."""
    return {"account_id": m.account.account_id, "meeting_id": m.meeting_id}


def _qos_page(
    world: VendorWorld, line: Line, m: VendorMeeting, people: list[Attendee], token: str
) -> Any:
    r = world.r
    participants = []
    for a in people:
        entry = _who(world, line, m, a)
        camera, sharing = r() < 0.7, r() < 0.15
        samples = 2 + int(r() * 4)
        step = max(1, (a.leave_ms - a.join_ms) // samples)
        entry["user_qos"] = [
            _sample(world, a.join_ms + i * step, camera, sharing) for i in range(samples)
        ]
        participants.append(entry)
    line.case("unit_strings")
    return {
        **_collected(m),
        "page_count": 1,
        "page_size": _PAGE_SIZE,
        "total_records": len(m.attendees),
        "next_page_token": token,
        "participants": participants,
    }


def _details_page(
    world: VendorWorld, line: Line, m: VendorMeeting, people: list[Attendee], token: str
) -> Any:
    r = world.r
    participants = []
    for a in people:
        entry = _who(world, line, m, a)
        u = a.user
        entry.update(
            {
                "email": u.email or "",
                "participant_uuid": f"{u.pid[2:].upper()}-{m.numeric_id % 10_000:04d}",
                "audio_quality": pick(r, _QUALITY),
                "video_quality": pick(r, _QUALITY),
                "screen_share_quality": pick(r, _QUALITY),
                "connection_type": pick(r, ("UDP", "TCP", "SSL")),
                "network_type": {"wifi": "Wifi", "wired": "Wired", "cellular": "3G/4G/5G"}.get(
                    u.network_type, "Others"
                ),
                "data_center": pick(r, DATA_CENTERS),
                "full_data_center": f"{pick(r, DATA_CENTERS)} (Zoom Cloud)",
                "share_application": r() < 0.1,
                "share_desktop": r() < 0.2,
                "share_whiteboard": r() < 0.05,
                "recording": r() < 0.3,
                "role": "host" if a is m.host else "attendee",
                "status": "in_meeting" if a.leave_ms >= m.end - MINUTE else "in_waiting_room",
                "os": u.device,
                "os_version": u.os_version,
                "camera": pick(r, _CAMERAS),
                "microphone": pick(r, _MICROPHONES),
                "speaker": pick(r, _MICROPHONES),
                "device_name": f"{u.name.split(' ')[0]}'s {u.device}",
                "leave_reason": pick(r, ("", "Host ended the meeting.", "left the meeting.")),
            }
        )
        for key in ("email", "participant_uuid", "device_name"):
            line.must_not_publish(entry[key], "identifier", f"participants.{key}")
        line.case("device_names")
        participants.append(entry)
    return {
        **_collected(m),
        "page_count": 1,
        "page_size": _PAGE_SIZE,
        "total_records": len(m.attendees),
        "next_page_token": token,
        "participants": participants,
    }


def _pages(world: VendorWorld, corpus: Corpus, m: VendorMeeting, kind: str) -> list[Line]:
    """Every page of one endpoint for the meeting, `_PAGE_SIZE` participants each."""
    chunks = [m.attendees[i : i + _PAGE_SIZE] for i in range(0, len(m.attendees), _PAGE_SIZE)]
    lines = []
    for i, people in enumerate(chunks):
        token = f"{world.rng.getrandbits(128):032x}" if i + 1 < len(chunks) else ""
        line = corpus.add(None, f"metrics.{kind}", m)
        build = _qos_page if kind == "participants_qos" else _details_page
        line.set_body(build(world, line, m, people, token))
        lines.append(line)
    return lines


def _meeting_lines(world: VendorWorld, corpus: Corpus, m: VendorMeeting, every: bool) -> None:
    _pages(world, corpus, m, "participants_qos")
    if every or world.r() < 0.5:
        _pages(world, corpus, m, "participants")


def _plant(world: VendorWorld, corpus: Corpus, kind: str, instance: int, m: VendorMeeting) -> Line:
    people = m.attendees[:1]
    if kind == "not_json":
        line = _pages(world, corpus, m, "participants_qos")[0]
        corpus.lines = []
        return broken_line(corpus, m, orjson.loads(line.raw), line.event)
    if kind == "undeclared_field":
        line = corpus.add(None, "metrics.participants_qos", m)
        body = _qos_page(world, line, m, people, "")
        group, name = _NEW_FIELDS[instance % len(_NEW_FIELDS)]
        body["participants"][0]["user_qos"][0][group][name] = "4.1"
        line.set_body(body)
        return plant_on(line, kind, "undeclared_field", f"user_qos.{group}.{name}", None)
    needle, phrase = world.leak(kind, instance)
    line = corpus.add(None, "metrics.participants", m)
    body = _details_page(world, line, m, people, "")
    body["participants"][0]["leave_reason"] = f"left the meeting. Reason : {phrase}"
    line.set_body(body)
    return plant_on(line, kind, f"detector:{kind}", "participants.leave_reason", needle)


SOURCE = VendorSource("zoom-qos", _meeting_lines, _plant)
