"""Lock files that can't wedge a partition: whatever sits at `DIR/.lock`, a run either takes it
over with a warning naming the old holder (escaped) or is refused by a live holder; it never
crashes and never waits on a lock forever."""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.lock import CLOCK_SKEW_S, LOCK_NAME, LockHeld, PartitionLock

STALE_AFTER_S = 600


def _holder(**changes: object) -> bytes:
    """A lock as a live run on this host writes it (our own pid: alive), with `changes`."""
    now = datetime.now(UTC)
    holder: dict[str, object] = {
        "run_id": "20261130T000000000000Z-0ther0",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": now.isoformat(timespec="seconds"),
        "heartbeat_at": now.isoformat(timespec="seconds"),
    }
    holder.update(changes)
    return json.dumps({k: v for k, v in holder.items() if v is not ...}).encode()


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def _link_to_live_lock(lock: Path) -> None:
    """`.lock` a link to a file outside holding a live lock: never read through, never written."""
    target = lock.parent.parent / "elsewhere.json"
    target.write_bytes(_holder())
    lock.symlink_to(target)


STALE = {
    "bad-json": lambda p: p.write_bytes(
        b'{"run_id": "20261130T',
    ),
    "binary-junk": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "empty": lambda p: p.write_bytes(b""),
    "not-an-object": lambda p: p.write_bytes(b"[1, 2, 3]"),
    "missing-keys": lambda p: p.write_bytes(b'{"run_id": "20261130T000000000000Z-0ther0"}'),
    "pid-a-string": lambda p: p.write_bytes(_holder(pid=str(os.getpid()))),
    "pid-a-bool": lambda p: p.write_bytes(_holder(pid=True)),
    "pid-negative": lambda p: p.write_bytes(_holder(pid=-1)),
    "host-a-number": lambda p: p.write_bytes(_holder(host=7)),
    "heartbeat-missing": lambda p: p.write_bytes(_holder(heartbeat_at=...)),
    "heartbeat-naive": lambda p: p.write_bytes(
        _holder(heartbeat_at=datetime.now(UTC).replace(tzinfo=None).isoformat())
    ),
    "heartbeat-not-a-time": lambda p: p.write_bytes(_holder(heartbeat_at="yesterday")),
    "heartbeat-far-future": lambda p: p.write_bytes(_holder(heartbeat_at=_in(365 * 86400))),
    "heartbeat-past-skew": lambda p: p.write_bytes(_holder(heartbeat_at=_in(CLOCK_SKEW_S + 60))),
    "heartbeat-old": lambda p: p.write_bytes(_holder(heartbeat_at=_in(-STALE_AFTER_S - 60))),
    "holder-dead": lambda p: p.write_bytes(_holder(pid=2**22 + 12345)),
    "too-large": lambda p: p.write_bytes(_holder(run_id="x" * 10_000)),
    "a-link": _link_to_live_lock,
    "a-fifo": lambda p: os.mkfifo(p),
    "control-characters": lambda p: p.write_bytes(
        _holder(run_id="\x1b]0;owned\x07\x1b[2J", heartbeat_at=_in(86400))
    ),
}


@pytest.mark.parametrize("case", list(STALE), ids=list(STALE))
def test_a_lock_that_cannot_be_trusted_is_taken_over_with_a_warning(
    tmp_path: Path, caplog, case: str
):
    out = tmp_path / "out"
    out.mkdir()
    lock_path = out / LOCK_NAME
    STALE[case](lock_path)
    outside = tmp_path / "elsewhere.json"
    outside_before = outside.read_bytes() if outside.exists() else None
    lock = PartitionLock(str(out), "20261201T000000000000Z-mine00", STALE_AFTER_S)
    with caplog.at_level(logging.WARNING, logger="pipelines.lock"):
        lock.acquire()
    try:
        assert not lock_path.is_symlink()
        assert json.loads(lock_path.read_bytes())["run_id"] == lock.run_id
        warnings = [r.getMessage() for r in caplog.records if "taking over the lock" in r.message]
        assert len(warnings) == 1, caplog.text
        assert not any(ord(c) < 32 or c == "\x7f" for c in warnings[0]), warnings[0]
        if case == "control-characters":
            assert "\\x1b]0;owned\\x07" in warnings[0]
    finally:
        lock.release()
    assert not lock_path.exists()
    if outside_before is not None:
        assert outside.read_bytes() == outside_before  # the link's target: never written
    assert sorted(p.name for p in out.iterdir()) == []  # nothing left behind


LIVE = {
    "fresh": lambda p: p.write_bytes(_holder()),
    "heartbeat-within-skew": lambda p: p.write_bytes(_holder(heartbeat_at=_in(CLOCK_SKEW_S / 2))),
    "offset-zone": lambda p: p.write_bytes(
        _holder(heartbeat_at=datetime.now(UTC).astimezone().isoformat(timespec="seconds"))
    ),
}


@pytest.mark.parametrize("case", list(LIVE), ids=list(LIVE))
def test_a_live_holder_keeps_its_lock(tmp_path: Path, case: str):
    """The paired cases: a readable lock of a live run is respected, not taken over."""
    LIVE[case](tmp_path / LOCK_NAME)
    before = (tmp_path / LOCK_NAME).read_bytes()
    lock = PartitionLock(str(tmp_path), "20261201T000000000000Z-mine00", STALE_AFTER_S)
    with pytest.raises(LockHeld, match="20261130T000000000000Z-0ther0"):
        lock.acquire()
    assert (tmp_path / LOCK_NAME).read_bytes() == before
