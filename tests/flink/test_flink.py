"""The job on a real Flink session cluster (`make flink-up`) gives the in-process runner's answer.

Run by `make test-flink` (the `flink` marker is left out of `make test`). The module brings the
cluster up itself if it is not running (`deploy/flink/cluster.py up` is idempotent), with this
module's pseudonymisation key in the TaskManagers' environment, which is where workers read it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from pipelines.publish import CURRENT, PUBLISHED_TABLES
from pipelines.rules.deidentify import MIN_KEY_BYTES, key_fingerprint

pytestmark = pytest.mark.flink

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "deploy" / "flink" / "cluster.py"
HOME = Path(os.environ.get("CONSENTGATE_FLINK_DIR", ROOT / ".flink"))
# The key `make flink-up` was run with (CI exports a throwaway one), so the running cluster is
# used as it is; else a test key (the cluster's TaskManagers are then restarted with it).
KEY = os.environ.get("CONSENTGATE_PSEUDONYM_KEY", "")
if len(KEY.encode()) < MIN_KEY_BYTES:
    KEY = "flink-test-key-not-secret-0123456789abcdef"
EVENTS = 2000
# A Flink run of 2,000 events takes about 90 s on two cores; a hung run fails the test.
RUN_TIMEOUT_S = 600


def _env() -> dict[str, str]:
    return {**os.environ, "CONSENTGATE_PSEUDONYM_KEY": KEY}


def _cluster(command: str) -> None:
    done = subprocess.run(
        [sys.executable, str(CLUSTER), command], env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def flink_options() -> list[str]:
    _cluster("up")
    return (HOME / "options").read_text().split()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("flink-input")
    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "generate", "--out", str(folder),
         "--events", str(EVENTS), "--seed", "16"],
        env=_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder


def _rest(path: str) -> bytes:
    url = f"http://localhost:{os.environ.get('FLINK_REST_PORT', '18081')}{path}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def _running_jobs() -> int:
    return int(json.loads(_rest("/overview"))["jobs-running"])


def _newest_job() -> str:
    jobs = json.loads(_rest("/jobs/overview"))["jobs"]
    return max(jobs, key=lambda j: j["start-time"])["jid"]


def _run_args(inputs: Path, out: Path, extra: list[str], beam: list[str]) -> list[str]:
    args = [sys.executable, "-m", "pipelines", "run", "--input", str(inputs),
            "--consent", str(inputs / "consent.jsonl"), "--content-policy", "per_participant",
            "--out", str(out.resolve()), *extra]  # fmt: skip
    return [*args, "--", *beam] if beam else args


def _run(inputs: Path, out: Path, extra: list[str], beam: list[str]) -> int:
    done = subprocess.run(
        _run_args(inputs, out, extra, beam),
        env=_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert KEY not in done.stdout + done.stderr
    if done.returncode != 0:
        print(done.stderr[-4000:])
    return done.returncode


def _published(out: Path, listing: list[dict] | None = None) -> dict[str, object]:
    """Every published table's rows (sorted), the bytes of each file the published run's
    manifest lists (`listing`: that list, when the latest manifest is a failed run's), and
    the latest manifest."""
    manifest = json.loads((out / "manifest.json").read_text())
    run = out / ".runs" / manifest["published_run_id"]
    tables = {}
    for table in PUBLISHED_TABLES:
        rows = ds.dataset(out / table, format="parquet").to_table().to_pylist()
        tables[table] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    listing = manifest["files"] if listing is None else listing
    files = {f["path"]: (run / f["path"]).read_bytes() for f in listing}
    return {"manifest": manifest, "tables": tables, "files": files}


@pytest.mark.parametrize(
    ("consent_path", "limit"),
    [("side_input", None), ("keyed_join", 0)],
    ids=["side-input ledger", "keyed join"],
)
def test_flink_publishes_what_the_in_process_runner_publishes(
    tmp_path, inputs, flink_options, consent_path, limit
):
    extra = []
    if limit is not None:
        config = tmp_path / "join.json"
        config.write_text(json.dumps({"policy": {"consent_side_input_max_decisions": limit}}))
        extra = ["--config", str(config)]
    assert _run(inputs, tmp_path / "local", extra, []) == 0
    assert _run(inputs, tmp_path / "flink", extra, flink_options) == 0
    # The key reached the workers through the TaskManagers' environment: the job that ran
    # (its graph and its configuration, Beam's pipeline options included) does not hold it.
    job = _newest_job()
    for part in ("", "/plan", "/config"):
        assert KEY.encode() not in _rest(f"/jobs/{job}{part}")
    assert json.loads(_rest(f"/jobs/{job}"))["state"] == "FINISHED"
    local, flink = _published(tmp_path / "local"), _published(tmp_path / "flink")
    lm, fm = local["manifest"], flink["manifest"]
    assert (lm["runner"], fm["runner"]) == ("FnApiRunner", "FlinkRunner")
    assert lm["consent_join"] == fm["consent_join"] == consent_path
    assert fm["status"] == "published"
    assert fm["counts"]["input_records"] == EVENTS
    assert fm["counts"] == lm["counts"]
    assert fm["gate"]["passed"] is lm["gate"]["passed"] is True
    assert {k: v["passed"] for k, v in fm["gate"]["checks"].items()} == {
        k: v["passed"] for k, v in lm["gate"]["checks"].items()
    }
    assert fm["files"] == lm["files"]
    for table in PUBLISHED_TABLES:
        assert flink["tables"][table] == local["tables"][table], table
    assert sum(len(rows) for rows in flink["tables"].values()) > EVENTS  # audit + the others
    # Same rows in the same files: the Parquet files are byte for byte the same.
    assert flink["files"].keys() == local["files"].keys()
    differ = [p for p in flink["files"] if flink["files"][p] != local["files"][p]]
    assert differ == []


def test_a_launcher_whose_key_the_workers_do_not_hold_publishes_nothing(
    tmp_path, inputs, flink_options
):
    # The cluster's TaskManagers (and so its SDK workers) hold KEY; this launcher another.
    launcher_key = "flink-launcher-key-not-the-clusters-0123456789"
    out = tmp_path / "out"
    done = subprocess.run(
        _run_args(inputs, out, [], flink_options),
        env={**_env(), "CONSENTGATE_PSEUDONYM_KEY": launcher_key},
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert KEY not in said and launcher_key not in said
    assert done.returncode == 2, said[-4000:]
    assert key_fingerprint(KEY.encode()) in said
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["pseudonym_key_fingerprint"] == key_fingerprint(launcher_key.encode())
    assert manifest["worker_key_fingerprints"] == [key_fingerprint(KEY.encode())]
    assert manifest["published_run_id"] is None
    assert not (out / CURRENT).exists()
    assert not any((out / table).exists() for table in PUBLISHED_TABLES)


def test_a_lost_taskmanager_fails_the_run_and_publishes_nothing(tmp_path, inputs, flink_options):
    out = tmp_path / "out"
    assert _run(inputs, out, [], []) == 0
    before = _published(out)
    proc = subprocess.Popen(
        _run_args(inputs, out, [], flink_options),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while _running_jobs() == 0:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the Flink job never started"
            time.sleep(0.5)
        time.sleep(3)  # into the job's first stages
        victim = int((HOME / "run" / "taskmanager-1.pid").read_text().split()[0])
        os.killpg(victim, signal.SIGKILL)
        output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        _cluster("up")  # the lost TaskManager comes back for whatever runs next
    assert KEY not in output
    # The cluster restarts no job (restart-strategy none): the run fails as a runner failure.
    assert proc.returncode == 4, output[-4000:]
    after = _published(out, before["manifest"]["files"])
    assert after["manifest"]["status"] == "failed"
    assert after["manifest"]["published_run_id"] == before["manifest"]["run_id"]
    assert after["tables"] == before["tables"]
    assert after["files"] == before["files"]
    assert (out / "current").resolve().name == before["manifest"]["run_id"]
