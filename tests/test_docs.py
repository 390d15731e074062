"""The contracts in docs/ say what schemas/ and the code say: every event type with its record
class, every field with its category, the content subjects, the ledger's fields, and the exit
statuses of pipelines/errors.py; the README points at them."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

from pipelines import errors

ROOT = Path(__file__).resolve().parents[1]
INPUT = (ROOT / "docs" / "input-contract.md").read_text()
RUN = (ROOT / "docs" / "run-contract.md").read_text()
README = (ROOT / "README.md").read_text()
EVENT_SCHEMAS = {
    s["x-event-type"]: s
    for s in (
        json.loads(p.read_text()) for p in sorted((ROOT / "schemas/events/v1").glob("*.json"))
    )
    if "x-event-type" in s
}
ENVELOPE = json.loads((ROOT / "schemas/events/v1/envelope.json").read_text())
LEDGER = json.loads((ROOT / "schemas/consent/v1.json").read_text())


def _row(text: str, first_cell: str) -> tuple[str, list[str]]:
    """The table row whose first cell is `first_cell`, and the heading it sits under."""
    heading = ""
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line
        if line.startswith(f"| `{first_cell}` |"):
            return heading, [cell.strip() for cell in line.strip().strip("|").split("|")]
    raise AssertionError(f"no table row for {first_cell}")


def _table_keys(text: str, heading: str) -> list[str]:
    """First cells (`name`) of the table under `heading`."""
    section = text.split(heading, 1)[1]
    keys = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        found = re.match(r"\| `([^`]+)` \|", line)
        if found:
            keys.append(found.group(1))
    return keys


def test_the_doc_lists_exactly_the_event_types_of_the_schemas():
    documented = set(
        re.findall(r"^\| `((?:qos|usage|diagnostic|content)\.[a-z_]+)` \|", INPUT, re.M)
    )
    assert documented == set(EVENT_SCHEMAS) and len(EVENT_SCHEMAS) == 21


@pytest.mark.parametrize("event_type", sorted(EVENT_SCHEMAS))
def test_each_field_has_the_schema_s_category_and_class(event_type):
    schema = EVENT_SCHEMAS[event_type]
    heading, cells = _row(INPUT, event_type)
    assert f"`{schema['x-record-class']}`" in heading, heading
    documented = dict(
        re.findall(r"`([a-z_0-9]+)` \((service|identifier|free_text|derived|content)\)", cells[1])
    )
    expected = {name: field["x-category"] for name, field in schema["properties"].items()}
    assert documented == expected


@pytest.mark.parametrize(
    "event_type", sorted(t for t, s in EVENT_SCHEMAS.items() if "x-content-subjects" in s)
)
def test_each_content_type_names_its_subjects_as_the_schema_does(event_type):
    subjects = EVENT_SCHEMAS[event_type]["x-content-subjects"]
    _, cells = _row(INPUT, event_type)
    expected = {
        "field": lambda name: f"`{name}`",
        "list_field": lambda name: f"every id in `{name}`",
        "envelope": lambda name: f"the envelope's `{name}`",
    }
    ((kind, name),) = subjects.items()
    assert cells[2] == expected[kind](name)


def test_the_envelope_table_matches_the_schema():
    assert _table_keys(INPUT, "## The envelope") == list(ENVELOPE["properties"])
    for name, field in ENVELOPE["properties"].items():
        _, cells = _row(INPUT, name)
        required = "yes" if name in ENVELOPE["required"] else "no"
        category = "per field, below" if field["x-category"] == "per_field" else field["x-category"]
        assert cells[2:] == [required, category], name


def test_the_ledger_table_lists_exactly_the_ledger_schema_s_fields():
    assert _table_keys(INPUT, "## The consent ledger") == list(LEDGER["properties"])
    for name, field in LEDGER["properties"].items():
        for value in field.get("enum", []):
            assert f"`{value}`" in _row(INPUT, name)[1][1], (name, value)


def _codes() -> dict[int, str]:
    classes = [
        c
        for c in vars(errors).values()
        if inspect.isclass(c) and isinstance(getattr(c, "exit_code", None), int)
    ]
    return {0: "published", **{c.exit_code: c.__name__ for c in classes}}


def test_the_exit_statuses_of_the_code_are_the_documented_ones():
    assert set(_codes()) == set(errors.EXIT_STATUSES) == {0, 2, 3, 4, 5, 6}
    assert [int(k) for k in _table_keys(RUN, "## Exit statuses")] == sorted(errors.EXIT_STATUSES)


@pytest.mark.parametrize("code", sorted(errors.EXIT_STATUSES))
def test_the_readme_documents_each_exit_status(code):
    assert re.search(rf"^\| `{code}` \|", README, re.M), code


def test_the_readme_links_the_contracts_in_the_repository():
    for doc in ("docs/input-contract.md", "docs/run-contract.md"):
        assert f"({doc})" in README
    assert "shared/spec" not in README


def test_the_doc_lists_every_vendor_event_type_with_its_class_and_subjects():
    from pipelines.config import load_config
    from pipelines.sources.declared import compile_sources

    kinds = [
        kind
        for source in compile_sources(load_config().schemas).values()
        for kind in source.kinds.values()
    ]
    documented = set(re.findall(r"^\| `([a-z-]+-[a-z]+\.[a-z_.-]+)` \|", INPUT, re.M))
    assert documented == {k.event_type for k in kinds}
    wording = {
        "field": lambda name: f"`{name}`",
        "list_field": lambda name: f"every id in `{name}`",
        "envelope": lambda name: f"the envelope's `{name}`",
    }
    for kind in kinds:
        _, cells = _row(INPUT, kind.event_type)
        assert cells[1] == f"`{kind.record_class}`", kind.event_type
        if kind.subjects:
            ((rule, name),) = kind.subjects.items()
            assert cells[2] == wording[rule](name), kind.event_type
        secrets = {f"`{p}`" for p in kind.secret_paths()}
        assert set(filter(None, (c.strip() for c in cells[3].split(",")))) == secrets
