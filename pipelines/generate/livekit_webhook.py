"""LiveKit WebhookEvent JSON, one per line: rooms, participants, tracks, egress.

Shapes follow the facts file (section 4, `livekit_webhook.proto`, `livekit_models.proto`),
with proto field names. Hard cases: a human-readable room `name`, `turn_password` in the
room, participant `metadata` (a free-form JSON string) and `attributes` (a free-form map),
track names that name a person or a window, `region`, egress file locations, and int64
fields (`created_at`, `joined_at`, `creation_time`) as strings in one event and numbers in
the next, as protobuf JSON encoders disagree.

LiveKit's webhooks carry no speech or chat. An agent in the room that relays them writes the
same envelope with `event` `transcription_received` (`segment`: a TranscriptionSegment) or
`chat_received` (`chat_message`: a ChatMessage), the speaker as `participant`: content of
that participant, and text the vendor's PII labels do not cover (facts file, section 4).
"""

from __future__ import annotations

import json
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
from pipelines.generate.vocab import CHAT_MESSAGES, SPOKEN_SENTENCES, pick

_REGIONS = ("eu-central", "eu-west", "us-east", "us-west", "ap-southeast")
_COLORS = ("#4f46e5", "#059669", "#d97706", "#dc2626")
_DISCONNECT = (
    "CLIENT_INITIATED",
    "CLIENT_INITIATED",
    "ROOM_DELETED",
    "SIGNAL_CLOSE",
    "DUPLICATE_IDENTITY",
)
# Fields a newer server sends that no schema has declared yet.
_NEW_FIELDS = (
    ("participant", "kind_details"),
    ("room", "pinned_regions"),
    ("track", "layer_hints"),
)


def _int64(world: VendorWorld, value: int) -> int | str:
    """Protobuf JSON writes int64 as a string; some encoders write a number."""
    return str(value) if world.r() < 0.6 else value


def _sid(world: VendorWorld, prefix: str) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    bits = world.rng.getrandbits
    return prefix + "".join(alphabet[bits(6) % len(alphabet)] for _ in range(12))


class _Room:
    """A room's ids and its participants' sids, fixed for the meeting."""

    def __init__(self, world: VendorWorld, m: VendorMeeting):
        r = world.r
        self.sid = _sid(world, "RM_")
        host = m.host.user
        slug = host.name.lower().replace(" ", "-").replace("'", "")
        # A room is named by the app: after its owner, or after the meeting's title.
        self.name = f"{slug}-1on1" if r() < 0.3 else m.topic.replace("Zoom Meeting", "room")
        self.turn_password = f"{world.rng.getrandbits(128):032x}"
        self.metadata = json.dumps({"topic": m.topic, "owner": host.email or host.name})
        self.sids = {a.user.pid: _sid(world, "PA_") for a in m.attendees}
        self.region = pick(r, _REGIONS)


def _room(
    world: VendorWorld, line: Line, m: VendorMeeting, room: _Room, count: int
) -> dict[str, Any]:
    line.must_not_publish(room.name, "identifier", "room.name")
    line.must_not_publish(room.turn_password, "secret", "room.turn_password")
    line.must_not_publish(room.metadata, "free_text", "room.metadata")
    line.case("room_name_human_readable")
    line.case("turn_password")
    return {
        "sid": room.sid,
        "name": room.name,
        "empty_timeout": 300,
        "departure_timeout": 20,
        "max_participants": 100,
        "creation_time": _int64(world, world.epoch_ms(m.start) // 1000),
        "turn_password": room.turn_password,
        "enabled_codecs": [{"mime": "audio/opus"}, {"mime": "video/VP8"}, {"mime": "video/H264"}],
        "metadata": room.metadata,
        "num_participants": count,
        "num_publishers": count,
        "active_recording": False,
    }


def _participant(
    world: VendorWorld, line: Line, room: _Room, a: Attendee, state: str
) -> dict[str, Any]:
    r = world.r
    u = a.user
    metadata = json.dumps(
        {"email": u.email or "", "title": pick(r, ("Engineer", "Manager", "Guest"))}
    )
    attributes = {
        "display_color": pick(r, _COLORS),
        "crm_contact": f"{u.name} <{u.email or 'guest'}>",
    }
    line.case("participant_metadata_and_attributes")
    line.must_not_publish(u.name, "identifier", "participant.name")
    line.must_not_publish(metadata, "free_text", "participant.metadata")
    line.must_not_publish(attributes["crm_contact"], "free_text", "participant.attributes")
    line.must_not_publish(u.email, "identifier", "participant.metadata.email")
    return {
        "sid": room.sids[u.pid],
        "identity": u.email or u.pid,
        "name": u.name,
        "state": state,
        "tracks": [],
        "metadata": metadata,
        "attributes": attributes,
        "joined_at": _int64(world, world.epoch_ms(a.join_ms) // 1000),
        "version": 3,
        "permission": {"can_subscribe": True, "can_publish": True, "can_publish_data": True},
        "region": room.region,
        "is_publisher": True,
        "kind": "STANDARD",
    }


def _event(world: VendorWorld, line: Line, name: str, ms: int, **parts: Any) -> None:
    created = _int64(world, world.epoch_ms(ms) // 1000)
    line.case("created_at_" + type(created).__name__)
    body = {"event": name, **parts, "id": _sid(world, "EV_"), "created_at": created}
    line.set_body(body)


def _track(world: VendorWorld, line: Line, a: Attendee, source: str) -> dict[str, Any]:
    r = world.r
    first = a.user.name.split(" ")[0]
    name = {
        "MICROPHONE": pick(r, ("microphone", f"{first}'s AirPods")),
        "CAMERA": pick(r, ("camera", "FaceTime HD Camera")),
        "SCREEN_SHARE": pick(r, ("screen", "budget-2027.xlsx - Excel", f"{first}'s screen")),
    }[source]
    if first in name or "." in name:
        line.must_not_publish(name, "identifier", "track.name")
        line.case("track_name_names_person_or_window")
    track: dict[str, Any] = {
        "sid": _sid(world, "TR_"),
        "type": "AUDIO" if source == "MICROPHONE" else "VIDEO",
        "name": name,
        "muted": r() < 0.1,
        "source": source,
        "mime_type": "audio/opus" if source == "MICROPHONE" else "video/VP8",
    }
    if source != "MICROPHONE":
        track.update({"width": 1280, "height": 720, "simulcast": source == "CAMERA"})
    return track


def _meeting_lines(world: VendorWorld, corpus: Corpus, m: VendorMeeting, every: bool) -> None:
    r = world.r
    room = _Room(world, m)
    n = len(m.attendees)
    line = corpus.add(None, "room_started", m)
    _event(world, line, "room_started", m.start, room=_room(world, line, m, room, 0))
    for i, a in enumerate(m.attendees):
        line = corpus.add(None, "participant_joined", m)
        part = _participant(world, line, room, a, "ACTIVE")
        _event(
            world,
            line,
            "participant_joined",
            a.join_ms,
            room=_room(world, line, m, room, i + 1),
            participant=part,
        )
        sources = (
            ["MICROPHONE"]
            + (["CAMERA"] if r() < 0.7 else [])
            + (["SCREEN_SHARE"] if every or r() < 0.15 else [])
        )
        for source in sources:
            line = corpus.add(None, "track_published", m)
            part = _participant(world, line, room, a, "ACTIVE")
            track = _track(world, line, a, source)
            _event(
                world,
                line,
                "track_published",
                a.join_ms + 2 * SECOND,
                room=_room(world, line, m, room, n),
                participant=part,
                track=track,
            )
    recorded = every or r() < 0.3
    if recorded:
        _egress(world, corpus, m, room, "egress_started")
    if every or r() < 0.5:
        for _ in range(1 + int(r() * 2 * n)):
            _relayed(world, corpus, m, room, pick(r, m.attendees), chat=r() < 0.4)
    for a in m.attendees:
        line = corpus.add(None, "participant_left", m)
        part = _participant(world, line, room, a, "DISCONNECTED")
        part["disconnect_reason"] = pick(r, _DISCONNECT)
        _event(
            world,
            line,
            "participant_left",
            a.leave_ms,
            room=_room(world, line, m, room, n),
            participant=part,
        )
    if recorded:
        _egress(world, corpus, m, room, "egress_ended")
    line = corpus.add(None, "room_finished", m)
    _event(world, line, "room_finished", m.end, room=_room(world, line, m, room, 0))


def _egress(
    world: VendorWorld,
    corpus: Corpus,
    m: VendorMeeting,
    room: _Room,
    name: str,
    error: str = "",
) -> Line:
    """A room recording: its metadata (service data) and where the file went (a reference to
    content, secret)."""
    ended = name == "egress_ended"
    line = corpus.add(None, name, m)
    info: dict[str, Any] = {
        "egress_id": _sid(world, "EG_"),
        "room_id": room.sid,
        "room_name": room.name,
        "status": "EGRESS_COMPLETE" if ended else "EGRESS_ACTIVE",
        "started_at": _int64(world, world.epoch_ms(m.start) * 1_000_000),
        "error": error,
    }
    line.must_not_publish(room.name, "identifier", "egress_info.room_name")
    if ended:
        location = f"https://recordings.example.com/{room.sid}/{world.rng.getrandbits(64):016x}.mp4"
        info["ended_at"] = _int64(world, world.epoch_ms(m.end) * 1_000_000)
        info["file_results"] = [
            {
                "filename": f"{room.name}.mp4",
                "location": location,
                "size": _int64(world, int(2e7 + world.r() * 4e8)),
                "duration": _int64(world, (m.end - m.start) * 1_000_000),
            }
        ]
        line.must_not_publish(location, "content_reference", "egress_info.file_results.location")
        line.case("egress_file_location")
    ms = m.end + 30 * SECOND if ended else m.start + 5 * SECOND
    _event(world, line, name, ms, egress_info=info)
    return line


def _relayed(
    world: VendorWorld, corpus: Corpus, m: VendorMeeting, room: _Room, a: Attendee, chat: bool
) -> None:
    """A transcript segment or a chat line an agent relayed: the speaker's content."""
    r = world.r
    event = "chat_received" if chat else "transcription_received"
    line = corpus.add(None, event, m, "restricted", subjects=(a.user.pid,))
    line.case(event)
    at = a.join_ms + 1 + int(r() * max(1, a.leave_ms - a.join_ms - 1))
    text = pick(r, CHAT_MESSAGES if chat else SPOKEN_SENTENCES)
    if len(text.split()) >= 4:  # shorter ones ("+1", "thanks!") are not distinctive
        line.must_not_publish(text, "content", f"{event}.text")
    part = _participant(world, line, room, a, "ACTIVE")
    body: dict[str, Any] = {"room": _room(world, line, m, room, len(m.attendees))}
    body["participant"] = part
    if chat:
        body["chat_message"] = {
            "id": _sid(world, "MSG_"),
            "timestamp": _int64(world, world.epoch_ms(at)),
            "message": text,
            "generated": False,
        }
    else:
        length = 1_000 + int(r() * 6_000)
        body["segment"] = {
            "id": _sid(world, "SG_"),
            "text": text,
            "start_time": _int64(world, at - a.join_ms),
            "end_time": _int64(world, at - a.join_ms + length),
            "final": True,
            "language": pick(r, ("en", "en", "en-GB", "de")),
        }
    _event(world, line, event, at, **body)


def _plant(world: VendorWorld, corpus: Corpus, kind: str, instance: int, m: VendorMeeting) -> Line:
    room = _Room(world, m)
    a = pick(world.r, m.attendees)
    if kind in ("not_json", "undeclared_field"):
        line = corpus.add(None, "track_published", m)
        part = _participant(world, line, room, a, "ACTIVE")
        track = _track(world, line, a, "CAMERA")
        _event(
            world,
            line,
            "track_published",
            a.join_ms + SECOND,
            room=_room(world, line, m, room, 2),
            participant=part,
            track=track,
        )
        body = orjson.loads(line.raw)
        if kind == "not_json":
            corpus.lines = []
            return broken_line(corpus, m, body, line.event)
        where, name = _NEW_FIELDS[instance % len(_NEW_FIELDS)]
        body[where][name] = {"enabled": True}
        line.set_body(body)
        return plant_on(line, kind, "undeclared_field", f"{where}.{name}", None)
    # Egress errors are free text: an upload error can echo a URL, an address, a name.
    needle, phrase = world.leak(kind, instance)
    line = _egress(world, corpus, m, room, "egress_updated", error=f"upload failed: {phrase}")
    return plant_on(line, kind, f"detector:{kind}", "egress_info.error", needle)


SOURCE = VendorSource("livekit-webhook", _meeting_lines, _plant)
