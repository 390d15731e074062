"""`explain`: one record's decision trail from a real run folder's audit table."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.config import Config, load_config
from pipelines.errors import InputError
from pipelines.generate import generate
from pipelines.report.explain import _decision, explain, render_text

KEY = "explain-test-key-" + "e" * 32
PSEUDONYM = re.compile(r"^ps_[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A published per_participant run of 2000 generated events."""
    root = tmp_path_factory.mktemp("explain")
    generate(root / "in", events=2000, seed=3)
    mp = pytest.MonkeyPatch()
    mp.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    try:
        code = main(
            [
                "-q",
                "run",
                "--input",
                str(root / "in" / "events.jsonl.gz"),
                "--consent",
                str(root / "in" / "consent.jsonl"),
                "--content-policy",
                "per_participant",
                "--out",
                str(root / "out"),
            ]
        )
    finally:
        mp.undo()
    assert code == 0
    return root / "out"


@pytest.fixture(scope="module")
def audit(run_dir: Path) -> list[dict[str, Any]]:
    return pq.read_table(run_dir / "audit").to_pylist()


@pytest.fixture(scope="module")
def raw_events(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = run_dir.parent / "in" / "events.jsonl.gz"
    events = {}
    with gzip.open(path, "rb") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:  # the generator plants lines that are not JSON or not UTF-8
                continue
            if isinstance(record, dict) and isinstance(record.get("event_id"), str):
                events.setdefault(record["event_id"], record)
    return events


def _first(audit: list[dict[str, Any]], **where: Any) -> dict[str, Any]:
    for row in audit:
        if all((want(row[k]) if callable(want) else row[k] == want) for k, want in where.items()):
            return row
    raise AssertionError(f"the generated run has no audit row with {where}")


def _fields(copy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["field"]: f for f in copy["fields"]}


def test_quarantined_record_shows_its_detector_and_position(run_dir, config, audit):
    row = _first(audit, destination="quarantine", detectors=bool)
    trail = explain(run_dir, row["event_id"], config)
    [copy] = trail["copies"]
    assert copy["destination"] == "quarantine"
    assert copy["reason"] == row["reason"] and copy["reason"].startswith("detector:")
    assert copy["detectors"] == row["detectors"]
    assert {f["action"] for f in copy["fields"]} == {"not_applicable"}
    text = render_text(trail)
    finding = row["detectors"][0]
    assert (
        f"{finding['detector']} in {finding['field']} at characters "
        f"{finding['start']}..{finding['end']}"
    ) in text
    assert f"reason        {row['reason']}:" in text
    assert "quarantined" in text


def test_consented_content_shows_each_subjects_basis(run_dir, config, audit):
    row = _first(audit, destination="consented_content")
    trail = explain(run_dir, row["event_id"], config)
    [copy] = trail["copies"]
    consent = copy["consent"]
    assert consent["decision"] == "consented"
    assert [s["subject"] for s in consent["subjects"]] == [
        s["subject"] for s in row["consent_subjects"]
    ]
    for subject in consent["subjects"]:
        assert PSEUDONYM.match(subject["subject"])
        assert subject["reason"] == "consented"
        assert subject["basis"], "a consented subject rests on at least one ledger decision"
        own = [d for d in subject["basis"] if d["action"] == "grant" and d["actor"] == "self"]
        assert own and own[0]["purpose"] == "ai_training"
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", own[0]["decided_at"])
    fields = _fields(copy)
    assert fields["account_id"]["action"] == "pseudonymised"
    content = [f for f in copy["fields"] if f["category"] == "content"]
    assert content and {f["action"] for f in content} == {"redacted"}
    text = render_text(trail)
    assert "consent       consented" in text
    assert "rests on: grant by self for ai_training" in text
    assert f"{consent['subjects'][0]['subject']}  consented" in text


def test_restricted_content_is_withheld_and_names_the_failing_subject(run_dir, config, audit):
    row = _first(audit, reason=lambda r: r.startswith("no_consent:"))
    [copy] = explain(run_dir, row["event_id"], config)["copies"]
    assert copy["destination"] == "restricted" and copy["consent"]["decision"] == "not_consented"
    failing = row["reason"].removeprefix("no_consent:")
    assert failing in [s["reason"] for s in copy["consent"]["subjects"]]
    content = [f for f in copy["fields"] if f["category"] in ("content", "derived")]
    assert content and {f["action"] for f in content} == {"withheld"}
    assert copy["host_only"] == row["host_only"]


def test_service_record_fields_follow_the_deidentification_rules(run_dir, config, audit):
    row = _first(audit, event_type="usage.participant_joined", destination="training")
    trail = explain(run_dir, row["event_id"], config)
    # The training row carries the id as a keyed pseudonym: explain finds the record by it too.
    by_pseudonym = explain(run_dir, row["event_pseudonym"], config)
    assert by_pseudonym["event_id"] == row["event_id"]
    assert by_pseudonym["copies"] == trail["copies"]
    fields = _fields(trail["copies"][0])
    assert {name: fields[name]["action"] for name in fields} == {
        "event_id": "pseudonymised",
        "event_type": "kept",
        "event_ts": "kept",
        "account_id": "pseudonymised",
        "meeting_id": "pseudonymised",
        "participant_id": "pseudonymised",
        "schema_version": "kept",
        "user_name": "pseudonymised",
        "email": "pseudonymised",
        "ip_address": "dropped",
        "location": "generalised",
        "device": "kept",
        "os_version": "kept",
        "client_version": "kept",
        "network_type": "kept",
        "role": "kept",
    }
    assert fields["location"]["output_column"] == "location_country"
    assert fields["email"]["category"] == "identifier"
    assert trail["copies"][0]["consent"] is None
    assert trail["run"]["published"] is True


def test_json_trail_round_trips_and_holds_no_raw_values(run_dir, config, audit, raw_events):
    row = _first(audit, event_type="usage.participant_joined", destination="training")
    trail = explain(run_dir, row["event_id"], config)
    as_json = json.dumps(trail)
    assert json.loads(as_json)["copies"][0]["reason"] == "service_deidentified"
    record = raw_events[row["event_id"]]
    raw_values = [
        record["account_id"],
        record["participant_id"],
        record["payload"]["user_name"],
        record["payload"]["location"],
    ]
    raw_values += [v for v in (record["payload"]["email"], record["meeting_id"]) if v]
    for output in (as_json, render_text(trail)):
        for value in raw_values:
            assert value not in output


def test_a_repeated_event_id_shows_every_copy(run_dir, config, audit):
    counts: dict[str, int] = {}
    for row in audit:
        if row["event_id"] is not None:
            counts[row["event_id"]] = counts.get(row["event_id"], 0) + 1
    duplicated = next(
        r["event_id"] for r in audit if r["destination"] == "duplicate" and r["event_id"]
    )
    trail = explain(run_dir, duplicated, config)
    assert len(trail["copies"]) == counts[duplicated] >= 2
    destinations = [c["destination"] for c in trail["copies"]]
    assert "duplicate" in destinations and destinations.count("duplicate") == len(destinations) - 1
    repeat = next(c for c in trail["copies"] if c["destination"] == "duplicate")
    kept = next(c for c in trail["copies"] if c["destination"] != "duplicate")
    assert repeat["kept_copy"] == {
        "source_line": kept["source"]["line"],
        "destination": kept["destination"],
    }
    text = render_text(trail)
    assert f"copy 1 of {counts[duplicated]}" in text and "kept copy" in text


def test_unknown_event_id_is_an_input_error_with_exit_code_2(run_dir, config):
    with pytest.raises(InputError, match="no-such-event") as raised:
        explain(run_dir, "no-such-event", config)
    assert raised.value.exit_code == 2


def test_a_folder_without_a_manifest_is_not_a_run_folder(tmp_path, config):
    with pytest.raises(InputError, match="run folder") as raised:
        explain(tmp_path, "ev-3-1", config)
    assert raised.value.exit_code == 2


def test_an_unpublished_latest_run_is_read_from_its_staging_and_named(run_dir, config, tmp_path):
    """A gate-failed latest run: its staged audit is read, and the output says it."""
    copy = tmp_path / "out"
    shutil.copytree(run_dir, copy, symlinks=True)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    published = manifest["run_id"]
    failed = "20991231T000000000000Z-abcdef"
    staged = copy / ".runs" / failed / "audit"
    staged.mkdir(parents=True)
    audit = pq.read_table(copy / ".runs" / published / "audit")
    event_id = audit["event_id"][0].as_py()
    # The failed run saw only this one record, and sent it elsewhere.
    one = audit.filter(pc.equal(audit["event_id"], event_id))
    column = one.schema.get_field_index("destination")
    rerouted = one.set_column(column, "destination", [["restricted"] * one.num_rows])
    pq.write_table(rerouted, staged / "p.parquet")
    manifest.update(run_id=failed, status="gate_failed")
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    trail = explain(copy, event_id, config)
    assert trail["run"]["run_id"] == failed and trail["run"]["published"] is False
    assert trail["copies"][0]["destination"] == "restricted"
    assert "NOT published" in render_text(trail) and published in render_text(trail)


@pytest.mark.parametrize(
    ("basis", "shown"),
    [
        ("grant by self for other_purpose (account scope) at 0", "other_purpose"),
        ("ledger row 17 rejected (consent_bad_timestamp)", "ledger row 17 rejected"),
        ("grant by self for mail dana@example.org (account scope) at 0", None),
        ("grant by self for ai_training (a@b.example scope) at 0", None),
    ],
    ids=["decision", "rejected row", "old free-text purpose", "unknown form"],
)
def test_a_basis_is_shown_only_in_a_known_form(basis, shown):
    """Audit rows of older runs may hold ledger free text: explain never prints it."""
    found = _decision(basis)
    text = json.dumps(found)
    if shown is None:
        assert "example" not in text and "dana" not in text
    else:
        assert shown in text
