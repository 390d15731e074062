"""Per-participant consent end to end, on the spec's example meeting and its ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.purge import ids_in

pytestmark = pytest.mark.e2e

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec"
KEY = "consent-test-key-" + "y" * 32
AS_OF = "2026-11-27T12:00:00Z"


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)


def events(tmp_path: Path, change=None) -> Path:
    rows = [json.loads(x) for x in (SPEC / "examples-v1.jsonl").read_text().splitlines()]
    if change:
        change(rows)
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ledger(tmp_path: Path, extra: list[str] = ()) -> Path:
    path = tmp_path / "consent.jsonl"
    path.write_text((SPEC / "consent-examples-v1.jsonl").read_text() + "".join(extra))
    return path


def run(tmp_path: Path, *args: str, change=None, extra=()) -> tuple[int, Path]:
    out = tmp_path / "out"
    code = main(
        [
            "-q",
            "run",
            "--input",
            str(events(tmp_path, change)),
            "--consent",
            str(ledger(tmp_path, extra)),
            "--out",
            str(out),
            "--as-of",
            AS_OF,
            *args,
        ]
    )
    return code, out


@pytest.fixture(scope="module")
def per_participant(tmp_path_factory) -> Path:
    """One per-participant run of the spec's meeting, read (never changed) by the tests below."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONSENTGATE_PSEUDONYM_KEY", KEY)
        code, out = run(
            tmp_path_factory.mktemp("per_participant"), "--content-policy", "per_participant"
        )
    assert code == 0
    return out


def test_only_alices_own_content_is_consented(per_participant):
    out = per_participant
    assert ids_in(out) == {"ev-0013", "ev-0014"}
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["consented_content"] == 2
    assert counts["restricted"] == 8
    assert counts["host_only_records"] == 8
    assert counts["host_only_participants"] == 2
    assert counts["consent_ledger"]["unreadable"] == 0
    run_id = json.loads((out / "manifest.json").read_text())["run_id"]
    report = (out / ".runs" / run_id / "report.html").read_text("utf-8")
    assert 'id="ledger-unreadable"' not in report  # the banner's pair: a readable ledger
    service = ds.dataset(out / "training" / "service_generated").to_table(columns=["event_id"])
    assert not any(
        i.startswith("ev-001") and int(i[3:]) >= 12 for i in service["event_id"].to_pylist()
    )


def test_consented_rows_are_pseudonymised(per_participant):
    out = per_participant
    rows = ds.dataset(out / "training" / "consented_content").to_table().to_pylist()
    assert {r["event_id"] for r in rows} == {"ev-0013", "ev-0014"}
    for row in rows:
        assert row["speaker_id"].startswith("ps_") and row["speaker_id"] != "p-alice"
        assert row["account_id"].startswith("ps_")
        assert row["record_class"] == "customer_content"
        assert row["text"] == "Let's start with the roadmap"


def test_restricted_rows_say_who_lacked_consent_and_why(per_participant):
    out = per_participant
    rows = {r["event_id"]: r for r in ds.dataset(out / "restricted").to_table().to_pylist()}
    assert rows["ev-0012"]["reason"] == "no_consent:not_own_grant"  # bob: host's grant only
    assert rows["ev-0016"]["reason"] == "no_consent:revoked"  # carol revoked
    recording = rows["ev-0017"]["consent_subjects"]
    assert sorted(s["reason"] for s in recording) == ["consented", "not_own_grant", "revoked"]
    assert all(s["subject"].startswith("ps_") for s in recording)
    assert rows["ev-0017"]["host_only"] is True


def test_the_default_policy_admits_no_content(tmp_path, key):
    code, out = run(tmp_path)
    assert code == 0
    assert ids_in(out) == set()
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["consented_content"] == 0 and counts["restricted"] == 10
    assert counts["host_only_records"] == 8


def test_without_a_ledger_nobody_consented(tmp_path, key):
    out = tmp_path / "out"
    code = main(
        [
            "-q",
            "run",
            "--input",
            str(events(tmp_path)),
            "--out",
            str(out),
            "--content-policy",
            "per_participant",
        ]
    )
    assert code == 0
    assert ids_in(out) == set()


def test_a_third_partys_email_in_consented_content_is_redacted(tmp_path, key):
    def plant(rows):
        rows[12]["payload"]["text"] = "Let's start, and mail dana.r@example.org the notes"

    _, out = run(tmp_path, "--content-policy", "per_participant", change=plant)
    row = next(
        r
        for r in ds.dataset(out / "training" / "consented_content").to_table().to_pylist()
        if r["event_id"] == "ev-0013"
    )
    assert "dana.r@example.org" not in row["text"]
    assert "[REDACTED:email]" in row["text"]


def test_bad_ledger_rows_are_quarantined_and_counted(tmp_path, key):
    """A row naming no readable subject or account withholds all content, and says so first."""
    bad = [
        '{"subject_id": "p-bob", "account_id": "acct-7f3e", "scope": "account", '
        '"purpose": "ai_training", "action": "grant", "actor": "owner", '
        '"decided_at": "2026-11-26T08:00:00Z"}\n',
        "not json\n",
    ]
    code, out = run(tmp_path, "--content-policy", "per_participant", extra=bad)
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["consent_ledger"] == {
        "rows": 6,
        "valid": 4,
        "quarantined": 2,
        "reasons": {"consent_bad_value": 1, "consent_not_json": 1},
        "unreadable": 1,
    }
    quarantine = ds.dataset(out / "quarantine").to_table().to_pylist()
    assert sorted(r["reason"] for r in quarantine) == ["consent_bad_value", "consent_not_json"]
    assert ids_in(out) == set()
    restricted = ds.dataset(out / "restricted").to_table().to_pylist()
    assert len(restricted) == 10
    assert {r["reason"] for r in restricted} == {"no_consent:ledger_unreadable"}
    basis = {b for r in restricted for s in r["consent_subjects"] for b in s["basis"]}
    assert basis == {"ledger row 6 rejected (consent_not_json)"}
    staged = out / ".runs" / manifest["run_id"]
    head = (staged / "report.html").read_text("utf-8").split("<main>", 1)[0]
    assert 'id="ledger-unreadable"' in head and "no content of this run was admitted" in head
    report = json.loads((staged / "report.json").read_text("utf-8"))
    assert report["summary"]["ledger_unreadable_rows"] == 1


def test_purge_removes_rows_after_a_revoke(tmp_path, key, capsys):
    _, out = run(tmp_path, "--content-policy", "per_participant")
    later = tmp_path / "later.jsonl"
    later.write_text(
        ledger(tmp_path).read_text()
        + json.dumps(
            {
                "subject_id": "p-alice",
                "account_id": "acct-7f3e",
                "scope": "account",
                "purpose": "ai_training",
                "action": "revoke",
                "actor": "self",
                "decided_at": "2026-11-27T11:00:00Z",
            }
        )
        + "\n"
    )
    # An as-of before the revoke was recorded holds back grants only: the revoke counts.
    past = ["purge", "--consent", str(later), "--published", str(out)]
    assert main([*past, "--as-of", "2026-11-26T12:00:00Z"]) == 0
    assert "2 would be removed" in capsys.readouterr().out
    args = ["purge", "--consent", str(later), "--published", str(out), "--as-of", AS_OF]
    assert main(args) == 0
    assert "2 would be removed" in capsys.readouterr().out
    assert ids_in(out) == {"ev-0013", "ev-0014"}
    assert not (out / "purge-log.jsonl").exists()
    assert main([*args, "--apply"]) == 0
    assert ids_in(out) == set()
    log = [json.loads(x) for x in (out / "purge-log.jsonl").read_text().splitlines()]
    assert sorted(e["event_id"] for e in log) == ["ev-0013", "ev-0014"]
    assert all(e["reasons"] == ["revoked"] and e["subjects"][0].startswith("ps_") for e in log)
    # The original ledger still consents: nothing more to purge.
    assert main(["purge", "--consent", str(ledger(tmp_path)), "--published", str(out)]) == 0


def test_a_missing_ledger_exits_5(tmp_path, key):
    code = main(
        [
            "-q",
            "run",
            "--input",
            str(events(tmp_path)),
            "--out",
            str(tmp_path / "o"),
            "--consent",
            str(tmp_path / "nope.jsonl"),
        ]
    )
    assert code == 5  # the day's ledger has not landed: a scheduler retries


def _flawed(**changes) -> str:
    row = {
        "subject_id": "p-alice",
        "account_id": "acct-7f3e",
        "scope": "account",
        "purpose": "ai_training",
        "action": "revoke",
        "actor": "self",
        "decided_at": "2026-11-26 10:00:00Z",  # a space for the T
    }
    return json.dumps({**row, **changes}) + "\n"


# Rows 5-7: alice's revoke with a space in its time (both ids read), a row of another
# account with no readable subject, bob's row with no readable account (bob everywhere,
# which also ends the host's grant for him in the host-only what-if).
REJECTED = [
    _flawed(),
    _flawed(subject_id=5, account_id="acct-zz"),
    _flawed(subject_id="p-bob", account_id=1),
]


@pytest.mark.parametrize(
    ("policy", "rejected"),
    [("never", []), ("per_participant", []), ("per_participant", REJECTED)],
    ids=["never", "per_participant", "per_participant with rejected rows"],
)
def test_the_keyed_join_decides_like_the_side_input(tmp_path, key, policy, rejected, request):
    """A ledger over the size limit is joined by key; the decisions must not change."""
    join = tmp_path / "join.json"
    join.write_text(json.dumps({"policy": {"consent_side_input_max_decisions": 0}}))
    audits = []
    for name, extra in (("side", []), ("join", ["--config", str(join)])):
        if name == "side" and (policy, rejected) == ("per_participant", []):
            out = request.getfixturevalue("per_participant")  # that very run, already made
        else:
            folder = tmp_path / name
            folder.mkdir()
            code, out = run(folder, "--content-policy", policy, *extra, extra=rejected)
            assert code == 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["consent_join"] == ("keyed_join" if name == "join" else "side_input")
        audit = ds.dataset(out / "audit").to_table().sort_by("event_id")
        audits.append(
            audit.select(
                ["event_id", "destination", "reason", "consent", "consent_subjects", "host_only"]
            ).to_pylist()
        )
    assert audits[0] == audits[1]
    if not rejected:
        assert any(r["consent"] == "consented" for r in audits[0])
        return
    assert not any(r["consent"] == "consented" for r in audits[0])
    alice = next(r for r in audits[0] if r["event_id"] == "ev-0013")["consent_subjects"]
    assert alice[0]["reason"] == "revoked"
    assert alice[0]["basis"] == ["ledger row 5 rejected (consent_bad_timestamp)"]


LATER_REVOKE = json.dumps(
    {
        "subject_id": "p-alice",
        "account_id": "acct-7f3e",
        "scope": "account",
        "purpose": "ai_training",
        "action": "revoke",
        "actor": "self",
        "decided_at": "2026-11-30T08:00:00Z",
    }
)


def test_a_past_date_holds_back_grants_only(tmp_path, key):
    """A backfill of the 26th: the as-of is the end of that day, yet carol's revoke of the
    27th and alice's of the 30th count (grants after it are held back: tests/rules)."""
    out = tmp_path / "out"
    args = [
        "-q",
        "run",
        "--input",
        str(events(tmp_path)),
        "--consent",
        str(ledger(tmp_path, [LATER_REVOKE + "\n"])),
        "--out",
        str(out),
        "--content-policy",
        "per_participant",
    ]
    assert main([*args, "--date", "2026-11-26"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["date"] == "2026-11-26"
    assert manifest["consent_as_of"] == "2026-11-27T00:00:00+00:00"
    assert ids_in(out) == set()
    rows = {r["event_id"]: r for r in ds.dataset(out / "restricted").to_table().to_pylist()}
    assert rows["ev-0013"]["reason"] == rows["ev-0016"]["reason"] == "no_consent:revoked"
    assert main([*args, "--date", "26/11/2026"]) == 2


EMAIL, CODE = "dana.r@example.org", "4711-ZX-9"


def _text_of(path: Path) -> str:
    """A file's text as a reader would see it: Parquet decoded (its pages are compressed)."""
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False, default=str)
    return path.read_bytes().decode("utf-8", "replace")


def test_ledger_free_text_reaches_no_output_but_the_owner_only_quarantine(tmp_path, key, capsys):
    """A purpose holding an email and an id, on a valid row and on a rejected one."""

    def new_people(rows):
        by_id = {r["event_id"]: r for r in rows}
        by_id["ev-0020"]["participant_id"] = "p-erin"  # erin's shared file
        by_id["ev-0018"]["participant_id"] = "p-frank"  # frank's whiteboard

    purpose = f"mail {EMAIL} about {CODE}"
    planted = [  # row 5 valid (another purpose), row 6 rejected (an unknown field)
        _flawed(subject_id="p-erin", action="grant", purpose=purpose, decided_at=AS_OF),
        _flawed(subject_id="p-frank", purpose=purpose, note=f"asked {EMAIL}", decided_at=AS_OF),
    ]
    code, out = run(
        tmp_path, "--content-policy", "per_participant", change=new_people, extra=planted
    )
    assert code == 0
    assert ids_in(out) == {"ev-0013", "ev-0014"}
    for event_id in ("ev-0020", "ev-0018"):
        assert main(["explain", str(out), event_id]) == 0
        assert main(["explain", str(out), event_id, "--format", "json"]) == 0
    explained = capsys.readouterr().out
    assert "for other_purpose (account scope)" in explained
    assert "ledger row 6 rejected (consent_undeclared_field)" in explained
    files = [p for p in out.rglob("*") if p.is_file()]
    quarantine = [p for p in files if "quarantine" in p.parts]
    elsewhere = [p for p in files if "quarantine" not in p.parts]
    assert any(p.match("restricted/*.parquet") for p in elsewhere)
    assert any(p.match("audit/*.parquet") for p in elsewhere)
    for text in (explained, *map(_text_of, elsewhere)):
        assert EMAIL not in text and CODE not in text
    # The rejected row's raw bytes are kept where every raw record is: owner-only.
    assert any(EMAIL in _text_of(p) for p in quarantine)
    assert all(p.stat().st_mode & 0o077 == 0 for p in quarantine)
