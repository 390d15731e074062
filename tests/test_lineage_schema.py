"""Every lineage event a run writes holds to the OpenLineage 2-0-2 RunEvent rules.

The schema below is our own encoding of the spec's requirements for a RunEvent (required
fields, formats, the eventType enum, dataset identity, and the `_producer` / `_schemaURL` every
facet must carry); the client does not ship the spec's JSON file and tests run offline.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from pipelines.cli import main
from pipelines.generate import generate

_FACET = {
    "type": "object",
    "required": ["_producer", "_schemaURL"],
    "properties": {
        "_producer": {"type": "string", "format": "uri"},
        "_schemaURL": {"type": "string", "format": "uri"},
    },
}
_FACETS = {"type": "object", "additionalProperties": _FACET}
_DATASET = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {
        "namespace": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "facets": _FACETS,
        "inputFacets": _FACETS,
        "outputFacets": _FACETS,
    },
}
RUN_EVENT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job", "eventType"],
    "properties": {
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {
            "type": "string",
            "format": "uri",
            "pattern": "OpenLineage\\.json#/\\$defs/RunEvent$",
        },
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "run": {
            "type": "object",
            "required": ["runId"],
            "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": _FACETS},
        },
        "job": {
            "type": "object",
            "required": ["namespace", "name"],
            "properties": {
                "namespace": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1},
                "facets": _FACETS,
            },
        },
        "inputs": {"type": "array", "items": _DATASET},
        "outputs": {"type": "array", "items": _DATASET},
    },
}


@pytest.mark.e2e
def test_every_event_of_a_published_and_a_failed_run_is_a_valid_run_event(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", "lineage-schema-key-" + "w" * 32)
    generate(tmp_path / "in", events=1000, seed=8)
    out = tmp_path / "out"
    assert (
        main(["-q", "run", "--input", str(tmp_path / "in" / "events.jsonl.gz"), "--out", str(out)])
        == 0
    )
    # A taxonomy that calls chat service-generated: the gate reads the contract and fails.
    override = tmp_path / "chat-as-telemetry.json"
    override.write_text(
        json.dumps(
            {"taxonomy": {"record_class_overrides": {"content.chat_message": "service_generated"}}}
        )
    )
    assert (
        main(
            [
                "-q",
                "run",
                "--input",
                str(tmp_path / "in" / "events.jsonl.gz"),
                "--out",
                str(out),
                "--config",
                str(override),
            ]
        )
        == 3
    )
    events = [json.loads(x) for x in (out / "lineage.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE", "START", "FAIL"]
    checker = jsonschema.Draft202012Validator(
        RUN_EVENT, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for event in events:
        errors = sorted(checker.iter_errors(event), key=lambda e: list(e.path))
        assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors[:3]]
    bad = dict(events[0], eventType="DONE")
    assert not checker.is_valid(bad)
