"""Synthetic meeting-event input sets with planted leaks and bad records, and their ground truth.

`generate()` writes what `consentgate run` reads: the events (gzip JSON Lines or Parquet, one
file or shards), a consent ledger, and `truth.json`: every planted case, where it must end up,
and how many records each destination must receive under the default content policy, and
which content records per-participant consent admits as of noon the next day (worked out
here by a second, independent reading of the contract's consent rule). One
`random.Random(seed)` (and a child of it for the ledger) drives every choice, so the same
arguments give the same bytes.
"""

from __future__ import annotations

import base64
import json
import random
import re
from bisect import bisect_right
from datetime import date as Date
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from pipelines.generate.cases import (
    BAD_INPUT_KINDS,
    DUPLICATE_KINDS,
    LEAK_KINDS,
    Case,
    Mark,
    pattern_leak,
    plan_cases,
)
from pipelines.generate.ledger import ConsentLedger
from pipelines.generate.model import (
    DAY_MS,
    HOUR,
    MINUTE,
    SECOND,
    Attendee,
    User,
    default_accounts,
    make_accounts,
)
from pipelines.generate.truth import ConsentView, consent_truth, content_subjects
from pipelines.generate.vocab import (
    CHAT_FILE_NAMES,
    CHAT_MESSAGES,
    CONNECTION_TYPES,
    CRASH_COMPONENTS,
    CRASH_MESSAGES,
    DATA_CENTERS,
    FEATURES,
    LEAVE_REASONS,
    LOG_COMPONENTS,
    LOG_LEVELS,
    LOG_LINES,
    MEETING_TYPES,
    NEXT_STEPS,
    POLLS,
    RECORDING_TYPES,
    SHARE_MODES,
    SHARED_FILES,
    SPOKEN_SENTENCES,
    STACK_FRAMES,
    SUMMARIES,
    TOPICS,
    VIDEO_CODECS,
    VIDEO_MODES,
    WHITEBOARD_KINDS,
    WHITEBOARD_TEXTS,
    Rand,
    pick,
)
from pipelines.generate.writers import JsonlShards, ParquetShards, shard_names

GENERATOR_ID = "consentgate.generate/2"
# Below this the planted cases (4 or more of each kind) would crowd out the clean records.
MIN_EVENTS = 500
FORMATS = ("jsonl", "parquet")

# An event type in other letter case or with stray spaces is just an unknown event type.
_REASON_OF = {"event_type_case": "unknown_event_type", "event_type_spaces": "unknown_event_type"}
_MIN_TAIL = 60  # a last meeting smaller than this is merged into the one before

# A clean record without a meeting (a client log written outside any meeting).
_NO_MEETING = Mark(patch=(("meeting_id", None),))
_DUPLICATE = Mark(kind="duplicate", reason="duplicate", expect="duplicate")
_CONFLICT = Mark(kind="conflicting_duplicate", reason="conflicting_duplicate")


# -- clean payloads (rounding by int(): several times cheaper than round()) ------------------
def _qos_audio(r: Rand) -> dict[str, Any]:
    avg = int(r() ** 3 * 250) / 100
    return {
        "direction": "input" if r() < 0.5 else "output",
        "bitrate_kbps": int(240 + r() * 400) / 10,
        "latency_ms": 20 + int(r() ** 2 * 380),
        "jitter_ms": int(r() ** 2 * 40),
        "avg_loss_pct": avg,
        "max_loss_pct": int(avg * 100 + r() * 250) / 100,
        "codec": "opus",
        "audio_level": int(r() * 100) / 100,
    }


def _qos_video(r: Rand, screen: bool = False) -> dict[str, Any]:
    avg = int(r() ** 3 * 250) / 100
    resolution, fps = pick(r, SHARE_MODES if screen else VIDEO_MODES)
    low, high = (100, 1500) if screen else (150, 2500)
    return {
        "direction": "input" if r() < 0.5 else "output",
        "bitrate_kbps": int(10 * low + r() * 10 * (high - low)) / 10,
        "latency_ms": 20 + int(r() ** 2 * 380),
        "jitter_ms": int(r() ** 2 * 40),
        "avg_loss_pct": avg,
        "max_loss_pct": int(avg * 100 + r() * 250) / 100,
        "resolution": resolution,
        "frame_rate": fps if r() < 0.8 else fps // 2,
        "codec": VIDEO_CODECS[int(r() * 5)],
    }


def _qos_system(r: Rand, network_type: str) -> dict[str, Any]:
    return {
        "cpu_usage_pct": int(30 + r() * 920) / 10,
        "memory_mb": 200 + int(r() * 3800),
        "network_type": network_type,
        "data_center": DATA_CENTERS[int(r() * 6)],
        "connection_type": CONNECTION_TYPES[int(r() * 6)],
    }


def _feature(r: Rand) -> dict[str, Any]:
    return {
        "feature": pick(r, FEATURES),
        "action": "start" if r() < 0.6 else "stop",
        "count": 1 + int(r() ** 3 * 5),
    }


def clean_log(r: Rand) -> dict[str, Any]:
    return {
        "level": pick(r, LOG_LEVELS),
        "component": pick(r, LOG_COMPONENTS),
        "message": pick(r, LOG_LINES)(r),
    }


def _clean_crash(r: Rand, user: User) -> dict[str, Any]:
    frames = [pick(r, STACK_FRAMES) for _ in range(3 + int(r() * 4))]
    return {
        "component": pick(r, CRASH_COMPONENTS),
        "error_code": f"E{1000 + int(r() * 90) * 10 + int(r() * 3)}",
        "client_version": user.client_version,
        "os_version": user.os_version,
        "stack_trace": "\n".join(f"at {fn}({src}:{10 + int(r() * 900)})" for fn, src in frames),
        "message": pick(r, CRASH_MESSAGES),
    }


def _bad_record(
    kind: str, v: int, r: Rand, user: User, day: str, parquet: bool
) -> tuple[str, dict[str, Any], Mark]:
    """(event_type, payload, mark) of a record that breaks the contract as `kind` says."""
    reason = _REASON_OF.get(kind, kind)
    mark = Mark(kind=kind, reason=reason)
    if kind in ("not_json", "not_object"):
        damage = "truncate" if kind == "not_json" else ("array", "number")[v % 2]
        # A Parquet row cannot be broken JSON, but its payload column can.
        reason = f"payload_{kind}" if parquet else kind
        return "qos.audio", _qos_audio(r), Mark(kind, reason, id_known=False, damage=damage)
    if kind == "not_utf8":  # one producer still writes Windows-1252
        device = pick(r, ("Haut-parleurs (Realtek® Audio)", "Mikrofon (Realtek® Audio)"))
        payload = {"level": "info", "component": "audio", "message": f"device: {device}"}
        return "diagnostic.log", payload, Mark(kind, reason, id_known=False, damage="latin1")
    if kind == "unknown_event_type":
        variants: tuple[tuple[str, dict[str, Any]], ...] = (
            ("qos.bandwidth", {"direction": "input", "estimate_kbps": int(300 + r() * 3000)}),
            ("usage.hand_raised", {"count": 1}),
            ("diagnostic.trace", {"component": "net", "span_ms": int(r() * 900)}),
            ("qos.network", {"rtt_ms": int(20 + r() * 300), "network_type": user.network_type}),
        )
    elif kind == "event_type_case":
        variants = (
            ("QoS.Audio", _qos_audio(r)),
            ("Qos.Video", _qos_video(r)),
            ("USAGE.FEATURE_USED", _feature(r)),
            ("Diagnostic.Log", clean_log(r)),
        )
    elif kind == "event_type_spaces":
        variants = (
            (" qos.audio", _qos_audio(r)),
            ("qos.system ", _qos_system(r, user.network_type)),
            (" usage.feature_used ", _feature(r)),
            ("qos.video  ", _qos_video(r)),
        )
    elif kind == "wrong_type":
        audio, system = _qos_audio(r), _qos_system(r, user.network_type)
        variants = (
            ("qos.audio", {**audio, "latency_ms": str(audio["latency_ms"])}),
            ("qos.video", {**_qos_video(r), "frame_rate": True}),
            ("qos.system", {**system, "memory_mb": str(system["memory_mb"])}),
            ("usage.feature_used", {**_feature(r), "count": "2"}),
            ("qos.audio", {**audio, "codec": 111}),
        )
    elif kind == "missing_field":
        video, system = _qos_video(r), _qos_system(r, user.network_type)
        del video["resolution"], system["data_center"]
        variants = (
            ("qos.video", video),
            ("usage.feature_used", {"feature": "chat", "count": 1}),
            ("qos.system", system),
        )
        if not parquet and v % 2:  # every Parquet row has every column
            drop = ("account_id", "event_ts")[v // 2 % 2]
            return "qos.audio", _qos_audio(r), Mark(kind, reason, drop=drop)
    elif kind == "undeclared_field":
        variants = (
            ("qos.audio", {**_qos_audio(r), "mos_score": int(30 + r() * 15) / 10}),
            ("qos.system", {**_qos_system(r, "wired"), "gpu_usage_pct": int(r() * 800) / 10}),
            ("usage.feature_used", {**_feature(r), "source": "toolbar"}),
            ("diagnostic.log", {**clean_log(r), "thread": "media-3"}),
        )
    elif kind == "bad_timestamp":
        year, month, dd = day.split("-")
        bad = ("yesterday", f"{day}T25:61:00.000Z", f"{dd}/{month}/{year} 09:14:03")[v % 3]
        if v % 4 == 3:
            bad = f"{year}-02-30T10:00:00Z"
        return "qos.audio", _qos_audio(r), Mark(kind, reason, patch=(("event_ts", bad),))
    else:
        raise AssertionError(kind)
    event_type, payload = variants[v % len(variants)]
    return event_type, payload, mark


# -- one meeting -----------------------------------------------------------------------------
# Before ids: (ms, event_type, participant_id, payload, mark).
_Item = tuple[int, str, str | None, Any, Mark | None]
# After ids: (event_id, event_type, event_ts, participant_id, payload, mark).
_Row = tuple[str, str, str, str | None, Any, Mark | None]

# The free-text field a leak goes into, rotated per instance so that each field gets some.
_LEAK_SLOTS = ("log", "crash_message", "log", "leave_reason", "crash_stack")
_FIELD_OF_SLOT = {
    "log": "message",
    "crash_message": "message",
    "crash_stack": "stack_trace",
    "leave_reason": "leave_reason",
}


class Meeting:
    """One meeting of one account: attendees, timeline, records, its share of planted cases."""

    def __init__(self, run: Run, number: int, start_ms: int):
        self.run = run
        rng = run.rng
        r = self.r = rng.random
        self.account = run.accounts[bisect_right(run.account_cum, r() * run.account_cum[-1])]
        self.meeting_id = f"mtg-{run.day.replace('-', '')}-{number:04d}"
        n = min(2 + int(r() ** 1.6 * 11), len(self.account.users))
        users = rng.sample(self.account.users, n)
        duration = int((10 + r() * 80) * MINUTE)
        self.start = max(0, min(start_ms, DAY_MS - 15 * MINUTE - duration))
        self.end = self.start + duration
        co_host = 1 if r() < 0.3 else -1
        self.attendees = [self._attendee(u, i == 0, i == co_host) for i, u in enumerate(users)]
        self.recordings = (1 + int(r() * 3)) if r() < 0.4 else 0
        self.summary = r() < 0.3
        self.items: list[_Item] = []
        self.cases: list[Case] = []

    def _attendee(self, user: User, host: bool, co_host: bool) -> Attendee:
        r = self.r
        if host:
            return Attendee(user, "host", self.start, self.end, "meeting ended by host")
        join = self.start + int(r() * min(5 * MINUTE, (self.end - self.start) // 4))
        role = "co_host" if co_host else "attendee"
        if r() < 0.8:
            reason = "meeting ended by host" if r() < 0.5 else "left the meeting"
            return Attendee(user, role, join, self.end - int(r() * 30 * SECOND), reason)
        leave = join + int((self.end - join) * (0.3 + 0.6 * r()))
        return Attendee(user, role, join, leave, pick(r, LEAVE_REASONS))

    # -- sizing ------------------------------------------------------------------------------
    def fixed_size(self) -> int:
        return 2 * len(self.attendees) + 2 + self.recordings + int(self.summary)

    def natural_size(self) -> int:
        return self.fixed_size() + int(len(self.attendees) * (10 + self.r() * 25))

    def min_size(self) -> int:
        """Fewest records that hold the fixed ones, the planted cases and a few clean ones."""
        return self.fixed_size() + sum(c.extra_records for c in self.cases) + 4

    def shrink(self) -> None:
        """Two attendees, no recordings, no summary: room for a crowded last meeting."""
        self.attendees = self.attendees[:2]
        self.recordings = 0
        self.summary = False

    # -- records -----------------------------------------------------------------------------
    def build(self, size: int) -> list[_Row]:
        """Exactly `size` records in file order, this meeting's planted cases included."""
        self.run.ledger.around_meeting(
            self.account.account_id, self.meeting_id, self.attendees, self.start, self.end
        )
        self._fixed()
        left_at = {it[2]: i for i, it in enumerate(self.items) if it[1] == "usage.participant_left"}
        copies = [c for c in self.cases if c.kind in DUPLICATE_KINDS]
        for case in self.cases:
            if case.kind in LEAK_KINDS:
                self._plant_leak(case, left_at)
            elif case.kind in BAD_INPUT_KINDS:
                a = pick(self.r, self.attendees)
                user = a.user
                etype, payload, mark = _bad_record(
                    case.kind, case.instance, self.r, user, self.run.day, self.run.parquet
                )
                self.items.append((self._moment(a), etype, user.pid, payload, mark))
        fill = size - len(self.items) - len(copies)
        if fill < 0:
            raise RuntimeError(f"{self.meeting_id}: {size} records cannot hold its cases")
        self._fill(fill)
        self.items.sort(key=itemgetter(0))
        rows = self._with_ids()
        for case in copies:
            self._plant_copy(rows, case)
        return rows

    def _moment(self, a: Attendee, not_before: int = 0) -> int:
        """A time while `a` is in the meeting, strictly between joining and leaving."""
        lo = max(a.join_ms, not_before)
        return lo + 1 + int(self.r() * max(1, a.leave_ms - lo - 1))

    def _fixed(self) -> None:
        r = self.r
        add = self.items.append
        host = self.attendees[0].user.pid
        started = {
            "topic": pick(r, TOPICS),
            "host_id": host,
            "meeting_type": pick(r, MEETING_TYPES),
            "scheduled_duration_min": pick(r, (15, 30, 30, 45, 60, 60, 90)),
        }
        add((self.start, "usage.meeting_started", host, started, None))
        for a in self.attendees:
            u = a.user
            joined = {
                "user_name": u.name,
                "email": u.email,
                "ip_address": u.ip,
                "location": u.location,
                "device": u.device,
                "os_version": u.os_version,
                "client_version": u.client_version,
                "network_type": u.network_type,
                "role": a.role,
            }
            add((a.join_ms, "usage.participant_joined", u.pid, joined, None))
        for a in self.attendees:  # after every join: a host leaves at the very end
            left = {"leave_reason": a.leave_reason, "duration_s": (a.leave_ms - a.join_ms) // 1000}
            add((a.leave_ms, "usage.participant_left", a.user.pid, left, None))
        n = len(self.attendees)
        ended = {
            "duration_s": (self.end - self.start) // 1000,
            "participant_count": n,
            "peak_participants": n - int(r() * min(2, n - 1)),
        }
        add((self.end, "usage.meeting_ended", None, ended, None))
        everyone = [a.user.pid for a in self.attendees]
        for i in range(self.recordings):
            ms = self.end + int((30 + r() * 240) * SECOND)
            add((ms, "content.recording_file", host, self._recording(i, everyone), None))
        if self.summary:
            ms = self.end + int((60 + r() * 240) * SECOND)
            add((ms, "content.ai_summary", host, self._summary(everyone), None))

    def _recording(self, i: int, everyone: list[str]) -> dict[str, Any]:
        r, bits = self.r, self.run.rng.getrandbits
        file_type = RECORDING_TYPES[i] if i < 2 else pick(r, RECORDING_TYPES[2:])
        media = file_type in ("MP4", "M4A")
        return {
            "file_type": file_type,
            "file_size": int((20 + r() * 400) * 1e6) if media else int(2000 + r() * 90_000),
            "download_url": f"https://files.example.com/rec/download/{bits(48):012x}"
            f"?access_token={bits(96):024x}",
            "participants": everyone,
        }

    def _summary(self, everyone: list[str]) -> dict[str, Any]:
        r = self.r
        firsts = [a.user.name.split(" ")[0] for a in self.attendees]
        steps = [pick(r, NEXT_STEPS).format(pick(r, firsts)) for _ in range(1 + int(r() * 3))]
        return {"summary_text": pick(r, SUMMARIES), "next_steps": steps, "participants": everyone}

    def _fill(self, count: int) -> None:
        """The bulk: QoS (~60% of all records), content (~20%), logs, crashes, feature use."""
        r = self.r
        run = self.run
        attendees = self.attendees
        n = len(attendees)
        everyone = [a.user.pid for a in attendees]
        add = self.items.append
        for _ in range(count):
            a = attendees[int(r() * n)]
            pid = a.user.pid
            ms = a.join_ms + 1 + int(r() * (a.leave_ms - a.join_ms - 1))
            x = r()
            if x < 0.665:
                y = r()
                if y < 0.40:
                    add((ms, "qos.audio", pid, _qos_audio(r), None))
                elif y < 0.68:
                    add((ms, "qos.video", pid, _qos_video(r), None))
                elif y < 0.78:
                    add((ms, "qos.screen_share", pid, _qos_video(r, screen=True), None))
                else:
                    add((ms, "qos.system", pid, _qos_system(r, a.user.network_type), None))
            elif x < 0.88:
                y = r()
                if y < 0.27:
                    add((ms, "content.chat_message", pid, self._chat(pid), None))
                elif y < 0.54:
                    text = pick(r, SPOKEN_SENTENCES)
                    add((ms, "content.transcript_segment", pid, self._segment(pid, ms, text), None))
                elif y < 0.76:
                    caption = {"speaker_id": pid, "text": pick(r, SPOKEN_SENTENCES)}
                    add((ms, "content.caption", pid, caption, None))
                elif y < 0.85:
                    chunk = {
                        "codec": "opus",
                        "sample_rate": 48000 if r() < 0.8 else 16000,
                        "duration_ms": pick(r, (20, 40, 60)),
                        "data_b64": pick(r, run.audio_blobs),
                        "participants": everyone,
                    }
                    add((ms, "content.audio_chunk", pid, chunk, None))
                elif y < 0.94:
                    width, height = pick(r, VIDEO_MODES)[0].split("x")
                    frame = {
                        "codec": VIDEO_CODECS[int(r() * 5)],
                        "width": int(width),
                        "height": int(height),
                        "data_b64": pick(r, run.frame_blobs),
                    }
                    add((ms, "content.video_frame", pid, frame, None))
                else:
                    add(self._rare_content(ms, pid, y))
            elif x < 0.93:
                add((ms, "diagnostic.log", pid, clean_log(r), _NO_MEETING if r() < 0.03 else None))
            elif x < 0.937:
                add((ms, "diagnostic.crash", pid, _clean_crash(r, a.user), None))
            else:
                add((ms, "usage.feature_used", pid, _feature(r), None))

    def _rare_content(self, ms: int, pid: str, y: float) -> _Item:
        r = self.r
        if y < 0.96:
            elements = [
                {"kind": pick(r, WHITEBOARD_KINDS), "text": pick(r, WHITEBOARD_TEXTS)}
                for _ in range(1 + int(r() * 3))
            ]
            board = {"board_id": f"wb-{1 + int(r() * 90)}", "elements": elements}
            return (ms, "content.whiteboard", pid, board, None)
        if y < 0.98:
            question, answers = pick(r, POLLS)
            answer = {
                "poll_id": f"poll-{1 + int(r() * 40)}",
                "question": question,
                "answer": pick(r, answers),
            }
            return (ms, "content.poll_answer", pid, answer, None)
        name, mime = pick(r, SHARED_FILES)
        shared = {
            "file_name": name,
            "mime_type": mime,
            "size": int(1000 + r() * 8_000_000),
            "uri": f"https://files.example.com/f/{self.run.rng.getrandbits(32):08x}",
        }
        return (ms, "content.shared_file", pid, shared, None)

    def _chat(self, pid: str, text: str | None = None) -> dict[str, Any]:
        r = self.r
        recipients: str | list[str] = "everyone"
        if r() < 0.15:  # a private message to one or two others
            others = [a.user.pid for a in self.attendees if a.user.pid != pid]
            recipients = others[: 1 + int(r() * min(2, len(others)))]
        return {
            "sender_id": pid,
            "recipients": recipients,
            "message": text if text is not None else pick(r, CHAT_MESSAGES),
            "file_name": pick(r, CHAT_FILE_NAMES) if r() < 0.08 else None,
        }

    def _segment(self, pid: str, ms: int, text: str) -> dict[str, Any]:
        r = self.r
        start = ms - self.start
        return {
            "speaker_id": pid,
            "text": text,
            "start_ms": start,
            "end_ms": start + 300 * len(text.split()) + int(r() * 800),
            "language": "en",
            "confidence": int(60 + r() * 39) / 100,
        }

    # -- planted leaks -----------------------------------------------------------------------
    def _plant_leak(self, case: Case, left_at: dict[str | None, int]) -> None:
        """A valid service record whose free text leaks `case.kind`, marked as planted."""
        r = self.r
        slot = _LEAK_SLOTS[(case.instance + LEAK_KINDS.index(case.kind)) % len(_LEAK_SLOTS)]
        if slot == "leave_reason" and (case.kind == "content_echo" or not left_at):
            slot = "log"
        if slot == "leave_reason":
            a = pick(r, [x for x in self.attendees if x.user.pid in left_at])
        else:
            a = pick(r, self.attendees)
        not_before = 0
        if case.kind == "content_echo":
            needle, not_before = self._echo_source(a)
            phrase = pick(r, ("send failed: {}", "caption overflow: {}")).format(needle)
        elif case.kind == "known_identifier":
            needle = a.user.name
            templates = (
                "rendering tile for {}",
                "speaker label set to {}",
                "avatar fetch failed for {}",
            )
            phrase = pick(r, templates).format(needle)
        else:
            needle, phrase = pattern_leak(self.run.rng, case.kind, case.instance)
        field = _FIELD_OF_SLOT[slot]
        mark = Mark(case.kind, f"detector:{case.kind}", field=field, needle=needle)
        pid = a.user.pid
        if slot == "leave_reason":
            i = left_at.pop(pid)
            ms, etype, _, payload, _ = self.items[i]
            self.items[i] = (
                ms,
                etype,
                pid,
                {**payload, field: f"{a.leave_reason} ({phrase})"},
                mark,
            )
            return
        ms = self._moment(a, not_before)
        if slot == "log":
            payload = {
                "level": pick(r, ("warn", "error")),
                "component": pick(r, LOG_COMPONENTS),
                field: phrase,
            }
            self.items.append((ms, "diagnostic.log", pid, payload, mark))
            return
        payload = _clean_crash(r, a.user)
        payload[field] = (
            phrase if slot == "crash_message" else f"{payload[field]}\ncaused by: {phrase}"
        )
        self.items.append((ms, "diagnostic.crash", pid, payload, mark))

    def _echo_source(self, echoing: Attendee) -> tuple[str, int]:
        """Add a long chat message or transcript segment; (6 to 9 of its words, its time)."""
        r = self.r
        latest = echoing.leave_ms - 10 * SECOND
        a = pick(r, [x for x in self.attendees if x.join_ms < latest])
        ms = a.join_ms + 1 + int(r() * max(1, min(a.leave_ms, latest) - a.join_ms - 1))
        spoken = r() < 0.5
        pool = [s for s in (SPOKEN_SENTENCES if spoken else CHAT_MESSAGES) if len(s.split()) >= 8]
        text = pick(r, pool)
        pid = a.user.pid
        if spoken:
            self.items.append(
                (ms, "content.transcript_segment", pid, self._segment(pid, ms, text), None)
            )
        else:
            self.items.append((ms, "content.chat_message", pid, self._chat(pid, text), None))
        words = text.split()
        k = 6 + int(r() * (min(9, len(words)) - 5))
        first = int(r() * (len(words) - k + 1))
        return " ".join(words[first : first + k]), ms

    # -- ids, duplicates ------------------------------------------------------------------------
    def _with_ids(self) -> list[_Row]:
        run = self.run
        prefix, day = f"ev-{run.seed}-", run.day
        rows: list[_Row] = []
        add = rows.append
        n = run.last_event
        for ms, etype, pid, payload, mark in self.items:
            n += 1
            s, milli = divmod(ms, 1000)
            m, s = divmod(s, 60)
            h, m = divmod(m, 60)
            ts = f"{day}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}Z"
            add((f"{prefix}{n}", etype, ts, pid, payload, mark))
        run.last_event = n
        return rows

    def _plant_copy(self, rows: list[_Row], case: Case) -> None:
        """Redeliver an earlier clean record later: identical (duplicate) or changed (conflict)."""
        r = self.r
        copied = {row[0] for row in rows if row[5] is not None and row[5].kind in DUPLICATE_KINDS}
        clean = [i for i, row in enumerate(rows) if row[5] is None and row[0] not in copied]
        if case.kind == "duplicate":  # service only, so the original still goes to training
            pool = [i for i in clean if not rows[i][1].startswith("content.")]
        else:
            qos = [i for i in clean if rows[i][1].startswith("qos.")]
            pool = qos if case.instance % 2 and qos else clean
        if not pool:
            raise RuntimeError(f"{self.meeting_id}: no clean record to copy for {case.kind}")
        i = pick(r, pool)
        event_id, etype, ts, pid, payload, _ = rows[i]
        j = i + 1 + int(r() * (len(rows) - i))
        if case.kind == "duplicate":
            rows.insert(j, (event_id, etype, ts, pid, payload, _DUPLICATE))
            return
        if etype.startswith("qos.") and case.instance % 2:  # re-measured
            key = "memory_mb" if "memory_mb" in payload else "latency_ms"
            changed = {**payload, key: payload[key] + 1 + int(r() * 20)}
            copy = (event_id, etype, ts, pid, changed, _CONFLICT)
        else:  # re-stamped
            second = (int(ts[17:19]) + 1 + int(r() * 5)) % 60
            copy = (event_id, etype, f"{ts[:17]}{second:02d}{ts[19:]}", pid, payload, _CONFLICT)
        rows[i] = (event_id, etype, ts, pid, payload, _CONFLICT)
        rows.insert(j, copy)

    # -- serialisation ----------------------------------------------------------------------------
    def record(self, row: _Row) -> dict[str, Any]:
        """The record as read: envelope and payload, the mark's envelope edits applied."""
        event_id, etype, ts, pid, payload, mark = row
        rec = {
            "event_id": event_id,
            "event_type": etype,
            "event_ts": ts,
            "account_id": self.account.account_id,
            "meeting_id": self.meeting_id,
            "participant_id": pid,
            "schema_version": 1,
            "payload": payload,
        }
        if mark is not None:
            rec.update(mark.patch)
            if mark.drop:
                del rec[mark.drop]
        return rec

    def jsonl_lines(self, rows: list[_Row]) -> list[bytes]:
        """One line per record; clean ones formatted directly (the same bytes orjson gives)."""
        envelope = f'"account_id":"{self.account.account_id}","meeting_id":"{self.meeting_id}",'
        dumps = orjson.dumps
        lines = []
        for row in rows:
            event_id, etype, ts, pid, payload, mark = row
            if mark is not None and mark.edits:
                lines.append(self._damaged_line(self.record(row), mark.damage))
                continue
            participant = "null" if pid is None else f'"{pid}"'
            head = (
                f'{{"event_id":"{event_id}","event_type":"{etype}","event_ts":"{ts}",{envelope}'
                f'"participant_id":{participant},"schema_version":1,"payload":'
            )
            lines.append(b"%b%b}\n" % (head.encode(), dumps(payload)))
        return lines

    def _damaged_line(self, rec: dict[str, Any], damage: str | None) -> bytes:
        line = orjson.dumps(rec)
        r = self.r
        if damage == "truncate":  # a writer killed mid-line
            line = line[: int(len(line) * (0.3 + 0.4 * r()))]
        elif damage == "latin1":
            line = line.replace("®".encode(), "®".encode("cp1252"))
        elif damage == "array":  # a batch posted as one JSON array
            line = b"[" + line + b"]"
        elif damage == "number":  # a bare epoch number
            line = str(int(1_700_000_000 + r() * 100_000_000)).encode()
        return line + b"\n"

    def parquet_rows(self, rows: list[_Row]) -> list[dict[str, Any]]:
        """One row per record, payload as JSON text (damaged where the case says)."""
        out = []
        for row in rows:
            rec = self.record(row)
            payload = orjson.dumps(rec["payload"]).decode()
            damage = row[5].damage if row[5] is not None else None
            if damage == "truncate":
                payload = payload[: int(len(payload) * (0.3 + 0.4 * self.r()))]
            elif damage == "array":
                payload = f"[{payload}]"
            elif damage == "number":
                payload = str(int(self.r() * 1000))
            rec["payload"] = payload
            out.append(rec)
        return out


class Run:
    """Run-wide state: the random source, accounts and people, consent ledger, last event id."""

    def __init__(self, seed: int, accounts: int, day: str, parquet: bool):
        self.rng = rng = random.Random(seed)
        self.seed = seed
        self.day = day
        self.parquet = parquet
        self.last_event = 0
        # The ledger draws from its own child source: changing it leaves the events alone.
        self.ledger = ConsentLedger(random.Random(rng.getrandbits(64)), day)
        self.accounts = make_accounts(rng, accounts, self.ledger)
        self.account_cum = list(accumulate(a.weight for a in self.accounts))
        self.audio_blobs = [self._b64(24 + int(rng.random() * 40)) for _ in range(64)]
        self.frame_blobs = [self._b64(30 + int(rng.random() * 60)) for _ in range(64)]

    def _b64(self, n: int) -> str:
        return base64.b64encode(self.rng.getrandbits(8 * n).to_bytes(n, "big")).decode()


# -- the command -----------------------------------------------------------------------------
def check_arguments(events: int, seed: int, shards: int, fmt: str, date: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if isinstance(events, bool) or not isinstance(events, int) or events < MIN_EVENTS:
        raise ValueError(f"events must be an integer >= {MIN_EVENTS}, got {events!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= events // 100:
        raise ValueError(f"shards must be from 1 to events/100 ({events // 100}), got {shards!r}")
    try:
        valid_date = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)) and bool(
            Date.fromisoformat(date)
        )
    except (TypeError, ValueError):
        valid_date = False
    if not valid_date:
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}")


def check_accounts(accounts: int | None) -> None:
    if accounts is None:
        return
    if isinstance(accounts, bool) or not isinstance(accounts, int) or not 1 <= accounts <= 5000:
        raise ValueError(f"accounts must be an integer from 1 to 5000, got {accounts!r}")


def generate(
    out_dir: str | Path,
    *,
    events: int = 20_000,
    seed: int = 0,
    shards: int = 1,
    fmt: str = "jsonl",
    date: str = "2026-11-26",
    accounts: int | None = None,
) -> dict[str, Any]:
    """Write a synthetic input set to `out_dir` and return its ground truth.

    `accounts` customer accounts share the meetings (default: `default_accounts(events)`).

    Files: `events.jsonl.gz` (or `events-00000-of-0000N.jsonl.gz` shards; with
    `fmt="parquet"`, `events*.parquet`, `payload` as a JSON string column), the consent
    ledger `consent.jsonl`, and `truth.json` (the returned dict). `events` is the exact
    number of input records, planted bad lines and redelivered copies included; the few
    white-space-only lines are not records. All meetings fall on `date` (UTC). Planted
    cases (leaks in service free text, contract breaks, duplicates) are spread through the
    file; the truth lists each with the destination and reason it must get, and the count
    per destination under the default content policy. The ledger exercises every clause of
    the consent rule (3 of its rows break it); `truth["consent"]` holds, for a run with
    `--content-policy per_participant --as-of <consent.as_of>`, the content records every
    subject of which consented (`consented_event_ids`), those only a host-only rule would
    admit (`host_only_event_ids`), the valid content records (`content_events`), the
    planted decisions by kind (`clauses`) and the subjects' verdicts (`verdicts`). The same
    arguments give the same bytes. Earlier `events*` files in `out_dir` are replaced. Raises
    ValueError on a bad argument.
    """
    check_arguments(events, seed, shards, fmt, date)
    check_accounts(accounts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in sorted([*out.glob("events*.jsonl.gz"), *out.glob("events*.parquet")]):
        old.unlink()

    parquet = fmt == "parquet"
    run = Run(seed, default_accounts(events) if accounts is None else accounts, date, parquet)
    rng = run.rng
    kinds: tuple[str, ...] = (*LEAK_KINDS, *BAD_INPUT_KINDS, *DUPLICATE_KINDS)
    if parquet:  # a Parquet string column holds only valid UTF-8
        kinds = tuple(k for k in kinds if k != "not_utf8")
    cases = sorted(plan_cases(rng, events, kinds), key=lambda c: c.target)
    names = shard_names("parquet" if parquet else "jsonl.gz", shards)
    paths = [out / name for name in names]
    writer: JsonlShards | ParquetShards
    if parquet:
        writer = ParquetShards(paths, events)
    else:
        writer = JsonlShards(paths, events, rng.sample(range(1, events), 3 + events // 100_000))

    counts = {"training": 0, "restricted": 0, "quarantine": 0, "duplicates": 0}
    planted: list[dict[str, Any]] = []
    views: list[ConsentView] = []
    try:
        consumed = next_case = number = 0
        while consumed < events:
            number += 1
            remaining = events - consumed
            # Meetings roughly in time order through the day, as an export would be.
            start = int(
                consumed / events * (DAY_MS - 3 * HOUR) + (rng.random() - 0.3) * 40 * MINUTE
            )
            meeting = Meeting(run, number, start)
            size = meeting.natural_size()
            last = remaining - size < _MIN_TAIL
            while next_case < len(cases) and (last or cases[next_case].target < consumed + size):
                meeting.cases.append(cases[next_case])
                next_case += 1
            size = max(size, meeting.min_size())
            if last or remaining - size < _MIN_TAIL:
                meeting.cases += cases[next_case:]
                next_case = len(cases)
                size = remaining
                if size < meeting.min_size():
                    meeting.shrink()
            rows = meeting.build(size)
            consumed += size
            content: list[tuple[str, str, tuple[str, ...]]] = []
            hosts: set[str] = set()
            tally(rows, counts, planted, content, hosts)
            views.append(
                (meeting.account.account_id, meeting.meeting_id, frozenset(hosts), content)
            )
            if isinstance(writer, ParquetShards):
                writer.write(meeting.parquet_rows(rows))
            else:
                writer.write(meeting.jsonl_lines(rows))
    except BaseException:
        writer.abort()
        raise
    writer.close()

    decisions = run.ledger.decisions()
    with open(out / "consent.jsonl", "wb") as f:
        f.writelines(run.ledger.delivered_lines(decisions))
    consent = consent_truth(decisions, views, date, run.ledger.clauses, run.ledger.rejected)
    truth = {
        "generator": GENERATOR_ID,
        "seed": seed,
        "events": events,
        "date": date,
        "accounts": len(run.accounts),
        "format": fmt,
        "files": names,
        "expected": {"input_records": events, **counts, "consented_content": 0},
        "planted": planted,
        "clean_service_events": counts["training"],
        "consent": consent,
    }
    (out / "truth.json").write_text(json.dumps(truth, sort_keys=True, indent=1) + "\n")
    return truth


def tally(
    rows: list[_Row],
    counts: dict[str, int],
    planted: list[dict[str, Any]],
    content: list[tuple[str, str, tuple[str, ...]]],
    hosts: set[str],
) -> None:
    """Count where each record must end up under the default policy; list the planted ones.

    Also gather what the consent truth needs of the meeting: its valid content records
    (event_id, event_ts, content subjects), a duplicate's original once, and its hosts.
    """
    for event_id, etype, ts, pid, payload, mark in rows:
        if mark is None or mark.kind is None:
            if etype.startswith("content."):
                counts["restricted"] += 1
                content.append((event_id, ts, content_subjects(etype, pid, payload)))
            else:
                counts["training"] += 1
                if etype == "usage.meeting_started":
                    hosts.add(payload["host_id"])
                elif etype == "usage.participant_joined" and payload["role"] == "host" and pid:
                    hosts.add(pid)
            continue
        counts["duplicates" if mark.expect == "duplicate" else "quarantine"] += 1
        planted.append(
            {
                "kind": mark.kind,
                "event_id": event_id if mark.id_known else None,
                "expect": mark.expect,
                "reason": mark.reason,
                "field": mark.field,
                "needle": mark.needle,
            }
        )
