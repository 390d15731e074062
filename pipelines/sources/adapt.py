"""Vendor lines -> the same classified EventChunks as the contract path; pure, no Beam.

A source module (zoom_webhook.py, ...) only says how one vendor record splits into units (a
webhook body is one; a QoS page holds many participants and samples; a stats snapshot holds
many RTCStats) and what kind each unit is. Everything else is driven by the source schema:
each declared field is read at its path, converted by its type or unit rule and written to its
column; a secret is dropped on the spot; an undeclared field quarantines the unit
(`undeclared_field`). The normalised records then go through `classify_records`, the contract
path's own checks and typing, as `<source>.<kind>` events.

Nothing of a secret reaches any table: quarantine rows carry the unit with every declared
secret, and every key that looks like a credential, replaced by a marker.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import orjson
import pyarrow as pa

from pipelines.contract import Contract
from pipelines.rules import classify
from pipelines.rules.classify import HASH, LOC, REJECT_SCHEMA
from pipelines.sources.declared import FieldDecl, KindDecl, SourceDecl
from pipelines.sources.units import BadValue, parse_time, parse_unit

__all__ = [
    "SECRET_MARK",
    "ShapeError",
    "Unit",
    "adapt_lines",
    "normalise",
    "scrub",
]

SECRET_MARK = "[secret withheld]"
# Keys whose values are withheld from quarantine rows even when no schema declares them: a
# vendor's new credential field must not be echoed while it waits for review.
_SECRET_KEY = re.compile(
    r"token|password|passcode|passwd|pwd|secret|credential|ufrag|usernamefragment|fingerprint|"
    r"certificate|signature|api_?key",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Unit:
    """One record of a vendor line: its kind (the vendor's name) and its fields, nested."""

    kind: str | None
    record: Mapping[str, Any]


class ShapeError(ValueError):
    """A vendor line whose structure its source cannot split (a list where an object goes)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class _Reject(Exception):
    def __init__(self, code: str, path: str) -> None:
        super().__init__(code, path)
        self.code = code
        self.path = path


def scrub(value: Any, secrets: frozenset[str] = frozenset(), prefix: str = "") -> Any:
    """`value` with declared secret paths and credential-looking keys replaced by a marker."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            path = f"{prefix}{key}"
            if path in secrets or (isinstance(key, str) and _SECRET_KEY.search(key)):
                out[key] = SECRET_MARK if item is not None else None
            else:
                out[key] = scrub(item, secrets, f"{path}.")
        return out
    if isinstance(value, list):
        return [scrub(item, secrets, prefix) for item in value]
    return value


def _collect(kind: KindDecl, record: Mapping[str, Any]) -> dict[str, Any]:
    """Declared paths -> values; an undeclared field raises `undeclared_field` at its path."""
    found: dict[str, Any] = {}
    stack: list[tuple[str, Mapping[str, Any]]] = [("", record)]
    while stack:
        prefix, obj = stack.pop()
        for key, value in obj.items():
            path = f"{prefix}{key}"
            if path in kind.fields:
                found[path] = value
            elif path in kind.prefixes and isinstance(value, Mapping):
                stack.append((f"{path}.", value))
            elif path in kind.prefixes and value is None:
                continue
            else:
                raise _Reject("undeclared_field", f"$.{path}")
    return found


def _value(decl: FieldDecl, value: Any) -> tuple[Any, ...]:
    """The column values of one declared field (none for a secret)."""
    if decl.category == "secret":
        return ()
    try:
        if decl.unit is not None:
            return parse_unit(decl.unit, value)
        if decl.type == "time":
            return (parse_time(value),)
    except BadValue:
        raise _Reject(
            "bad_timestamp" if decl.type == "time" else "bad_value", f"$.{decl.path}"
        ) from None
    if decl.type == "id":
        if value is None or value == "":
            return (None,)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _Reject("wrong_type", f"$.{decl.path}")
        return (str(value),)
    if decl.type == "json":
        return (
            None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode(),
        )
    if decl.enum is not None and isinstance(value, str) and value not in decl.enum:
        raise _Reject("bad_value", f"$.{decl.path}")
    if decl.category == "identifier" and value == "":
        return (None,)  # Zoom writes "" for a guest's email: no identifier, not an empty one
    return (value,)


def _instant_text(micros: int) -> str:
    """UTC microseconds as the plain RFC 3339 form the contract path reads in Arrow."""
    seconds, fraction = divmod(micros, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:06d}Z"


def normalise(
    source: SourceDecl, kind: KindDecl, record: Mapping[str, Any], event_id: str
) -> dict[str, Any]:
    """A unit of a vendor record as a contract-shaped record of event type `<source>.<kind>`."""
    found = _collect(kind, record)
    payload: dict[str, Any] = {}
    envelope: dict[str, Any] = {}
    for decl in kind.fields.values():
        values = _value(decl, found.get(decl.path))
        if decl.envelope is not None:
            if envelope.get(decl.envelope) is None and values and values[0] is not None:
                envelope[decl.envelope] = values[0]
            continue
        for (column, _), value in zip(decl.columns(), values, strict=True):
            payload[column] = value
    micros = envelope.get("event_ts")
    if micros is None:
        paths = [d.path for d in kind.fields.values() if d.envelope == "event_ts"]
        raise _Reject("missing_field", f"$.{paths[0]}")
    account = envelope.get("account_id") or source.default_account
    if account is None:
        paths = [d.path for d in kind.fields.values() if d.envelope == "account_id"]
        raise _Reject("missing_field", f"$.{paths[0] if paths else 'account_id'}")
    return {
        "event_id": event_id,
        "event_type": kind.event_type,
        "event_ts": _instant_text(micros),
        "account_id": account,
        "meeting_id": envelope.get("meeting_id"),
        "participant_id": envelope.get("participant_id"),
        "schema_version": 1,
        "payload": payload,
    }


def _event_id(source: str, line: bytes, index: int) -> str:
    """The same vendor line gives the same ids (re-deliveries are duplicates); units differ."""
    digest = hashlib.blake2b(line, digest_size=10).hexdigest()
    return f"{source}-{digest}-{index}"


def _raw(value: Any, secrets: frozenset[str] = frozenset()) -> bytes:
    return orjson.dumps(scrub(value, secrets), default=str)


def adapt_lines(
    contract: Contract,
    sources: Mapping[str, SourceDecl],
    modules: Sequence[ModuleType],
    file_index: int,
    lines: Sequence[tuple[int, bytes]],
    max_depth: int = classify.DEFAULT_MAX_NESTING_DEPTH,
) -> classify.ClassifiedChunk:
    """Decode vendor lines, split them into units, normalise and classify them.

    `modules` are the source modules to try, in order (one for `--source NAME`, all for
    `auto`); a line none of them recognises is quarantined `unknown_source_shape`. Contract
    lines are recognised under `auto` too (module `contract`).
    """
    from pipelines.chunk import loc_of

    items: list[tuple[int, Any, str | None, bytes | None]] = []
    rejects: list[dict[str, Any]] = []

    def reject(
        loc: int,
        code: str,
        detail: str | None,
        raw: bytes | None,
        event_id: str | None,
        event_type: str | None,
    ) -> None:
        rejects.append(
            {
                LOC: loc,
                "event_id": event_id,
                "event_type": event_type,
                HASH: classify.record_hash(raw.decode("utf-8", "replace"))
                if raw is not None
                else None,
                "reason": code,
                "detail": detail,
                "raw": raw,
            }
        )

    for number, line in lines:
        loc = loc_of(file_index, number)
        record, reason = classify.decode_line(line, max_depth)
        if reason is not None:
            # Undecodable: only its start is kept, and even that is scrubbed of nothing we can
            # read; a line that is not JSON cannot be split into keys.
            reject(loc, reason, None, None, None, None)
            continue
        module = next((m for m in modules if m.matches(record)), None)
        if module is None:
            reject(loc, "unknown_source_shape", None, _raw(record), None, None)
            continue
        if module.NAME == "contract":
            items.append((loc, record, None, line))
            continue
        source = sources[module.NAME]
        try:
            units = list(module.units(record))
        except ShapeError as exc:
            reject(loc, "bad_value", f"$.{exc.path}", _raw(record), None, None)
            continue
        for index, unit in enumerate(units):
            event_id = _event_id(module.NAME, line, index)
            kind = source.kinds.get(unit.kind) if isinstance(unit.kind, str) else None
            event_type = f"{module.NAME}.{unit.kind}" if isinstance(unit.kind, str) else None
            if kind is None:
                reject(loc, "unknown_event_type", None, _raw(unit.record), event_id, event_type)
                continue
            try:
                normalised = normalise(source, kind, unit.record, event_id)
            except _Reject as exc:
                raw = _raw(unit.record, kind.secret_paths())
                reject(loc, exc.code, exc.path, raw, event_id, event_type)
                continue
            # The quarantine row of a record that fails a later check shows the normalised
            # record, which holds no secret.
            items.append((loc, normalised, None, _raw(normalised)))
    found = classify.classify_records(contract, items)
    if rejects:
        mine = pa.Table.from_pylist(rejects, REJECT_SCHEMA)
        found.rejects = pa.concat_tables([found.rejects, mine]).sort_by(LOC)
    return found
