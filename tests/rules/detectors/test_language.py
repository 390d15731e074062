"""Long chat sentences that carry a telemetry word or two still read as prose."""

from __future__ import annotations

import pytest

from pipelines.rules.detectors import find_all


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("My camera is off because the bandwidth here is terrible", True),
        ("Let's push the budget discussion to next week's meeting", True),
        ("recording stopped because the disk on the host is full", False),
        ("audio device changed from default to headset", False),
        ("failed to open camera device, falling back to default", False),
    ],
    ids=["camera chat", "lets push", "disk full", "device changed", "camera fallback"],
)
def test_long_sentences_with_a_few_telemetry_words(text, flagged):
    assert any(f.detector == "natural_language" for f in find_all(text)) is flagged
