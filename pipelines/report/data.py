"""The governance report's figures: a run's manifest plus its staged evidence, as plain data.

`report_data` is what `report.json` holds (described by `schemas/outputs/report.json`) and what
`report.html` draws. Nothing here reads a value a record carried: quarantine examples come from
the reason, file name, line and detail columns only (never `raw`, never an id), a detail is kept
only when it is a field path or detector positions, and Great Expectations failures keep row
positions, never unexpected values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines import storage
from pipelines.contract import RECORD_CLASSES
from pipelines.report.templates import templates_section
from pipelines.rules.route import DESTINATIONS

__all__ = [
    "DEFAULT_SHARE_THRESHOLD",
    "EXAMPLES_PER_REASON",
    "REPORT_VERSION",
    "TOTALS",
    "report_data",
    "staged_folder",
]

REPORT_VERSION = 1
# A destination's share of input records moving by more than 5 percentage points between two
# runs of the same folder is worth a look: day-to-day noise in generated and real traffic
# stays well inside it, a broken upstream field or a detector change does not.
DEFAULT_SHARE_THRESHOLD = 0.05
# A few rows per reason show what the reason looks like without turning into a listing.
EXAMPLES_PER_REASON = 3
# The manifest's top-level counts, in the order the report lists them; `duplicates` is the
# `duplicate` destination of the per-class and per-type tables.
TOTALS = (
    "input_records",
    "training",
    "consented_content",
    "restricted",
    "quarantine",
    "duplicates",
)
_CHANGE_FIGURES = (*TOTALS, "host_only_records")
_QUARANTINE_COLUMNS = ["event_type", "source_file", "source_line", "reason", "detail"]

# What a quarantine detail may hold: a contract field path (`$.payload.latency_ms`) or
# detector findings (`email@message[19:49], phone@message[3:15]`). Anything else is withheld.
_FIELD_PATH = re.compile(r"\$(?:\.[A-Za-z_][A-Za-z0-9_]{0,63}|\[\d{1,6}\]){0,8}")
_FINDING = r"[a-z_]{1,40}@[A-Za-z_][A-Za-z0-9_.]{0,63}\[\d{1,9}:\d{1,9}\]"
_FINDINGS = re.compile(rf"{_FINDING}(?:, {_FINDING}){{0,20}}")
WITHHELD = "(withheld)"


def staged_folder(run_dir: str | Path, run_id: str) -> str:
    """The folder of the run's staged outputs: `run_dir/.runs/<run_id>/`, or `run_dir` itself."""
    nested = storage.join(str(run_dir), ".runs", run_id)
    if storage.is_remote(str(run_dir)):
        return nested
    own = Path(run_dir).name == run_id and not Path(nested).is_dir()
    return str(run_dir) if own else nested


def report_data(
    run_dir: str | Path,
    manifest: Mapping[str, Any],
    *,
    share_threshold: float = DEFAULT_SHARE_THRESHOLD,
) -> dict[str, Any]:
    """The report's figures for the run `manifest` describes, in the output folder `run_dir`."""
    if not 0 < share_threshold < 1:
        raise ValueError(f"share_threshold must be a fraction in (0, 1), got {share_threshold!r}")
    counts: Mapping[str, Any] = manifest.get("counts") or {}
    staged = staged_folder(run_dir, str(manifest["run_id"]))
    by_event_type = counts.get("by_event_type") or {}
    return {
        "report_version": REPORT_VERSION,
        "run_id": manifest["run_id"],
        "status": manifest.get("status", "unknown"),
        "share_threshold": share_threshold,
        "summary": _summary(manifest),
        "flow": _flow(counts),
        "event_types": {t: dict(d) for t, d in sorted(by_event_type.items())},
        "sources": {s: dict(d) for s, d in sorted((counts.get("by_source") or {}).items())},
        "quarantine": _quarantine(counts, staged, set(by_event_type)),
        "detectors": _detectors(counts.get("detector_hits") or {}),
        "templates": templates_section(manifest, staged),
        "consent": _consent(manifest, counts, staged),
        "gate": _gate(manifest.get("gate") or {}, staged),
        "change": _change(counts, manifest.get("previous"), share_threshold, manifest),
    }


def _summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    gate = manifest.get("gate") or {}
    return {
        "status": manifest.get("status", "unknown"),
        "gate_passed": gate.get("passed"),
        "started_at": manifest.get("started_at"),
        "duration_s": manifest.get("duration_s"),
        "runner": manifest.get("runner"),
        "code_version": manifest.get("code_version"),
        "config_hash": manifest.get("config_hash"),
        "content_policy": manifest.get("content_policy"),
        "consent_as_of": manifest.get("consent_as_of"),
        # Ledger rows that named no readable subject or account: with any, no content of the
        # run was admitted (`no_consent:ledger_unreadable`); the report says so first.
        "ledger_unreadable_rows": int(
            ((manifest.get("counts") or {}).get("consent_ledger") or {}).get("unreadable", 0)
        ),
        "pseudonym_key_version": manifest.get("pseudonym_key_version"),
        "pseudonym_key_fingerprint": manifest.get("pseudonym_key_fingerprint"),
        "published_run_id": manifest.get("published_run_id"),
        "previous_run_id": (manifest.get("previous") or {}).get("run_id"),
        "warnings": [str(w) for w in manifest.get("warnings") or []],
        # Each purge that made a new version of the run (the ledger's path is left out).
        "purges": [
            {
                "run_id": p["run_id"],
                "of_run_id": p["of_run_id"],
                "purged_at": p["purged_at"],
                "consent_as_of": p["consent_as_of"],
                "records": int(p["records"]),
                "reasons": {r: int(n) for r, n in sorted((p.get("reasons") or {}).items())},
            }
            for p in manifest.get("purges") or []
        ],
        "inputs": [
            {"path": i["path"], "size": i["size"], "sha256": i["sha256"]}
            for i in manifest.get("inputs", [])
        ],
    }


def _ordered(names: Iterable[str], first: Iterable[str]) -> list[str]:
    names = set(names)
    head = [n for n in first if n in names]
    return head + sorted(names - set(head))


def _flow(counts: Mapping[str, Any]) -> dict[str, Any]:
    by_class = counts.get("by_record_class") or {}
    return {
        "totals": {name: int(counts.get(name, 0)) for name in TOTALS},
        "record_classes": _ordered(by_class, RECORD_CLASSES),
        "destinations": list(DESTINATIONS),
        "by_record_class": {c: dict(by_class[c]) for c in _ordered(by_class, RECORD_CLASSES)},
    }


def _parquet(folder: str) -> list[str]:
    return storage.list_files(folder, "*.parquet")


_EXAMPLE_ORDER = [
    ("reason", "ascending"),
    ("source_file", "ascending"),
    ("source_line", "ascending"),
]


def _first_per_reason(table: pa.Table, k: int) -> pa.Table:
    """The first `k` rows of each reason, in (reason, source file, source line) order."""
    table = table.sort_by(_EXAMPLE_ORDER)
    parts = []
    for reason in pc.unique(table["reason"]).to_pylist():
        start = pc.index(table["reason"], reason).as_py()
        head = table.slice(start, k)
        parts.append(head.filter(pc.equal(head["reason"], reason)))
    return pa.concat_tables(parts) if parts else table


def _safe_detail(detail: str | None) -> str | None:
    if detail is None:
        return None
    if _FIELD_PATH.fullmatch(detail) or _FINDINGS.fullmatch(detail):
        return detail
    return WITHHELD


def _quarantine(counts: Mapping[str, Any], staged: str, event_types: set[str]) -> dict[str, Any]:
    files = _parquet(storage.join(staged, "quarantine"))
    examples: list[dict[str, Any]] = []
    if files:
        # `raw` is never read: the report cannot show what it never loaded. One file at a
        # time, keeping only each reason's first few rows: memory stays that of one file.
        kept: pa.Table | None = None
        for f in files:
            part = _first_per_reason(
                storage.read_parquet(f, _QUARANTINE_COLUMNS), EXAMPLES_PER_REASON
            )
            both = part if kept is None else pa.concat_tables([kept, part])
            kept = _first_per_reason(both, EXAMPLES_PER_REASON)
        assert kept is not None
        for row in kept.to_pylist():
            # An event type that is not a contract type is input text: name it, don't quote it.
            known = row["event_type"] in event_types and row["reason"] != "unknown_event_type"
            examples.append(
                {
                    "reason": row["reason"],
                    "event_type": row["event_type"] if known else None,
                    "source_file": PurePath(row["source_file"]).name,
                    "source_line": row["source_line"],
                    "detail": _safe_detail(row["detail"]),
                }
            )
    ledger = counts.get("consent_ledger")
    return {
        "records": int(counts.get("quarantine", 0)),
        "reasons": dict(sorted((counts.get("quarantine_reasons") or {}).items())),
        "consent_ledger": dict(ledger) if ledger else None,
        "examples_per_reason": EXAMPLES_PER_REASON,
        "examples_available": bool(files),
        "examples": examples,
    }


def _detectors(hits: Mapping[str, int]) -> dict[str, Any]:
    by_detector: dict[str, int] = {}
    by_field: dict[str, int] = {}
    for key, n in hits.items():
        detector, _, field = key.partition("@")
        by_detector[detector] = by_detector.get(detector, 0) + n
        by_field[field] = by_field.get(field, 0) + n
    return {
        "hits": dict(sorted(hits.items())),
        "by_detector": dict(sorted(by_detector.items())),
        "by_field": dict(sorted(by_field.items())),
    }


def _content_decisions(staged: str) -> list[dict[str, Any]] | None:
    files = _parquet(storage.join(staged, "audit"))
    if not files:
        return None
    records: dict[tuple[str, str], int] = {}
    for f in files:  # one file at a time: memory stays that of one file
        table = storage.read_parquet(f, ["record_class", "destination", "reason"])
        table = (
            table.filter(pc.equal(table["record_class"], "customer_content"))
            .group_by(["destination", "reason"])
            .aggregate([("reason", "count")])
        )
        for r in table.to_pylist():
            key = (r["destination"], r["reason"])
            records[key] = records.get(key, 0) + r["reason_count"]
    order = {dest: i for i, dest in enumerate(DESTINATIONS)}
    rows = [
        {"destination": dest, "reason": reason, "records": n}
        for (dest, reason), n in records.items()
    ]
    return sorted(rows, key=lambda r: (order.get(r["destination"], 99), r["reason"]))


def _consent(manifest: Mapping[str, Any], counts: Mapping[str, Any], staged: str) -> dict[str, Any]:
    content = (counts.get("by_record_class") or {}).get("customer_content") or {}
    return {
        "content_policy": manifest.get("content_policy"),
        "as_of": manifest.get("consent_as_of"),
        "content_records": int(counts.get("content_records", 0)),
        # Where the content records went: the only figure that says what was admitted.
        "content_by_destination": {
            d: int(content.get(d, 0)) for d in _ordered(content, DESTINATIONS) if content.get(d)
        },
        "content_purged": int(counts.get("purged", 0)),
        "content_consented": int(counts.get("content_consented", 0)),
        "records_by_decision": _content_decisions(staged),
        "subject_decisions": dict(sorted((counts.get("consent_by_reason") or {}).items())),
        "host_only_records": int(counts.get("host_only_records", 0)),
        "host_only_participants": int(counts.get("host_only_participants", 0)),
    }


def _expectations(staged: str) -> dict[str, Any] | None:
    path = storage.join(staged, "gate", "expectations.json")
    if not storage.exists(path):
        return None
    results: Mapping[str, Any] = json.loads(storage.read_bytes(path))
    suites: dict[str, dict[str, int]] = {}
    validations, failures = [], []
    for key, result in sorted(results.items()):
        stats = result.get("statistics") or {}
        evaluated = int(stats.get("evaluated_expectations", result.get("evaluated", 0)))
        successful = int(stats.get("successful_expectations", 0))
        unsuccessful = int(stats.get("unsuccessful_expectations", evaluated - successful))
        suite = suites.setdefault(
            result["suite"], {"validations": 0, "evaluated": 0, "successful": 0, "unsuccessful": 0}
        )
        suite["validations"] += 1
        suite["evaluated"] += evaluated
        suite["successful"] += successful
        suite["unsuccessful"] += unsuccessful
        validations.append(
            {
                "key": key,
                "suite": result["suite"],
                "event_type": result.get("event_type"),
                "success": bool(result.get("success")),
                "rows": result.get("rows"),
                "evaluated": evaluated,
                "unsuccessful": unsuccessful,
            }
        )
        for failure in result.get("failed") or []:
            failures.append(
                {
                    "suite": result["suite"],
                    "event_type": result.get("event_type"),
                    "expectation": failure.get("expectation"),
                    "column": failure.get("column"),
                    "unexpected_count": failure.get("unexpected_count"),
                    # Row positions only; a value that is not a position is never copied.
                    "unexpected_rows": [
                        x
                        for x in failure.get("unexpected_examples") or []
                        if isinstance(x, int) and not isinstance(x, bool)
                    ],
                }
            )
    return {
        "suites": dict(sorted(suites.items())),
        "validations": validations,
        "evaluated": sum(s["evaluated"] for s in suites.values()),
        "successful": sum(s["successful"] for s in suites.values()),
        "unsuccessful": sum(s["unsuccessful"] for s in suites.values()),
        "failures": failures,
    }


def _gate(gate: Mapping[str, Any], staged: str) -> dict[str, Any]:
    return {
        "passed": gate.get("passed"),
        "checks": [
            {
                "name": name,
                "passed": bool(check.get("passed")),
                "violations": int(check.get("violations", 0)),
                "rows_checked": int(check.get("rows_checked", 0)),
                "examples": [str(e) for e in check.get("examples") or []],
            }
            for name, check in sorted((gate.get("checks") or {}).items())
        ],
        "expectations": _expectations(staged),
    }


def _share(n: int, total: int) -> float | None:
    return round(n / total, 6) if total else None


def _change(
    counts: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    threshold: float,
    manifest: Mapping[str, Any],
) -> dict[str, Any] | None:
    if not previous:
        return None
    before: Mapping[str, Any] = previous.get("counts") or {}
    total_now = int(counts.get("input_records", 0))
    total_before = int(before.get("input_records", 0))
    figures = []
    for name in _CHANGE_FIGURES:
        now, was = int(counts.get(name, 0)), int(before.get(name, 0))
        share = share_before = share_change = None
        if name in TOTALS[1:]:  # a destination: its share of the input records
            share, share_before = _share(now, total_now), _share(was, total_before)
            if share is not None and share_before is not None:
                share_change = round(share - share_before, 6)
        figures.append(
            {
                "name": name,
                "previous": was,
                "current": now,
                "delta": now - was,
                "share": share,
                "previous_share": share_before,
                "share_change": share_change,
                # Rounded to the shares' precision, so 5.0 points on the dot is not a move.
                "flagged": share_change is not None and abs(share_change) > round(threshold, 6),
            }
        )
    types_now = counts.get("by_event_type") or {}
    types_before = previous.get("by_event_type") or {}
    by_type = []
    for event_type in sorted(set(types_now) | set(types_before)):
        now_t, was_t = types_now.get(event_type, {}), types_before.get(event_type, {})
        for dest in _ordered(set(now_t) | set(was_t), DESTINATIONS):
            delta = int(now_t.get(dest, 0)) - int(was_t.get(dest, 0))
            if delta:
                by_type.append(
                    {
                        "event_type": event_type,
                        "destination": dest,
                        "previous": int(was_t.get(dest, 0)),
                        "current": int(now_t.get(dest, 0)),
                        "delta": delta,
                    }
                )
    return {
        "previous_run_id": previous.get("run_id"),
        "previous_status": previous.get("status"),
        # A new key gives every identifier a new pseudonym: worth a flag of its own.
        "key": {
            "changed": bool(manifest.get("key_changed")),
            "previous_fingerprint": manifest.get("previous_key_fingerprint")
            or previous.get("pseudonym_key_fingerprint"),
            "fingerprint": manifest.get("pseudonym_key_fingerprint"),
        },
        "figures": figures,
        "flagged": [f["name"] for f in figures if f["flagged"]],
        "event_types": by_type,
    }
