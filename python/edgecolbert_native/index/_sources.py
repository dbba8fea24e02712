"""Document inputs for build/add, turned into one random-access CSR source.

Accepted forms: a CSR pair (``doc_tokens [T, dim]`` + ``doc_offsets [n+1]``; numpy arrays,
``np.memmap``, torch CPU tensors), a list of per-document ``[len, dim]`` arrays or tensors, or an
iterator of batches (each a CSR pair ``(tokens, offsets)``, a ``(tokens, offsets, ids)`` triple, or a
list of per-document arrays). An iterator is spilled once to a raw file on disk (in the input's
float dtype, bf16 as float32; from a float32 batch on float32, the float16 rows before it widened,
exactly) so that sampling and compression can read it like an array while memory stays bounded;
the spill is removed after the build. The spill is read with ``pread``, not mapped: a mapping's pages
count in the process's resident memory once read, which for a collection larger than RAM would be all
of it.

Reading is by chunks of about CHUNK_BYTES of float32 (``chunk_tokens``), so what a build holds besides
the k-means sample does not grow with the collection or with dim.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any, Iterator

import numpy as np

from .._arrays import as_array, as_index_array
from ._segments import check_segment_sizes

CHUNK_BYTES = 1 << 25  # float32 bytes of one chunk of tokens (32 MiB)
MAX_CHUNK_TOKENS = 1 << 17  # 25 MB at dim 48: the chunk before it was sized in bytes


def chunk_tokens(dim: int) -> int:
    """Tokens per read / compression chunk at this dim: CHUNK_BYTES of float32, at most MAX_CHUNK_TOKENS."""
    return max(1, min(MAX_CHUNK_TOKENS, CHUNK_BYTES // (4 * max(dim, 1))))


def _as_f32(rows: np.ndarray) -> np.ndarray:
    """float32 rows of a block read from an input held as given: uint16 is bf16 storage (as_array hands
    2-byte integers over only as bfloat16), anything else is cast."""
    if rows.dtype == np.uint16:
        return (rows.astype(np.uint32) << 16).view(np.float32)
    return np.ascontiguousarray(rows, dtype=np.float32)  # a column slice is strided: the codec reads rows in place


def _float_rows(x: Any, fn: str, arg: str, *, as_given: bool = False) -> np.ndarray:
    """A [tokens, dim] input as float32 or float16 rows, or with ``as_given`` as it is (bf16 as its uint16
    storage, float64 as float64): the array and list sources widen a chunk at a time, so a bf16 or float64
    collection is never copied whole."""
    a, declared = as_array(x, fn, arg)
    if a.ndim != 2:
        raise ValueError(f"{fn}: {arg} must have 2 dimensions [tokens, dim], got shape {a.shape}")
    if as_given:
        return a
    if declared == "bfloat16" or a.dtype not in (np.float32, np.float16):
        return _as_f32(a)
    return a


def _check_offsets(off: np.ndarray, T: int, fn: str) -> None:
    if off.ndim != 1 or off.size < 1:
        raise ValueError(f"{fn}: doc_offsets must be 1-D with n+1 entries, got shape {off.shape}")
    if off[0] != 0 or off[-1] != T or (off.size > 1 and np.any(np.diff(off) < 0)):
        raise ValueError(f"{fn}: doc_offsets must start at 0, not decrease and end at {T} (doc_tokens rows)")


class Source:
    """Random access to a CSR collection: ``offsets`` (int64, in memory) and ``tokens(lo, hi)``
    returning float32 rows for token range [lo, hi)."""

    def __init__(self, offsets: np.ndarray, dim: int) -> None:
        self.offsets, self.dim = offsets, dim
        self.num_docs = len(offsets) - 1
        self.num_tokens = int(offsets[-1])
        self.cleanup: list[str] = []
        check_segment_sizes(np.diff(offsets))  # before any work, not at the segment's end

    def tokens(self, lo: int, hi: int) -> np.ndarray:
        raise NotImplementedError

    def gather(self, positions: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """float32 rows at sorted token positions, read chunk by chunk: row ``rows[j]`` of the result is
        the token at ``positions[j]`` (``rows`` default 0, 1, ...: a permutation lets the caller have the
        rows in another order without a second copy)."""
        out = np.empty((len(positions), self.dim), dtype=np.float32)
        start, step = 0, chunk_tokens(self.dim)
        for lo in range(0, self.num_tokens, step):
            hi = min(lo + step, self.num_tokens)
            end = int(np.searchsorted(positions, hi))
            if end > start:
                block = self.tokens(lo, hi)[positions[start:end] - lo]
                if rows is None:
                    out[start:end] = block
                else:
                    out[rows[start:end]] = block
            start = end
        return out

    def chunks(self) -> Iterator[tuple[int, int]]:
        """Document ranges [d0, d1) of about ``chunk_tokens(dim)`` tokens (a longer document is its own chunk)."""
        d0, n, step = 0, self.num_docs, chunk_tokens(self.dim)
        while d0 < n:
            target = self.offsets[d0] + step
            d1 = int(np.searchsorted(self.offsets, target, side="right")) - 1
            d1 = min(max(d1, d0 + 1), n)
            yield d0, d1
            d0 = d1

    def close(self) -> None:
        for p in self.cleanup:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


class ArraySource(Source):
    def __init__(self, tokens: np.ndarray, offsets: np.ndarray) -> None:
        super().__init__(offsets, tokens.shape[1])
        self._t = tokens

    def tokens(self, lo: int, hi: int) -> np.ndarray:
        return _as_f32(self._t[lo:hi])


class SpillSource(Source):
    """Rows of a raw file (C order, ``dtype``), read with ``pread`` per call: nothing stays mapped."""

    def __init__(self, path: str, dtype: np.dtype, offsets: np.ndarray, dim: int) -> None:
        super().__init__(offsets, dim)
        self.path, self.dtype = path, np.dtype(dtype)
        self.row_bytes = self.dtype.itemsize * dim
        self._fd = os.open(path, os.O_RDONLY)

    def tokens(self, lo: int, hi: int) -> np.ndarray:
        n = max(hi - lo, 0)
        buf = bytearray(n * self.row_bytes)
        view, done = memoryview(buf), 0
        while done < len(buf):
            got = os.preadv(self._fd, [view[done:]], lo * self.row_bytes + done)
            if got == 0:
                raise OSError(f"{self.path}: spill file shorter than its {self.num_tokens} tokens")
            done += got
        return np.frombuffer(buf, dtype=self.dtype).reshape(n, self.dim).astype(np.float32, copy=False)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


class RangeSource(Source):
    """Documents [d0, d1) of another source, read through it (no copy; closing it leaves the parent open):
    one shard of a sharded build."""

    def __init__(self, parent: Source, d0: int, d1: int) -> None:
        self._parent, self._t0 = parent, int(parent.offsets[d0])
        super().__init__(np.asarray(parent.offsets[d0:d1 + 1], np.int64) - self._t0, parent.dim)

    def tokens(self, lo: int, hi: int) -> np.ndarray:
        return self._parent.tokens(self._t0 + lo, self._t0 + hi)

    def close(self) -> None:
        pass


class ListSource(Source):
    def __init__(self, docs: list[np.ndarray], dim: int) -> None:
        lens = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        super().__init__(np.concatenate([[0], np.cumsum(lens)]).astype(np.int64), dim)
        self._docs = docs

    def tokens(self, lo: int, hi: int) -> np.ndarray:
        d0 = int(np.searchsorted(self.offsets, lo, side="right")) - 1
        d1 = int(np.searchsorted(self.offsets, hi, side="left"))
        parts = [_as_f32(d) for d in self._docs[d0:d1]]
        block = np.concatenate(parts) if parts else np.empty((0, self.dim), np.float32)
        base = int(self.offsets[d0])
        return block[lo - base:hi - base]


def _docs_list(x: list, fn: str, as_given: bool = False) -> list[np.ndarray]:
    docs = [_float_rows(d, fn, f"documents[{i}]", as_given=as_given) for i, d in enumerate(x)]
    if docs and len({d.shape[1] for d in docs}) != 1:
        raise ValueError(f"{fn}: documents have different dims {sorted({d.shape[1] for d in docs})}")
    return docs


def make_source(doc_tokens: Any, doc_offsets: Any, doc_ids: Any, fn: str, spill_dir: str) -> tuple[Source, Any]:
    """Returns (source, ids or None). A Source is taken as it is (the sharded build's shards)."""
    if isinstance(doc_tokens, Source):
        if doc_offsets is not None:
            raise ValueError(f"{fn}: doc_offsets is not used with a source")
        return doc_tokens, doc_ids
    if isinstance(doc_tokens, (list, tuple)):
        if doc_offsets is not None:
            raise ValueError(f"{fn}: doc_offsets goes with a [T, dim] token array, not a list of documents")
        docs = _docs_list(list(doc_tokens), fn, as_given=True)
        if not docs:
            raise ValueError(f"{fn}: no documents")
        return ListSource(docs, docs[0].shape[1]), doc_ids
    if hasattr(doc_tokens, "__next__") or (hasattr(doc_tokens, "__iter__") and not hasattr(doc_tokens, "shape")
                                            and not hasattr(doc_tokens, "__array__")):
        if doc_offsets is not None:
            raise ValueError(f"{fn}: doc_offsets is not used with an iterator of batches")
        return _spill(iter(doc_tokens), doc_ids, fn, spill_dir)
    if doc_offsets is None:
        raise ValueError(f"{fn}: doc_offsets is required with a [T, dim] token array")
    t = _float_rows(doc_tokens, fn, "doc_tokens", as_given=True)
    off = as_index_array(doc_offsets, fn, "doc_offsets")
    _check_offsets(off, t.shape[0], fn)
    return ArraySource(t, off), doc_ids


def _widen_spill(f: Any, rows: int, dim: int, old: np.dtype, new: np.dtype) -> None:
    """Rewrites the ``rows`` rows spilled so far from ``old`` to the wider ``new`` dtype, in place and a
    chunk at a time, last chunk first: a chunk's new bytes start at or after the end of every earlier
    chunk's old bytes, which are still to be read."""
    step = chunk_tokens(dim)
    for lo in reversed(range(0, rows, step)):
        hi = min(lo + step, rows)
        f.seek(lo * dim * old.itemsize)
        block = np.frombuffer(f.read((hi - lo) * dim * old.itemsize), dtype=old).astype(new)
        f.seek(lo * dim * new.itemsize)
        f.write(memoryview(block).cast("B"))  # type: ignore[arg-type]
    f.seek(rows * dim * new.itemsize)


_SPILL = re.compile(r"spill-[0-9a-f]{32}\.bin")


def remove_stale_spills(spill_dir: str) -> None:
    """Deletes spill files a killed build left in ``spill_dir`` (an index directory's garbage collection
    removes them there; a sharded build's top directory has only this)."""
    for name in os.listdir(spill_dir):
        if _SPILL.fullmatch(name):
            try:
                os.unlink(os.path.join(spill_dir, name))
            except FileNotFoundError:
                pass


def _spill(it: Iterator, doc_ids: Any, fn: str, spill_dir: str) -> tuple[Source, Any]:
    path = os.path.join(spill_dir, f"spill-{uuid.uuid4().hex}.bin")
    lens: list[np.ndarray] = []
    ids: list[Any] = []
    dim, dtype, rows = None, None, 0
    try:
        with open(path, "w+b") as f:  # read back too: float16 rows are widened if a float32 batch follows
            for b, batch in enumerate(it):
                bids = None
                if isinstance(batch, list):
                    docs = _docs_list(batch, fn)
                    tok = np.concatenate(docs) if docs else None
                    blens = np.array([len(d) for d in docs], dtype=np.int64)
                else:
                    if not isinstance(batch, tuple) or len(batch) not in (2, 3):
                        raise TypeError(f"{fn}: batch {b} must be (tokens, offsets), (tokens, offsets, ids) or a list of documents")
                    tok = _float_rows(batch[0], fn, f"batch {b} tokens")
                    off = as_index_array(batch[1], fn, f"batch {b} offsets")
                    _check_offsets(off, tok.shape[0], fn)
                    blens = np.diff(off)
                    bids = batch[2] if len(batch) == 3 else None
                if bids is not None:
                    ids.extend(list(np.asarray(bids).tolist()))
                elif ids:
                    raise ValueError(f"{fn}: batch {b} has no ids while earlier batches had")
                if tok is None or len(blens) == 0:
                    continue
                if dim is None:
                    dim, dtype = tok.shape[1], tok.dtype
                if tok.shape[1] != dim:
                    raise ValueError(f"{fn}: batch {b} has dim {tok.shape[1]}, earlier batches {dim}")
                if tok.dtype.itemsize > np.dtype(dtype).itemsize:  # rounding this batch would lose precision
                    _widen_spill(f, rows, dim, np.dtype(dtype), tok.dtype)
                    dtype = tok.dtype
                if len(tok):  # a batch of empty documents adds lengths only (memoryview refuses an empty 2-d cast)
                    f.write(memoryview(np.ascontiguousarray(tok, dtype=dtype)).cast("B"))  # type: ignore[arg-type]
                rows += len(tok)
                lens.append(blens)
            f.flush()
            os.fsync(f.fileno())
        if dim is None:
            raise ValueError(f"{fn}: the iterator gave no documents")
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(lens))]).astype(np.int64)
        src: Source = SpillSource(path, np.dtype(dtype), offsets, dim)
        src.cleanup.append(path)
    except BaseException:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        raise
    if ids and doc_ids is not None:
        raise ValueError(f"{fn}: ids given both in batches and as doc_ids")
    return src, (ids if ids else doc_ids)
