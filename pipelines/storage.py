"""Files the driver reads and writes, on a local disk or any Beam filesystem (`gs://`, `s3://`).

Beam's FileSystems serve both; only what differs is branched on: a local write goes to a
temporary name and is renamed into place, while an object store's single PUT is already
all-or-nothing. Paths are plain strings so remote ones keep their scheme.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

__all__ = [
    "append_private",
    "delete_tree",
    "exists",
    "is_remote",
    "join",
    "list_files",
    "read_bytes",
    "read_parquet",
    "relative",
    "write_bytes",
]


def is_remote(path: str) -> bool:
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    base = str(base)
    if is_remote(base):
        return posixpath.join(base.rstrip("/"), *parts)
    return os.path.join(base, *parts)


def relative(path: str, base: str) -> str:
    """`path` relative to the folder `base`, which holds it (local or remote)."""
    if is_remote(base):
        return str(path)[len(str(base).rstrip("/")) :].lstrip("/")
    return os.path.relpath(path, base)


def exists(path: str) -> bool:
    return bool(FileSystems.exists(str(path)))


def read_bytes(path: str) -> bytes:
    with FileSystems.open(str(path), compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return bytes(f.read())


def write_bytes(path: str, data: bytes, *, sync: bool = True) -> None:
    """Replace `path` with `data` all at once: readers see the old file or the new one.

    On a local disk the data goes to a new temporary file in the same folder (created
    exclusively, never through a link, owner-only), then is renamed over `path`: a rename
    replaces a link at `path` rather than writing where it points. `sync=False` skips the
    flush to disk, for scratch files that do not outlive the run.
    """
    path = str(path)
    if is_remote(path):
        with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(data)
        return
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def append_private(path: str, lines: Iterable[str]) -> None:
    """Append text lines to a local file, never through a link; a new file is owner-only."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(f"{path}: not a regular file; nothing was appended")
        for line in lines:
            f.write(line if line.endswith("\n") else line + "\n")


def list_files(folder: str, pattern: str = "*") -> list[str]:
    """Sorted paths of the files in `folder` matching `pattern` (`**` reaches into subfolders)."""
    try:
        found = FileSystems.match([join(folder, pattern)])[0].metadata_list
    except Exception:  # Beam raises BeamIOError when nothing matches on some filesystems
        return []
    return sorted(m.path for m in found)


def read_parquet(path: str, columns: Sequence[str] | None = None) -> pa.Table:
    with FileSystems.open(str(path), compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return pq.read_table(f, columns=list(columns) if columns is not None else None)


def delete_tree(folder: str) -> None:
    """Remove a folder and everything under it; a missing folder is fine.

    On a local disk a link is never followed: a link at `folder` is left alone (it is not a
    folder this code made), and links inside it are removed as links, not where they point
    (`shutil.rmtree` works through folder descriptors opened with O_NOFOLLOW).
    """
    if not is_remote(folder):
        try:
            if not stat.S_ISDIR(os.lstat(folder).st_mode):
                return
        except FileNotFoundError:
            return
        shutil.rmtree(folder, ignore_errors=True)
        return
    paths = list_files(folder, "**")
    if paths:
        FileSystems.delete(paths)
