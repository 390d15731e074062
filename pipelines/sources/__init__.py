"""Vendor sources: one module per shape, each splitting a vendor line into declared units.

`--source NAME` picks one module; `--source auto` tries them in `AUTO_ORDER` per record.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

__all__ = [
    "AUTO_ORDER",
    "SOURCE_NAMES",
    "reject_source",
    "source_modules",
    "source_of_event_type",
]

# Module of each source (the contract's own shape included, for `auto`).
_MODULES = {
    "contract": "pipelines.sources.contract_shape",
    "zoom-webhook": "pipelines.sources.zoom_webhook",
    "zoom-qos": "pipelines.sources.zoom_qos",
    "webrtc-stats": "pipelines.sources.webrtc_stats",
    "livekit-webhook": "pipelines.sources.livekit_webhook",
}
SOURCE_NAMES = (*_MODULES, "auto")
# Most specific shape first: each `matches` looks at top-level keys only.
AUTO_ORDER = ("contract", "webrtc-stats", "zoom-qos", "zoom-webhook", "livekit-webhook")


def source_modules(name: str) -> list[ModuleType]:
    """The modules to try on each record for `--source name`."""
    names = AUTO_ORDER if name == "auto" else (name,)
    return [import_module(_MODULES[n]) for n in names]


def source_of_event_type(event_type: str | None) -> str | None:
    """The source an event type belongs to: `zoom-qos.audio_input` -> `zoom-qos`; v1 types
    (`qos.audio`) -> `contract`; None for None."""
    if event_type is None:
        return None
    head = event_type.split(".", 1)[0]
    return head if head in _MODULES and head != "contract" else "contract"


def reject_source(event_type: str | None, input_source: str) -> str:
    """The source of a rejected record: its event type's when it has one, else the run's;
    `unknown` under `auto` for a record no shape recognised."""
    if event_type is not None:
        found = source_of_event_type(event_type)
        if found != "contract" or input_source in ("contract", "auto"):
            return found or "unknown"
    return "unknown" if input_source == "auto" else input_source
