"""Zoom webhook bodies, one per line as received: meetings, participants, chat, recordings.

Shapes follow the facts file (`sources/vendor-payloads.md`, section 1): the envelope
(`event`, `event_ts` in epoch ms, `payload.account_id`, `payload.object`), `download_token`
on recording events, and the hard cases: a topic naming the host, `id` as a string in one
body and a number in the next, `/`, `+` and `==` in uuids, guests with `email: ""`, a name
typed as an email, free-text leave reasons, chat text and summaries inside events, passwords
and tokens in recording events, per-participant audio files named after people.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from pipelines.generate.model import MINUTE, SECOND, Attendee
from pipelines.generate.model import platform_user_id as zoom_user_id
from pipelines.generate.vendor import (
    Corpus,
    Line,
    VendorMeeting,
    VendorSource,
    VendorWorld,
    broken_line,
    plant_on,
)
from pipelines.generate.vocab import (
    CHAT_FILE_NAMES,
    CHAT_MESSAGES,
    NEXT_STEPS,
    SHARED_FILES,
    SUMMARIES,
    pick,
)

_TIMEZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/London", "UTC")
_LEAVE_REASONS = (
    "left the meeting. Reason : Host ended the meeting.",
    "left the meeting. Reason : left the meeting.",
    "left the meeting. Reason : Network connection error.",
    "left the meeting. Reason : Removed by host.",
)
_ALERT_ISSUES = (
    "Unstable audio quality",
    "Unstable video quality",
    "Unstable screen share quality",
    "High CPU occupation",
    "Call Reconnection",
)
_FEEDBACK_COMMENTS = (
    "Audio kept cutting out whenever the host shared the spreadsheet",
    "Great session, but the breakout rooms closed too early for our group",
    "I could not hear the last speaker at all from the conference room",
)
_SUMMARY_LABELS = ("Roadmap", "Hiring", "Budget", "Launch", "Follow-ups")
_RECORDING_TYPES = (
    "shared_screen_with_speaker_view",
    "shared_screen_with_gallery_view",
    "speaker_view",
    "gallery_view",
    "audio_only",
)
_WINDOW_TITLES = (
    "budget-2027.xlsx - Excel",
    "Q3 roadmap - Google Slides",
    "Inbox (3) - Outlook",
    "contract-draft-v3.pdf - Adobe Acrobat",
)
# A participant field no schema has declared yet: Zoom adds fields without notice.
_NEW_FIELDS = (("participant_region", "EU"), ("is_guest_on_behalf", False), ("rtms_status", 1))


def _meeting_id(world: VendorWorld, meeting: VendorMeeting) -> int | str:
    """The meeting number: a string in the SDK typings, a number in many bodies."""
    return str(meeting.numeric_id) if world.r() < 0.5 else meeting.numeric_id


def _envelope(world: VendorWorld, event: str, ms: int, meeting: VendorMeeting, obj: Any) -> Any:
    event_ts: int = world.epoch_ms(ms)
    if world.r() < 0.08:  # a relay that re-stamps in epoch seconds
        event_ts //= 1000
    return {
        "event": event,
        "event_ts": event_ts,
        "payload": {"account_id": meeting.account.account_id, "object": obj},
    }


def _meeting_object(world: VendorWorld, line: Line, meeting: VendorMeeting) -> dict[str, Any]:
    host = meeting.host.user
    line.must_not_publish(meeting.uuid, "identifier", "object.uuid")
    line.must_not_publish(zoom_user_id(host), "identifier", "object.host_id")
    if meeting.topic.startswith(host.name):
        line.case("topic_names_host")
        line.must_not_publish(meeting.topic, "content", "object.topic")
    if "/" in meeting.uuid or "+" in meeting.uuid:
        line.case("uuid_with_slash_or_plus")
    obj = {
        "id": _meeting_id(world, meeting),
        "uuid": meeting.uuid,
        "host_id": zoom_user_id(host),
        "topic": meeting.topic,
        "type": pick(world.r, (2, 2, 8, 1)),
        "start_time": world.iso(meeting.start),
        "timezone": pick(world.r, _TIMEZONES),
        "duration": (meeting.end - meeting.start) // MINUTE,
    }
    line.case("id_as_" + type(obj["id"]).__name__)
    return obj


def _participant(
    world: VendorWorld, line: Line, meeting: VendorMeeting, a: Attendee
) -> dict[str, Any]:
    """A participant as Zoom describes one, guests and typed-in names included."""
    r = world.r
    u = a.user
    guest = u.email is None
    name = u.email if (u.email and r() < 0.06) else u.name  # a user typed their email as name
    if name == u.email:
        line.case("email_as_user_name")
    if guest:
        line.case("guest_empty_email")
    part: dict[str, Any] = {
        "user_id": str(16_778_240 + a.join_ms % 100_000),
        "user_name": name,
        "id": "" if guest else zoom_user_id(u),
        "participant_uuid": f"{u.pid[2:].upper()}-{meeting.numeric_id % 10_000:04d}",
        "email": u.email or "",
        "participant_user_id": "" if guest else zoom_user_id(u),
    }
    if r() < 0.1:
        part["customer_key"] = f"crm-{int(r() * 90_000) + 10_000};{u.name}"
        line.case("customer_key_free_form")
        line.must_not_publish(part["customer_key"], "identifier", "participant.customer_key")
    if r() < 0.08:
        part["phone_number"] = f"+44 20 7946 0{int(r() * 900) + 100}"
        line.must_not_publish(part["phone_number"], "identifier", "participant.phone_number")
    for key in ("user_name", "email", "participant_uuid"):
        line.must_not_publish(part[key], "identifier", f"participant.{key}")
    line.must_not_publish(u.name, "identifier", "participant.user_name")
    return part


def _jwt(world: VendorWorld) -> str:
    bits = world.rng.getrandbits
    body = base64.urlsafe_b64encode(bits(480).to_bytes(60, "big")).decode().rstrip("=")
    sig = base64.urlsafe_b64encode(bits(256).to_bytes(32, "big")).decode().rstrip("=")
    return f"eyJhbGciOiJIUzUxMiJ9.{body}.{sig}"


def _meeting_lines(world: VendorWorld, corpus: Corpus, m: VendorMeeting, every: bool) -> None:
    r = world.r
    everyone = tuple(a.user.pid for a in m.attendees)
    line = corpus.add(None, "meeting.started", m)
    line.set_body(_envelope(world, "meeting.started", m.start, m, _meeting_object(world, line, m)))
    for a in m.attendees:
        _participant_event(world, corpus, m, a, "meeting.participant_joined")
    for _ in range(len(m.attendees) * (1 + int(r() * 4)) if every or r() < 0.6 else 0):
        _chat(world, corpus, m, drift=r() < 0.15)
    if every or r() < 0.15:
        _file_sent(world, corpus, m)
    if every or r() < 0.3:
        _device_tested(world, corpus, m)
    if every or r() < 0.2:
        _alert(world, corpus, m, [pick(r, _ALERT_ISSUES)])
    if every or r() < 0.2:
        _sharing(world, corpus, m, with_link=every)
    for a in m.attendees:
        _participant_event(world, corpus, m, a, "meeting.participant_left")
    line = corpus.add(None, "meeting.ended", m)
    obj = _meeting_object(world, line, m)
    obj["end_time"] = world.iso(m.end)
    line.set_body(_envelope(world, "meeting.ended", m.end, m, obj))
    if every or r() < 0.4:
        _recording(world, corpus, m, "recording.completed")
        _recording(world, corpus, m, "recording.transcript_completed")
    if every or r() < 0.05:
        _renamed(world, corpus, m)
    if every or r() < 0.3:
        # The first meetings have one of each summary shape, however the draws fall.
        plain = r() < 0.3 or (every and world.meetings == 2)
        _summary(world, corpus, m, everyone, drift=plain and not (every and world.meetings == 1))
    if every or r() < 0.1:
        _feedback(world, corpus, m)


def _participant_event(
    world: VendorWorld, corpus: Corpus, m: VendorMeeting, a: Attendee, event: str
) -> Line:
    line = corpus.add(None, event, m)
    obj = _meeting_object(world, line, m)
    part = _participant(world, line, m, a)
    if event.endswith("joined"):
        part["join_time"] = world.iso(a.join_ms)
    else:
        part["leave_time"] = world.iso(a.leave_ms)
        part["leave_reason"] = pick(world.r, _LEAVE_REASONS)
        line.case("leave_reason_free_text")
    obj["participant"] = part
    line.set_body(_envelope(world, event, a.join_ms if "joined" in event else a.leave_ms, m, obj))
    return line


def _chat(world: VendorWorld, corpus: Corpus, m: VendorMeeting, drift: bool) -> None:
    """Chat with DLP integration on: the message text inside the event."""
    r = world.r
    a = pick(r, m.attendees)
    at = a.join_ms + 1 + int(r() * max(1, a.leave_ms - a.join_ms - 1))
    text = pick(r, CHAT_MESSAGES)
    line = corpus.add(None, "meeting.chat_message_sent", m, "restricted", subjects=(a.user.pid,))
    line.case("chat_text_in_event")
    if len(text.split()) >= 4:  # shorter ones ("+1", "thanks!") are not distinctive
        line.must_not_publish(text, "content", "chat_message.message_content")
    sender = a.user
    line.must_not_publish(sender.name, "identifier", "chat_message.sender_name")
    line.must_not_publish(sender.email, "identifier", "chat_message.sender_email")
    message: dict[str, Any] = {
        "date_time": world.iso(at),
        "sender_session_id": f"{sender.pid[2:]}{m.numeric_id % 1000:03d}",
        "sender_name": sender.name,
        "sender_email": sender.email or "",
        "sender_type": "host" if a is m.host else "participant",
        "recipient_type": "everyone",
        "message_id": f"{{{world.rng.getrandbits(128):032X}}}",
        "file_ids": [],
    }
    if drift:  # what some handlers read: `message`, not `message_content`
        line.case("chat_message_vs_message_content")
        message["message"] = text
    else:
        message["message_content"] = text
    obj = {"id": m.numeric_id, "uuid": m.uuid, "chat_message": message}
    line.set_body(_envelope(world, "meeting.chat_message_sent", at, m, obj))


def _file_sent(world: VendorWorld, corpus: Corpus, m: VendorMeeting) -> None:
    r = world.r
    a = pick(r, m.attendees)
    at = a.join_ms + int(r() * (a.leave_ms - a.join_ms))
    name = pick(r, CHAT_FILE_NAMES + tuple(f for f, _ in SHARED_FILES))
    url = f"https://file.zoom.example/file/{world.rng.getrandbits(64):016x}?access_token={_jwt(world)}"
    line = corpus.add(
        None, "meeting.chat_message_file_sent", m, "restricted", subjects=(a.user.pid,)
    )
    line.must_not_publish(url, "secret", "chat_message_file.download_url")
    line.must_not_publish(a.user.name, "identifier", "chat_message_file.sender_name")
    line.case("chat_file_name")
    obj = {
        "meeting_id": m.numeric_id,
        "meeting_uuid": m.uuid,
        "chat_message_file": {
            "date_time": world.iso(at),
            "sender_session_id": f"{a.user.pid[2:]}{m.numeric_id % 1000:03d}",
            "sender_name": a.user.name,
            "sender_email": a.user.email or "",
            "sender_type": "participant",
            "recipient_type": "everyone",
            "file_id": f"{world.rng.getrandbits(96):024x}",
            "file_name": name,
            "file_size": int(2000 + r() * 5_000_000),
            "file_type": name.rsplit(".", 1)[1],
            "download_url": url,
        },
    }
    line.set_body(_envelope(world, "meeting.chat_message_file_sent", at, m, obj))


def _device_tested(world: VendorWorld, corpus: Corpus, m: VendorMeeting) -> None:
    r = world.r
    a = pick(r, m.attendees)
    line = corpus.add(None, "meeting.device_tested", m)
    obj = _meeting_object(world, line, m)
    # As Zoom's SDK types it (rivet `MeetingDeviceTestedEvent`): the tester inside the result.
    obj["test_result"] = {
        "user_id": str(16_778_240 + a.join_ms % 100_000),
        "user_name": a.user.name,
        "camera_status": int(r() * 3),
        "speaker_status": int(r() * 3),
        "microphone_status": int(r() * 3),
        "os": a.user.device,
    }
    line.must_not_publish(a.user.name, "identifier", "test_result.user_name")
    line.set_body(_envelope(world, "meeting.device_tested", a.join_ms, m, obj))


def _alert(world: VendorWorld, corpus: Corpus, m: VendorMeeting, issues: list[str]) -> Line:
    line = corpus.add(None, "meeting.alert", m)
    obj = _meeting_object(world, line, m)
    obj["issues"] = issues
    line.set_body(_envelope(world, "meeting.alert", m.start + (m.end - m.start) // 2, m, obj))
    return line


def _sharing(world: VendorWorld, corpus: Corpus, m: VendorMeeting, with_link: bool) -> None:
    r = world.r
    a = pick(r, m.attendees)
    title = pick(r, _WINDOW_TITLES)
    link = ""
    if r() < 0.5 or with_link:  # a shared cloud file: the link opens the document itself
        link = f"https://docs.example.com/d/{world.rng.getrandbits(120):030x}/edit?usp=sharing"
    # A service record: the window title and the link are content fields, dropped.
    line = corpus.add(None, "meeting.sharing_started", m)
    line.case("window_title_in_sharing_details")
    line.must_not_publish(title, "content", "participant.sharing_details.content")
    if link:
        line.must_not_publish(link, "content_reference", "participant.sharing_details.file_link")
        line.case("file_link_in_sharing_details")
    obj = _meeting_object(world, line, m)
    part = _participant(world, line, m, a)
    part["sharing_details"] = {
        "content": title,
        "link_source": "",
        "file_link": link,
        "date_time": world.iso(a.join_ms + SECOND),
        "source": "in_meeting",
    }
    obj["participant"] = part
    line.set_body(_envelope(world, "meeting.sharing_started", a.join_ms + SECOND, m, obj))


def _recording(world: VendorWorld, corpus: Corpus, m: VendorMeeting, event: str) -> None:
    """Recording metadata: sizes and times are service data; tokens, passcodes and links are not."""
    r, bits = world.r, world.rng.getrandbits
    line = corpus.add(None, event, m)
    obj = _meeting_object(world, line, m)
    host = m.host.user
    files: list[dict[str, Any]] = []
    types = (
        ("TRANSCRIPT",)
        if event.endswith("transcript_completed")
        else ("MP4", "M4A", "CC", "TIMELINE", "CHAT")
    )
    for file_type in types:
        f: dict[str, Any] = {
            "meeting_id": m.uuid,
            "recording_start": world.iso(m.start),
            "recording_end": world.iso(m.end),
            "file_type": file_type,
            "file_extension": {
                "CC": "VTT",
                "TIMELINE": "JSON",
                "CHAT": "TXT",
                "TRANSCRIPT": "VTT",
            }.get(file_type, file_type),
            "download_url": f"https://zoom.example/rec/download/{bits(96):024x}",
        }
        line.must_not_publish(
            f["download_url"], "content_reference", "recording_files.download_url"
        )
        if file_type not in ("CC", "TIMELINE"):  # these come without id, status, size, type
            f.update(
                {
                    "id": f"{bits(128):032x}",
                    "file_size": int((20 + r() * 400) * 1e6)
                    if file_type in ("MP4", "M4A")
                    else int(2000 + r() * 90_000),
                    "play_url": f"https://zoom.example/rec/play/{bits(96):024x}",
                    "status": "completed",
                    "recording_type": pick(r, _RECORDING_TYPES)
                    if file_type in ("MP4", "M4A")
                    else {"CHAT": "chat_file", "TRANSCRIPT": "audio_transcript"}[file_type],
                }
            )
            line.must_not_publish(f["play_url"], "content_reference", "recording_files.play_url")
        else:
            line.case("recording_file_without_id")
        files.append(f)
    password = f"{bits(24):06d}"[:6] if r() < 0.5 else f"Tk{bits(20):x}"
    obj.update(
        {
            "host_email": host.email or "",
            "account_id": m.account.account_id,
            "total_size": sum(f.get("file_size", 0) for f in files),
            "recording_count": len(files),
            "share_url": f"https://zoom.example/rec/share/{bits(120):030x}",
            "password": password,
            "recording_play_passcode": base64.urlsafe_b64encode(
                bits(192).to_bytes(24, "big")
            ).decode(),
            "on_prem": False,
            "recording_files": files,
        }
    )
    for key in ("share_url", "password", "recording_play_passcode"):
        line.must_not_publish(obj[key], "secret", f"object.{key}")
    line.must_not_publish(host.email, "identifier", "object.host_email")
    line.case("password_in_recording_event")
    body = _envelope(world, event, m.end + 5 * MINUTE, m, obj)
    if event == "recording.completed":
        obj["participant_audio_files"] = [
            {
                "id": f"{bits(128):032x}",
                "recording_start": world.iso(a.join_ms),
                "recording_end": world.iso(a.leave_ms),
                "file_type": "M4A",
                "file_name": f"Audio only - {a.user.name}",
                "file_size": int(1e6 + r() * 5e7),
                "file_extension": "M4A",
                "download_url": f"https://zoom.example/rec/download/{bits(96):024x}",
                "status": "completed",
            }
            for a in m.attendees
        ]
        for f in obj["participant_audio_files"]:
            line.must_not_publish(f["file_name"], "identifier", "participant_audio_files.file_name")
        line.case("audio_file_named_after_person")
    if event == "recording.completed" or r() < 0.5:
        body = {**body, "download_token": _jwt(world)}
        line.must_not_publish(body["download_token"], "secret", "download_token")
        line.case("download_token")
    line.set_body(body)


def _renamed(world: VendorWorld, corpus: Corpus, m: VendorMeeting) -> None:
    """A recording renamed: the old and the new title are both what people wrote."""
    new_topic = f"{m.topic} (final)"
    line = corpus.add(None, "recording.renamed", m)
    line.case("recording_renamed_topics")
    line.must_not_publish(new_topic, "content", "object.topic")
    obj = {"uuid": m.uuid, "id": m.numeric_id, "topic": new_topic, "type": 2}
    old = {"uuid": m.uuid, "id": m.numeric_id, "topic": m.topic, "type": 2}
    body = _envelope(world, "recording.renamed", m.end + 20 * MINUTE, m, obj)
    body["payload"]["old_object"] = old
    body["payload"]["operator"] = m.host.user.email or ""
    line.must_not_publish(m.host.user.email, "identifier", "payload.operator")
    line.set_body(body)


def _summary(
    world: VendorWorld, corpus: Corpus, m: VendorMeeting, everyone: tuple[str, ...], drift: bool
) -> None:
    """AI Companion's summary: content, inline, in what reads like a lifecycle event."""
    r = world.r
    host = m.host.user
    firsts = [a.user.name.split(" ")[0] for a in m.attendees]
    overview = pick(r, SUMMARIES)
    steps = [pick(r, NEXT_STEPS).format(pick(r, firsts)) for _ in range(1 + int(r() * 3))]
    details = [{"label": pick(r, _SUMMARY_LABELS), "summary": pick(r, SUMMARIES)} for _ in range(2)]
    line = corpus.add(None, "meeting.summary_completed", m, "restricted", subjects=everyone)
    line.case("summary_in_lifecycle_event")
    line.must_not_publish(overview, "content", "object.summary_overview")
    for step in steps:
        line.must_not_publish(step, "content", "object.next_steps")
    line.must_not_publish(host.email, "identifier", "object.meeting_host_email")
    ids: dict[str, Any]
    if drift:  # other typings: plain uuid, id and topic
        line.case("summary_plain_keys")
        ids = {"uuid": m.uuid, "id": m.numeric_id, "topic": m.topic, "host_id": zoom_user_id(host)}
    else:
        ids = {
            "meeting_host_id": zoom_user_id(host),
            "meeting_host_email": host.email or "",
            "meeting_uuid": m.uuid,
            "meeting_id": m.numeric_id,
            "meeting_topic": m.topic,
            "meeting_start_time": world.iso(m.start),
            "meeting_end_time": world.iso(m.end),
        }
    done = m.end + int((2 + r() * 5) * MINUTE)
    obj = {
        **ids,
        "summary_start_time": world.iso(m.start),
        "summary_end_time": world.iso(m.end),
        "summary_created_time": world.iso(done),
        "summary_last_modified_time": world.iso(done),
        "summary_title": f"Meeting summary for {m.topic}",
        "summary_overview": overview,
        "summary_details": details,
        "next_steps": steps,
    }
    line.set_body(_envelope(world, "meeting.summary_completed", done, m, obj))


def _feedback(world: VendorWorld, corpus: Corpus, m: VendorMeeting) -> None:
    r = world.r
    a = pick(r, m.attendees)
    comment = pick(r, _FEEDBACK_COMMENTS)
    # A service record (satisfied, the feedback ids); the comment is a content field, dropped.
    line = corpus.add(None, "meeting.participant_feedback", m)
    line.case("feedback_comment")
    line.must_not_publish(comment, "content", "participant.feedback.comments")
    obj = _meeting_object(world, line, m)
    part = _participant(world, line, m, a)
    part["feedback"] = {
        "satisfied": False,
        "feedback_details": [{"id": "audio_echo", "name": "Audio echo"}],
        "comments": comment,
    }
    obj["participant"] = part
    line.set_body(_envelope(world, "meeting.participant_feedback", m.end + MINUTE, m, obj))


def _plant(world: VendorWorld, corpus: Corpus, kind: str, instance: int, m: VendorMeeting) -> Line:
    r = world.r
    a = pick(r, m.attendees)
    if kind == "not_json":
        line = _participant_event(world, corpus, m, a, "meeting.participant_joined")
        corpus.lines.pop()
        return broken_line(corpus, m, orjson.loads(line.raw), "meeting.participant_joined")
    if kind == "undeclared_field":
        line = _participant_event(world, corpus, m, a, "meeting.participant_joined")
        body = _loads(line.raw)
        name, value = _NEW_FIELDS[instance % len(_NEW_FIELDS)]
        body["payload"]["object"]["participant"][name] = value
        line.set_body(body)
        return plant_on(line, kind, "undeclared_field", f"participant.{name}", None)
    needle, phrase = world.leak(kind, instance)
    if instance % 2 == 0:  # in a leave reason
        line = _participant_event(world, corpus, m, a, "meeting.participant_left")
        body = _loads(line.raw)
        body["payload"]["object"]["participant"]["leave_reason"] += f" ({phrase})"
        line.set_body(body)
        return plant_on(line, kind, f"detector:{kind}", "participant.leave_reason", needle)
    line = _alert(world, corpus, m, [pick(r, _ALERT_ISSUES), phrase])
    return plant_on(line, kind, f"detector:{kind}", "issues", needle)


def _loads(raw: bytes) -> Any:
    return orjson.loads(raw)


SOURCE = VendorSource("zoom-webhook", _meeting_lines, _plant)
