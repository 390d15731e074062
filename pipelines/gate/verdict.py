"""The gate's verdict beyond the Beam checks: figures the driver reconciles after the run."""

from __future__ import annotations

import json
import posixpath
from datetime import datetime
from typing import Any

from pipelines import storage
from pipelines.config import Config
from pipelines.rules.route import DESTINATIONS

__all__ = [
    "consent_recheck",
    "conservation",
    "expectations_check",
    "reconcile",
    "write_evidence",
]


def conservation(counts: dict[str, Any]) -> dict[str, Any]:
    total = sum(counts.get(d, 0) for d in DESTINATIONS)
    return {
        "passed": total == counts.get("input_records", 0),
        "violations": abs(total - counts.get("input_records", 0)),
        "rows_checked": counts.get("input_records", 0),
        "examples": []
        if total == counts.get("input_records", 0)
        else [f"input {counts.get('input_records', 0)} != destinations {total}"],
    }


def reconcile(files: list[dict[str, Any]], counts: dict[str, Any]) -> dict[str, Any]:
    """Rows in the staged training files must equal what the audit table routed there."""
    written = sum(f["rows"] for f in files if f["table"] in ("training", "consented_content"))
    routed = counts.get("training", 0) + counts.get("consented_content", 0)
    return {
        "passed": written == routed,
        "violations": abs(written - routed),
        "rows_checked": written,
        "examples": [] if written == routed else [f"files hold {written} rows, audit {routed}"],
    }


def expectations_check(suites: dict[str, Any]) -> dict[str, Any]:
    """One gate check summing every Great Expectations suite run (one per kind and type)."""
    failed = {k: r for k, r in suites.items() if not r["success"]}
    return {
        "passed": not failed,
        "violations": sum(len(r["failed"]) for r in failed.values()),
        "rows_checked": sum(r["rows"] for r in suites.values()),
        "examples": [
            f"{key}: {f['expectation']} on {f['column']}"
            for key, r in sorted(failed.items())
            for f in r["failed"]
        ][:3],
    }


def consent_recheck(
    config: Config, ledger: str, staging: str, key: bytes, as_of: datetime
) -> dict[str, Any]:
    """Every staged consented row must still be consented when re-checked from the ledger."""
    from pipelines.purge import find_withdrawn
    from pipelines.rules.deidentify import Pseudonymizer

    settings = config.deidentify
    pseudonyms = Pseudonymizer(key, settings.pseudonym_prefix, settings.pseudonym_hex_chars)
    found = find_withdrawn(config, ledger, staging, pseudonyms, as_of=as_of)
    return {
        "passed": not found.removed,
        "violations": len(found.removed),
        "rows_checked": found.rows_checked,
        "examples": [f"{r['file']}: {', '.join(r['reasons'])}" for r in found.removed[:3]],
    }


def write_evidence(staging: str, checks: dict[str, Any], suites: dict[str, Any]) -> dict:
    """Keep the gate's results in the run folder, for reviewers; return their paths."""
    for name, data in (("checks.json", checks), ("expectations.json", suites)):
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        storage.write_bytes(storage.join(staging, "gate", name), text.encode("utf-8"))
    prefix = f".runs/{posixpath.basename(str(staging).rstrip('/'))}/gate"
    return {"checks": f"{prefix}/checks.json", "expectations": f"{prefix}/expectations.json"}
