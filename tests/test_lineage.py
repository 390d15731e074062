"""OpenLineage events of a real run: datasets, schemas, masked column lineage, transports."""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.config import Config, load_config
from pipelines.generate import generate
from pipelines.lineage import LINEAGE_FILE, RunLineage, run_uuid

KEY = "lineage-test-key-" + "l" * 32
MASKED_IN_JOINED = ("account_id", "meeting_id", "participant_id", "user_name", "email")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


def _run(root: Path, inputs: list[str], *extra: str) -> tuple[int, dict[str, Any]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    try:
        code = main(["-q", "run", *(a for i in inputs for a in ("--input", i)), *extra])
    finally:
        mp.undo()
    out = Path(extra[extra.index("--out") + 1])
    return code, json.loads((out / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A published per_participant run of 2000 generated events."""
    root = tmp_path_factory.mktemp("lineage")
    generate(root / "in", events=2000, seed=5)
    code, manifest = _run(
        root,
        [str(root / "in" / "events.jsonl.gz")],
        "--consent",
        str(root / "in" / "consent.jsonl"),
        "--content-policy",
        "per_participant",
        "--out",
        str(root / "out"),
    )
    assert code == 0 and manifest["status"] == "published"
    return root / "out", manifest


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def events(published, config) -> list[dict[str, Any]]:
    """START and COMPLETE that the published run itself wrote to its lineage file."""
    run_dir, manifest = published
    return _read(run_dir / ".runs" / manifest["run_id"] / LINEAGE_FILE)


def _outputs(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in event["outputs"]}


def _masking(output: dict[str, Any]) -> dict[str, list[bool]]:
    fields = output["facets"]["columnLineage"]["fields"]
    return {
        column: [t["masking"] for f in spec["inputFields"] for t in f["transformations"]]
        for column, spec in fields.items()
    }


def test_start_then_complete_with_one_run_id(published, events):
    run_dir, manifest = published
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in events} == {run_uuid(manifest["run_id"])}
    uuid.UUID(events[0]["run"]["runId"])
    assert {(e["job"]["namespace"], e["job"]["name"]) for e in events} == {
        ("consentgate", "consentgate.run")
    }
    facet = events[1]["run"]["facets"]["consentgate_run"]
    assert facet["runId"] == manifest["run_id"] and facet["status"] == "published"
    assert facet["counts"]["input_records"] == manifest["counts"]["input_records"]
    # The folder's history holds the same events.
    assert _read(run_dir / LINEAGE_FILE) == events


def test_input_datasets_are_the_input_files_and_the_ledger(published, events):
    _, manifest = published
    for event in events:
        names = [(i["namespace"], i["name"]) for i in event["inputs"]]
        assert names == [
            *(("file", item["path"]) for item in manifest["inputs"]),
            ("file", os.path.abspath(manifest["consent"])),
        ]
        envelope = [f["name"] for f in event["inputs"][0]["facets"]["schema"]["fields"]]
        assert envelope[:4] == ["event_id", "event_type", "event_ts", "account_id"]
        assert envelope[-1] == "payload"


def test_outputs_name_every_published_table(published, events, config):
    run_dir, manifest = published
    root = Path(os.path.abspath(run_dir))
    outputs = _outputs(events[1])
    trained = sorted({f["event_type"] for f in manifest["files"] if f["table"] == "training"})
    assert "qos.audio" in trained and "usage.participant_joined" in trained
    for event_type in trained:
        name = str(root / "training" / "service_generated" / f"event_type={event_type}")
        rows = sum(
            f["rows"]
            for f in manifest["files"]
            if f["table"] == "training" and f["event_type"] == event_type
        )
        assert outputs[name]["outputFacets"]["outputStatistics"]["rowCount"] == rows
    consented = {f["event_type"] for f in manifest["files"] if f["table"] == "consented_content"}
    assert consented
    for event_type in consented:
        assert str(root / "training" / "consented_content" / f"event_type={event_type}") in outputs
    for table in ("restricted", "quarantine", "audit"):
        assert str(root / table) in outputs
    # START names what the run will publish: every service event type of the contract.
    service = [
        n for n, t in config.contract().event_types.items() if t.record_class != "customer_content"
    ]
    started = _outputs(events[0])
    for event_type in service:
        assert str(root / "training" / "service_generated" / f"event_type={event_type}") in started


def test_schema_facets_match_the_output_schemas_and_files(published, events, config):
    run_dir, manifest = published
    training = config.schemas["outputs/training.json"]["x-columns-by-event-type"]
    outputs = _outputs(events[1])
    for item in manifest["files"]:
        if item["table"] != "training":
            continue
        name = str(
            Path(os.path.abspath(run_dir))
            / "training"
            / "service_generated"
            / f"event_type={item['event_type']}"
        )
        columns = [f["name"] for f in outputs[name]["facets"]["schema"]["fields"]]
        assert columns == training[item["event_type"]]
        staged = run_dir / ".runs" / manifest["run_id"] / item["path"]
        assert columns == pq.read_schema(staged).names
        # Column lineage names only columns the schema facet has.
        assert set(outputs[name]["facets"]["columnLineage"]["fields"]) <= set(columns)
    restricted = outputs[str(Path(os.path.abspath(run_dir)) / "restricted")]
    assert [f["name"] for f in restricted["facets"]["schema"]["fields"]] == list(
        config.schemas["outputs/restricted.json"]["properties"]
    )


def test_pseudonymised_columns_are_masked_and_measurements_are_not(published, events):
    run_dir, _ = published
    outputs = _outputs(events[1])
    base = Path(os.path.abspath(run_dir)) / "training" / "service_generated"
    joined = outputs[str(base / "event_type=usage.participant_joined")]
    masking = _masking(joined)
    for column in MASKED_IN_JOINED:
        assert masking[column] == [True], column
    assert masking["location_country"] == [True]
    assert masking["device"] == [False]
    assert "ip_address" not in masking
    sources = {
        column: [f["field"] for f in spec["inputFields"]]
        for column, spec in joined["facets"]["columnLineage"]["fields"].items()
    }
    assert sources["email"] == ["payload.email"] and sources["location_country"] == [
        "payload.location"
    ]
    email = joined["facets"]["columnLineage"]["fields"]["email"]["inputFields"][0]
    assert email["transformations"][0]["type"] == "DIRECT"
    audio = _masking(outputs[str(base / "event_type=qos.audio")])
    assert audio["latency_ms"] == [False] and audio["account_id"] == [True]
    assert "audio_level" not in audio


def test_no_key_and_no_record_value_is_emitted(published, events):
    run_dir, manifest = published
    text = (run_dir / ".runs" / manifest["run_id"] / LINEAGE_FILE).read_text(encoding="utf-8")
    assert KEY not in text
    values: set[str] = set()
    with gzip.open(manifest["inputs"][0]["path"], "rb") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event_type") == "usage.participant_joined":
                payload = record.get("payload") or {}
                values.update(v for v in (payload.get("email"), payload.get("user_name")) if v)
                values.add(record.get("account_id") or "")
    values.discard("")
    assert len(values) > 10
    assert [v for v in values if v in text] == []


def test_a_failed_run_emits_fail_without_the_error_text(tmp_path, config):
    bad = tmp_path / "events.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    code, manifest = _run(tmp_path, [str(bad)], "--out", str(tmp_path / "out"))
    assert code == 4 and manifest["status"] == "failed"
    events = _read(tmp_path / "out" / ".runs" / manifest["run_id"] / LINEAGE_FILE)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    message = events[1]["run"]["facets"]["errorMessage"]["message"]
    assert "InputFileError" in message
    # The exception's text quotes the input's first bytes; it stays in the manifest.
    assert "b'no'" in manifest["error"] and "b'no'" not in json.dumps(events)
    assert events[1]["outputs"] == [] or all(".runs" in o["name"] for o in events[1]["outputs"])


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, json.loads(body)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def lineage_server() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_http_transport_from_config_receives_the_events(
    published, config, tmp_path, lineage_server
):
    _, manifest = published
    url, received = lineage_server
    lineage = RunLineage(
        tmp_path, manifest["run_id"], config=config, transport={"type": "http", "url": url}
    )
    lineage.start(manifest["inputs"], manifest["started_at"], consent=manifest["consent"])
    lineage.complete(manifest)
    assert [path for path, _ in received] == ["/api/v1/lineage"] * 2
    assert [e["eventType"] for _, e in received] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for _, e in received} == {run_uuid(manifest["run_id"])}
    # The run's own file still records them.
    assert len(_read(tmp_path / ".runs" / manifest["run_id"] / LINEAGE_FILE)) == 2


def test_http_transport_from_openlineage_url(
    published, config, tmp_path, lineage_server, monkeypatch
):
    _, manifest = published
    url, received = lineage_server
    monkeypatch.setenv("OPENLINEAGE_URL", url)
    monkeypatch.setenv("OPENLINEAGE_ENDPOINT", "lineage/v1")
    # The client copies OPENLINEAGE_URL into OPENLINEAGE__* variables; have them removed after.
    for part in ("TYPE", "URL", "AUTH", "ENDPOINT"):
        name = f"OPENLINEAGE__TRANSPORT__TRANSPORTS__DEFAULT_HTTP__{part}"
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    RunLineage(tmp_path, manifest["run_id"], config=config).fail(manifest, "RuntimeError: boom")
    assert [(path, e["eventType"]) for path, e in received] == [("/lineage/v1", "FAIL")]


def test_an_unreachable_backend_does_not_fail_the_run(published, config, tmp_path, caplog):
    _, manifest = published
    caplog.set_level(logging.WARNING, logger="pipelines.lineage")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    transport = {
        "type": "http",
        "url": f"http://127.0.0.1:{port}",
        "timeout": 1,
        "retry": {"total": 0, "connect": 0, "read": 0},
    }
    RunLineage(tmp_path, manifest["run_id"], config=config, transport=transport).complete(manifest)
    assert [e["eventType"] for e in _read(tmp_path / LINEAGE_FILE)] == ["COMPLETE"]
    assert "could not send the COMPLETE lineage event" in caplog.text
