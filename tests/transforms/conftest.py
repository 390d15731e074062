"""Fixtures for the Beam stage tests: the shipped config, the spec's example events, input files."""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import Config, load_config
from pipelines.contract import ENVELOPE_FIELDS
from pipelines.rules.deidentify import KEY_ENV
from pipelines.transforms.read import InputFile

# shared/ lies beside the checkout, for developers and CI alike.
SPEC_EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "spec" / "examples-v1.jsonl"
# A test key only; long enough for key_from_env (>= 32 bytes).
TEST_KEY = "test-key-" + "0" * 32
# Parquet inputs carry the envelope as columns (payload as a JSON string beside them).
PARQUET_COLUMNS = ENVELOPE_FIELDS


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config()


@pytest.fixture(scope="session")
def _spec_events() -> list[dict[str, Any]]:
    lines = SPEC_EXAMPLES.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def spec_events(_spec_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The 21 example events of the spec (ev-0001..ev-0021), a fresh copy per test."""
    return copy.deepcopy(_spec_events)


@pytest.fixture
def pseudonym_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Set the pseudonymisation key for the in-process workers; returns its bytes."""
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    return TEST_KEY.encode("utf-8")


def _input_file(index: int, path: Path, fmt: str) -> InputFile:
    return InputFile(index=index, path=str(path), size=path.stat().st_size, format=fmt)


@pytest.fixture
def jsonl_file(tmp_path: Path) -> Callable[..., InputFile]:
    """Write raw lines (bytes, or dicts to serialise) as JSON Lines; returns the InputFile."""

    def write(
        name: str, lines: list[bytes | dict[str, Any]], *, index: int = 0, ending: bytes = b"\n"
    ) -> InputFile:
        path = tmp_path / name
        raw = [line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines]
        data = b"".join(line + ending for line in raw)
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        return _input_file(index, path, "jsonl")

    return write


@pytest.fixture
def parquet_file(tmp_path: Path) -> Callable[..., InputFile]:
    """Write events as Parquet: top-level fields as columns, payload as a JSON string column."""

    def write(name: str, events: list[dict[str, Any]], *, index: int = 0) -> InputFile:
        path = tmp_path / name
        columns: dict[str, pa.Array] = {}
        for column in PARQUET_COLUMNS:
            kind = pa.int64() if column == "schema_version" else pa.string()
            columns[column] = pa.array([e.get(column) for e in events], kind)
        columns["payload"] = pa.array([json.dumps(e["payload"]) for e in events], pa.string())
        pq.write_table(pa.table(columns), path)
        return _input_file(index, path, "parquet")

    return write
