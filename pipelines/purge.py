"""`consentgate purge`: withdraw consented content whose consent no longer holds.

Published consented-content rows carry pseudonyms, not ids. The ledger is pseudonymised with
the same key, so the consent rule runs unchanged on pseudonyms: a subject, account and meeting
scope match exactly when their ids did. Affected files are rewritten without the withdrawn rows
(temporary file, then an atomic rename), and every removal is appended to `purge-log.jsonl`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import storage
from pipelines.chunk import content_subjects
from pipelines.config import Config
from pipelines.errors import InputError
from pipelines.publish import check_run_folder
from pipelines.rules.consent import ConsentLedger, Decision, event_consent
from pipelines.rules.deidentify import Pseudonymizer
from pipelines.transforms.consent import ledger_part

__all__ = ["PurgeResult", "purge"]

LOG_NAME = "purge-log.jsonl"


@dataclass
class PurgeResult:
    """What a purge found (and, with apply, removed)."""

    rows_checked: int
    removed: list[dict[str, Any]]
    files_rewritten: list[str]
    applied: bool


def _pseudonymised(decision: Decision, pseudonyms: Pseudonymizer) -> Decision:
    scope = decision.scope
    if scope.startswith("meeting:"):
        scope = "meeting:" + pseudonyms.one(scope.removeprefix("meeting:"))
    return Decision(
        decision.decided_at,
        pseudonyms.one(decision.subject_id),
        pseudonyms.one(decision.account_id),
        scope,
        decision.purpose,
        decision.action,
        decision.actor,
    )


def purge(
    config: Config,
    ledger_path: str,
    published: str | Path,
    pseudonyms: Pseudonymizer,
    *,
    as_of: datetime | None = None,
    apply: bool = False,
    staged: bool = False,
) -> PurgeResult:
    """Find (and with `apply`, remove) consented rows whose consent no longer holds.

    `staged` reads a run's staging folder (the gate's re-check) instead of a published one.
    """
    root = str(published)
    folder = storage.join(root, "training", "consented_content")
    if not staged and not storage.exists(storage.join(root, "manifest.json")):
        raise InputError(f"--published {root}: no manifest.json; is it a run folder?")
    if apply and storage.is_remote(root):
        raise InputError(f"--published {root}: --apply rewrites files in place; local folders only")
    if not staged:
        check_run_folder(root)  # exit 2 on a link consentgate did not make, before any write
    moment = as_of or datetime.now(UTC)
    part = ledger_part(config, ledger_path)
    ledger = ConsentLedger.from_decisions(
        (_pseudonymised(d, pseudonyms) for d in part.decisions),
        int(moment.timestamp() * 1_000_000),
    )
    contract = config.contract()
    removed: list[dict[str, Any]] = []
    rewritten: list[str] = []
    checked = 0
    for path in _parquet_under(folder):
        table = storage.read_parquet(path)
        if table.num_rows == 0:
            continue
        event_type = contract.event_types[table["event_type"][0].as_py()]
        subjects = content_subjects(event_type, table)
        accounts = table["account_id"].to_pylist()
        meetings = table["meeting_id"].to_pylist()
        times = table["event_ts"].cast(pa.int64()).to_pylist()
        keep = []
        for i, row_subjects in enumerate(subjects):
            ok, verdicts = event_consent(ledger, row_subjects, accounts[i], meetings[i], times[i])
            keep.append(ok)
            if not ok:
                lacking = [v for v in verdicts if not v.consented]
                removed.append(
                    {
                        "event_id": table["event_id"][i].as_py(),
                        "event_type": event_type.name,
                        "subjects": [v.subject_id for v in lacking],
                        "reasons": sorted({v.reason for v in lacking}) or ["no_subjects"],
                        "file": storage.relative(path, root),
                    }
                )
        checked += table.num_rows
        if apply and not all(keep):
            tmp = f"{path}.purge.tmp"
            pq.write_table(
                table.filter(pa.array(keep)), tmp, compression=config.policy.parquet_compression
            )
            os.replace(tmp, path)
            rewritten.append(storage.relative(path, root))
    if apply and removed:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        storage.append_private(  # never through a link; a new log is owner-only
            storage.join(root, LOG_NAME),
            (json.dumps({**item, "purged_at": stamp}, sort_keys=True) for item in removed),
        )
    return PurgeResult(checked, removed, rewritten, apply)


def ids_in(published: str | Path) -> set[str]:
    """Event ids under training/consented_content/."""
    folder = storage.join(str(published), "training", "consented_content")
    ids: set[str] = set()
    for f in _parquet_under(folder):
        table = storage.read_parquet(f, columns=["event_id"])
        ids.update(pc.unique(table["event_id"]).to_pylist())
    return ids


def _parquet_under(folder: str) -> list[str]:
    """Parquet files anywhere under `folder` (local or remote), sorted."""
    return [p for p in storage.list_files(folder, "**") if p.endswith(".parquet")]
