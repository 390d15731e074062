"""One run at a time per output partition: a lock file in `--out DIR` with a heartbeat.

`DIR/.lock` names its holder (run id, pid, host, start and last heartbeat). A second run on
the same folder is refused with that name. A lock is stale when its holder is known dead (same
host, pid gone) or its heartbeat is older than `schedule.lock_stale_after_s`; a stale lock is
taken over with a warning, so a run killed with SIGKILL does not block the next night's run.
A lock that cannot be read or understood (not JSON, keys missing or of the wrong type, a
heartbeat without a time zone, a link, not a plain file) is stale too, and so is one whose
heartbeat lies more than `CLOCK_SKEW_S` in the future: no lock file crashes or blocks runs.

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
import stat
import threading
import time
from datetime import UTC, datetime
from typing import Any

from pipelines import storage
from pipelines.errors import ConsentgateError

__all__ = ["CLOCK_SKEW_S", "LOCK_NAME", "LockHeld", "PartitionLock"]

_LOG = logging.getLogger(__name__)
LOCK_NAME = ".lock"
# How far a holder's heartbeat may lie in the future (clocks of two hosts disagreeing) before
# the lock counts as stale: a heartbeat beyond it was not written by a live run's clock.
CLOCK_SKEW_S = 120
# A lock file is a few hundred bytes; more than this is not a lock consentgate wrote.
_MAX_LOCK_BYTES = 4096
# The holder's fields and their types; a lock missing one or with another type is unreadable.
_FIELDS: dict[str, type] = {
    "run_id": str,
    "pid": int,
    "host": str,
    "started_at": str,
    "heartbeat_at": str,
}


class LockHeld(ConsentgateError):
    """Another run holds the partition's lock; nothing was read."""

    exit_code = 2


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _shown(value: Any) -> str:
    """A holder's field for a message: control characters escaped, length bounded."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:200])
    return text + ("..." if len(str(value)) > 200 else "")


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
            current, unreadable = self._read_holder()
            why = unreadable or self._stale_because(current)
            if why is None:
                raise LockHeld(self._held_message(current))
            _LOG.warning(
                "taking over the lock of run %s (pid %s on %s): %s",
                _shown(current.get("run_id")),
                _shown(current.get("pid")),
                _shown(current.get("host")),
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
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with os.fdopen(os.open(tmp, flags, 0o600), "wb") as f:
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
        try:
            os.unlink(aside)  # a link is removed as a link, never followed
        except IsADirectoryError:
            _LOG.warning("the stale lock %s was a folder; it is left at %s", self.path, aside)
        if not self._try_create():
            raise LockHeld(self._held_message(self._read()))

    def _read(self) -> dict[str, Any]:
        return self._read_holder()[0]

    def _read_holder(self) -> tuple[dict[str, Any], str | None]:
        """The holder as far as it can be read, and why it cannot be trusted (None: it can)."""
        try:
            raw = self._read_bytes()
        except OSError as exc:
            return {}, f"the lock file cannot be read ({exc.strerror or type(exc).__name__})"
        try:
            data = json.loads(raw)
        except ValueError:
            shown = raw[:80].decode("utf-8", "backslashreplace")
            return {"run_id": shown}, "the lock file is not JSON"
        if not isinstance(data, dict):
            return {}, "the lock file is not a JSON object"
        for key, kind in _FIELDS.items():
            value = data.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                return data, f"its {key} is missing or not a {kind.__name__}"
        if data["pid"] <= 0:
            return data, "its pid is not a process id"
        try:
            beat = datetime.fromisoformat(data["heartbeat_at"])
        except ValueError:
            return data, "its heartbeat time is unreadable"
        if beat.tzinfo is None or beat.utcoffset() is None:
            return data, "its heartbeat time has no time zone"
        return data, None

    def _read_bytes(self) -> bytes:
        """The lock file's bytes; locally never through a link, never blocking on a FIFO."""
        if storage.is_remote(self.path):
            return storage.read_bytes(self.path)[: _MAX_LOCK_BYTES + 1]
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(self.path, flags)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise OSError(0, "not a plain file")
            data = f.read(_MAX_LOCK_BYTES + 1)
        if len(data) > _MAX_LOCK_BYTES:
            raise OSError(0, f"larger than {_MAX_LOCK_BYTES} bytes")
        return data

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
        """Why a readable lock can be taken over, or None while its holder may be running."""
        pid = holder["pid"]
        if holder["host"] == socket.gethostname() and not _pid_alive(pid):
            return "that process is no longer running"
        beat = datetime.fromisoformat(holder["heartbeat_at"])
        age = (datetime.now(UTC) - beat).total_seconds()
        if age < -CLOCK_SKEW_S:
            return (
                f"its heartbeat is {-age:.0f} s in the future (more than the {CLOCK_SKEW_S} s "
                "allowed for clocks that disagree)"
            )
        if age > self.stale_after_s:
            return f"no heartbeat for {age:.0f} s (stale after {self.stale_after_s} s)"
        return None

    def _held_message(self, holder: dict[str, Any]) -> str:
        folder = os.path.dirname(self.path) if not storage.is_remote(self.path) else self.path
        return (
            f"{folder}: run {_shown(holder.get('run_id'))} (pid {_shown(holder.get('pid'))} on "
            f"{_shown(holder.get('host'))}, since {_shown(holder.get('started_at'))}) is writing "
            "this output partition; wait for it to finish. A lock whose holder died is taken over "
            f"automatically once it is stale ({self.stale_after_s} s without a heartbeat)."
        )
