"""A corpus of records each built to trip one check of the leak gate, or to crash the job.

The real job runs over it (JSON Lines, Parquet and a ledger); it must publish (exit 0), each
planted record must be quarantined by the first line with its own reason, nothing planted may
reach `training/`, and every record must be counted once. A gate failure then can only mean a
defect of consentgate, never a bad record.

The string rule (a service string is published only when at least k accounts produced it) is
the first net for rare strings: planted once, the strings the gate's own checks would catch are
withheld (published as null, the field named in `withheld_fields`). So each of them is planted
twice: once in one account (withheld) and once in `COMMON_ACCOUNTS` accounts, where the rule
publishes it as it is and only the gate's twin can stop it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SPEC_EXAMPLES = ROOT.parent / "shared" / "spec" / "examples-v1.jsonl"
KEY = "gate-corpus-key-" + "g" * 32
OTHER_MEETING = "mtg-20261126-0002"
# Content of another meeting of the same account: the gate's content cross-check compares a
# service string with every content record of its account, not only of its meeting.
CHAT = "the harbour lantern project needs seven volunteers by friday evening"
SHARED_URI = "https://files.example.com/f/quartz-lantern-archive-2291"
RECORDING_URL = "https://files.example.com/rec/download/zephyr-orchard-7731"
# A hex run inside a word: the blob detector wants it on its own, the gate's suite does not.
HEX_IN_WORD = "zz" + "deadbeef" * 4 + "zz"
DIGIT_ID = "v" + "1234567890" * 4
# More than the string rule's k (configs/strings.json): a value these accounts all produced
# is published as it is.
COMMON_ACCOUNTS = 5


def _examples() -> dict[str, dict]:
    lines = SPEC_EXAMPLES.read_text().splitlines()
    return {r["event_type"]: r for r in (json.loads(x) for x in lines if x.strip())}


def _with(base: dict, event_id: str, envelope: dict | None = None, **payload: object) -> dict:
    return {
        **base,
        **(envelope or {}),
        "event_id": event_id,
        "payload": {**base["payload"], **payload},
    }


def _deep(depth: int) -> object:
    value: object = "bottom"
    for _ in range(depth):
        value = [value]
    return value


# Each planted record: (event_id, what it carries, the reason it must be quarantined with,
# the string that must not reach training).
def planted() -> list[tuple[str, dict, str, str]]:
    ex = _examples()
    log, qos = ex["diagnostic.log"], ex["qos.audio"]
    # Detector x kind of field: free text (log message), service string (codec), envelope
    # (event id, where the id's declared shape allows the value at all).
    detector_values = {
        "email": "mallory@example.com",
        "phone": "+1 415 555 0132",
        "ip_address": "10.20.30.40",
        "secret_url": "https://api.example.com/v1?access_token=s3cr3tvalue",
        "payment_card": "4111 1111 1111 1111",
        "blob": "deadbeef" * 5,
        "natural_language": "please call me back when you get this, I miss you",
        "known_identifier": "Alice Example",
        "content_echo": "Let's start with the roadmap",
    }
    cases = []
    for detector, value in detector_values.items():
        cases.append(
            (
                f"gc-text-{detector}",
                _with(log, f"gc-text-{detector}", message=f"ctx {value}"),
                f"detector:{detector}",
                value,
            )
        )
        cases.append(
            (
                f"gc-service-{detector}",
                _with(qos, f"gc-service-{detector}", codec=value),
                f"detector:{detector}",
                value,
            )
        )
    # Event ids: a value the declared shape refuses is bad_value; one it admits is scanned.
    for event_id, reason in (
        ("mallory@example.com", "bad_value"),
        ("https://x.example/?token=abc", "bad_value"),
        ("ev 0001 please call me", "bad_value"),
        ("+14155550132", "bad_value"),
        ("4111111111111111", "detector:payment_card"),
        ("10.20.30.40", "detector:ip_address"),
        ("415-555-0132", "detector:phone"),
        ("deadbeef" * 5, "detector:blob"),
        ("p-alice", "detector:known_identifier"),
    ):
        cases.append((event_id, _with(qos, event_id), reason, event_id))
    # Envelope identifiers: pseudonymised in training, but of a declared shape first.
    cases += [
        (
            "gc-account-email",
            _with(qos, "gc-account-email", {"account_id": "bob@example.com"}),
            "bad_value",
            "bob@example.com",
        ),
        (
            "gc-meeting-space",
            _with(qos, "gc-meeting-space", {"meeting_id": "weekly sync call"}),
            "bad_value",
            "weekly sync call",
        ),
        (
            "gc-participant-ctl",
            _with(qos, "gc-participant-ctl", {"participant_id": "p-\x1b[2J"}),
            "bad_value",
            "p-\x1b[2J",
        ),
    ]
    # Content of another meeting, quoted or linked in a log (the gate's fingerprints), and a hex
    # run the gate's suite refuses: in COMMON_ACCOUNTS accounts, so the string rule publishes
    # them and the gate's twin must quarantine each.
    for i in range(COMMON_ACCOUNTS):
        for event_id, record, reason, needle in twin_cases():
            account = f"acct-common-{i}"
            cases.append(
                (
                    f"{event_id}-{account}",
                    {**record, "event_id": f"{event_id}-{account}", "account_id": account},
                    reason,
                    needle,
                )
            )
    # Values Arrow cannot hold, and nesting no recursive code should meet.
    cases += [
        ("gc-int-over-int64", _with(qos, "gc-int-over-int64", latency_ms=2**63), "bad_value", ""),
        (
            "gc-int-past-double",
            _with(qos, "gc-int-past-double", latency_ms=2**53 + 1),
            "bad_value",
            "",
        ),
        (
            "gc-count-over-int64",
            _with(_examples()["usage.feature_used"], "gc-count-over-int64", count=2**63),
            "bad_value",
            "",
        ),
        (
            "gc-int-uint64-max",
            _with(qos, "gc-int-uint64-max", jitter_ms=2**64 - 1),
            "bad_value",
            "",
        ),
        (
            "gc-int-in-number",
            _with(qos, "gc-int-in-number", bitrate_kbps=2**63 + 7),
            "bad_value",
            "",
        ),
        (
            "gc-int-below-int64",
            _with(qos, "gc-int-below-int64", latency_ms=-(2**63) - 1),
            "bad_value",
            "",
        ),
        ("gc-too-deep", _with(log, "gc-too-deep", message=_deep(400)), "too_deep", ""),
        (
            "gc-deep-undeclared",
            {**_with(log, "gc-deep-undeclared"), "extra": _deep(200)},
            "too_deep",
            "",
        ),
    ]
    # Repeats: the gate's id checks (unique, never both withheld and trained).
    return cases


def twin_cases(rare: bool = False) -> list[tuple[str, dict, str, str]]:
    """Strings only the gate's own checks recognise: (event_id, record, reason, needle).

    `rare` words them apart from the common ones, so that neither the value nor its template
    is one that other accounts produced.
    """
    ex = _examples()
    log, crash = ex["diagnostic.log"], ex["diagnostic.crash"]
    quote, uri, recording, hex_word = (
        (
            "sync stalled: project needs seven volunteers",
            "download stalled at",
            "slow",
            "crc of blob",
        )
        if rare
        else (
            "retry 3 harbour lantern project needs seven",
            "fetch failed for",
            "retried",
            "checksum",
        )
    )
    return [
        (
            "gc-quote-other-meeting",
            _with(log, "gc-quote-other-meeting", message=quote),
            "gate_twin:content_fingerprints",
            quote.split(": ")[-1].removeprefix("retry 3 "),
        ),
        (
            "gc-shared-uri",
            _with(crash, "gc-shared-uri", message=f"{uri} {SHARED_URI}"),
            "gate_twin:content_fingerprints",
            SHARED_URI,
        ),
        (
            "gc-recording-url",
            _with(log, "gc-recording-url", message=f"upload {RECORDING_URL} {recording}"),
            "gate_twin:content_fingerprints",
            RECORDING_URL,
        ),
        (
            "gc-hex-in-word",
            _with(log, "gc-hex-in-word", message=f"{hex_word} {HEX_IN_WORD}"),
            "gate_twin:expectations",
            HEX_IN_WORD,
        ),
    ]


def withheld() -> list[tuple[dict, str]]:
    """Records that train with a rare string withheld: (record, the string)."""
    cases = [(record, needle) for _, record, _, needle in twin_cases(rare=True)]
    # A long digit run in an event id: the training event id is a keyed pseudonym.
    cases.append((_with(_examples()["qos.audio"], DIGIT_ID), DIGIT_ID))
    return cases


def parquet_rows() -> list[tuple[dict, str, str]]:
    """Rows of a Parquet input, each with its reason and planted string."""
    qos = _examples()["qos.audio"]
    envelope = {k: v for k, v in qos.items() if k != "payload"}
    return [
        (
            {**envelope, "event_id": "pq-ok", "payload": json.dumps(qos["payload"])},
            "service_deidentified",
            "",
        ),
        (
            {
                **envelope,
                "event_id": "pq-uint64",
                "payload": json.dumps({**qos["payload"], "latency_ms": 2**64 - 1}),
            },
            "bad_value",
            "",
        ),
        (
            {
                **envelope,
                "event_id": "pq-deep",
                "payload": json.dumps({**qos["payload"], "codec": _deep(300)}),
            },
            "payload_too_deep",
            "",
        ),
        (
            {**envelope, "event_id": "pq-email@example.com", "payload": json.dumps(qos["payload"])},
            "bad_value",
            "pq-email@example.com",
        ),
        (
            {
                **envelope,
                "event_id": "pq-card",
                "payload": json.dumps({**qos["payload"], "codec": "4111 1111 1111 1111"}),
            },
            "detector:payment_card",
            "4111 1111 1111 1111",
        ),
    ]


def content_records() -> list[dict]:
    """Clean content of another meeting of each account, which the planted logs repeat."""
    ex = _examples()
    out = []
    for account in [ex["content.chat_message"]["account_id"]] + [
        f"acct-common-{i}" for i in range(COMMON_ACCOUNTS)
    ]:
        other = {"meeting_id": OTHER_MEETING, "account_id": account}
        out += [
            _with(ex["content.chat_message"], f"gc-content-chat-{account}", other, message=CHAT),
            _with(ex["content.shared_file"], f"gc-content-file-{account}", other, uri=SHARED_URI),
            _with(
                ex["content.recording_file"],
                f"gc-content-rec-{account}",
                other,
                download_url=RECORDING_URL,
            ),
        ]
    return out


def _dump(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("gate-corpus")
    qos = _examples()["qos.audio"]
    lines: list[bytes] = [_dump(r) for r in _examples().values()]
    lines += [_dump(r) for r in content_records()]
    expected: dict[tuple[str, int], tuple[str, str]] = {}
    for _, record, reason, needle in planted():
        lines.append(_dump(record))
        expected[("corpus.jsonl", len(lines))] = (reason, needle)
    trained_withheld: dict[tuple[str, int], str] = {}
    for record, needle in withheld():
        lines.append(_dump(record))
        trained_withheld[("corpus.jsonl", len(lines))] = needle
    # Repeats, for the gate's id checks: identical copies count once; differing copies
    # (one of them breaking the contract) are all quarantined, so no id is both trained and
    # withheld.
    lines += [_dump(_with(qos, "gc-repeat")), _dump(_with(qos, "gc-repeat"))]
    lines.append(_dump(_with(qos, "gc-conflict")))
    expected[("corpus.jsonl", len(lines))] = ("conflicting_duplicate", "")
    lines.append(_dump({**_with(qos, "gc-conflict"), "note": "second copy"}))
    expected[("corpus.jsonl", len(lines))] = ("conflicting_duplicate", "second copy")
    (folder / "corpus.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    rows = parquet_rows()
    pq.write_table(pa.Table.from_pylist([row for row, _, _ in rows]), folder / "corpus.parquet")
    for number, (_, reason, needle) in enumerate(rows, start=1):
        if reason != "service_deidentified":
            expected[("corpus.parquet", number)] = (reason, needle)

    grant = {
        "subject_id": "p-bob",
        "account_id": "acct-7f3e",
        "scope": "account",
        "purpose": "ai_training",
        "action": "grant",
        "actor": "self",
        "decided_at": "2026-11-25T09:00:00Z",
    }
    ledger = folder / "ledger.jsonl"
    ledger.write_bytes(
        b"\n".join(
            [
                _dump(grant),
                _dump({**grant, "purpose": _deep(500)}),
                b'{"subject_id": "p-bob", "n": 18446744073709551616' + b"}",
            ]
        )
        + b"\n"
    )
    out = tmp_path_factory.mktemp("gate-corpus-out") / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "run",
            "--input",
            str(folder / "corpus.jsonl"),
            "--input",
            str(folder / "corpus.parquet"),
            "--consent",
            str(ledger),
            "--content-policy",
            "never",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "CONSENTGATE_PSEUDONYM_KEY": KEY},
        timeout=300,
    )
    return {
        "out": out,
        "done": done,
        "records": len(lines) + len(rows),
        "expected": expected,
        "withheld": trained_withheld,
    }


def _where(row: dict) -> tuple[str, int]:
    return Path(row["source_file"]).name, row["source_line"]


def test_the_corpus_publishes_and_every_record_is_counted_once(corpus):
    done, out = corpus["done"], corpus["out"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "published"
    assert manifest["gate"]["passed"] is True
    counts = manifest["counts"]
    assert counts["input_records"] == corpus["records"]
    parts = ("training", "consented_content", "restricted", "quarantine", "duplicates")
    assert sum(counts[k] for k in parts) == corpus["records"]
    audit = ds.dataset(out / "audit").to_table()
    assert audit.num_rows == corpus["records"]
    assert counts["duplicates"] == 1  # the identical repeat
    assert sorted(counts["quarantine_reasons"].items()) == sorted(
        _count(reason for reason, _ in corpus["expected"].values()).items()
    )


def _count(items) -> dict[str, int]:
    found: dict[str, int] = {}
    for item in items:
        found[item] = found.get(item, 0) + 1
    return found


def test_each_planted_record_is_quarantined_with_its_own_reason(corpus):
    assert corpus["done"].returncode == 0, corpus["done"].stderr[-3000:]
    out = corpus["out"]
    quarantined = {
        _where(r): r["reason"]
        for r in ds.dataset(out / "quarantine").to_table().to_pylist()
        if not r["reason"].startswith("consent_")
    }
    wanted = {where: reason for where, (reason, _) in corpus["expected"].items()}
    assert quarantined == wanted
    # The audit says the same of every one of them.
    audit = {_where(r): r for r in ds.dataset(out / "audit").to_table().to_pylist()}
    for where, reason in wanted.items():
        assert (audit[where]["destination"], audit[where]["reason"]) == ("quarantine", reason)


def test_twin_quarantine_rows_name_the_column_never_the_value(corpus):
    out = corpus["out"]
    rows = [
        r
        for r in ds.dataset(out / "quarantine").to_table().to_pylist()
        if r["reason"].startswith("gate_twin:")
    ]
    assert {r["event_id"] for r in rows} == {
        f"{event_id}-acct-common-{i}"
        for event_id, _, _, _ in twin_cases()
        for i in range(COMMON_ACCOUNTS)
    }
    for row in rows:
        assert row["detail"].split(":")[0] in ("event_id", "message")
        assert HEX_IN_WORD not in row["detail"] and "lantern" not in row["detail"]


def test_no_planted_string_reaches_training(corpus):
    out = corpus["out"]
    files = sorted((out / "training").rglob("*.parquet"))
    assert files
    blob = "".join(
        json.dumps(pq.read_table(f).to_pylist(), ensure_ascii=False, default=str) for f in files
    )
    needles = [needle for _, needle in corpus["expected"].values() if needle]
    needles += list(corpus["withheld"].values())
    assert len(needles) >= 30
    for needle in needles:
        assert needle not in blob, needle
    # Training names records by their event id's pseudonym; the audit maps one to the other.
    audit = ds.dataset(out / "audit").to_table(columns=["event_id", "event_pseudonym"])
    pseudonym = dict(
        zip(audit["event_id"].to_pylist(), audit["event_pseudonym"].to_pylist(), strict=True)
    )
    ids = set(ds.dataset(out / "training").to_table(columns=["event_id"])["event_id"].to_pylist())
    # Clean records around the planted ones still train: the spec's examples, the Parquet
    # row that conforms, and one copy of the identical repeat.
    assert {pseudonym[i] for i in ("ev-0001", "ev-0011", "pq-ok", "gc-repeat")} <= ids
    assert pseudonym["gc-conflict"] not in ids


def test_rare_strings_train_withheld_never_raw(corpus):
    # Planted in one account, the strings the gate's twin catches never reach it: the string
    # rule withholds them, and the record trains with the field named in `withheld_fields`.
    out = corpus["out"]
    audit = {_where(r): r for r in ds.dataset(out / "audit").to_table().to_pylist()}
    training = {r["event_id"]: r for r in ds.dataset(out / "training").to_table().to_pylist()}
    assert len(corpus["withheld"]) == 5
    for where, needle in corpus["withheld"].items():
        row = audit[where]
        assert row["destination"] == "training", (where, row["reason"])
        published = training[row["event_pseudonym"]]
        if needle == DIGIT_ID:
            assert published["event_id"] != DIGIT_ID
        else:
            assert published["message"] is None
            assert "message" in published["withheld_fields"]


def test_ledger_rows_too_deep_or_too_large_are_quarantined_not_fatal(corpus):
    out = corpus["out"]
    ledger = {
        r["source_line"]: r["reason"]
        for r in ds.dataset(out / "quarantine").to_table().to_pylist()
        if r["reason"].startswith("consent_")
    }
    assert ledger == {2: "consent_too_deep", 3: "consent_missing_field"}
