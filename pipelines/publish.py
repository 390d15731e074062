"""The run folder: staging, atomic publish, and the manifest as the commit record.

Layout of `--out DIR`:

    DIR/.runs/<run_id>/{training,restricted,quarantine,audit}/...   every run's staged outputs
    DIR/current -> .runs/<published run>                            (local disks: one link)
    DIR/training -> current/training                                (and likewise the others)
    DIR/manifest.json                                               the latest run's manifest

A run stages everything under `.runs/<run_id>/`. Only when its gate passes is it published:

- On a local disk the one `current` link is swapped by an atomic rename, so readers see all
  four tables of the old run or all four of the new one, never a mix; then the manifest is
  written (to a temporary name, then renamed). A run killed before the swap leaves the previous
  published run. A kill between the swap and the manifest is repaired by `recover()`, which
  every run calls first: it points `current` back at the manifest's `published_run_id`.
- On an object store (`gs://`, `s3://`) there are no links and no atomic rename. Publishing is
  writing `DIR/manifest.json` (one PUT, all or nothing) after every staged file is in place;
  readers trust only the manifest: they read `published_run_id` and then
  `DIR/.runs/<published_run_id>/training/`. A staged run no manifest names is not published.

On a local disk consentgate follows only the links it made (`current -> .runs/<id>`, the table
links `-> current/<table>`). `check_links()` refuses a folder holding any other link where
consentgate reads, writes or deletes (exit 2, the path named), before anything is written.
Staged runs are owner-only (folders 0700, files 0600) until the gate passes; publishing then
opens the run's `training/` to readers by the umask, with `.runs/` and the run's folder
traversable but not listable (0711).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from pipelines import storage
from pipelines.errors import ConfigError, RunFailed
from pipelines.lock import LOCK_NAME
from pipelines.transforms.write import PRIVATE_TABLES

__all__ = ["CURRENT", "PUBLISHED_TABLES", "RunFolder", "UnsafeRunFolder", "check_run_folder"]

PUBLISHED_TABLES = ("quarantine", "restricted", "audit", "training")
CURRENT = "current"
_KEEP_UNPUBLISHED_RUNS = 3
# Files consentgate writes or appends to in DIR: each must be a plain file, never a link.
OWN_FILES = (
    "manifest.json",
    "report.html",
    "report.json",
    "lineage.jsonl",
    "purge-log.jsonl",
    LOCK_NAME,
)
# A run id as a path: one plain component (no `/`, no leading dot, so never `..`).
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class UnsafeRunFolder(ConfigError):
    """The run folder holds a link (or a file where a link belongs) consentgate did not make.

    Nothing was written: consentgate never writes, appends or deletes through such a link.
    """


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # absent (a file in the way is found later)
        return None


def _shown(path: str) -> str:
    """A link's target for a message: quoted, control characters escaped."""
    try:
        return repr(os.readlink(path))
    except OSError:
        return "(unreadable)"


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def check_run_folder(out: str | Path) -> None:
    """Raise UnsafeRunFolder if `out` holds a link consentgate did not make (local disks)."""
    RunFolder(out).check_links()


class RunFolder:
    """One `--out` folder (local path or Beam filesystem URL) and the runs staged in it."""

    def __init__(self, out: str | Path) -> None:
        self.root = str(out).rstrip("/") if storage.is_remote(str(out)) else str(out)
        self.remote = storage.is_remote(self.root)
        self.runs = storage.join(self.root, ".runs")
        self.manifest_path = storage.join(self.root, "manifest.json")

    def staging(self, run_id: str) -> str:
        return storage.join(self.runs, run_id)

    def read_manifest(self) -> dict[str, Any] | None:
        if not storage.exists(self.manifest_path):
            return None
        try:
            data = json.loads(storage.read_bytes(self.manifest_path))
        except (OSError, ValueError) as exc:
            raise RunFailed(
                f"{self.manifest_path}: cannot read the previous manifest ({exc})"
            ) from None
        return data if isinstance(data, dict) else None

    def published_run_id(self) -> str | None:
        manifest = self.read_manifest()
        return manifest.get("published_run_id") if manifest else None

    def check_links(self) -> None:
        """Refuse (exit 2) a folder holding a link consentgate did not make where it reads,
        writes or deletes: `.runs`, `current`, the table links, its own files in DIR, and
        anything inside the staged runs. Local disks only (object stores have no links)."""
        if self.remote or _lstat(self.root) is None:
            return
        runs = self.runs
        staged = _lstat(runs)
        if staged is not None and not stat.S_ISDIR(staged.st_mode):
            raise self._unsafe(runs, "the folder of staged runs")
        current = os.path.join(self.root, CURRENT)
        found = _lstat(current)
        if found is not None:
            target = os.readlink(current) if stat.S_ISLNK(found.st_mode) else ""
            head, _, run = target.partition("/")
            if head != ".runs" or not _RUN_ID.fullmatch(run):
                raise self._unsafe(current, "a link to .runs/<run id>")
        for name in PUBLISHED_TABLES:
            link = os.path.join(self.root, name)
            found = _lstat(link)
            if found is not None and (
                not stat.S_ISLNK(found.st_mode) or os.readlink(link) != f"{CURRENT}/{name}"
            ):
                raise self._unsafe(link, f"a link to {CURRENT}/{name}")
        for name in OWN_FILES:
            path = os.path.join(self.root, name)
            found = _lstat(path)
            if found is not None and not stat.S_ISREG(found.st_mode):
                raise self._unsafe(path, "a plain file consentgate writes")
        if staged is not None:
            self._check_tree(runs)

    def _check_tree(self, folder: str) -> None:
        """No link anywhere under `folder` (the staged runs); links are not descended into.

        A folder gone meanwhile (pruned by a run holding the lock) is nothing to check."""
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_symlink():
                raise self._unsafe(entry.path, "a file or folder of a staged run")
            if entry.is_dir(follow_symlinks=False):
                self._check_tree(entry.path)

    @staticmethod
    def _unsafe(path: str, belongs: str) -> UnsafeRunFolder:
        found = _lstat(path)
        if found is not None and stat.S_ISLNK(found.st_mode):
            what = f"is a link to {_shown(path)} that consentgate did not make"
            fix = (
                "remove the link (if it pointed at a real folder of this run folder, move that "
                "folder in its place) and rerun"
            )
        else:
            what = "is not what consentgate made there"
            fix = "move it out of the run folder and rerun"
        return UnsafeRunFolder(
            f"{path} {what} (expected {belongs}); consentgate never writes, appends or deletes "
            f"through links it did not make, so nothing was written: {fix}"
        )

    def prepare(self, run_id: str) -> str:
        """Create the run's staging folder after repairing any half-finished publish.

        `.runs/` can be traversed but not listed by others (0711 under the usual umask); the
        run's own folder and everything staged in it are owner-only until it is published.
        """
        staging = self.staging(run_id)
        if self.remote:
            return staging  # object stores have no folders to create
        os.makedirs(self.root, exist_ok=True)
        self.check_links()
        self.recover()
        if not os.path.isdir(self.runs):
            os.mkdir(self.runs, 0o700)
        os.chmod(self.runs, 0o711 & ~_umask())
        os.mkdir(staging, 0o700)
        os.chmod(staging, 0o700)
        for name in PRIVATE_TABLES:
            os.mkdir(os.path.join(staging, name), 0o700)
        return staging

    def recover(self) -> None:
        """Point `current` at the manifest's published run (or remove it if there is none)."""
        if self.remote:
            return
        published = self.published_run_id()
        current = Path(self.root, CURRENT)
        if published is not None and not _RUN_ID.fullmatch(str(published)):
            raise UnsafeRunFolder(
                f"{self.manifest_path}: published_run_id {str(published)!r} is not a run id; "
                "consentgate links `current` only to .runs/<run id>: restore the manifest "
                "(each staged run keeps a copy in .runs/<run id>/manifest.json) and rerun"
            )
        if published is None:
            for name in (CURRENT, *PUBLISHED_TABLES):
                if Path(self.root, name).is_symlink():
                    Path(self.root, name).unlink()
            return
        target = os.path.join(".runs", published)
        if not current.is_symlink() or os.readlink(current) != target:
            self._swap(current, target)
        self._table_links()  # after `current`, so they never point at a missing link

    def publish(self, run_id: str, manifest: dict[str, Any]) -> None:
        """Make this run the published one; on a local disk by one atomic link swap."""
        if not self.remote:
            staging = Path(self.staging(run_id))
            for name in PUBLISHED_TABLES:
                (staging / name).mkdir(mode=0o700, exist_ok=True)
            self._open_for_readers(staging)
            self._table_links()
            self._swap(Path(self.root, CURRENT), os.path.join(".runs", run_id))
        self.write_manifest(manifest)
        self._prune(keep={run_id})

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write the manifest in the run's staging folder and, atomically, as DIR/manifest.json."""
        text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
        storage.write_bytes(storage.join(self.staging(manifest["run_id"]), "manifest.json"), text)
        storage.write_bytes(self.manifest_path, text)

    def staged_runs(self) -> list[str]:
        """Ids of the runs staged under `.runs/`, oldest first (run ids sort by time)."""
        if not self.remote:
            runs = Path(self.runs)
            return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []
        files = storage.list_files(self.runs, "**")
        return sorted({storage.relative(p, self.runs).split("/", 1)[0] for p in files})

    @staticmethod
    def _open_for_readers(staging: Path) -> None:
        """The published run's `training/` readable by the umask (files 0644, folders 0755
        under umask 022); its other tables stay owner-only; its folder is traversable."""
        mask = _umask()
        os.chmod(staging, 0o711 & ~mask)
        for folder, dirs, files in os.walk(staging / "training"):
            os.chmod(folder, 0o777 & ~mask)
            for name in files:
                if not os.path.islink(os.path.join(folder, name)):
                    os.chmod(os.path.join(folder, name), 0o666 & ~mask)
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]

    def _table_links(self) -> None:
        """`DIR/training -> current/training` and the like: fixed links through `current`."""
        for name in PUBLISHED_TABLES:
            link = Path(self.root, name)
            target = os.path.join(CURRENT, name)
            if not link.is_symlink() or os.readlink(link) != target:
                self._swap(link, target)

    def _swap(self, link: Path, target: str) -> None:
        if link.exists() and not link.is_symlink():
            raise self._unsafe(str(link), f"a link to {target}")
        tmp = link.with_name(f".{link.name}.swap")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)

    def _prune(self, keep: set[str]) -> None:
        """Remove staged runs neither published nor among the newest few kept for review."""
        published = self.published_run_id()
        others = [r for r in self.staged_runs() if r not in keep | {published}]
        for name in others[:-_KEEP_UNPUBLISHED_RUNS] if _KEEP_UNPUBLISHED_RUNS else others:
            storage.delete_tree(self.staging(name))
