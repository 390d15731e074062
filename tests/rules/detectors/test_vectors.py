"""Recall and false-flag rate of the detectors on the set in vectors.py: every leak found by
the detector named, no finding at all on clean telemetry."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipelines.rules.detectors import DetectorSettings, find_all, scan_column

from .vectors import CLEAN, LEAKS

DEFAULTS = DetectorSettings.default()


@pytest.mark.parametrize(("text", "detector"), [c[1:] for c in LEAKS], ids=[c[0] for c in LEAKS])
def test_planted_leak_is_found_by_its_detector(text: str, detector: str) -> None:
    assert detector in {f.detector for f in find_all(text)}


@pytest.mark.parametrize("text", [c[1] for c in CLEAN], ids=[c[0] for c in CLEAN])
def test_clean_telemetry_has_no_finding(text: str) -> None:
    assert find_all(text) == []


def test_column_path_agrees_on_the_whole_set() -> None:
    texts = [text for _, text, _ in LEAKS] + [text for _, text in CLEAN]
    found = scan_column(pa.array(texts), DEFAULTS)
    recall = sum(
        detector in {f.detector for f in row}
        for (_, _, detector), row in zip(LEAKS, found, strict=False)
    ) / len(LEAKS)
    false_flags = sum(bool(row) for row in found[len(LEAKS) :]) / len(CLEAN)
    assert (recall, false_flags) == (1.0, 0.0)
