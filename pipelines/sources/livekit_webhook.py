"""LiveKit WebhookEvent JSON, one per line (protobuf JSON: int64 as strings, enums as names).

One event is one record of kind `event`. LiveKit's webhooks carry no transcription or chat;
an agent that relays them writes the same envelope with `event` `transcription_received`
(`segment`: a TranscriptionSegment) or `chat_received` (`chat_message`: a ChatMessage).
LiveKit names no account: the receiver may add `account_id` (the API key it verified).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pipelines.sources.adapt import Unit

NAME = "livekit-webhook"
_BODIES = ("room", "participant", "track", "egress_info", "ingress_info", "job")


def matches(record: Mapping[str, Any]) -> bool:
    return (
        isinstance(record.get("event"), str)
        and "payload" not in record
        and ("created_at" in record or any(k in record for k in _BODIES))
    )


def units(record: Mapping[str, Any]) -> Iterator[Unit]:
    yield Unit(record["event"], record)
