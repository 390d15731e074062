"""Destinations, decided with default deny: a record reaches training only when a rule allows it.

Every decision returns a destination and a reason code for each row; no row is left without one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CONFLICT",
    "DESTINATIONS",
    "DUPLICATE",
    "KEEP",
    "DedupVerdicts",
    "content_decision",
    "find_duplicates",
    "service_decision",
]

DESTINATIONS = ("training", "consented_content", "restricted", "quarantine", "duplicate")
KEEP, DUPLICATE, CONFLICT = "keep", "duplicate", "conflict"


@dataclass(frozen=True)
class DedupVerdicts:
    """Repeated event ids of a run: those whose copies differ, and which copy of the others to keep.

    Ids seen once are not listed, so the object stays as small as the number of repeats.
    """

    conflicts: frozenset[str] = frozenset()
    keepers: Mapping[str, int] = field(default_factory=dict)

    def verdict(self, event_id: str | None, loc: int) -> str:
        if event_id is None:
            return KEEP
        if event_id in self.conflicts:
            return CONFLICT
        keeper = self.keepers.get(event_id)
        return DUPLICATE if keeper is not None and keeper != loc else KEEP

    def merge(self, other: DedupVerdicts) -> DedupVerdicts:
        return DedupVerdicts(self.conflicts | other.conflicts, {**self.keepers, **other.keepers})


def find_duplicates(keys: Iterable[pa.Table]) -> DedupVerdicts:
    """Verdicts for one bucket of (event_id, _hash, _loc) rows: all copies of an id meet here."""
    table = pa.concat_tables(list(keys))
    if table.num_rows == 0:
        return DedupVerdicts()
    grouped = table.group_by("event_id").aggregate(
        [("_hash", "count_distinct"), ("_loc", "min"), ("_loc", "count")]
    )
    repeated = grouped.filter(pc.greater(grouped["_loc_count"], 1))
    conflicts = repeated.filter(pc.greater(repeated["_hash_count_distinct"], 1))
    same = repeated.filter(pc.equal(repeated["_hash_count_distinct"], 1))
    return DedupVerdicts(
        conflicts=frozenset(conflicts["event_id"].to_pylist()),
        keepers=dict(zip(same["event_id"].to_pylist(), same["_loc_min"].to_pylist(), strict=True)),
    )


def _dedup_columns(table: pa.Table, verdicts: DedupVerdicts) -> list[str]:
    """KEEP, DUPLICATE or CONFLICT per row; only rows whose id repeats in the run are looked up."""
    column = [KEEP] * table.num_rows
    if not (verdicts.conflicts or verdicts.keepers):
        return column
    repeated = pa.array([*verdicts.conflicts, *verdicts.keepers], pa.string())
    rows = np.flatnonzero(pc.is_in(table["event_id"], value_set=repeated).to_numpy())
    ids = table["event_id"].take(rows).to_pylist()
    locs = table["_loc"].take(rows).to_pylist()
    for row, event_id, loc in zip(rows.tolist(), ids, locs, strict=True):
        column[row] = verdicts.verdict(event_id, loc)
    return column


def _first_detectors(findings: pa.ChunkedArray) -> dict[int, str]:
    """Row -> detector of its first finding, for the rows that have findings (few do)."""
    flagged = pc.fill_null(pc.greater(pc.list_value_length(findings), 0), False)
    rows = np.flatnonzero(flagged.to_numpy())
    firsts = pc.list_element(findings.take(rows), 0)
    return dict(zip(rows.tolist(), pc.struct_field(firsts, "detector").to_pylist(), strict=True))


def service_decision(
    table: pa.Table, verdicts: DedupVerdicts, on_finding: str
) -> tuple[pa.Array, pa.Array]:
    """Service-generated rows: training unless duplicated, conflicting or flagged by a detector."""
    dedup = _dedup_columns(table, verdicts)
    first_detector = _first_detectors(table["_findings"]) if on_finding == "quarantine" else {}
    dests, reasons = [], []
    for row, verdict in enumerate(dedup):
        if verdict == CONFLICT:
            dests.append("quarantine")
            reasons.append("conflicting_duplicate")
        elif verdict == DUPLICATE:
            dests.append("duplicate")
            reasons.append("duplicate")
        elif row in first_detector:
            dests.append("quarantine")
            reasons.append(f"detector:{first_detector[row]}")
        else:
            dests.append("training")
            reasons.append("service_deidentified")
    return pa.array(dests, pa.string()), pa.array(reasons, pa.string())


def content_decision(
    table: pa.Table, verdicts: DedupVerdicts, content_policy: str
) -> tuple[pa.Array, pa.Array]:
    """Customer content rows: `consented_content` only under `per_participant` and only when
    every subject consented (the `_consented` column); `restricted` otherwise. Never the
    service bucket."""
    dedup = _dedup_columns(table, verdicts)
    consented = table["_consented"].to_pylist()
    why_not = table["_consent_reason"].to_pylist()
    # Findings on a content record are in what cannot be redacted (its event_id): such a
    # record may not reach consented content; one that is restricted anyway stays so.
    findings = table["_findings"] if "_findings" in table.column_names else None
    first_detector = _first_detectors(findings) if findings is not None else {}
    dests, reasons = [], []
    for row, (verdict, ok, reason) in enumerate(zip(dedup, consented, why_not, strict=True)):
        if verdict == CONFLICT:
            dests.append("quarantine")
            reasons.append("conflicting_duplicate")
        elif verdict == DUPLICATE:
            dests.append("duplicate")
            reasons.append("duplicate")
        elif content_policy != "per_participant":
            dests.append("restricted")
            reasons.append(f"content_policy_{content_policy}")
        elif ok and row in first_detector:
            dests.append("quarantine")
            reasons.append(f"detector:{first_detector[row]}")
        elif ok:
            dests.append("consented_content")
            reasons.append("consented")
        else:
            dests.append("restricted")
            reasons.append(f"no_consent:{reason}")
    return pa.array(dests, pa.string()), pa.array(reasons, pa.string())
