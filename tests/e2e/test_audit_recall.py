"""`consentgate audit` on a training-shaped Parquet file: recall on planted leaks, and silence on
a few thousand ordinary client log lines."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.generate import cases, contract, vocab

pytestmark = pytest.mark.e2e

PER_KIND = 200


def _rows(tmp_path, messages: list[str]):
    path = tmp_path / "part-00000.parquet"
    n = len(messages)
    pq.write_table(
        pa.table(
            {
                "record_class": ["service_generated"] * n,
                "event_id": [f"ev-{i}" for i in range(n)],
                "event_type": ["diagnostic.log"] * n,
                "account_id": ["ps_" + "0" * 32] * n,
                "level": ["warn"] * n,
                "component": ["net"] * n,
                "message": messages,
            }
        ),
        path,
    )
    return path


def _audit(path, capsys) -> tuple[int, dict]:
    code = main(["audit", "--format", "json", str(path)])
    return code, json.loads(capsys.readouterr().out)


def _leaks(kind: str) -> list[str]:
    rng = random.Random(kind)
    if kind == "chat":
        sentences = [s for s in vocab.CHAT_MESSAGES + vocab.SPOKEN_SENTENCES if len(s.split()) >= 4]
        return [f"send failed: {rng.choice(sentences)}" for _ in range(PER_KIND)]
    if kind == "names_with_emails":
        out = []
        for _ in range(PER_KIND):
            first, last = rng.choice(vocab.FIRST_NAMES), rng.choice(vocab.LAST_NAMES)
            out.append(f"invite from {first} {last} <{first}.{last}@mail.example.org>".lower())
        return out
    return [cases.pattern_leak(rng, kind, v)[1] for v in range(PER_KIND)]


@pytest.mark.parametrize(
    "kind",
    ["chat", "email", "phone", "secret_url", "payment_card", "ip_address", "names_with_emails"],
)
def test_audit_finds_at_least_95_percent_of_each_leak_kind(tmp_path, capsys, kind):
    code, report = _audit(_rows(tmp_path, _leaks(kind)), capsys)
    assert code == 3
    assert report["rows_scanned"] == PER_KIND
    assert report["rows_with_findings"] >= 0.95 * PER_KIND, report


def test_audit_flags_none_of_a_few_thousand_ordinary_log_lines(tmp_path, capsys):
    rng = random.Random(9)
    lines = [contract.clean_log(rng.random)["message"] for _ in range(3000)]
    lines += list(vocab.LEAVE_REASONS) + list(vocab.CRASH_MESSAGES)
    code, report = _audit(_rows(tmp_path, lines), capsys)
    assert report == {"by_detector": {}, "rows_scanned": len(lines), "rows_with_findings": 0}
    assert code == 0
