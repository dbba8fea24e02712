"""The package's one way to replace a file atomically: a temporary file in the same directory, written,
fsynced, renamed over the target, and the directory fsynced, so that a crash at any moment leaves the
old file or the new one, never a mix, and the rename itself survives a power loss.

Temporary names end in ``.tmp`` (``.<name>.<random>.tmp``): an index directory's garbage collector
(index/_storage) removes what an interrupted writer left.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any


def fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A binary file that appears at ``path`` only on ``commit()``: ``write`` (any bytes-like), then
    ``commit`` (fsync, rename, directory fsync) or ``abort`` (the temporary file is removed). As a context
    manager it commits on success and aborts on an exception."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self.dir = os.path.dirname(os.path.abspath(self.path))
        fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", suffix=".tmp", dir=self.dir)
        self.file = os.fdopen(fd, "wb")

    def write(self, data: Any) -> None:
        self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def commit(self) -> None:
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        fsync_dir(self.dir)

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Replaces ``path`` with ``data`` atomically (see the module docstring)."""
    with AtomicFile(path) as f:
        f.write(data)
