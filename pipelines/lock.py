"""One run at a time per output partition: a lock file in `--out DIR` with a heartbeat.

`DIR/.lock` names its holder (run id, pid, host, start and last heartbeat). A second run on
the same folder is refused with that name. A lock is stale when its holder is known dead (same
host, pid gone) or its heartbeat is older than `schedule.lock_stale_after_s`; a stale lock is
taken over with a warning, so a run killed with SIGKILL does not block the next night's run.

On a local disk the lock is taken with an exclusive link of a fully written file and taken
over with a rename, both atomic. Object stores have neither: there the lock is written, then
read back to check it is ours, which catches most races but not all; schedulers should still
run one job per partition (Airflow: `max_active_runs=1` on the DAG).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

from pipelines import storage
from pipelines.errors import ConsentgateError

__all__ = ["LOCK_NAME", "LockHeld", "PartitionLock"]

_LOG = logging.getLogger(__name__)
LOCK_NAME = ".lock"


class LockHeld(ConsentgateError):
    """Another run holds the partition's lock; nothing was read."""

    exit_code = 2


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class PartitionLock:
    """The lock of one `--out` folder, held by one run."""

    def __init__(self, out: str, run_id: str, stale_after_s: int) -> None:
        self.path = storage.join(out, LOCK_NAME)
        self.run_id = run_id
        self.stale_after_s = stale_after_s
        self.holder = {
            "run_id": run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": _now(),
        }
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- taking and giving back ---------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock, or take over a stale one; raise LockHeld if a live run holds it."""
        if not self._try_create():
            current = self._read()
            why = self._stale_because(current)
            if why is None:
                raise LockHeld(self._held_message(current))
            _LOG.warning(
                "taking over the lock of run %s (pid %s on %s): %s",
                current.get("run_id"),
                current.get("pid"),
                current.get("host"),
                why,
            )
            self._take_over(current)
        self._beat = threading.Thread(target=self._heartbeat, name="lock-heartbeat", daemon=True)
        self._beat.start()

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        try:
            if self._read().get("run_id") == self.run_id:
                self._remove()
        except (OSError, ValueError):
            pass

    def __enter__(self) -> PartitionLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- the file -------------------------------------------------------------------------------
    def _record(self) -> bytes:
        return json.dumps({**self.holder, "heartbeat_at": _now()}, sort_keys=True).encode()

    def _try_create(self) -> bool:
        if storage.is_remote(self.path):
            if storage.exists(self.path):
                return False
            storage.write_bytes(self.path, self._record())
            return self._confirm()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        # Written whole under a private name, then linked into place: link() fails if the lock
        # exists, so the lock file is never seen half-written.
        tmp = f"{self.path}.{self.run_id}.tmp"
        with open(tmp, "wb") as f:
            f.write(self._record())
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def _confirm(self) -> bool:
        """Object stores: read the lock back after a moment; a racing writer may have won."""
        time.sleep(0.5)
        return self._read().get("run_id") == self.run_id

    def _take_over(self, current: dict[str, Any]) -> None:
        if storage.is_remote(self.path):
            storage.write_bytes(self.path, self._record())
            if not self._confirm():
                raise LockHeld(self._held_message(self._read()))
            return
        # Renaming the stale lock away succeeds for one taker only; the others see it gone.
        aside = f"{self.path}.stale.{self.run_id}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            raise LockHeld(
                f"{self.path}: another run took over the stale lock first; try again later"
            ) from None
        os.unlink(aside)
        if not self._try_create():
            raise LockHeld(self._held_message(self._read()))

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(storage.read_bytes(self.path))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _remove(self) -> None:
        if storage.is_remote(self.path):
            from apache_beam.io.filesystems import FileSystems

            FileSystems.delete([self.path])
        else:
            os.unlink(self.path)

    def _heartbeat(self) -> None:
        every = max(1.0, self.stale_after_s / 4)
        while not self._stop.wait(every):
            try:
                if self._read().get("run_id") != self.run_id:
                    _LOG.error("the lock %s is no longer ours; another run took it", self.path)
                    return
                storage.write_bytes(self.path, self._record())
            except Exception as exc:  # a heartbeat must never kill the run
                _LOG.warning("lock heartbeat failed (%s)", type(exc).__name__)

    # -- judging a holder -------------------------------------------------------------------
    def _stale_because(self, holder: dict[str, Any]) -> str | None:
        """Why the lock can be taken over, or None while its holder may still be running."""
        if not holder:
            return "the lock file is unreadable"
        pid = holder.get("pid")
        same_host = holder.get("host") == socket.gethostname()
        if same_host and isinstance(pid, int) and not _pid_alive(pid):
            return "that process is no longer running"
        beat = holder.get("heartbeat_at")
        try:
            age = (datetime.now(UTC) - datetime.fromisoformat(str(beat))).total_seconds()
        except ValueError:
            return "its heartbeat time is unreadable"
        if age > self.stale_after_s:
            return f"no heartbeat for {age:.0f} s (stale after {self.stale_after_s} s)"
        return None

    def _held_message(self, holder: dict[str, Any]) -> str:
        folder = os.path.dirname(self.path) if not storage.is_remote(self.path) else self.path
        return (
            f"{folder}: run {holder.get('run_id')} (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('started_at')}) is writing this output "
            f"partition; wait for it to finish. A lock whose holder died is taken over "
            f"automatically once it is stale ({self.stale_after_s} s without a heartbeat)."
        )
