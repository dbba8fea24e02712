"""Crash safety beyond tests/test_index.py (issue 8): a full disk during every kind of write (build,
add, delete, compact) at several limits, a real ENOSPC on a small tmpfs where this machine lets the
test mount one, and a stale lock left by a writer SIGKILLed while it held it."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import index_helpers as H
from edgecolbert_native.index import Index

HERE = os.path.dirname(os.path.abspath(__file__))


def _state(path) -> tuple:
    """Live ids (sorted), segments, tombstones, with every checksum verified, and every document's text,
    metadata and vectors those of its id."""
    idx = Index.open(path, verify=True)
    ids = np.sort(np.asarray(idx.ids))
    assert len(np.unique(ids)) == len(ids)
    x, off, _ = H.clustered(400, seed=3)
    H.documents_agree(idx, x, off)
    return tuple(ids.tolist()), len(idx.segments), len(idx.tombstones)


_WRITE = r"""
import errno, os, resource, sys, numpy as np
sys.path.insert(0, {here!r})
import index_helpers as H
from edgecolbert_native.index import Index
x, off, _ = H.clustered(400, seed=3)
op, path, limit = {op!r}, {path!r}, {limit!r}
idx = Index.open(path)
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # no file may grow past `limit` bytes
try:
    if op == "add":
        t, m = H.crash_documents(range(1000, 1200))
        idx.add(x[: off[200]], off[:201], doc_ids=np.arange(1000, 1200), texts=t, metadata=m)
    elif op == "add-text":  # vectors that fit under the limit, a store that does not
        t, m = H.crash_documents([1000])
        idx.add(x[: off[1]], off[:2], doc_ids=[1000], texts=[t[0] + " " * 100_000], metadata=m)
    elif op == "delete":
        idx.delete(np.arange(0, 200, 3))
    elif op == "compact":
        idx.compact()
    else:
        t, m = H.crash_documents(range(5000, 5300))
        Index.build(path, x[: off[300]], off[:301], doc_ids=np.arange(5000, 5300), nbits=2, num_centroids=64,
                    overwrite=True, texts=t, metadata=m)
except OSError as e:
    print("error:", errno.errorcode.get(e.errno, e.errno), e, flush=True)
    sys.exit(3)
print("no error", flush=True)
"""


def _prepare(path: str) -> tuple:
    x, off, _ = H.clustered(400, seed=3)
    t, m = H.crash_documents(range(400))
    Index.build(path, x, off, nbits=2, num_centroids=64, overwrite=True, texts=t, metadata=m)
    Index.open(path).delete([1, 2, 4])  # so that compact has work to do
    return _state(path)


@pytest.mark.parametrize("op", ["build", "add", "delete", "compact"])
@pytest.mark.parametrize("limit", [1, 600, 20_000])
def test_file_size_limit_during_every_write_keeps_old_state(op, limit, tmp_path):
    """RLIMIT_FSIZE makes a write past `limit` bytes fail with EFBIG, as a full disk fails with ENOSPC
    (CPython ignores SIGXFSZ): the writer gets a clear OSError, the index still holds exactly the old
    state, leaves no temporary file behind once the next writer ran, and is writable again."""
    path = str(tmp_path / "lim")
    before = _prepare(path)
    files_before = set(os.listdir(path))
    r = subprocess.run([sys.executable, "-c", _WRITE.format(here=HERE, op=op, path=path, limit=limit)],
                       capture_output=True, text=True, timeout=180)
    if r.returncode == 0:  # the operation fitted under the limit (a delete writes little): the new state
        assert "no error" in r.stdout and _state(path) != before
        return
    assert r.returncode == 3, r.stdout + r.stderr
    assert "EFBIG" in r.stdout and "File too large" in r.stdout, r.stdout
    assert _state(path) == before
    x, off, _ = H.clustered(400, seed=3)
    t, m = H.crash_documents(range(9000, 9010))
    Index.open(path).add(x[: off[10]], off[:11], doc_ids=np.arange(9000, 9010), texts=t, metadata=m)
    after = _state(path)
    assert set(after[0]) == set(before[0]) | set(range(9000, 9010))
    left = {f for f in set(os.listdir(path)) - files_before if ".tmp" in f}
    assert not left, f"temporary files left after a failed {op}: {sorted(left)}"


def test_file_size_limit_while_writing_the_document_store_keeps_old_state(tmp_path):
    """An add whose vectors fit under the limit and whose document store does not: SQLite's failed write
    is an OSError naming the store's file, and the index keeps exactly the old state."""
    path = str(tmp_path / "lim")
    before = _prepare(path)
    r = subprocess.run([sys.executable, "-c", _WRITE.format(here=HERE, op="add-text", path=path, limit=60_000)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "writing the document store failed" in r.stdout and "docs.db" in r.stdout, r.stdout
    assert _state(path) == before
    assert not [f for f in os.listdir(path) if ".tmp" in f]  # the writer removed its partial store


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs: a real ENOSPC. Needs the right to mount (root in a container that allows it)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); RLIMIT_FSIZE tests cover it")
    try:
        yield str(mnt)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_disk_keeps_old_state(small_tmpfs):
    """Fill a 1 MiB tmpfs with the index and ballast until the next add cannot fit: ENOSPC, old state."""
    path = os.path.join(small_tmpfs, "idx")
    before = _prepare(path)
    ballast = os.path.join(small_tmpfs, "ballast")
    st = os.statvfs(small_tmpfs)
    free = st.f_bavail * st.f_frsize
    with open(ballast, "wb") as f:  # leave about 24 kB: the add below needs more
        f.write(b"\0" * max(0, free - 24_000))
    r = subprocess.run([sys.executable, "-c", _WRITE.format(here=HERE, op="add", path=path, limit=0)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "ENOSPC" in r.stdout, r.stdout
    assert _state(path) == before
    os.unlink(ballast)  # space again: the index takes the write
    x, off, _ = H.clustered(400, seed=3)
    t, m = H.crash_documents(range(1000, 1200))
    Index.open(path).add(x[: off[200]], off[:201], doc_ids=np.arange(1000, 1200), texts=t, metadata=m)
    assert set(_state(path)[0]) == set(before[0]) | set(range(1000, 1200))


_HOLDER = r"""
import sys, time, numpy as np
sys.path.insert(0, {here!r})
import index_helpers as H
from edgecolbert_native.index import Index
from edgecolbert_native.index import _storage
x, off, _ = H.clustered(400, seed=3)
idx = Index.open({path!r})
real = _storage.write_manifest
def stall(*a, **k):  # hold the writer lock, data written, just before the commit
    print("holding", flush=True)
    time.sleep(60)
_storage.write_manifest = stall
import edgecolbert_native.index.index as m
if hasattr(m, "write_manifest"):
    m.write_manifest = stall
t, m = H.crash_documents(range(7000, 7050))
idx.add(x[: off[50]], off[:51], doc_ids=np.arange(7000, 7050), texts=t, metadata=m)  # its store orphaned too
"""


def _lock_is_free(path: str) -> bool:
    fd = os.open(os.path.join(path, "LOCK"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_stale_lock_of_a_killed_writer_is_recovered(tmp_path):
    """A writer SIGKILLed while it holds the lock (its data files written, the manifest not yet): the
    LOCK file stays on disk but holds no lock, the next writer proceeds, the half-done add is invisible
    and its orphaned files are collected."""
    from edgecolbert_native.index import IndexLockedError

    path = str(tmp_path / "stale")
    before = _prepare(path)
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER.format(here=HERE, path=path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        assert not _lock_is_free(path)
        with pytest.raises(IndexLockedError, match="LOCK|lock|writer"):
            Index.open(path).delete([0])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert os.path.exists(os.path.join(path, "LOCK"))  # the stale lock file ...
    deadline = time.monotonic() + 5
    while not _lock_is_free(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _lock_is_free(path)  # ... is no lock
    assert _state(path) == before
    Index.open(path).delete([0])
    assert set(_state(path)[0]) == set(before[0]) - {0}
    from edgecolbert_native.index._storage import referenced_files, read_manifest

    live = referenced_files(read_manifest(path)) | {"manifest.json", "LOCK"}
    assert set(os.listdir(path)) <= live, f"orphaned files not collected: {sorted(set(os.listdir(path)) - live)}"
    shutil.rmtree(path)
