"""End to end on DirectRunner's in-process runner: generated input with every planted leak kind,
then the real output files are read back and searched for what must not be there."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from pipelines.cli import main
from pipelines.generate import BAD_INPUT_KINDS, LEAK_KINDS, generate
from pipelines.publish import CURRENT, PUBLISHED_TABLES, RunFolder

pytestmark = pytest.mark.e2e

KEY = "e2e-test-key-" + "x" * 32
EVENTS = 6000
SEED = 11


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("input")
    truth = generate(folder, events=EVENTS, seed=SEED)
    return folder, truth


@pytest.fixture(scope="module")
def published(dataset, tmp_path_factory) -> tuple[Path, int]:
    folder, _ = dataset
    out = tmp_path_factory.mktemp("run") / "out"
    code = _main_with_key(
        [
            "-q",
            "run",
            "--input",
            str(folder / "events.jsonl.gz"),
            "--consent",
            str(folder / "consent.jsonl"),
            "--out",
            str(out),
        ]
    )
    return out, code


def _main_with_key(args: list[str]) -> int:
    """`consentgate ARGS` in this process with the test key set (module-scoped fixtures
    cannot use the monkeypatch fixture)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
        return main(args)


def input_records(folder: Path) -> list[dict]:
    records = []
    with gzip.open(folder / "events.jsonl.gz", "rb") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("payload"), dict):
                records.append(record)
    return records


def training_strings(out: Path) -> list[str]:
    """Every string value in every training file, list items included."""
    values: list[str] = []
    for path in sorted((out / "training").rglob("*.parquet")):
        table = ds.dataset(path).to_table()
        for column in table.columns:
            if pa.types.is_list(column.type):
                column = column.combine_chunks().flatten()
            if pa.types.is_string(column.type):
                values.extend(v for v in column.to_pylist() if v is not None)
    return values


def test_the_run_publishes(published):
    out, code = published
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "published"
    assert manifest["gate"]["passed"] is True
    for name in PUBLISHED_TABLES:
        assert (out / name).is_symlink()


def test_every_input_record_is_counted_once(published, dataset):
    out, _ = published
    _, truth = dataset
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    destinations = ("training", "consented_content", "restricted", "quarantine", "duplicates")
    assert counts["input_records"] == truth["expected"]["input_records"] == EVENTS
    assert sum(counts[d] for d in destinations) == counts["input_records"]
    audit = ds.dataset(out / "audit").to_table()
    assert audit.num_rows == EVENTS


PLANTED_KINDS = (
    *LEAK_KINDS,
    *BAD_INPUT_KINDS,
    "conflicting_duplicate",
)


@pytest.mark.parametrize("kind", PLANTED_KINDS)
def test_each_planted_kind_ends_where_truth_says(published, dataset, kind):
    out, _ = published
    _, truth = dataset
    cases = [c for c in truth["planted"] if c["kind"] == kind]
    assert len(cases) >= 3
    audit = ds.dataset(out / "audit").to_table().to_pylist()
    found = []
    for case in cases:
        if case["event_id"] is None:
            # A line that never parsed is found by its reason in the audit table instead.
            continue
        rows = [r for r in audit if r["event_id"] == case["event_id"]]
        found.append({(r["destination"], r["reason"]) for r in rows})
    assert found == [{(c["expect"], c["reason"])} for c in cases if c["event_id"] is not None]
    if any(c["event_id"] is None for c in cases):
        reasons = [r["reason"] for r in audit if r["event_id"] is None]
        assert reasons.count(cases[0]["reason"]) == len(cases)


def test_identical_duplicates_count_once(published, dataset):
    out, _ = published
    _, truth = dataset
    cases = [c for c in truth["planted"] if c["kind"] == "duplicate"]
    assert len(cases) >= 3
    audit = ds.dataset(out / "audit").to_table().to_pylist()
    for case in cases:
        rows = sorted(
            (r["destination"], r["reason"]) for r in audit if r["event_id"] == case["event_id"]
        )
        assert rows == [("duplicate", "duplicate"), ("training", "service_deidentified")]
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["duplicates"] == len(cases)


def test_no_planted_needle_reaches_training(published, dataset):
    out, _ = published
    _, truth = dataset
    values = training_strings(out)
    assert values, "training holds string values to search"
    needles = [c["needle"] for c in truth["planted"] if c.get("needle")]
    assert len(needles) >= 9
    leaked = [n for n in needles if any(n in v for v in values)]
    assert leaked == []


def test_no_raw_identifier_reaches_training(published, dataset):
    out, _ = published
    folder, _ = dataset
    identifiers: set[str] = set()
    for record in input_records(folder):
        for key in ("account_id", "meeting_id", "participant_id"):
            if isinstance(record.get(key), str):
                identifiers.add(record[key])
        payload = record["payload"]
        for key in (
            "user_name",
            "email",
            "ip_address",
            "location",
            "host_id",
            "sender_id",
            "speaker_id",
        ):
            if isinstance(payload.get(key), str):
                identifiers.add(payload[key])
    assert len(identifiers) > 50
    values = set(training_strings(out))
    assert identifiers & values == set()


def test_no_content_text_reaches_training(published, dataset):
    out, _ = published
    folder, _ = dataset
    texts = set()
    for record in input_records(folder):
        payload = record["payload"]
        if str(record.get("event_type", "")).startswith("content."):
            for key in ("message", "text", "summary_text", "question", "answer", "data_b64"):
                if isinstance(payload.get(key), str) and len(payload[key]) >= 12:
                    texts.add(payload[key])
        if record.get("event_type") == "usage.meeting_started":
            texts.add(payload.get("topic"))
    assert len(texts) > 100
    values = training_strings(out)
    joined = "\n".join(values)
    assert [t for t in texts if t and t in joined] == []


def test_no_derived_or_dropped_field_is_a_training_column(published):
    out, _ = published
    forbidden = {"audio_level", "topic", "ip_address", "location", "message_text"}
    for path in (out / "training").rglob("*.parquet"):
        names = set(ds.dataset(path).schema.names)
        assert not names & forbidden, path
        assert "event_id" in names


def test_at_least_98_percent_of_clean_service_records_are_kept(published, dataset):
    out, _ = published
    _, truth = dataset
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert truth["clean_service_events"] > 0
    assert counts["training"] >= 0.98 * truth["clean_service_events"]
    assert counts["training"] <= truth["clean_service_events"]


def test_key_never_appears_in_outputs(published):
    out, _ = published
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def _run(args: list[str], env_key: str | None = KEY) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CONSENTGATE_PSEUDONYM_KEY"}
    if env_key is not None:
        env["CONSENTGATE_PSEUDONYM_KEY"] = env_key
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_a_run_without_the_key_refuses_to_start(dataset, tmp_path):
    folder, _ = dataset
    result = _run(
        ["run", "--input", str(folder / "events.jsonl.gz"), "--out", str(tmp_path / "o")],
        env_key=None,
    )
    assert result.returncode == 2
    assert "CONSENTGATE_PSEUDONYM_KEY" in result.stderr
    assert not (tmp_path / "o").exists()


def test_a_bad_config_exits_2_naming_file_and_key(dataset, tmp_path):
    folder, _ = dataset
    override = tmp_path / "bad.json"
    override.write_text(json.dumps({"policy": {"chunk_records": 0}}))
    result = _run(
        [
            "run",
            "--input",
            str(folder / "events.jsonl.gz"),
            "--out",
            str(tmp_path / "o"),
            "--config",
            str(override),
        ]
    )
    assert result.returncode == 2
    assert "bad.json" in result.stderr and "chunk_records" in result.stderr


def test_input_that_has_not_landed_exits_5(tmp_path):
    result = _run(
        ["run", "--input", str(tmp_path / "nothing*.jsonl"), "--out", str(tmp_path / "o")]
    )
    assert result.returncode == 5
    assert "no event files found" in result.stderr


def _common_email_logs(folder: Path, out: Path, accounts: int) -> tuple[Path, str]:
    """A file of diagnostic.log records, one per account for `accounts` of the dataset's
    accounts, all with the same message holding an email: a value that many accounts produced,
    so the string rule publishes it as it is, and only a detector can stop it."""
    email = "helpdesk.rota@example.org"
    message = f"sync failed, ask {email} for access"
    logs: dict[str, dict] = {}
    with gzip.open(folder / "events.jsonl.gz", "rt", encoding="utf-8") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(record, dict)
                and record.get("event_type") == "diagnostic.log"
                and isinstance(record.get("payload"), dict)
                and isinstance(record.get("account_id"), str)
            ):
                logs.setdefault(record["account_id"], record)
            if len(logs) == accounts:
                break
    assert len(logs) == accounts, "the data set has too few accounts with logs"
    planted = [
        {
            **record,
            "event_id": f"ev-common-email-{i}",
            "payload": {**record["payload"], "message": message},
        }
        for i, record in enumerate(logs.values())
    ]
    path = out / "common-email.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in planted), encoding="utf-8")
    return path, email


def test_a_weakened_classifier_is_backed_by_the_gates_own_checks_before_staging(dataset, tmp_path):
    """The classifier's email detector is switched off; the gate's detectors still run, first
    on each de-identified row before it is staged (the gate's twin). The planted email is in a
    message that more than k accounts sent, so the string rule (which withholds or masks rare
    values) publishes it as it is: only the twin stands between it and training. Each record is
    quarantined by the twin and the day publishes, instead of one record failing the gate."""
    folder, _ = dataset
    out = tmp_path / "out"
    common, email = _common_email_logs(folder, tmp_path, accounts=8)
    enabled = [
        d for d in json.loads(Path("configs/detectors.json").read_text())["enabled"] if d != "email"
    ]
    override = tmp_path / "no-email.json"
    override.write_text(json.dumps({"detectors": {"enabled": enabled}}))
    code = _main_with_key(
        [
            "-q",
            "run",
            "--input",
            str(folder / "events.jsonl.gz"),
            "--input",
            str(common),
            "--out",
            str(out),
            "--config",
            str(override),
        ]
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "published"
    assert manifest["gate"]["checks"]["detectors_clean"]["passed"] is True
    reasons = manifest["counts"]["quarantine_reasons"]
    assert "detector:email" not in reasons  # the classifier did not look
    assert reasons["gate_twin:detectors_clean"] >= 8  # the gate's detectors did, on each
    assert not any(email in v for v in training_strings(out))


def test_a_publish_interrupted_after_the_swap_is_rolled_back_by_the_next_run(
    dataset, tmp_path, monkeypatch
):
    folder, _ = dataset
    out = tmp_path / "out"
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    args = ["-q", "run", "--input", str(folder / "events.jsonl.gz"), "--out", str(out)]
    assert main(args) == 0
    good = json.loads((out / "manifest.json").read_text())["run_id"]

    real_write = RunFolder.write_manifest

    def dying_write(self, manifest):
        if manifest["status"] == "published":
            raise KeyboardInterrupt("killed between the swap and the manifest")
        real_write(self, manifest)

    monkeypatch.setattr(RunFolder, "write_manifest", dying_write)
    assert main(args) == 6  # an interrupt ends the command with its own status
    monkeypatch.setattr(RunFolder, "write_manifest", real_write)
    # `current` moved before the "kill": all four tables of the new run, never a mix.
    assert json.loads((out / "manifest.json").read_text())["published_run_id"] == good
    moved = os.readlink(out / CURRENT)
    assert moved != os.path.join(".runs", good)
    for name in PUBLISHED_TABLES:
        assert Path(os.path.realpath(out / name)) == (out / moved / name).resolve()
    RunFolder(out).recover()
    for name in PUBLISHED_TABLES:
        assert Path(os.path.realpath(out / name)) == (out / ".runs" / good / name).resolve()
    assert main(args) == 0
    latest = json.loads((out / "manifest.json").read_text())
    assert latest["published_run_id"] == latest["run_id"] != good
    for name in PUBLISHED_TABLES:
        target = (out / ".runs" / latest["run_id"] / name).resolve()
        assert Path(os.path.realpath(out / name)) == target


@pytest.fixture(scope="module")
def per_participant(dataset, tmp_path_factory) -> Path:
    folder, truth = dataset
    out = tmp_path_factory.mktemp("consent") / "out"
    code = _main_with_key(
        [
            "-q",
            "run",
            "--input",
            str(folder / "events.jsonl.gz"),
            "--consent",
            str(folder / "consent.jsonl"),
            "--out",
            str(out),
            "--content-policy",
            "per_participant",
            "--as-of",
            truth["consent"]["as_of"],
        ]
    )
    assert code == 0
    return out


def test_consented_content_holds_exactly_the_consented_events(per_participant, dataset):
    _, truth = dataset
    expected = set(truth["consent"]["consented_event_ids"])
    assert len(expected) >= 50
    found = (
        ds.dataset(per_participant / "training" / "consented_content")
        .to_table(columns=["event_id"])["event_id"]
        .to_pylist()
    )
    assert len(found) == len(set(found))
    assert set(found) == expected


def test_the_manifest_shows_the_host_only_gap(per_participant, dataset):
    _, truth = dataset
    counts = json.loads((per_participant / "manifest.json").read_text())["counts"]
    assert counts["host_only_records"] == len(truth["consent"]["host_only_event_ids"]) > 0
    assert counts["host_only_participants"] > 0
    assert counts["consented_content"] == len(truth["consent"]["consented_event_ids"])
    assert counts["restricted"] == truth["consent"]["content_events"] - counts["consented_content"]
    assert counts["consent_ledger"]["quarantined"] == truth["consent"]["bad_ledger_rows"]


def test_the_service_bucket_still_holds_no_content(per_participant, dataset):
    folder, _ = dataset
    content_ids = {
        r["event_id"]
        for r in input_records(folder)
        if str(r.get("event_type")).startswith("content.")
    }
    service = ds.dataset(per_participant / "training" / "service_generated").to_table(
        columns=["event_id", "event_type"]
    )
    assert not set(service["event_id"].to_pylist()) & content_ids
    assert not any(t.startswith("content.") for t in service["event_type"].to_pylist())


def test_gate_catches_chat_labelled_as_service_generated(dataset, tmp_path):
    """Sabotage: a taxonomy that calls chat service-generated. The gate reads the contract."""
    folder, _ = dataset
    out = tmp_path / "out"
    override = tmp_path / "chat-is-telemetry.json"
    override.write_text(
        json.dumps(
            {"taxonomy": {"record_class_overrides": {"content.chat_message": "service_generated"}}}
        )
    )
    code = _main_with_key(
        [
            "-q",
            "run",
            "--input",
            str(folder / "events.jsonl.gz"),
            "--out",
            str(out),
            "--config",
            str(override),
        ]
    )
    assert code == 3
    manifest = json.loads((out / "manifest.json").read_text())
    checks = manifest["gate"]["checks"]
    assert manifest["status"] == "gate_failed"
    assert checks["contract_record_class"]["passed"] is False
    assert checks["training_columns"]["passed"] is False
    assert checks["expectations"]["passed"] is False
    assert not (out / "training").exists()
    staged = out / ".runs" / manifest["run_id"] / "training" / "service_generated"
    assert (staged / "event_type=content.chat_message").is_dir()
    evidence = out / manifest["gate"]["evidence"]["checks"]
    assert json.loads(evidence.read_text())["contract_record_class"]["passed"] is False


def test_spilling_the_chunks_gives_the_same_outputs(published, dataset, tmp_path):
    """Above `reread_inputs_above_bytes` the main chain loads the classified chunks back from
    the staging folder instead of holding them until the side inputs are ready; what it writes
    must not change, and the spilled chunks (raw records) are gone when the run ends."""
    out, code = published
    assert code == 0
    folder, _ = dataset
    override = tmp_path / "reread.json"
    override.write_text(json.dumps({"policy": {"reread_inputs_above_bytes": 0}}))
    manifest = json.loads((out / "manifest.json").read_text())
    again = tmp_path / "again"
    args = ["-q", "run", "--input", str(folder / "events.jsonl.gz")]
    args += ["--consent", str(folder / "consent.jsonl"), "--out", str(again)]
    args += ["--as-of", manifest["consent_as_of"], "--config", str(override)]
    assert _main_with_key(args) == 0
    for table in ("training", "restricted", "quarantine", "audit"):
        first = {
            p.relative_to(out / table): p.read_bytes() for p in (out / table).rglob("*.parquet")
        }
        second = {
            p.relative_to(again / table): p.read_bytes() for p in (again / table).rglob("*.parquet")
        }
        assert first and first == second, table
    assert json.loads((again / "manifest.json").read_text())["counts"] == manifest["counts"]
    assert not list(again.rglob("*.arrows")) and not list(again.rglob("_spill"))
