"""Zoom webhook bodies, one per line, as received: `{event, event_ts, payload, ...}`.

A body is one record of kind `event`, except recordings: the recording is one record and each
of its `recording_files[]` and `participant_audio_files[]` one more (kinds `recording.file`
and `recording.participant_audio_file`), each carrying the meeting's ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipelines.sources.adapt import ShapeError, Unit

NAME = "zoom-webhook"
_FILE_LISTS = {
    "recording_files": "recording.file",
    "participant_audio_files": "recording.participant_audio_file",
}
# The meeting's own keys each file record repeats (both spellings: drift).
_MEETING_KEYS = ("id", "uuid", "host_id", "meeting_id", "meeting_uuid")


def matches(record: Mapping[str, Any]) -> bool:
    return (
        isinstance(record.get("event"), str)
        and "event_ts" in record
        and isinstance(record.get("payload"), Mapping)
    )


def units(record: Mapping[str, Any]) -> Iterator[Unit]:
    event = record["event"]
    payload = record["payload"]
    obj = payload.get("object")
    if not isinstance(obj, Mapping) or not any(k in obj for k in _FILE_LISTS):
        yield Unit(event, record)
        return
    own = {k: v for k, v in obj.items() if k not in _FILE_LISTS}
    yield Unit(event, {**record, "payload": {**payload, "object": own}})
    meeting = {k: obj[k] for k in _MEETING_KEYS if k in obj}
    for key, kind in _FILE_LISTS.items():
        files = obj.get(key) or []
        if not isinstance(files, list):
            raise ShapeError(f"payload.object.{key}")
        for i, item in enumerate(files):
            if not isinstance(item, Mapping):
                raise ShapeError(f"payload.object.{key}[{i}]")
            yield Unit(
                kind,
                {
                    "event": event,
                    "event_ts": record.get("event_ts"),
                    "payload": {
                        "account_id": payload.get("account_id"),
                        "object": {**meeting, "file": item},
                    },
                },
            )
