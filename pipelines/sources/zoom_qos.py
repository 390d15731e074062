"""Zoom Dashboard metrics pages: `GET /metrics/meetings/{id}/participants/qos` and
`.../participants`, one page per line as returned, with `account_id` and `meeting_id` added by
the collector (the page itself names neither).

Each participant is one record (kind `participant`); each QoS sample's metric group
(`audio_input`, `video_output`, `as_input`, `cpu_usage`, `wifi_rssi`, ...) is one record of the
group's kind, with the sample's `date_time` and the participant's id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipelines.sources.adapt import ShapeError, Unit

NAME = "zoom-qos"


def matches(record: Mapping[str, Any]) -> bool:
    return isinstance(record.get("participants"), list) and any(
        k in record for k in ("page_size", "total_records", "next_page_token", "page_count")
    )


def units(record: Mapping[str, Any]) -> Iterator[Unit]:
    page = {k: v for k, v in record.items() if k != "participants"}
    for i, participant in enumerate(record["participants"]):
        if not isinstance(participant, Mapping):
            raise ShapeError(f"participants[{i}]")
        person = {k: v for k, v in participant.items() if k != "user_qos"}
        yield Unit("participant", {**page, "participant": person})
        samples = participant.get("user_qos") or []
        if not isinstance(samples, list):
            raise ShapeError(f"participants[{i}].user_qos")
        who = participant.get("id") or participant.get("user_id")
        for j, sample in enumerate(samples):
            if not isinstance(sample, Mapping):
                raise ShapeError(f"participants[{i}].user_qos[{j}]")
            for group, metrics in sample.items():
                if group == "date_time":
                    continue
                yield Unit(
                    group,
                    {
                        **page,
                        "participant_id": who,
                        "date_time": sample.get("date_time"),
                        "metrics": metrics,
                    },
                )
