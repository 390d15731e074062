"""De-duplication verdicts and default-deny destinations."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipelines.rules.route import (
    CONFLICT,
    DUPLICATE,
    KEEP,
    DedupVerdicts,
    content_decision,
    find_duplicates,
    service_decision,
)


def keys(rows):
    return pa.table(
        {
            "event_id": pa.array([r[0] for r in rows], pa.string()),
            "_hash": pa.array([r[1] for r in rows], pa.int64()),
            "_loc": pa.array([r[2] for r in rows], pa.int64()),
        }
    )


def test_identical_repeats_keep_the_first_copy():
    verdicts = find_duplicates([keys([("e1", 7, 30), ("e2", 1, 2)]), keys([("e1", 7, 10)])])
    assert verdicts.verdict("e1", 10) == KEEP
    assert verdicts.verdict("e1", 30) == DUPLICATE
    assert verdicts.verdict("e2", 2) == KEEP
    assert verdicts.conflicts == frozenset()


def test_differing_repeats_conflict_in_every_copy():
    verdicts = find_duplicates([keys([("e1", 7, 10), ("e1", 8, 11), ("e1", 7, 12)])])
    assert [verdicts.verdict("e1", loc) for loc in (10, 11, 12)] == [CONFLICT] * 3


def test_ids_seen_once_are_not_stored():
    verdicts = find_duplicates([keys([("e1", 1, 1), ("e2", 2, 2)])])
    assert verdicts == DedupVerdicts()


def test_verdicts_merge_across_buckets():
    a = find_duplicates([keys([("e1", 1, 1), ("e1", 1, 2)])])
    b = find_duplicates([keys([("e2", 1, 3), ("e2", 2, 4)])])
    merged = a.merge(b)
    assert merged.verdict("e1", 2) == DUPLICATE and merged.verdict("e2", 3) == CONFLICT


def service_table(findings, ids=("a", "b", "c")):
    finding = pa.struct(
        [
            ("detector", pa.string()),
            ("field", pa.string()),
            ("start", pa.int32()),
            ("end", pa.int32()),
        ]
    )
    return pa.table(
        {
            "event_id": pa.array(ids, pa.string()),
            "_loc": pa.array(range(len(ids)), pa.int64()),
            "_findings": pa.array(findings, pa.list_(finding)),
        }
    )


@pytest.mark.parametrize(
    ("on_finding", "expected"),
    [("quarantine", ["training", "quarantine"]), ("redact", ["training", "training"])],
)
def test_service_rows_with_findings_follow_the_policy(on_finding, expected):
    hit = [{"detector": "email", "field": "message", "start": 0, "end": 5}]
    dest, reason = service_decision(
        service_table([[], hit], ids=("a", "b")), DedupVerdicts(), on_finding
    )
    assert dest.to_pylist() == expected
    if on_finding == "quarantine":
        assert reason.to_pylist() == ["service_deidentified", "detector:email"]


def test_duplicates_and_conflicts_override_everything():
    verdicts = DedupVerdicts(conflicts=frozenset({"a"}), keepers={"b": 99})
    dest, reason = service_decision(service_table([[], [], []]), verdicts, "quarantine")
    assert dest.to_pylist() == ["quarantine", "duplicate", "training"]
    assert reason.to_pylist() == ["conflicting_duplicate", "duplicate", "service_deidentified"]


def content_table():
    table = service_table([[], [], []])
    return table.append_column("_consented", pa.array([True, False, False])).append_column(
        "_consent_reason", pa.array(["consented", "not_own_grant", "no_subjects"])
    )


def test_content_never_reaches_training_under_never():
    dest, reason = content_decision(content_table(), DedupVerdicts(), "never")
    assert dest.to_pylist() == ["restricted"] * 3
    assert set(reason.to_pylist()) == {"content_policy_never"}


def test_only_fully_consented_content_is_admitted_per_participant():
    dest, reason = content_decision(content_table(), DedupVerdicts(), "per_participant")
    assert dest.to_pylist() == ["consented_content", "restricted", "restricted"]
    assert reason.to_pylist() == ["consented", "no_consent:not_own_grant", "no_consent:no_subjects"]


def test_a_duplicate_of_consented_content_is_still_counted_once():
    verdicts = DedupVerdicts(keepers={"a": 99})
    dest, _ = content_decision(content_table(), verdicts, "per_participant")
    assert dest.to_pylist() == ["duplicate", "restricted", "restricted"]
