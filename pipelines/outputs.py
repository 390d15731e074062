"""The output tables' schemas as JSON Schema documents (the files in `schemas/outputs/`).

The code builds output rows from the contract and the de-identification config; the files in
`schemas/outputs/` are the published promise. `tests/test_outputs.py` holds the two equal, and
the leak gate checks staged files against the files, not against the code.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipelines.chunk import (
    AUDIT_SCHEMA,
    QUARANTINE_SCHEMA,
    RESTRICTED_SCHEMA,
    consented_pseudonym_columns,
    consented_schema,
    pseudonym_columns,
    training_schema,
)
from pipelines.config import Config

__all__ = ["output_schema_documents"]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _json_type(data_type: pa.DataType, nullable: bool) -> dict[str, Any]:
    if pa.types.is_string(data_type):
        node: dict[str, Any] = {"type": "string"}
    elif pa.types.is_binary(data_type):
        node = {"type": "string", "contentEncoding": "binary"}
    elif pa.types.is_integer(data_type):
        node = {"type": "integer"}
    elif pa.types.is_floating(data_type):
        node = {"type": "number"}
    elif pa.types.is_boolean(data_type):
        node = {"type": "boolean"}
    elif pa.types.is_timestamp(data_type):
        node = {"type": "string", "format": "date-time"}
    elif pa.types.is_list(data_type):
        node = {"type": "array", "items": _json_type(data_type.value_type, True)}
    elif pa.types.is_struct(data_type):
        node = {
            "type": "object",
            "properties": {f.name: _json_type(f.type, f.nullable) for f in data_type},
        }
    else:
        raise TypeError(f"no JSON type for {data_type}")
    node["x-arrow-type"] = str(data_type)
    if nullable:
        node["type"] = [node["type"], "null"]
    return node


def _row_schema(schema: pa.Schema, title: str) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in schema],
        "properties": {f.name: _json_type(f.type, f.nullable) for f in schema},
    }


def output_schema_documents(config: Config) -> dict[str, dict[str, Any]]:
    """File name under `schemas/outputs/` -> JSON Schema document."""
    # Every event type a run may publish, the vendor sources' included.
    contract = config.with_policy(input_source="auto").contract()
    service = sorted(
        name
        for name, spec in contract.event_types.items()
        if spec.record_class == "service_generated"
    )
    training = {
        name: training_schema(config, contract, contract.event_types[name]) for name in service
    }
    docs: dict[str, dict[str, Any]] = {
        "training.json": {
            "$schema": _DRAFT,
            "$id": "https://consentgate.invalid/schemas/outputs/training.json",
            "title": "training/service_generated rows, one table per event type",
            "description": "De-identified service-generated rows. Identifier columns hold keyed "
            "pseudonyms; content, derived and dropped identifier fields are absent. Every other "
            "string is a value of a closed vocabulary, a value or template (variable parts "
            "masked as <num>, <hex>, <id>, <path>, <quoted>, <ip>, <email>, ...) that at least "
            "k accounts produced in that field or that configs/strings.json approves, or null: "
            "`withheld_fields` names, per row, the fields whose string was withheld.",
            "x-columns-by-event-type": {n: s.names for n, s in training.items()},
            "x-pseudonym-columns": {
                n: list(pseudonym_columns(config, contract, contract.event_types[n]))
                for n in service
            },
            "$defs": {n: _row_schema(s, n) for n, s in training.items()},
        }
    }
    content = sorted(
        name
        for name, spec in contract.event_types.items()
        if spec.record_class == "customer_content"
    )
    consented = {n: consented_schema(contract, contract.event_types[n]) for n in content}
    docs["consented_content.json"] = {
        "$schema": _DRAFT,
        "$id": "https://consentgate.invalid/schemas/outputs/consented_content.json",
        "title": "training/consented_content rows, one table per content event type",
        "description": "Customer content whose every subject consented for themselves. "
        "Identifier columns hold keyed pseudonyms; every other string (content and metadata "
        "alike) has the run's known identifiers, emails, phone numbers, card and bank numbers, "
        "IP addresses, secrets, tokens and long ids replaced by [REDACTED:<family>]; derived "
        "fields are absent.",
        "x-columns-by-event-type": {n: s.names for n, s in consented.items()},
        "x-pseudonym-columns": {
            n: list(consented_pseudonym_columns(contract.event_types[n])) for n in content
        },
        "$defs": {n: _row_schema(s, n) for n, s in consented.items()},
    }
    for name, schema, title in (
        (
            "restricted.json",
            RESTRICTED_SCHEMA,
            "restricted/: customer content kept out, no content",
        ),
        (
            "quarantine.json",
            QUARANTINE_SCHEMA,
            "quarantine/: records that failed, with reason codes",
        ),
        ("audit.json", AUDIT_SCHEMA, "audit/: one decision row per input record"),
    ):
        docs[name] = {
            "$schema": _DRAFT,
            "$id": f"https://consentgate.invalid/schemas/outputs/{name}",
            **_row_schema(schema, title),
        }
    return docs
