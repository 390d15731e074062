"""An S3 round trip against a local S3-compatible server (moto's server mode on localhost):
inputs read from s3://, outputs staged and published to s3:// with the manifest as the commit."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

from pipelines.generate import generate  # noqa: E402

pytestmark = pytest.mark.e2e

KEY = "s3-test-key-" + "k" * 32
BUCKET = "consentgate-test"
DAY = "2026-11-26"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3():
    """A local S3 server and a client for it; credentials are dummies, nothing leaves the host."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


def _beam_s3_options(endpoint: str) -> list[str]:
    return [
        f"--s3_endpoint_url={endpoint}",
        "--s3_access_key_id=testing",
        "--s3_secret_access_key=testing",
        "--s3_region_name=us-east-1",
    ]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CONSENTGATE_PSEUDONYM_KEY": KEY,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _get(client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_s3_round_trip(s3, tmp_path: Path):
    endpoint, client = s3
    local = tmp_path / "input"
    truth = generate(local, events=1500, seed=31, date=DAY)
    for name in ("events.jsonl.gz", "consent.jsonl"):
        client.upload_file(str(local / name), BUCKET, f"input/dt={DAY}/{name}")
    out = f"s3://{BUCKET}/out/dt={DAY}"
    args = [
        "run",
        "--input",
        f"s3://{BUCKET}/input/dt={DAY}/events*.jsonl.gz",
        "--consent",
        f"s3://{BUCKET}/input/dt={DAY}/consent.jsonl",
        "--out",
        "s3://" + BUCKET + "/out/dt={date}",
        "--date",
        DAY,
        "--",
        *_beam_s3_options(endpoint),
    ]
    done = _run(*args)
    assert done.returncode == 0, done.stderr

    manifest = json.loads(_get(client, f"out/dt={DAY}/manifest.json"))
    assert manifest["status"] == "published"
    assert manifest["out"] == out
    assert manifest["counts"]["input_records"] == truth["events"]
    run_id = manifest["published_run_id"]
    # Readers trust only the manifest: it names the run whose files are the published ones.
    training = [
        k for k in _keys(client, f"out/dt={DAY}/.runs/{run_id}/training/") if k.endswith(".parquet")
    ]
    rows = sum(pq.read_table(io.BytesIO(_get(client, k))).num_rows for k in training)
    assert rows == manifest["counts"]["training"] > 0
    assert _keys(client, f"out/dt={DAY}/training") == []  # no links on an object store
    assert _keys(client, f"out/dt={DAY}/.lock") == []  # the lock was given back
    assert b"<html" in _get(client, f"out/dt={DAY}/report.html")
    staged_manifest = json.loads(_get(client, f"out/dt={DAY}/.runs/{run_id}/manifest.json"))
    assert staged_manifest == manifest
