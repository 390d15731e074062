"""Detectors for customer content and personal data: the second net behind the allow-list.

One module per family (contact, network, financial, secrets, language, known values, echo),
one registry naming every detector (registry.py), the shared normalised view
(normalise.py) and the scan over a text or a whole Arrow column (scan.py).
"""

from pipelines.rules.detectors.detector import Finding, TextDetector
from pipelines.rules.detectors.echo import (
    ENTRY_SCHEMA,
    MIN_WHOLE_WORDS,
    EchoIndex,
    EchoSettings,
    EchoSources,
    bucket_entries,
    entries,
    judge_bucket,
    meeting_key,
    record_runs,
    shingle_hashes,
)
from pipelines.rules.detectors.financial import find_card_numbers, find_ibans, luhn_valid
from pipelines.rules.detectors.known import KnownIdentifiers
from pipelines.rules.detectors.normalise import (
    UNSPACED_SCRIPTS,
    View,
    ascii_digits,
    normalise,
    outermost,
)
from pipelines.rules.detectors.registry import DETECTORS, TEXT_DETECTORS
from pipelines.rules.detectors.scan import (
    find_all,
    scan_column,
    scan_columns,
    scan_rows,
    scan_text,
)
from pipelines.rules.detectors.settings import DetectorSettings

__all__ = [
    "DETECTORS",
    "ENTRY_SCHEMA",
    "MIN_WHOLE_WORDS",
    "TEXT_DETECTORS",
    "UNSPACED_SCRIPTS",
    "DetectorSettings",
    "EchoIndex",
    "EchoSettings",
    "EchoSources",
    "Finding",
    "KnownIdentifiers",
    "TextDetector",
    "View",
    "ascii_digits",
    "bucket_entries",
    "entries",
    "find_all",
    "find_card_numbers",
    "find_ibans",
    "judge_bucket",
    "luhn_valid",
    "meeting_key",
    "normalise",
    "outermost",
    "record_runs",
    "scan_column",
    "scan_columns",
    "scan_rows",
    "scan_text",
    "shingle_hashes",
]
