"""The run folder: staging, atomic publish by symlink swap, and the manifest as the commit record.

Layout of `--out DIR` on a local disk:

    DIR/.runs/<run_id>/{training,restricted,quarantine,audit}/...   every run's staged outputs
    DIR/training -> .runs/<published run>/training                  (and likewise the others)
    DIR/manifest.json                                               the latest run's manifest

A run stages everything under `.runs/<run_id>/`. Only when its gate passes are the links
swapped, each with an atomic rename, `training` last, and the manifest written last of all
(write to a temporary name, then rename). A run killed at any point leaves the links of the
previous published run; a kill between two link swaps is repaired by `recover()`, which every
run calls first, so the links always agree with the manifest's `published_run_id`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pipelines.errors import RunFailed

__all__ = ["PUBLISHED_TABLES", "RunFolder"]

# `training` is swapped last: model builders read only it.
PUBLISHED_TABLES = ("quarantine", "restricted", "audit", "training")
_KEEP_UNPUBLISHED_RUNS = 3


class RunFolder:
    """One `--out` folder and the runs staged in it."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.runs = self.root / ".runs"
        self.manifest_path = self.root / "manifest.json"

    def staging(self, run_id: str) -> Path:
        return self.runs / run_id

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise RunFailed(
                f"{self.manifest_path}: cannot read the previous manifest ({exc})"
            ) from None
        return data if isinstance(data, dict) else None

    def published_run_id(self) -> str | None:
        manifest = self.read_manifest()
        return manifest.get("published_run_id") if manifest else None

    def prepare(self, run_id: str) -> Path:
        """Create the run's staging folder after repairing any half-finished publish."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.recover()
        staging = self.staging(run_id)
        staging.mkdir(parents=True, exist_ok=False)
        return staging

    def recover(self) -> None:
        """Point every link at the manifest's published run (or remove them if there is none)."""
        published = self.published_run_id()
        for name in PUBLISHED_TABLES:
            link = self.root / name
            if published is None:
                if link.is_symlink():
                    link.unlink()
                continue
            target = self._target(published, name)
            current = os.readlink(link) if link.is_symlink() else None
            if current != target:
                self._swap(link, target)

    def publish(self, run_id: str, manifest: dict[str, Any]) -> None:
        """Swap the links to this run's staged outputs, then commit by writing the manifest."""
        staging = self.staging(run_id)
        for name in PUBLISHED_TABLES:
            (staging / name).mkdir(parents=True, exist_ok=True)
        for name in PUBLISHED_TABLES:
            self._swap(self.root / name, self._target(run_id, name))
        self.write_manifest(manifest)
        self._prune(keep={run_id})

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write the manifest in the run's staging folder and, atomically, as DIR/manifest.json."""
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        (self.staging(manifest["run_id"]) / "manifest.json").write_text(text, encoding="utf-8")
        tmp = self.root / f".manifest.json.{manifest['run_id']}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.manifest_path)

    def _target(self, run_id: str, name: str) -> str:
        return os.path.join(".runs", run_id, name)

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
        if not self.runs.is_dir():
            return
        published = self.published_run_id()
        others = sorted(p.name for p in self.runs.iterdir() if p.name not in keep | {published})
        for name in others[:-_KEEP_UNPUBLISHED_RUNS] if _KEEP_UNPUBLISHED_RUNS else others:
            shutil.rmtree(self.runs / name, ignore_errors=True)
