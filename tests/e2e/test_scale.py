"""A million-decision consent ledger (run with `make test-scale`; about a minute and a half)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.purge import ids_in

pytestmark = pytest.mark.scale

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec"
DECISIONS = 1_000_000


def big_ledger(path: Path) -> None:
    """A million decisions over other accounts, plus the spec's four for its meeting."""
    rng = np.random.default_rng(7)
    n = DECISIONS - 4
    days = rng.integers(1, 28, n)
    table = pa.table(
        {
            "subject_id": [f"p-{i:06x}" for i in rng.integers(0, 400_000, n)],
            "account_id": [f"acct-{i:04x}" for i in rng.integers(0, 3000, n)],
            "scope": np.where(rng.random(n) < 0.6, "account", "meeting:mtg-x").tolist(),
            "purpose": np.where(rng.random(n) < 0.9, "ai_training", "product_analytics").tolist(),
            "action": np.where(rng.random(n) < 0.8, "grant", "revoke").tolist(),
            "actor": rng.choice(["self", "self", "host", "admin"], n).tolist(),
            "decided_at": [f"2026-10-{d:02d}T10:00:00Z" for d in days],
        }
    )
    spec = pa.Table.from_pylist(
        [json.loads(x) for x in (SPEC / "consent-examples-v1.jsonl").read_text().splitlines()],
        schema=table.schema,
    )
    pq.write_table(pa.concat_tables([table, spec]), path)


def test_a_million_decision_ledger_decides_like_the_small_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSENTGATE_PSEUDONYM_KEY", "scale-test-key-" + "z" * 32)
    ledger = tmp_path / "ledger.parquet"
    big_ledger(ledger)
    out = tmp_path / "out"
    code = main(
        [
            "-q",
            "run",
            "--input",
            str(SPEC / "examples-v1.jsonl"),
            "--consent",
            str(ledger),
            "--out",
            str(out),
            "--content-policy",
            "per_participant",
            "--as-of",
            "2026-11-27T12:00:00Z",
        ]
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["consent_join"] == "keyed_join"
    assert manifest["counts"]["consent_ledger"]["valid"] == DECISIONS
    assert ids_in(out) == {"ev-0013", "ev-0014"}
    assert manifest["counts"]["host_only_records"] == 8
