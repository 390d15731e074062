"""Workers that pseudonymise with another key than the launcher's: the run publishes nothing.

On a remote runner the workers read the key from their own environment (a Flink TaskManager's,
a Dataflow container's), which can hold another key than the machine that launches the job and
writes the manifest. Each chunk reports the fingerprint of the key it was pseudonymised with; the
launcher compares them with its own before the gate and refuses to publish on a mismatch.
(tests/flink/ shows the same on the local Flink cluster.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.dataset as ds
import pytest

import pipelines.run
from pipelines.cli import main
from pipelines.generate import generate
from pipelines.publish import CURRENT, PUBLISHED_TABLES
from pipelines.rules.deidentify import KEY_ENV, key_fingerprint
from pipelines.run import worker_key_mismatch

pytestmark = pytest.mark.e2e

LAUNCHER_KEY = "launcher-key-not-secret-" + "l" * 24
WORKER_KEY = "worker-key-not-secret-" + "w" * 26


def test_matching_or_absent_worker_fingerprints_are_no_mismatch():
    mine = key_fingerprint(LAUNCHER_KEY.encode())
    assert worker_key_mismatch(mine, [mine]) is None
    assert worker_key_mismatch(mine, []) is None  # no chunk was pseudonymised


def test_a_worker_fingerprint_that_is_not_the_launchers_is_named():
    mine = key_fingerprint(LAUNCHER_KEY.encode())
    theirs = key_fingerprint(WORKER_KEY.encode())
    message = worker_key_mismatch(mine, sorted([mine, theirs]))
    assert message is not None
    assert theirs in message and mine in message and KEY_ENV in message
    assert LAUNCHER_KEY not in message and WORKER_KEY not in message


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("input")
    generate(folder, events=1500, seed=21)
    return folder


def _published_tables(out: Path) -> dict[str, list[str]]:
    return {
        name: sorted(
            json.dumps(row, sort_keys=True, default=str)
            for row in ds.dataset(out / name, format="parquet").to_table().to_pylist()
        )
        for name in PUBLISHED_TABLES
    }


def test_workers_with_another_key_fail_the_run_and_publish_nothing(
    inputs, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    args = ["-q", "run", "--input", str(inputs / "events.jsonl.gz"), "--out", str(out)]
    monkeypatch.setenv(KEY_ENV, LAUNCHER_KEY)
    assert main(args) == 0
    before = json.loads((out / "manifest.json").read_text())
    tables = _published_tables(out)

    # The launcher reads its key; the environment its workers read afterwards holds another
    # (the in-process runner's workers read it in `setup()`, as a remote runner's do).
    launcher_key = pipelines.run.key_from_env

    def launcher_then_workers_key() -> bytes:
        key = launcher_key()
        monkeypatch.setenv(KEY_ENV, WORKER_KEY)
        return key

    monkeypatch.setattr(pipelines.run, "key_from_env", launcher_then_workers_key)
    capsys.readouterr()
    assert main(args) == 2
    said = capsys.readouterr()
    assert "nothing was published" in said.err
    assert key_fingerprint(WORKER_KEY.encode()) in said.err
    assert LAUNCHER_KEY not in said.out + said.err and WORKER_KEY not in said.out + said.err

    after = json.loads((out / "manifest.json").read_text())
    assert after["run_id"] != before["run_id"]
    assert after["status"] == "failed"
    assert after["pseudonym_key_fingerprint"] == key_fingerprint(LAUNCHER_KEY.encode())
    assert after["worker_key_fingerprints"] == [key_fingerprint(WORKER_KEY.encode())]
    assert "another key" in after["error"]
    assert after["published_run_id"] == before["run_id"]
    assert os.readlink(out / CURRENT) == os.path.join(".runs", before["run_id"])
    assert _published_tables(out) == tables
    text = (out / "manifest.json").read_text()
    assert LAUNCHER_KEY not in text and WORKER_KEY not in text
