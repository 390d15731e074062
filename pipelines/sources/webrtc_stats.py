"""W3C `getStats()` snapshots, one per line, as the collector writes them.

Line: `{"collected_at", "account_id", "meeting_id", "participant_id", "stats": [RTCStats]}`.
Each RTCStats dictionary is one record, of kind `type` (`inbound-rtp`, `local-candidate`, ...).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipelines.sources.adapt import ShapeError, Unit

NAME = "webrtc-stats"


def matches(record: Mapping[str, Any]) -> bool:
    return isinstance(record.get("stats"), list) and "collected_at" in record


def units(record: Mapping[str, Any]) -> Iterator[Unit]:
    context = {k: v for k, v in record.items() if k != "stats"}
    for i, stat in enumerate(record["stats"]):
        if not isinstance(stat, Mapping):
            raise ShapeError(f"stats[{i}]")
        kind = stat.get("type")
        yield Unit(kind if isinstance(kind, str) else None, {**context, "stat": stat})
