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
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipelines import storage
from pipelines.errors import RunFailed
from pipelines.transforms.write import PRIVATE_TABLES

__all__ = ["CURRENT", "PUBLISHED_TABLES", "RunFolder"]

PUBLISHED_TABLES = ("quarantine", "restricted", "audit", "training")
CURRENT = "current"
_KEEP_UNPUBLISHED_RUNS = 3


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

    def prepare(self, run_id: str) -> str:
        """Create the run's staging folder after repairing any half-finished publish."""
        staging = self.staging(run_id)
        if self.remote:
            return staging  # object stores have no folders to create
        os.makedirs(self.root, exist_ok=True)
        self.recover()
        os.makedirs(staging, exist_ok=False)
        for name in PRIVATE_TABLES:
            os.makedirs(os.path.join(staging, name), mode=0o700)
        return staging

    def recover(self) -> None:
        """Point `current` at the manifest's published run (or remove it if there is none)."""
        if self.remote:
            return
        published = self.published_run_id()
        current = Path(self.root, CURRENT)
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
                (staging / name).mkdir(parents=True, exist_ok=True)
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

    def _table_links(self) -> None:
        """`DIR/training -> current/training` and the like: fixed links through `current`."""
        for name in PUBLISHED_TABLES:
            link = Path(self.root, name)
            target = os.path.join(CURRENT, name)
            if not link.is_symlink() or os.readlink(link) != target:
                self._swap(link, target)

    def _swap(self, link: Path, target: str) -> None:
        if link.exists() and not link.is_symlink():
            raise RunFailed(
                f"{link} is a real folder, not a link made by consentgate: move it away and rerun"
            )
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
