"""Destinations, decided with default deny: a record reaches training only when a rule allows it.

Every decision returns a destination and a reason code for each row; no row is left without one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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
    return (
        [
            verdicts.verdict(event_id, loc)
            for event_id, loc in zip(
                table["event_id"].to_pylist(), table["_loc"].to_pylist(), strict=True
            )
        ]
        if (verdicts.conflicts or verdicts.keepers)
        else [KEEP] * table.num_rows
    )


def service_decision(
    table: pa.Table, verdicts: DedupVerdicts, on_finding: str
) -> tuple[pa.Array, pa.Array]:
    """Service-generated rows: training unless duplicated, conflicting or flagged by a detector."""
    dedup = _dedup_columns(table, verdicts)
    findings = table["_findings"].to_pylist()
    dests, reasons = [], []
    for verdict, found in zip(dedup, findings, strict=True):
        if verdict == CONFLICT:
            dests.append("quarantine")
            reasons.append("conflicting_duplicate")
        elif verdict == DUPLICATE:
            dests.append("duplicate")
            reasons.append("duplicate")
        elif found and on_finding == "quarantine":
            dests.append("quarantine")
            reasons.append(f"detector:{found[0]['detector']}")
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
    dests, reasons = [], []
    for verdict, ok, reason in zip(dedup, consented, why_not, strict=True):
        if verdict == CONFLICT:
            dests.append("quarantine")
            reasons.append("conflicting_duplicate")
        elif verdict == DUPLICATE:
            dests.append("duplicate")
            reasons.append("duplicate")
        elif content_policy != "per_participant":
            dests.append("restricted")
            reasons.append(f"content_policy_{content_policy}")
        elif ok:
            dests.append("consented_content")
            reasons.append("consented")
        else:
            dests.append("restricted")
            reasons.append(f"no_consent:{reason}")
    return pa.array(dests, pa.string()), pa.array(reasons, pa.string())
