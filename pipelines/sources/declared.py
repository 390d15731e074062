"""Vendor sources declared as data: `schemas/sources/<name>/*.json` -> kinds, fields, event types.

Each source folder holds `source.json` (fields every record of the source may carry) and one
file per kind of record (`x-kinds` lists the vendor's names for it). A field is declared by its
path in the vendor record (dots between object keys) with its data category, its JSON type,
the column it becomes (`name`, default: the last key in snake_case), an optional unit rule
(`unit`, see units.py), its fideslang key (`fides`, default: the taxonomy's for the category)
and, for the ids and time every record needs, the envelope field it fills (`envelope`). A
`secret` field never becomes a column; an undeclared field quarantines its record.

Each kind compiles into an ordinary contract `EventType` named `<source>.<kind>`, so every
stage after the adapter treats vendor records exactly like v1 records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipelines.contract import (
    ENVELOPE_FIELDS,
    EventType,
    FieldSpec,
    compile_event_schema,
    kept_per_schemas,
)
from pipelines.errors import ConfigError
from pipelines.sources.units import UNIT_RULES, unit_columns

__all__ = [
    "FIELD_TYPES",
    "SOURCE_CATEGORIES",
    "FieldDecl",
    "KindDecl",
    "SourceDecl",
    "compile_sources",
    "source_event_types",
]

# Categories of a vendor field: the contract's five and `secret` (tokens, passwords, ICE
# credentials, certificates), which is never published and never echoed in any table.
SOURCE_CATEGORIES = ("service", "identifier", "free_text", "derived", "content", "secret")
# Declared type -> JSON type of the normalised column (None: a time, stored as a timestamp).
FIELD_TYPES: dict[str, str | None] = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "id": "string",  # a string or a number in the vendor record, a string in the column
    "json": "string",  # any JSON value (maps, lists of objects), kept as its JSON text
    "list": "array",  # a list of strings
    "time": None,  # RFC 3339, epoch s, epoch ms or float ms -> UTC microseconds
}
_ENVELOPE_TARGETS = ("event_ts", "account_id", "meeting_id", "participant_id")
_FIELD_KEYS = frozenset(
    {"category", "type", "name", "unit", "fides", "envelope", "enum", "description"}
)
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake_case(key: str) -> str:
    """`packetsReceived` -> `packets_received`; `as_input` stays as it is."""
    return _CAMEL.sub(r"_\1", key).lower().replace("-", "_")


@dataclass(frozen=True)
class FieldDecl:
    """One vendor field: where it is, what it is, and which columns it becomes."""

    path: str
    category: str
    type: str
    name: str
    unit: str | None
    fides: str
    envelope: str | None
    # A closed vocabulary (`enum`): any other value quarantines the record (`bad_value`), and
    # every value of it may be published as it is (no string rule applies).
    enum: frozenset[str] | None = None

    def columns(self) -> tuple[tuple[str, str | None], ...]:
        """(column, JSON type) this field writes; none for a secret or an envelope-only field."""
        if self.category == "secret" or self.envelope is not None:
            return ()
        if self.unit is not None:
            return tuple(unit_columns(self.unit, self.name))
        return ((self.name, FIELD_TYPES[self.type]),)


@dataclass(frozen=True)
class KindDecl:
    """One kind of vendor record of a source, and the event type it becomes."""

    source: str
    kind: str
    event_type: str
    record_class: str
    subjects: Mapping[str, str] | None
    fields: Mapping[str, FieldDecl]  # by path
    prefixes: frozenset[str]  # paths of the objects that hold declared fields

    def secret_paths(self) -> frozenset[str]:
        return frozenset(p for p, f in self.fields.items() if f.category == "secret")


@dataclass(frozen=True)
class SourceDecl:
    """A vendor source: its kinds by vendor name."""

    name: str
    kinds: Mapping[str, KindDecl]
    default_account: str | None


def _field(path: str, spec: Any, where: str, fides: Mapping[str, str]) -> FieldDecl:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}/fields/{path}: must be an object")
    unknown = sorted(set(spec) - _FIELD_KEYS)
    if unknown:
        raise ConfigError(f"{where}/fields/{path}: unknown key(s) {unknown}")
    category = spec.get("category")
    if category not in SOURCE_CATEGORIES:
        raise ConfigError(
            f"{where}/fields/{path}/category: {category!r} is not one of {SOURCE_CATEGORIES}"
        )
    kind = spec.get("type")
    if kind not in FIELD_TYPES:
        raise ConfigError(f"{where}/fields/{path}/type: {kind!r} is not one of {list(FIELD_TYPES)}")
    unit = spec.get("unit")
    if unit is not None and unit not in UNIT_RULES:
        raise ConfigError(
            f"{where}/fields/{path}/unit: {unit!r} is not one of {sorted(UNIT_RULES)}"
        )
    envelope = spec.get("envelope")
    if envelope is not None and envelope not in _ENVELOPE_TARGETS:
        raise ConfigError(
            f"{where}/fields/{path}/envelope: {envelope!r} is not one of {_ENVELOPE_TARGETS}"
        )
    if envelope == "event_ts" and kind != "time":
        raise ConfigError(f"{where}/fields/{path}: the event_ts field must be of type 'time'")
    if category == "identifier" and kind not in ("string", "id", "json", "list"):
        # Identifiers are pseudonymised, and a pseudonym is made from text.
        raise ConfigError(
            f"{where}/fields/{path}/type: an identifier must be string, id, json or list"
        )
    enum = spec.get("enum")
    if enum is not None and (
        kind != "string"
        or category != "service"
        or unit is not None
        or not isinstance(enum, list)
        or not enum
        or not all(isinstance(v, str) for v in enum)
    ):
        raise ConfigError(
            f"{where}/fields/{path}/enum: a non-empty list of strings, for a service string"
        )
    name = spec.get("name") or snake_case(path.rsplit(".", 1)[-1])
    if name in ENVELOPE_FIELDS and envelope is None:
        raise ConfigError(f"{where}/fields/{path}/name: {name!r} is an envelope field's name")
    return FieldDecl(
        path=path,
        category=category,
        type=kind,
        name=name,
        unit=unit,
        fides=spec.get("fides") or fides.get(category, ""),
        envelope=envelope,
        enum=frozenset(enum) if enum is not None else None,
    )


def _prefixes(paths: list[str]) -> frozenset[str]:
    out: set[str] = set()
    for path in paths:
        parts = path.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(out)


def compile_sources(schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, SourceDecl]:
    """Every source under `sources/` of `read_schemas` output, checked."""
    return dict(_compile_sources(schemas))


@kept_per_schemas
def _compile_sources(schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, SourceDecl]:
    folders: dict[str, dict[str, Mapping[str, Any]]] = {}
    for path, schema in schemas.items():
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "sources":
            folders.setdefault(parts[1], {})[parts[2]] = schema
    sources = {}
    for name, files in sorted(folders.items()):
        where = f"schemas/sources/{name}"
        head = files.get("source.json")
        if head is None:
            raise ConfigError(f"{where}/source.json: schema file is missing")
        if head.get("x-source") != name:
            raise ConfigError(f"{where}/source.json: x-source must be {name!r}")
        fides = dict(head.get("x-fides", {}))
        missing = [c for c in SOURCE_CATEGORIES if c not in fides]
        if missing:
            raise ConfigError(f"{where}/source.json/x-fides: no fideslang key for {missing}")
        common = {
            p: _field(p, s, f"{where}/source.json", fides)
            for p, s in head.get("fields", {}).items()
        }
        kinds: dict[str, KindDecl] = {}
        for file_name, schema in sorted(files.items()):
            if file_name == "source.json":
                continue
            file_where = f"{where}/{file_name}"
            own = {p: _field(p, s, file_where, fides) for p, s in schema.get("fields", {}).items()}
            fields = {**common, **own}
            _check_columns(fields, file_where)
            record_class = schema.get("x-record-class")
            if record_class not in ("service_generated", "customer_content"):
                raise ConfigError(f"{file_where}: x-record-class {record_class!r} is not valid")
            subjects = schema.get("x-content-subjects")
            if (record_class == "customer_content") != (subjects is not None):
                raise ConfigError(
                    f"{file_where}: x-content-subjects is required for customer_content only"
                )
            if subjects is not None:
                columns = {c for f in fields.values() for c, _ in f.columns()}
                target = (
                    subjects.get("field") or subjects.get("list_field") or subjects.get("envelope")
                )
                if target not in columns and target not in _ENVELOPE_TARGETS:
                    raise ConfigError(f"{file_where}/x-content-subjects: no column {target!r}")
            if not any(f.envelope == "event_ts" for f in fields.values()):
                raise ConfigError(f"{file_where}: no field fills the envelope's event_ts")
            for kind in schema.get("x-kinds", []):
                if kind in kinds:
                    raise ConfigError(f"{file_where}/x-kinds: {kind!r} is declared twice")
                kinds[kind] = KindDecl(
                    source=name,
                    kind=kind,
                    event_type=f"{name}.{kind}",
                    record_class=record_class,
                    subjects=subjects,
                    fields=fields,
                    prefixes=_prefixes(list(fields)),
                )
        sources[name] = SourceDecl(name, kinds, head.get("x-default-account"))
    return sources


def _check_columns(fields: Mapping[str, FieldDecl], where: str) -> None:
    seen: dict[str, str] = {}
    for decl in fields.values():
        for column, _ in decl.columns():
            if column in seen:
                raise ConfigError(
                    f"{where}: fields {seen[column]!r} and {decl.path!r} both become column "
                    f"{column!r}; give one a `name`"
                )
            seen[column] = decl.path


def normalised_schema(kind: KindDecl) -> dict[str, Any]:
    """The JSON Schema of a kind's normalised payload (times as integer microseconds)."""
    properties: dict[str, Any] = {}
    for decl in kind.fields.values():
        for column, json_type in decl.columns():
            if json_type is None:
                prop: dict[str, Any] = {"type": ["integer", "null"]}
            elif json_type == "array":
                prop = {"type": ["array", "null"], "items": {"type": "string"}}
            else:
                prop = {"type": [json_type, "null"]}
            prop["x-category"] = decl.category
            properties[column] = prop
    return {
        "type": "object",
        "additionalProperties": False,
        "required": sorted(properties),
        "properties": properties,
    }


def source_event_types(schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, EventType]:
    """The contract event types of every declared vendor kind."""
    out: dict[str, EventType] = {}
    for source in compile_sources(schemas).values():
        for kind in source.kinds.values():
            schema = normalised_schema(kind)
            where = f"schemas/sources/{source.name} ({kind.kind})"
            check, screen = compile_event_schema(schema, where)
            specs = []
            for decl in kind.fields.values():
                for column, json_type in decl.columns():
                    arrow = pa.timestamp("us", tz="UTC") if json_type is None else _ARROW[json_type]
                    specs.append(FieldSpec(column, decl.category, arrow, True))
            out[kind.event_type] = EventType(
                name=kind.event_type,
                record_class=kind.record_class,
                fields=tuple(specs),
                subjects=kind.subjects,
                check=check,
                screen=screen,
            )
    return out


_ARROW = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "array": pa.list_(pa.string()),
}
