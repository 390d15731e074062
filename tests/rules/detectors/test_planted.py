"""The detectors on the generator's planted set: every context-free planted leak is found by its
detector, and no clean free-text value of the same data is flagged."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa

from pipelines.generate import generate
from pipelines.rules.detectors import DetectorSettings, scan_column

# Leaks the detectors find without the run's context (the others need its identifiers and
# content, and are measured in the pipeline tests).
CONTEXT_FREE = {"email", "phone", "ip_address", "secret_url", "payment_card", "blob"}
CONTEXT_FREE |= {"natural_language"}
FREE_TEXT = {
    "diagnostic.log": ("message",),
    "diagnostic.crash": ("crash_message", "stack_trace"),
    "usage.participant_left": ("leave_reason",),
}


def test_planted_leaks_found_and_clean_free_text_unflagged(tmp_path: Path) -> None:
    truth = generate(tmp_path, events=40_000, seed=11)
    planted = {p["event_id"]: p for p in truth["planted"] if p["event_id"]}
    leaks: list[tuple[str, str]] = []
    clean: list[str] = []
    with gzip.open(tmp_path / "events.jsonl.gz", "rt", errors="replace") as lines:
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict) or not isinstance(event.get("payload"), dict):
                continue
            case = planted.get(event.get("event_id"))
            if case is not None:
                value = event["payload"].get(case["field"] or "")
                if case["kind"] in CONTEXT_FREE and isinstance(value, str):
                    leaks.append((case["kind"], value))
                continue
            for name in FREE_TEXT.get(event.get("event_type"), ()):
                value = event["payload"].get(name)
                if isinstance(value, str) and value:
                    clean.append(value)
    settings = DetectorSettings.default()
    found = scan_column(pa.array([text for _, text in leaks]), settings)
    missed = [(kind, text) for (kind, text), row in zip(leaks, found, strict=True)
              if kind not in {f.detector for f in row}]  # fmt: skip
    assert {kind for kind, _ in leaks} == CONTEXT_FREE
    assert missed == []
    flagged = [
        text for text, row in zip(clean, scan_column(pa.array(clean), settings), strict=True) if row
    ]
    assert len(clean) > 1000
    assert flagged == []
