"""The output schemas in schemas/outputs/ are what the code writes, and the gate reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.config import load_config
from pipelines.outputs import output_schema_documents

ROOT = Path(__file__).resolve().parents[1]
DOCS = output_schema_documents(load_config())


@pytest.mark.parametrize("name", sorted(DOCS))
def test_the_schema_file_equals_what_the_code_writes(name):
    on_disk = json.loads((ROOT / "schemas" / "outputs" / name).read_text())
    assert on_disk == DOCS[name]


def test_every_table_schema_file_is_generated():
    files = {p.name for p in (ROOT / "schemas" / "outputs").glob("*.json")}
    # report.json describes report.json, not an output table.
    assert files - {"report.json"} == set(DOCS)


def test_no_content_or_derived_field_is_a_training_column():
    config = load_config()
    contract = config.contract()
    columns = DOCS["training.json"]["x-columns-by-event-type"]
    for name, spec in contract.event_types.items():
        if spec.record_class != "service_generated":
            assert name not in columns
            continue
        barred = {f.name for f in spec.fields if f.category in ("content", "derived")}
        barred |= {"ip_address", "location"}
        assert not barred & set(columns[name]), name
        assert columns[name][:2] == ["record_class", "event_id"]
