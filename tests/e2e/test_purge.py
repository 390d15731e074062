"""`consentgate purge` on a real run folder: refused with another key, and after `--apply` the
run's own records (manifest, audit, restricted, report, lineage) agree with its data, so that
`validate`, `explain` and `report` tell the same story."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from datetime import datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.config import load_config
from pipelines.generate import generate
from pipelines.purge import ids_in, purge
from pipelines.rules.deidentify import key_fingerprint

pytestmark = pytest.mark.e2e

KEY = "purge-test-key-" + "p" * 32
WRONG_KEY = "purge-test-other-key-" + "w" * 32
DESTINATIONS = ("training", "consented_content", "restricted", "quarantine", "duplicates")


def _at(moment: str, seconds: int) -> str:
    when = datetime.fromisoformat(moment.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return when.isoformat().replace("+00:00", "Z")


def _events(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    with gzip.open(path, "rb") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("event_id"), str):
                out.setdefault(record["event_id"], record)
    return out


def _subjects(record: dict[str, Any]) -> list[str]:
    """Whose consent a content record needs, read from the input by the contract's rule."""
    rule = load_config().contract().event_types[record["event_type"]].subjects or {}
    if "field" in rule:
        return [record["payload"][rule["field"]]]
    if "envelope" in rule:
        return [record[rule["envelope"]]]
    return sorted(set(record["payload"].get(rule.get("list_field", ""), None) or []))


def _snapshot(root: Path) -> dict[str, bytes | str]:
    """Every file's bytes and every link's target under `root`."""
    found: dict[str, bytes | str] = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(folder, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                found[rel] = path.read_bytes()
    return found


def _text(html: str) -> str:
    html = re.sub(r"<(style|svg)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture(scope="module")
def purged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A per_participant run, one consenting subject's revoke, a dry run and `purge --apply`."""
    root = tmp_path_factory.mktemp("purge")
    truth = generate(root / "in", events=500, seed=5)
    as_of = truth["consent"]["as_of"]
    out = root / "out"
    mp = pytest.MonkeyPatch()
    mp.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
    try:
        run = [
            "-q",
            "run",
            *("--input", str(root / "in" / "events.jsonl.gz")),
            *("--consent", str(root / "in" / "consent.jsonl")),
            *("--content-policy", "per_participant"),
            *("--as-of", as_of),
            *("--out", str(out)),
        ]
        assert main(run) == 0
        before = json.loads((out / "manifest.json").read_text())
        consented = ids_in(out)
        events = _events(root / "in" / "events.jsonl.gz")
        # The subject of the first consented record revokes one second after the run's as-of.
        record = events[sorted(consented)[0]]
        subject = _subjects(record)[0]
        revoke = {
            "subject_id": subject,
            "account_id": record["account_id"],
            "scope": "account",
            "purpose": "ai_training",
            "action": "revoke",
            "actor": "self",
            "decided_at": _at(as_of, 1),
        }
        later = root / "later.jsonl"
        later.write_text((root / "in" / "consent.jsonl").read_text() + json.dumps(revoke) + "\n")
        expected = {
            i
            for i in consented
            if subject in _subjects(events[i]) and events[i]["account_id"] == record["account_id"]
        }
        purge_as_of = _at(as_of, 2)
        args = ["purge", "--published", str(out), "--as-of", purge_as_of]
        # Without the revoke nothing changed in that window: whatever goes is the revoke's doing.
        unchanged = purge(
            load_config(),
            str(root / "in" / "consent.jsonl"),
            out,
            KEY.encode(),
            as_of=datetime.fromisoformat(purge_as_of.replace("Z", "+00:00")),
        )
        assert unchanged.rows_checked == len(consented) and not unchanged.removed
        assert main([*args, "--consent", str(later)]) == 0
        assert main([*args, "--consent", str(later), "--apply"]) == 0
    finally:
        mp.undo()
    return {
        "root": root,
        "out": out,
        "later": later,
        "before": before,
        "after": json.loads((out / "manifest.json").read_text()),
        "consented": consented,
        "expected": expected,
        "purge_args": args,
    }


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)


def test_only_the_revoked_subjects_records_are_withdrawn(purged):
    assert purged["expected"]
    assert ids_in(purged["out"]) == purged["consented"] - purged["expected"]


def test_the_manifest_counts_the_purge_and_still_adds_up(purged):
    before, after = purged["before"]["counts"], purged["after"]["counts"]
    n = len(purged["expected"])
    assert after["input_records"] == before["input_records"]
    assert after["consented_content"] == before["consented_content"] - n
    assert after["restricted"] == before["restricted"] + n
    assert after["purged"] == n
    assert (after["training"], after["quarantine"]) == (before["training"], before["quarantine"])
    assert after["input_records"] == sum(after[d] for d in DESTINATIONS)
    content = after["by_record_class"]["customer_content"]
    assert content["consented_content"] == after["consented_content"]
    manifest = purged["after"]
    assert manifest["status"] == "published"
    assert manifest["run_id"] == manifest["published_run_id"] != purged["before"]["run_id"]
    assert manifest["previous"]["run_id"] == purged["before"]["run_id"]
    entry = manifest["purges"][-1]
    assert entry["of_run_id"] == purged["before"]["run_id"] and entry["records"] == n
    assert entry["reasons"] == {"purged:revoked": n}
    assert all(check["passed"] for check in manifest["gate"]["checks"].values())
    assert (
        manifest["gate"]["checks"]["consent_recheck"]["rows_checked"]
        == (after["consented_content"])
    )


def test_the_new_version_is_published_by_the_link_and_the_old_one_is_gone(purged):
    out, new_id = purged["out"], purged["after"]["run_id"]
    assert os.readlink(out / "current") == os.path.join(".runs", new_id)
    assert sorted(p.name for p in (out / ".runs").iterdir()) == [new_id]
    # The withdrawn rows are in no Parquet file left in the folder.
    for path in out.joinpath(".runs").rglob("*.parquet"):
        if "consented_content" in path.parts:
            ids = set(pq.read_table(path, columns=["event_id"])["event_id"].to_pylist())
            assert not ids & purged["expected"], path
    assert (out / ".runs" / new_id / "restricted").stat().st_mode & 0o777 == 0o700


def test_audit_and_restricted_rows_say_purged(purged):
    out, expected = purged["out"], purged["expected"]
    audit = ds.dataset(out / "audit").to_table().to_pylist()
    rows = [r for r in audit if r["event_id"] in expected and r["destination"] != "duplicate"]
    assert len(rows) == len(expected)
    for row in rows:
        assert (row["destination"], row["reason"], row["consent"]) == (
            "restricted",
            "purged:revoked",
            "not_consented",
        )
        assert "revoked" in {s["reason"] for s in row["consent_subjects"]}
    restricted = ds.dataset(out / "restricted").to_table()
    purged_rows = [r for r in restricted.to_pylist() if r["reason"].startswith("purged:")]
    assert {r["event_id"] for r in purged_rows} == expected
    assert all(s.startswith("ps_") for r in purged_rows for s in r["subjects"])
    # Restricted keeps no content: the same columns as the rows the run itself restricted.
    assert "text" not in restricted.column_names and "message" not in restricted.column_names
    log = [json.loads(x) for x in (out / "purge-log.jsonl").read_text().splitlines()]
    assert {e["event_id"] for e in log} == expected
    assert {e["run_id"] for e in log} == {purged["after"]["run_id"]}


def test_validate_passes_the_purged_version(purged, key, capsys):
    assert main(["validate", str(purged["out"])]) == 0
    out = capsys.readouterr().out
    assert f"checking run {purged['after']['run_id']} (status published)" in out
    assert "training_rows_reconcile  pass" in out and "gate passed" in out


def test_explain_says_purged(purged, capsys):
    event_id = sorted(purged["expected"])[0]
    assert main(["explain", str(purged["out"]), event_id, "--format", "json"]) == 0
    trail = json.loads(capsys.readouterr().out)
    assert trail["run"]["run_id"] == purged["after"]["run_id"]
    (copy,) = [c for c in trail["copies"] if c["destination"] != "duplicate"]
    assert (copy["destination"], copy["reason"]) == ("restricted", "purged:revoked")
    assert main(["explain", str(purged["out"]), event_id]) == 0
    text = capsys.readouterr().out
    assert "withdrawn by `consentgate purge`" in text
    assert "consented_content" not in text


def test_the_report_is_regenerated_and_tells_of_the_purge(purged, capsys):
    out, n = purged["out"], len(purged["expected"])
    for page in (out / "report.html").read_text("utf-8"), None:
        if page is None:  # and the same after `consentgate report`
            assert main(["-q", "report", str(out)]) == 0
            page = (out / "report.html").read_text("utf-8")
        text = _text(page)
        assert f"Purged after publication: {n} content records withdrawn" in text
        flow = re.search(
            r"([\d,]+) input records, each counted in exactly one destination: ([^.]*)\.", text
        )
        assert flow
        parts = dict(re.findall(r"(\w+) ([\d,]+)", re.sub(r"\([^)]*\)", "", flow.group(2))))
        figures = {k: int(v.replace(",", "")) for k, v in parts.items()}
        assert sum(figures.values()) == int(flow.group(1).replace(",", ""))
        assert figures["consented_content"] == purged["after"]["counts"]["consented_content"]
        assert f"({n} of them purged after publication)" in text
    data = json.loads((out / "report.json").read_text("utf-8"))
    assert data["run_id"] == purged["after"]["run_id"]
    assert data["consent"]["content_purged"] == n
    assert data["summary"]["purges"][-1]["records"] == n


def test_lineage_has_the_new_versions_events(purged):
    events = [json.loads(x) for x in (purged["out"] / "lineage.jsonl").read_text().splitlines()]
    facets = [e["run"]["facets"]["consentgate_run"] for e in events]
    mine = [
        (e["eventType"], f["status"])
        for e, f in zip(events, facets, strict=True)
        if f["runId"] == purged["after"]["run_id"]
    ]
    assert mine[-1] == ("COMPLETE", "published")
    assert facets[-1]["counts"]["purged"] == len(purged["expected"])


@pytest.mark.parametrize("apply", [False, True], ids=["dry-run", "apply"])
def test_another_key_is_refused_and_nothing_changes(purged, monkeypatch, tmp_path, capsys, apply):
    copy = tmp_path / "copy"
    shutil.copytree(purged["out"], copy, symlinks=True)
    before = _snapshot(copy)
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", WRONG_KEY)
    args = [
        "purge",
        "--published",
        str(copy),
        "--consent",
        str(purged["root"] / "in" / "consent.jsonl"),
    ]
    assert main([*args, *(["--apply"] if apply else [])]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not the key run" in err
    assert key_fingerprint(WRONG_KEY.encode()) in err and WRONG_KEY not in err
    assert _snapshot(copy) == before


@pytest.mark.parametrize(
    "ledger",
    [
        pytest.param(lambda root: root / "missing.jsonl", id="missing"),
        pytest.param(lambda root: root / "in", id="a-folder"),
        pytest.param(lambda root: root / "in" / "truth.json", id="not-a-ledger"),
    ],
)
def test_an_unusable_ledger_exits_2_in_one_line(purged, key, capsys, ledger):
    before = _snapshot(purged["out"])
    args = ["purge", "--published", str(purged["out"]), "--apply"]
    assert main([*args, "--consent", str(ledger(purged["root"]))]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "--consent" in err
    assert _snapshot(purged["out"]) == before


def test_nothing_left_to_purge_changes_nothing(purged, key, capsys):
    before = _snapshot(purged["out"])
    assert main([*purged["purge_args"], "--consent", str(purged["later"]), "--apply"]) == 0
    assert "nothing to remove, nothing changed" in capsys.readouterr().out
    assert _snapshot(purged["out"]) == before
