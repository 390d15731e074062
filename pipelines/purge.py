"""`consentgate purge`: withdraw published consented content whose consent no longer holds.

Published consented-content rows carry pseudonyms, not ids. The ledger is pseudonymised with
the same key, so the consent rule runs unchanged on pseudonyms: a subject, account and meeting
scope match exactly when their ids did. That only works with the key the run was published
with, so a key whose fingerprint differs from the manifest's is refused before anything is read
(with another key nothing would match, and every row would look unconsented).

`--apply` never edits the published run. It builds a new version of it, `.runs/<new_id>/`, the
way a run publishes: unchanged files are hard links to the old ones; the consented-content files
that lose rows are rewritten without them; every purged record moves to `restricted` (a new
`restricted/part-purge-<new_id>.parquet` row, and its audit row says `restricted`,
`purged:<why>`, with each subject's new verdict); the counts are recomputed from the new audit
table, so `input_records` still equals the sum of the destinations; the driver's gate checks run
again on the new files; a new manifest (with a `purges` entry), report and lineage events are
written; then the one `current` link is swapped and the old version is deleted, so the withdrawn
rows leave the disk. A purge killed before the swap leaves the old version published.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import storage
from pipelines.chunk import (
    AUDIT_SCHEMA,
    CONSENT_TYPE,
    RESTRICTED_SCHEMA,
    add_counts,
    content_subjects,
    count_outputs,
    manifest_counts,
)
from pipelines.config import Config
from pipelines.contract import micros_of
from pipelines.errors import ConfigError, InputError, RunFailed
from pipelines.rules.consent import ConsentLedger, Decision, SubjectConsent, event_consent
from pipelines.rules.deidentify import KEY_ENV, Pseudonymizer, key_fingerprint
from pipelines.terminal import inert
from pipelines.transforms.consent import LedgerPart, ledger_part
from pipelines.transforms.write import write_parquet

__all__ = ["PURGED_PREFIX", "PurgeResult", "find_withdrawn", "ids_in", "purge"]

_LOG = logging.getLogger(__name__)
LOG_NAME = "purge-log.jsonl"
# The reason code of a purged record's audit and restricted rows: `purged:<why>`, where <why> is
# the first subject's reason that no longer holds, as in `no_consent:<why>`.
PURGED_PREFIX = "purged:"
# Files of a run folder a new version writes itself rather than taking over.
_REWRITTEN = frozenset({"manifest.json", "report.html", "report.json", "lineage.jsonl"})


@dataclass
class PurgeResult:
    """What a purge found (and, with apply, removed)."""

    rows_checked: int
    removed: list[dict[str, Any]]
    files_rewritten: list[str]
    applied: bool
    run_id: str | None = None  # the run whose consented content was checked
    new_run_id: str | None = None  # the new version `--apply` published
    ledger_rejected: int = 0  # ledger rows that could not be read (they withhold)
    # relative file -> which rows stay, and event id -> its subjects' new verdicts
    keep: dict[str, list[bool]] = field(default_factory=dict, repr=False)
    verdicts: dict[str, list[SubjectConsent]] = field(default_factory=dict, repr=False)
    host_only: dict[str, bool | None] = field(default_factory=dict, repr=False)


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
        decision.sub_micros,
    )


def read_ledger(config: Config, ledger_path: str) -> LedgerPart:
    """One ledger file, checked; a missing or unreadable file is a usage error (exit 2)."""
    if not storage.exists(ledger_path):
        raise InputError(f"--consent {ledger_path}: no such file")
    if not storage.is_remote(ledger_path) and os.path.isdir(ledger_path):
        raise InputError(f"--consent {ledger_path}: is a folder; give the ledger file")
    try:
        return ledger_part(config, ledger_path)
    except Exception as exc:  # Beam and pyarrow raise their own kinds for unreadable files
        detail = " ".join(str(exc).split())[:200]
        raise InputError(
            f"--consent {ledger_path}: cannot be read ({type(exc).__name__}: {detail})"
        ) from None


def find_withdrawn(
    config: Config,
    ledger: str | LedgerPart,
    folder: str | Path,
    pseudonyms: Pseudonymizer,
    *,
    as_of: datetime,
) -> PurgeResult:
    """The consented rows under `folder/training/consented_content/` whose consent no longer
    holds as of `as_of`. Reads and changes nothing else (the gate's re-check uses it too)."""
    root = str(folder)
    part = read_ledger(config, ledger) if isinstance(ledger, str) else ledger
    index = ConsentLedger.from_decisions(
        (_pseudonymised(d, pseudonyms) for d in part.decisions),
        micros_of(as_of),
        (r.renamed(pseudonyms.one) for r in part.rejected),
    )
    contract = config.contract()
    result = PurgeResult(0, [], [], False, ledger_rejected=part.rejects.num_rows)
    for path in _parquet_under(storage.join(root, "training", "consented_content")):
        table = storage.read_parquet(path)
        if table.num_rows == 0:
            continue
        relative = storage.relative(path, root)
        event_type = contract.event_types[table["event_type"][0].as_py()]
        subjects = content_subjects(event_type, table)
        accounts = table["account_id"].to_pylist()
        meetings = table["meeting_id"].to_pylist()
        times = table["event_ts"].cast(pa.int64()).to_pylist()
        event_ids = table["event_id"].to_pylist()
        keep = []
        for i, row_subjects in enumerate(subjects):
            ok, verdicts = event_consent(index, row_subjects, accounts[i], meetings[i], times[i])
            keep.append(ok)
            if ok:
                continue
            lacking = [v for v in verdicts if not v.consented]
            result.verdicts[event_ids[i]] = verdicts
            result.removed.append(
                {
                    "event_id": event_ids[i],
                    "event_type": event_type.name,
                    "subjects": [v.subject_id for v in lacking],
                    "reasons": sorted({v.reason for v in lacking}) or ["no_subjects"],
                    "reason": lacking[0].reason if lacking else "no_subjects",
                    "file": relative,
                }
            )
        result.rows_checked += table.num_rows
        if not all(keep):
            result.keep[relative] = keep
    return result


def purge(
    config: Config,
    ledger_path: str,
    published: str | Path,
    key: bytes,
    *,
    as_of: datetime | None = None,
    apply: bool = False,
) -> PurgeResult:
    """Find (and with `apply`, withdraw) published consented rows whose consent no longer holds.

    Refused, with nothing read or changed, when `key` is not the key the published run used.
    """
    from pipelines.publish import RunFolder

    root = str(published)
    folder = RunFolder(root)
    if apply and folder.remote:
        raise InputError(
            f"--published {root}: --apply writes a new run version; local folders only"
        )
    folder.check_links()  # exit 2 on a link consentgate did not make, before any read or write
    manifest = _published_manifest(folder)
    _check_key(manifest, key)
    settings = config.deidentify
    pseudonyms = Pseudonymizer(key, settings.pseudonym_prefix, settings.pseudonym_hex_chars)
    moment = as_of or datetime.now(UTC)
    ledger = read_ledger(config, ledger_path)
    if not ledger.decisions and ledger.rejects.num_rows:
        # Every row unreadable: most likely not a ledger at all. Withdrawing everything on its
        # word would destroy by mistake; fix the file instead.
        raise InputError(
            f"--consent {ledger_path}: none of its {ledger.rejects.num_rows} rows is a valid "
            "consent decision; is it the consent ledger?"
        )
    if not apply:
        found = find_withdrawn(
            config, ledger, folder.staging(manifest["run_id"]), pseudonyms, as_of=moment
        )
        found.run_id = manifest["run_id"]
        return found
    from pipelines.lock import PartitionLock
    from pipelines.run import _new_run_id

    new_id = _new_run_id()
    with PartitionLock(folder.root, new_id, config.schedule.lock_stale_after_s):
        # Read again under the lock: a run may have published since.
        manifest = _published_manifest(folder)
        _check_key(manifest, key)
        old_id = manifest["run_id"]
        found = find_withdrawn(config, ledger, folder.staging(old_id), pseudonyms, as_of=moment)
        found.run_id = old_id
        found.applied = True
        if not found.removed:
            return found
        try:
            _new_version(config, folder, manifest, found, new_id, ledger_path, moment, key)
        except OSError as exc:
            current = Path(folder.root, "current")
            swapped = current.is_symlink() and os.readlink(current).endswith(new_id)
            if not swapped and folder.published_run_id() != new_id:
                storage.delete_tree(folder.staging(new_id))  # never published: leave no trace
            raise RunFailed(
                f"purge of {root} failed writing {exc.filename}: {exc.strerror}"
            ) from None
    found.new_run_id = new_id
    found.files_rewritten = sorted(found.keep)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    storage.append_private(  # never through a link; a new log is owner-only
        storage.join(root, LOG_NAME),
        (
            json.dumps(
                {**item, "purged_at": stamp, "run_id": new_id, "of_run_id": found.run_id},
                sort_keys=True,
            )
            for item in found.removed
        ),
    )
    return found


def _published_manifest(folder: Any) -> dict[str, Any]:
    """The manifest of the run `folder` publishes (not necessarily its latest run)."""
    latest = folder.read_manifest()
    if latest is None:
        raise InputError(f"--published {folder.root}: no manifest.json; is it a run folder?")
    published = latest.get("published_run_id")
    if not published:
        raise InputError(f"--published {folder.root}: nothing was ever published here")
    if latest.get("run_id") == published:
        return latest
    path = storage.join(folder.staging(str(published)), "manifest.json")
    try:
        data = json.loads(storage.read_bytes(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: the published run's manifest cannot be read ({exc})") from None
    if not isinstance(data, dict) or data.get("run_id") != published:
        raise InputError(f"{path}: is not the manifest of run {published}")
    return data


def _check_key(manifest: dict[str, Any], key: bytes) -> None:
    expected = manifest.get("pseudonym_key_fingerprint")
    actual = key_fingerprint(key)
    if expected != actual:
        raise ConfigError(
            f"{KEY_ENV} is not the key run {manifest['run_id']} was published with (key "
            f"fingerprint {actual}, the manifest says {expected}); nothing was changed: export "
            "that run's key and retry"
        )


# -- the new version -----------------------------------------------------------------------


def _new_version(
    config: Config,
    folder: Any,
    manifest: dict[str, Any],
    found: PurgeResult,
    new_id: str,
    ledger_path: str,
    as_of: datetime,
    key: bytes,
) -> None:
    """Stage `.runs/<new_id>/` without the withdrawn rows, check it, publish it, drop the old."""
    from pipelines.gate import verdict
    from pipelines.lineage import RunLineage
    from pipelines.report.html import write_report
    from pipelines.run import _previous_figures

    old_id = manifest["run_id"]
    old, new = Path(folder.staging(old_id)), Path(folder.staging(new_id))
    compression = config.policy.parquet_compression
    purged_ids = {item["event_id"] for item in found.removed}
    reason_of = {item["event_id"]: PURGED_PREFIX + item["reason"] for item in found.removed}
    restricted_rows = []
    for source in _walk(old):
        relative = source.relative_to(old)
        target = new / relative
        _mkdirs(old, relative.parent, new)
        if len(relative.parts) == 1 and relative.name in _REWRITTEN:
            continue
        rel = relative.as_posix()
        if rel in found.keep:
            table = pq.read_table(source)
            mask = pa.array(found.keep[rel])
            restricted_rows.append(table.filter(pc.invert(mask)))
            kept = table.filter(mask)
            if kept.num_rows:
                write_parquet(kept, str(target), compression)
        elif relative.parts[0] == "audit" and source.suffix == ".parquet":
            table = pq.read_table(source, schema=AUDIT_SCHEMA)
            if pc.any(pc.is_in(table["event_id"], pa.array(sorted(purged_ids)))).as_py():
                write_parquet(_purged_audit(table, found, reason_of), str(target), compression)
            else:
                _link(source, target)
        elif relative.parts[0] == "gate" or source.suffix != ".parquet":
            shutil.copy2(source, target)
        else:
            _link(source, target)
    contract = config.contract()
    withheld_rows = [
        _restricted(contract.event_types[t["event_type"][0].as_py()], t, found, reason_of)
        for t in restricted_rows
        if t.num_rows
    ]
    if withheld_rows:
        write_parquet(
            pa.concat_tables(withheld_rows).sort_by("event_id"),
            str(new / "restricted" / f"part-purge-{new_id}.parquet"),
            compression,
        )

    counts = _recount(new, manifest.get("counts") or {})
    if counts["input_records"] != (manifest.get("counts") or {}).get("input_records"):
        raise RunFailed(
            f"purge of {folder.root}: the new version counts {counts['input_records']} input "
            f"records, run {old_id} counted {manifest['counts'].get('input_records')}; nothing "
            "was changed"
        )
    files = _files(new)
    gate = dict((manifest.get("gate") or {}).get("checks") or {})
    gate["conservation"] = verdict.conservation({**counts, "duplicate": counts["duplicates"]})
    gate["training_rows_reconcile"] = verdict.reconcile(files, counts)
    gate["consent_recheck"] = verdict.consent_recheck(config, ledger_path, str(new), key, as_of)
    passed = all(check["passed"] for check in gate.values())
    if not passed:
        failed = sorted(name for name, check in gate.items() if not check["passed"])
        storage.delete_tree(str(new))
        raise RunFailed(
            f"purge of {folder.root}: the new version fails {', '.join(failed)}; nothing was "
            "changed"
        )
    suites_path = old / "gate" / "expectations.json"
    suites = json.loads(suites_path.read_text("utf-8")) if suites_path.is_file() else {}
    evidence = verdict.write_evidence(str(new), gate, suites)
    reasons: dict[str, int] = {}
    for item in found.removed:
        reasons[PURGED_PREFIX + item["reason"]] = reasons.get(PURGED_PREFIX + item["reason"], 0) + 1
    entry = {
        "run_id": new_id,
        "of_run_id": old_id,
        "purged_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "consent": ledger_path if storage.is_remote(ledger_path) else os.path.abspath(ledger_path),
        "consent_as_of": as_of.isoformat(timespec="seconds"),
        "records": len(found.removed),
        "reasons": dict(sorted(reasons.items())),
        "ledger_rows_rejected": found.ledger_rejected,
    }
    updated = {k: v for k, v in manifest.items() if k not in ("error",)}
    updated.update(
        run_id=new_id,
        status="published",
        published_run_id=new_id,
        previous_run_id=old_id,
        previous=_previous_figures(manifest),
        key_changed=False,
        counts=counts,
        files=files,
        gate={"passed": True, "checks": gate, "evidence": evidence},
        purges=[*(manifest.get("purges") or []), entry],
    )
    updated.pop("previous_key_fingerprint", None)
    write_report(folder.root, updated)
    folder.publish(new_id, updated)
    for name in ("report.html", "report.json"):
        storage.write_bytes(storage.join(folder.root, name), (new / name).read_bytes())
    # The old version held the withdrawn rows; its other files live on as the new one's links.
    storage.delete_tree(str(old))
    try:
        lineage = RunLineage(folder.root, new_id, config=config)
        lineage.start(updated["inputs"], entry["purged_at"], consent=ledger_path)
        lineage.complete(updated)
    except Exception as exc:  # lineage is observability; it never decides the outcome
        _LOG.warning("lineage event of purge %s not emitted (%s)", new_id, type(exc).__name__)


def _walk(root: Path) -> Iterator[Path]:
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            yield Path(folder, name)


def _mkdirs(old: Path, relative: Path, new: Path) -> None:
    """Create `new/relative` and its parents with the modes of their counterparts in `old`
    (`quarantine/` and `restricted/` stay owner-only)."""
    for depth in range(len(relative.parts) + 1):
        sub = Path(*relative.parts[:depth])
        if not (new / sub).is_dir():
            (new / sub).mkdir()
            os.chmod(new / sub, os.stat(old / sub).st_mode & 0o777)


def _link(source: Path, target: Path) -> None:
    """`target` as a hard link to `source` (the same bytes, no copy); a copy if links fail."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target)


def _verdict_items(verdicts: list[SubjectConsent]) -> list[dict[str, Any]]:
    return [
        {"subject": v.subject_id, "reason": v.reason, "basis": [b.describe() for b in v.basis]}
        for v in verdicts
    ]


def _purged_audit(table: pa.Table, found: PurgeResult, reason_of: dict[str, str]) -> pa.Table:
    """Audit rows with the purged records moved to `restricted`, reason `purged:<why>`.

    Every copy of a purged event id (an identical repeat too) gets the new consent verdicts;
    only the copy that was published changes destination.
    """
    rows = table.to_pylist()
    for row in rows:
        event_id = row["event_id"]
        if event_id not in found.verdicts:
            continue
        found.host_only[event_id] = row["host_only"]
        row["consent"] = "not_consented"
        row["consent_subjects"] = _verdict_items(found.verdicts[event_id])
        if row["destination"] == "consented_content":
            row["destination"] = "restricted"
            row["reason"] = reason_of[event_id]
            row["rules"] = [*row["rules"], "purge"]
    return pa.Table.from_pylist(rows, schema=AUDIT_SCHEMA)


def _restricted(
    event_type: Any, table: pa.Table, found: PurgeResult, reason_of: dict[str, str]
) -> pa.Table:
    """Restricted rows for purged consented rows (already pseudonymised, content left out)."""
    ids = table["event_id"].to_pylist()
    withheld = [s.name for s in event_type.fields if s.category in ("content", "derived")]
    meeting = table["meeting_id"] if "meeting_id" in table.column_names else None
    return pa.table(
        {
            "event_id": table["event_id"],
            "event_type": table["event_type"],
            "event_ts": table["event_ts"].cast(RESTRICTED_SCHEMA.field("event_ts").type),
            "account_id": table["account_id"],
            "meeting_id": meeting if meeting is not None else pa.nulls(len(ids), pa.string()),
            "subjects": pa.array(content_subjects(event_type, table), pa.list_(pa.string())),
            "reason": pa.array([reason_of[i] for i in ids], pa.string()),
            "consent_subjects": pa.array(
                [_verdict_items(found.verdicts[i]) for i in ids], CONSENT_TYPE
            ),
            "host_only": pa.array([found.host_only.get(i) for i in ids], pa.bool_()),
            "withheld_fields": pa.array([withheld] * len(ids), pa.list_(pa.string())),
        },
        schema=RESTRICTED_SCHEMA,
    )


def _recount(staged: Path, before: dict[str, Any]) -> dict[str, Any]:
    """The manifest's counts from the version's audit table, as a run computes them."""
    counts: dict[str, Any] = {}
    for path in sorted((staged / "audit").glob("*.parquet")):
        counts = add_counts(counts, count_outputs(pq.read_table(path, schema=AUDIT_SCHEMA)))
    manifest_counts(counts)
    if "consent_ledger" in before:  # the ledger's own rows are not in the audit table
        counts["consent_ledger"] = before["consent_ledger"]
    counts["purged"] = 0
    for path in sorted((staged / "audit").glob("*.parquet")):
        reason = pq.read_table(path, columns=["reason"])["reason"]
        counts["purged"] += pc.sum(pc.starts_with(reason, PURGED_PREFIX)).as_py() or 0
    return counts


def _files(staged: Path) -> list[dict[str, Any]]:
    """The version's Parquet files as the manifest lists them: table, event type, path, rows."""
    files = []
    for path in sorted(staged.rglob("*.parquet")):
        relative = path.relative_to(staged)
        top = relative.parts[0]
        if top == "training":
            table = "training" if relative.parts[1] == "service_generated" else "consented_content"
            event_type: str | None = relative.parts[2].removeprefix("event_type=")
        elif top in ("restricted", "quarantine", "audit"):
            table, event_type = top, None
        else:
            continue
        rows = pq.ParquetFile(path).metadata.num_rows
        files.append(
            {"table": table, "event_type": event_type, "path": relative.as_posix(), "rows": rows}
        )
    return files


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


def render_result(result: PurgeResult) -> str:
    """What `consentgate purge` prints: one line per withdrawn record, then the outcome."""
    verb = "removed" if result.applied else "would remove"
    lines = [
        f"{verb} {inert(item['event_id'])} ({inert(item['event_type'])}): "
        f"{inert(', '.join(item['reasons']))}"
        for item in result.removed
    ]
    if result.ledger_rejected:
        lines.append(
            f"{result.ledger_rejected} ledger row(s) could not be read; each counts as a revoke"
        )
    checked = f"checked {result.rows_checked} consented rows of run {result.run_id}"
    if not result.applied:
        lines.append(
            f"{checked}; {len(result.removed)} would be removed (dry run: --apply removes them)"
        )
    elif result.new_run_id:
        lines.append(
            f"{checked}; removed {len(result.removed)}: published run {result.new_run_id} without "
            f"them (moved to restricted as {PURGED_PREFIX}<why>); run {result.run_id} is deleted"
        )
    else:
        lines.append(f"{checked}; nothing to remove, nothing changed")
    return "\n".join(lines) + "\n"
