"""The gate's twin for consented content: what the first line redacts, the gate finds if left in,
and what the first line wrote passes it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipelines.chunk import consented_schema
from pipelines.config import load_config
from pipelines.gate.staged import TrainingRules, check_training_table
from pipelines.rules.consented import ConsentedScanner
from pipelines.rules.detectors import KnownIdentifiers

CONFIG = load_config()
CONTRACT = CONFIG.contract()
EVENT_TYPE = "content.shared_file"
RULES = TrainingRules.from_schemas(CONFIG.schemas, "consented_content", "ps_", 32)
KNOWN = KnownIdentifiers.from_values(["Carol Danvers", "p-carol"], 4)
PSEUDONYM = "ps_" + "a" * 32

LEAKS = [
    ("known_name", "file_name", "notes for Carol Danvers.txt"),
    ("raw_id", "file_name", "p-carol.txt"),
    ("name_in_mime_type", "mime_type", "text/plain; owner=Carol Danvers"),
    ("phone_national", "file_name", "call 020 7946 0958.txt"),
    ("iban", "file_name", "refund DE89 3704 0044 0532 0130 00.pdf"),
    ("url_token", "uri", "https://files.example.com/f/x?tk=9f8a7b6c"),
    ("opaque_id", "file_name", "export-9f86d081884c7d659a2f3b.csv"),
    ("email_in_event_id", "event_id", "ev-carol@example.com"),
]


def _table(**changes: str) -> pa.Table:
    values = {
        "record_class": "customer_content",
        "event_id": "ev-1",
        "event_type": EVENT_TYPE,
        "account_id": PSEUDONYM,
        "meeting_id": PSEUDONYM,
        "participant_id": PSEUDONYM,
        "file_name": "plan.txt",
        "mime_type": "text/plain",
        "uri": "https://files.example.com/f/91ac",
        **changes,
    }
    schema = consented_schema(CONTRACT, CONTRACT.event_types[EVENT_TYPE])
    columns = {}
    for field in schema:
        if field.name == "event_ts":
            columns[field.name] = pa.array([0], field.type)
        elif field.name in ("schema_version", "size"):
            columns[field.name] = pa.array([1], field.type)
        else:
            columns[field.name] = pa.array([values[field.name]], field.type)
    return pa.table(columns, schema=schema)


def _detectors_clean(table: pa.Table) -> bool:
    checks = check_training_table(table, where="t", event_type=EVENT_TYPE, rules=RULES, known=KNOWN)
    return checks["detectors_clean"]["passed"]


def test_a_clean_consented_row_passes() -> None:
    assert _detectors_clean(_table())


@pytest.mark.parametrize(("column", "value"), [c[1:] for c in LEAKS], ids=[c[0] for c in LEAKS])
def test_the_gate_finds_what_the_first_line_redacts(column: str, value: str) -> None:
    assert not _detectors_clean(_table(**{column: value}))


@pytest.mark.parametrize(
    ("column", "value"),
    [c[1:] for c in LEAKS if c[1] != "event_id"],
    ids=[c[0] for c in LEAKS if c[1] != "event_id"],
)
def test_what_the_first_line_writes_passes_the_gate(column: str, value: str) -> None:
    redacted, found = ConsentedScanner.build(KNOWN).redact_column(pa.array([value]))
    assert found[0]
    assert _detectors_clean(_table(**{column: redacted[0].as_py()}))
