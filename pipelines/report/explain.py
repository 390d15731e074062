"""`consentgate explain`: one record's decision trail, read back from a run's audit table.

The audit row says where a record went and why (class, rules, detector findings, each content
subject's consent and the ledger decisions it rests on, the host-only what-if). What happened to
each field follows from the destination and the published output schemas in `schemas/outputs/`,
which the leak gate holds every staged file to. The audit holds no identifier or content values
(subjects are pseudonyms), and nothing here reads any other table, so no raw value is shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.config import Config
from pipelines.contract import EventType, FieldSpec
from pipelines.errors import InputError

__all__ = ["FIELD_ACTIONS", "explain", "render_text"]

# What a run can do to one field of one record, and how the text output says it.
FIELD_ACTIONS = {
    "kept": "kept as is",
    "pseudonymised": "pseudonymised (keyed HMAC-SHA256 pseudonym)",
    "generalised": "generalised to country",
    "dropped": "dropped",
    "redacted": "redacted",
    "withheld": "withheld",
    "not_applicable": "not applicable",
}

_REASONS = {
    "not_json": "the line is not valid JSON",
    "not_utf8": "the line is not UTF-8",
    "not_object": "the line is JSON but not an object",
    "unknown_event_type": "event_type is not one of the contract's event types, exactly",
    "missing_field": "a required envelope or payload field is absent",
    "wrong_type": "a field has the wrong JSON type",
    "undeclared_field": "a field the contract does not list for that type",
    "bad_value": "an enum, constant, pattern or range is broken",
    "bad_timestamp": (
        "event_ts is not a strict RFC 3339 timestamp with a zone, or falls outside years "
        "1 to 9999 once its offset is applied"
    ),
    "conflicting_duplicate": "the same event_id with different records: every copy is quarantined",
    "duplicate": "an identical repeat of an event_id: counted once, the first copy is kept",
    "service_deidentified": "a clean service-generated record, de-identified for training",
    "content_policy_never": "customer content under the default policy `never`",
    "consented": "every content subject consented for themselves",
    "unknown_record_class": "the event type has no record class that may train",
}
_PREFIXED_REASONS = {
    "detector:": "a detector found something in a service record's text: ",
    "no_consent:": "not every content subject consented; the first that did not: ",
    "purged:": "published as consented content, then withdrawn by `consentgate purge` (moved "
    "to restricted) because a subject's consent no longer held; the first: ",
    "payload_": "(Parquet) the payload column does not hold a JSON object: ",
}
_SUBJECT_REASONS = {
    "consented": "their own grant covers the event",
    "no_decision": "no decision for this purpose and scope",
    "other_purpose_only": "decisions exist, but for other purposes only",
    "not_own_grant": "the grant that counts was made by a host or admin, not the subject",
    "granted_after_event": "the grant came after the event",
    "revoked": "the grant was revoked, or a rejected ledger row stands as a revoke",
    "ledger_unreadable": "a ledger row named no readable subject or account: nothing is admitted",
}
_BASIS = re.compile(
    r"^(?P<action>grant|revoke) by (?P<actor>self|host|admin) for "
    r"(?P<purpose>ai_training|other_purpose) \((?P<scope>account|meeting) scope\) "
    r"at (?P<micros>-?\d+)$"
)
_REJECTED_BASIS = re.compile(r"^ledger (?:file \d+ )?row \d+ rejected \(consent_[a-z0-9_]+\)$")
# An audit row written before ledger free text was kept out of outputs may still hold some:
# what does not match a known form is not shown.
_BASIS_WITHHELD = "a ledger decision in a form this version does not show"
_ENVELOPE_IDS = ("account_id", "meeting_id", "participant_id")
_RESTRICTED_KEPT = ("event_id", "event_type", "event_ts")
_RUN_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def explain(
    run_dir: str | Path, event_id: str, config: Config, *, run_id: str | None = None
) -> dict[str, Any]:
    """The decision trail of `event_id` in a run folder: one entry per copy of the record.

    Reads the audit of the run the manifest names: the published run's when the latest run was
    published, else the latest run's staged audit. `run_id` picks a staged run explicitly.
    """
    run = _audited_run(Path(run_dir), run_id)
    audit = pq.read_table(run["audit_path"], filters=pc.field("event_id") == event_id)
    if audit.num_rows == 0 and "event_pseudonym" in pq.read_schema(_first_file(run)).names:
        # Service training publishes the id as a keyed pseudonym: find the record by that.
        audit = pq.read_table(run["audit_path"], filters=pc.field("event_pseudonym") == event_id)
        if audit.num_rows:
            event_id = audit["event_id"][0].as_py()
    if audit.num_rows == 0:
        raise InputError(
            f"event id {event_id!r} is not in the audit of run {run['run_id']} "
            f"({run['audit_path']})"
        )
    rows = sorted(audit.to_pylist(), key=lambda r: (r["source_file"], r["source_line"]))
    # Any source's event types: the audit row says which source the record came in.
    contract = config.with_policy(input_source="auto").contract()
    outputs = {
        name: config.schemas[f"outputs/{name}.json"]
        for name in ("training", "consented_content", "restricted")
    }
    kept = next((r for r in rows if r["destination"] != "duplicate"), None)
    copies = [
        _copy_trail(row, contract.envelope, contract.event_types.get(row["event_type"]), outputs)
        for row in rows
    ]
    for copy in copies:
        if copy["destination"] == "duplicate" and kept is not None:
            copy["kept_copy"] = {
                "source_line": kept["source_line"],
                "destination": kept["destination"],
            }
    return {"event_id": event_id, "run": run, "copies": copies}


def _first_file(run: Mapping[str, Any]) -> Path:
    return sorted(Path(run["audit_path"]).glob("*.parquet"))[0]


def _audited_run(root: Path, run_id: str | None) -> dict[str, Any]:
    """Which run's audit to read, and why; a folder without a manifest is not a run folder."""
    manifest_path = root / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{manifest_path}: no manifest; is {root} a run folder?") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{manifest_path}: cannot be read ({exc})") from None
    if not isinstance(manifest, dict) or not manifest.get("run_id"):
        raise InputError(f"{manifest_path}: has no run_id; is {root} a run folder?")
    latest, status = str(manifest["run_id"]), str(manifest.get("status", "unknown"))
    published = manifest.get("published_run_id")
    if run_id is not None:
        chosen, note = run_id, f"run {run_id}, as asked"
    elif status == "published":
        chosen, note = latest, f"published run {latest} (the latest run)"
    elif (root / ".runs" / latest / "audit").is_dir():
        chosen = latest
        note = f"latest run {latest}, NOT published (status {status}): its staged audit" + (
            f"; the published run is {published}" if published else "; nothing is published"
        )
    elif published:
        chosen = str(published)
        note = f"published run {published}; the latest run {latest} (status {status}) left no audit"
    else:
        raise InputError(f"{root}: run {latest} (status {status}) left no audit to explain")
    if not _RUN_ID.match(chosen):
        raise InputError(f"{manifest_path}: {chosen!r} is not a run id")
    audit_path = root / ".runs" / chosen / "audit"
    if not audit_path.is_dir() or not any(audit_path.glob("*.parquet")):
        raise InputError(f"{audit_path}: no audit table for run {chosen}")
    return {
        "run_id": chosen,
        "published": chosen == published,
        "status": status if chosen == latest else ("published" if chosen == published else None),
        "which": note,
        "audit_path": str(audit_path),
    }


def _copy_trail(
    row: Mapping[str, Any],
    envelope: tuple[FieldSpec, ...],
    event_type: EventType | None,
    outputs: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """One audit row as a decision trail."""
    return {
        "event_type": row["event_type"],
        "in_contract": event_type is not None,
        "record_class": row["record_class"],
        "source": {
            "file": row["source_file"],
            "line": row["source_line"],
            "shape": row.get("source") or "contract",
        },
        "destination": row["destination"],
        "reason": row["reason"],
        "reason_text": _reason_text(row["reason"]),
        "rules": list(row["rules"]),
        "detectors": [dict(d) for d in row["detectors"]],
        "fields": _field_trail(row, envelope, event_type, outputs),
        "consent": _consent_trail(row),
        "host_only": row["host_only"],
        "host_only_text": _host_only_text(row),
    }


def _reason_text(code: str) -> str:
    """A reason code in words."""
    if code in _REASONS:
        return _REASONS[code]
    for prefix, words in _PREFIXED_REASONS.items():
        if code.startswith(prefix):
            rest = code[len(prefix) :]
            return words + _SUBJECT_REASONS.get(rest, rest)
    return code


def _field_trail(
    row: Mapping[str, Any],
    envelope: tuple[FieldSpec, ...],
    event_type: EventType | None,
    outputs: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Each field's category and what the run did with it, by the record's destination."""
    specs = [("envelope", s) for s in envelope]
    if event_type is not None:
        specs += [("payload", s) for s in event_type.fields]
    found = {d["field"] for d in row["detectors"]}
    trail = []
    for part, spec in specs:
        action, column, note = _field_fate(spec, row, event_type, outputs, found)
        trail.append(
            {
                "field": spec.name,
                "part": part,
                "category": spec.category,
                "action": action,
                "output_column": column,
                "note": note,
            }
        )
    return trail


def _field_fate(
    spec: FieldSpec,
    row: Mapping[str, Any],
    event_type: EventType | None,
    outputs: Mapping[str, Mapping[str, Any]],
    found: set[str],
) -> tuple[str, str | None, str | None]:
    """(action, output column, note) for one field of a record routed to `destination`."""
    destination = row["destination"]
    if destination == "quarantine":
        return (
            "not_applicable",
            None,
            "quarantined: the record is held as read in quarantine/ for review; "
            "nothing of it reaches training",
        )
    if destination == "duplicate":
        return (
            "not_applicable",
            None,
            "an identical repeat: counted once and not written; see the kept copy",
        )
    if destination == "training":
        return _training_action(spec, row, outputs["training"], found)
    if destination == "consented_content":
        return _consented_action(spec, row, outputs["consented_content"])
    if destination == "restricted":
        return _restricted_action(spec, event_type)
    return "not_applicable", None, f"destination {destination}"


def _columns(doc: Mapping[str, Any], event_type: str) -> tuple[list[str], set[str]]:
    columns = doc["x-columns-by-event-type"].get(event_type, [])
    return list(columns), set(doc["x-pseudonym-columns"].get(event_type, []))


def _training_action(
    spec: FieldSpec, row: Mapping[str, Any], doc: Mapping[str, Any], found: set[str]
) -> tuple[str, str | None, str | None]:
    columns, pseudonyms = _columns(doc, row["event_type"])
    if spec.name in pseudonyms:
        return "pseudonymised", spec.name, None
    if f"{spec.name}_country" in columns:
        return "generalised", f"{spec.name}_country", None
    if spec.name in columns:
        if spec.name in found:
            # Only policy `redact` lets a record with findings into training.
            return "redacted", spec.name, "detector findings replaced by [REDACTED:<detector>]"
        return "kept", spec.name, None
    if spec.category in ("content", "derived"):
        return "dropped", None, f"{spec.category} never enters the service training bucket"
    return "dropped", None, None


def _consented_action(
    spec: FieldSpec, row: Mapping[str, Any], doc: Mapping[str, Any]
) -> tuple[str, str | None, str | None]:
    columns, pseudonyms = _columns(doc, row["event_type"])
    if spec.name in pseudonyms:
        return "pseudonymised", spec.name, None
    if spec.name not in columns:
        return "dropped", None, None
    if spec.category == "content":
        return (
            "redacted",
            spec.name,
            "content kept under consent; emails, phone numbers, card numbers, IP addresses and "
            "secret URLs in it replaced by [REDACTED:<detector>]",
        )
    return "kept", spec.name, None


def _restricted_action(
    spec: FieldSpec, event_type: EventType | None
) -> tuple[str, str | None, str | None]:
    if spec.category in ("content", "derived"):
        return "withheld", None, "content kept out of training: named in withheld_fields only"
    if spec.name in _RESTRICTED_KEPT:
        return "kept", spec.name, None
    if spec.name in ("account_id", "meeting_id"):
        return "pseudonymised", spec.name, None
    rule = (event_type.subjects or {}) if event_type is not None else {}
    if spec.name in rule.values():
        return "pseudonymised", "subjects", "a content subject: kept only as a pseudonym"
    return "dropped", None, "restricted/ keeps ids, type, time and the reason only"


def _consent_trail(row: Mapping[str, Any]) -> dict[str, Any] | None:
    if row["consent"] is None:
        return None
    subjects = []
    for item in row["consent_subjects"] or []:
        subjects.append(
            {
                "subject": item["subject"],
                "reason": item["reason"],
                "reason_text": _SUBJECT_REASONS.get(item["reason"], item["reason"]),
                "basis": [_decision(text) for text in item["basis"] or []],
            }
        )
    return {"decision": row["consent"], "subjects": subjects}


def _decision(text: str) -> dict[str, Any]:
    """One ledger decision as the audit describes it, with its time made readable."""
    m = _BASIS.match(text)
    if m is None:
        return {"text": text if _REJECTED_BASIS.match(text) else _BASIS_WITHHELD}
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(m["micros"]))
    return {
        "action": m["action"],
        "actor": m["actor"],
        "purpose": m["purpose"],
        "scope": m["scope"],
        "decided_at": moment.isoformat().replace("+00:00", "Z"),
        "text": text,
    }


def _host_only_text(row: Mapping[str, Any]) -> str:
    host_only = row["host_only"]
    if host_only is None:
        return "not applicable (not customer content)"
    if not host_only:
        return "a host-only rule would not have admitted it either"
    if row["consent"] == "consented":
        return "a host-only rule would have admitted it too"
    return (
        "a host-only rule WOULD have admitted it without every subject's own consent "
        "(counted in the host-only gap)"
    )


def render_text(trail: Mapping[str, Any]) -> str:
    """The trail for people: one block per copy of the record."""
    run = trail["run"]
    copies = trail["copies"]
    lines = [f"event {trail['event_id']}", f"  run           {run['which']}"]
    if len(copies) > 1:
        lines.append(f"  copies        {len(copies)} (the event id is repeated in the input)")
    for number, copy in enumerate(copies, 1):
        if len(copies) > 1:
            lines += ["", f"copy {number} of {len(copies)}"]
        lines += _render_copy(copy)
    return "\n".join(lines) + "\n"


def _render_copy(copy: Mapping[str, Any]) -> list[str]:
    source = copy["source"]
    event_type = copy["event_type"] or "(none)"
    if not copy["in_contract"] and copy["event_type"] is not None:
        # repr shows stray spaces and letter case, which is often why a type is unknown.
        event_type = f"{copy['event_type']!r} (not in the contract)"
    lines = [
        f"  source        {source['file']} line {source['line']} ({source['shape']})",
        f"  event type    {event_type}",
        f"  record class  {copy['record_class']}",
        f"  destination   {copy['destination']}",
        f"  reason        {copy['reason']}: {copy['reason_text']}",
    ]
    kept = copy.get("kept_copy")
    if kept:
        lines.append(f"  kept copy     line {kept['source_line']}, routed to {kept['destination']}")
    lines.append(f"  rules         {', '.join(copy['rules'])}")
    if copy["detectors"]:
        lines.append("  detectors")
        lines += [
            f"    {d['detector']} in {d['field']} at characters {d['start']}..{d['end']}"
            for d in copy["detectors"]
        ]
    else:
        lines.append("  detectors     none fired")
    consent = copy["consent"]
    if consent is None:
        lines.append("  consent       not applicable (not customer content)")
    else:
        lines.append(f"  consent       {consent['decision']}")
        if not consent["subjects"]:
            lines.append("    no subjects could be determined: no one's consent covers it")
        for subject in consent["subjects"]:
            lines.append(f"    {subject['subject']}  {subject['reason']}: {subject['reason_text']}")
            if not subject["basis"]:
                lines.append("      rests on: no ledger decision")
            for decision in subject["basis"]:
                if "decided_at" in decision:
                    lines.append(
                        f"      rests on: {decision['action']} by {decision['actor']} for "
                        f"{decision['purpose']} ({decision['scope']} scope) at "
                        f"{decision['decided_at']}"
                    )
                else:
                    lines.append(f"      rests on: {decision['text']}")
    lines.append(f"  host-only     {copy['host_only_text']}")
    fields = copy["fields"]
    width = max((len(f["field"]) for f in fields), default=0)
    if all(f["action"] == "not_applicable" for f in fields):
        lines.append(f"  fields        not applicable: {fields[0]['note']}")
        lines += [f"    {f['field']:<{width}}  {f['category']}" for f in fields]
        return lines
    lines.append("  fields")
    for f in fields:
        what = FIELD_ACTIONS[f["action"]]
        if f["output_column"] and f["output_column"] != f["field"]:
            what += f" -> {f['output_column']}"
        if f["note"]:
            what += f" ({f['note']})"
        lines.append(f"    {f['field']:<{width}}  {f['category']:<10}  {what}")
    return lines
