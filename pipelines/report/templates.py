"""The run's templates, read back from `<run>/strings/templates.parquet`: the report's
templates section and `consentgate templates`' candidates for the registry.

What may be shown: the masked form of a template that at least `k` accounts produced, or that
`configs/strings.json` approves (common across customers, or reviewed); for a template below
`k`, its keyed reference and account count, and in `consentgate templates` its masked form
only where the job judged it showable (see `rules/templates.py`). The report never shows the
text of a template below `k`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines import storage
from pipelines.errors import InputError
from pipelines.rules.templates import NO_VARIABLE_PART, TEMPLATES_PATH, UNCOMMON_WORDS

__all__ = [
    "APPROVE_HOW",
    "HIDDEN_WHY",
    "LISTED_IN_REPORT",
    "candidates",
    "read_summary",
    "templates_section",
]

# The report lists this many templates of each kind (the most common first); the CLI lists all.
LISTED_IN_REPORT = 50
APPROVE_HOW = (
    "To publish a template (or value) before k accounts produce it, add it under its field in "
    "configs/strings.json (`fields.<event type>.<field>.templates` or `.values`) and have the "
    "change reviewed like code; `consentgate templates RUN_DIR` lists the candidates."
)
HIDDEN_WHY = {
    NO_VARIABLE_PART: "nothing in it was masked: the template is the value itself",
    UNCOMMON_WORDS: "a word in it was used by fewer than k accounts in this field",
}
_WAYS = ("value", "template", "withheld")


def read_summary(staged: str) -> pa.Table | None:
    """The run's template summary, or None when the run has none (older runs, failed runs)."""
    path = storage.join(staged, TEMPLATES_PATH)
    if not storage.exists(path):
        return None
    return storage.read_parquet(path)


def _k_of(table: pa.Table) -> int | None:
    k = (table.schema.metadata or {}).get(b"k")
    return int(k) if k else None


def _by_accounts(table: pa.Table) -> pa.Table:
    return table.sort_by([("accounts", "descending"), ("field", "ascending"), ("ref", "ascending")])


def templates_section(manifest: Mapping[str, Any], staged: str) -> dict[str, Any]:
    """The report's templates section: what the string rule published and withheld, by
    field; the templates that earned publication (masked form); those short of k (reference
    and account count only); how to approve one."""
    decisions = (manifest.get("counts") or {}).get("string_decisions") or {}
    by_field = {f: {way: int(d.get(way, 0)) for way in _WAYS} for f, d in sorted(decisions.items())}
    section: dict[str, Any] = {
        "available": False,
        "k": None,
        "decisions": by_field,
        "totals": {way: sum(d[way] for d in by_field.values()) for way in _WAYS},
        "distinct_templates": None,
        "published": None,
        "short_of_k": None,
        "approved_seen": None,
        "how_to_approve": APPROVE_HOW,
    }
    table = read_summary(staged)
    if table is None:
        return section
    # A template with a mask in it: the one form a value is published in besides its own.
    masked = pc.match_substring_regex(pc.fill_null(table["masked"], ""), r"<[a-z]+>")
    earned = pc.or_(table["qualified"], table["approved"])
    published = _by_accounts(table.filter(pc.and_(earned, masked)))
    short = _by_accounts(table.filter(pc.invert(earned)))
    section.update(
        available=True,
        k=_k_of(table),
        distinct_templates=table.num_rows,
        published={
            "count": published.num_rows,
            "listed": [
                {"field": r["field"], "masked": r["masked"], "accounts": r["accounts"]}
                for r in published.slice(0, LISTED_IN_REPORT)
                .select(["field", "masked", "accounts"])
                .to_pylist()
            ],
        },
        short_of_k={
            "count": short.num_rows,
            # Reference and count only: the text of a template below k is never in a report.
            "listed": short.slice(0, LISTED_IN_REPORT)
            .select(["field", "ref", "accounts"])
            .to_pylist(),
        },
        approved_seen=int(pc.sum(table["approved"]).as_py() or 0),
    )
    return section


def _finished_run(run_dir: str) -> tuple[dict[str, Any], str]:
    from pipelines.report.data import staged_folder

    manifest_path = storage.join(run_dir, "manifest.json")
    if not storage.exists(manifest_path):
        raise InputError(f"{manifest_path}: no manifest; is {run_dir} a finished run's folder?")
    try:
        manifest = json.loads(storage.read_bytes(manifest_path))
    except (OSError, ValueError) as exc:
        raise InputError(f"{manifest_path}: cannot be read ({exc})") from None
    status = manifest.get("status")
    if status not in ("published", "gate_failed"):
        raise InputError(
            f"{run_dir}: run {manifest.get('run_id')} did not finish (status {status}); "
            "its templates were never counted"
        )
    return manifest, staged_folder(run_dir, str(manifest["run_id"]))


def candidates(run_dir: str | Path) -> dict[str, Any]:
    """Templates of the run's string fields that fell short of k and are not approved, most
    accounts first: reference, account count, and the masked form or why it is hidden."""
    manifest, staged = _finished_run(str(run_dir))
    table = read_summary(staged)
    if table is None:
        raise InputError(
            f"{run_dir}: run {manifest['run_id']} has no template summary "
            f"({storage.join(staged, TEMPLATES_PATH)}); rerun it with this version"
        )
    short = _by_accounts(table.filter(pc.invert(pc.or_(table["qualified"], table["approved"]))))
    return {
        "run_id": manifest["run_id"],
        "status": manifest["status"],
        "k": _k_of(table),
        "candidates": [
            {
                "field": r["field"],
                "ref": r["ref"],
                "accounts": r["accounts"],
                "masked": r["masked"],
                "hidden_because": r["hidden_because"],
            }
            for r in short.to_pylist()
        ],
    }
