"""Writing segments: what one ``build``, ``add``, ``compact`` or colbert-ai import puts on disk.

A segment is

    codes        uint16 [T] (int32 when there are more than 65,536 centroids): nearest centroid
    residuals    uint8  [T, dim*nbits/8]: packed residual buckets, the codec's layout
    doclens      int32  [n]
    ivf          int32  [P]: local document numbers, grouped by centroid, ascending inside a group
    ivf_offsets  int64  [K+1]: group c is ivf[ivf_offsets[c]:ivf_offsets[c+1]]
    ids          int64 [n] or unicode [n]: the caller's document ids

``SegmentWriter`` streams codes and residuals chunk by chunk and keeps only each chunk's unique
(centroid, document) pairs, from which the IVF is built at the end; no step holds the segment's tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._arrays import to_numpy
from .._progress import progress_bar
from ._storage import ArrayWriter, write_array

# Compaction copies documents in chunks of about this many bytes of codes and residuals (2^20 tokens at most).
COMPACT_CHUNK_BYTES = 1 << 25


def code_dtype(num_centroids: int) -> np.dtype:
    return np.dtype("<u2") if num_centroids <= 65536 else np.dtype("<i4")


def ragged_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of the ranges [starts[i], ends[i]) as one int64 array (no Python loop)."""
    lens = (ends - starts).astype(np.int64)
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, np.int64)
    shift = np.repeat(starts.astype(np.int64) - (np.cumsum(lens) - lens), lens)
    return np.arange(total, dtype=np.int64) + shift


def check_segment_sizes(doclens: np.ndarray) -> None:
    """doclens and the IVF's document numbers are stored as int32 (format version 2): a longer document or
    a larger segment would be written wrapped, and the index could not be opened again."""
    top = np.iinfo(np.int32).max
    if len(doclens) > top:
        raise ValueError(f"a segment holds at most {top:,} documents, got {len(doclens):,}")
    if len(doclens) and int(np.max(doclens)) > top:
        raise ValueError(f"a document may hold at most {top:,} tokens, got {int(np.max(doclens)):,}")


def ivf_from_keys(keys: list[np.ndarray], num_centroids: int) -> tuple[np.ndarray, np.ndarray]:
    """(ivf, ivf_offsets) from keys ``centroid << 32 | document``, unique within each array, the arrays
    over disjoint documents: each centroid's documents, ascending."""
    allk = np.concatenate(keys) if keys else np.empty(0, np.int64)
    allk.sort()
    cells = allk >> 32
    ivf = (allk & 0xFFFFFFFF).astype(np.int32)
    ivf_offsets = np.zeros(num_centroids + 1, np.int64)
    np.cumsum(np.bincount(cells, minlength=num_centroids), out=ivf_offsets[1:])
    return ivf, ivf_offsets


def normalize_ids(ids: Any, n: int, kind: str | None, next_int: int, fn: str) -> tuple[np.ndarray, str]:
    """The caller's ids as int64 or unicode (``kind`` "int" or "str"), checked: one per document, unique, of
    the index's kind when it has one. None: ``next_int`` onwards."""
    if ids is None:
        if kind == "str":
            raise ValueError(f"{fn}: this index has string ids; pass doc_ids")
        if n and next_int + n - 1 > np.iinfo(np.int64).max:
            raise ValueError(f"{fn}: the next default doc_ids ({next_int}..) do not fit in int64; pass doc_ids")
        return np.arange(next_int, next_int + n, dtype=np.int64), "int"
    ids = to_numpy(ids)
    seq = list(ids) if not isinstance(ids, np.ndarray) else None
    arr = np.asarray(seq if seq is not None else ids)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{fn}: doc_ids must have one id per document ({n}), got shape {arr.shape}")
    if arr.dtype.kind == "U" and seq is not None and not all(isinstance(x, str) for x in seq):
        # numpy turns [1, "b"] into strings: the mix shows only in the values given
        raise TypeError(f"{fn}: doc_ids must be all integers or all strings, got a mix")
    if arr.dtype.kind in "iu" or (n == 0 and kind != "str"):
        if arr.dtype.kind == "u" and n and arr.max() > np.iinfo(np.int64).max:  # stored as int64: would wrap
            raise ValueError(f"{fn}: doc_ids must fit in int64, got {int(arr.max())}")
        got, arr = "int", arr.astype(np.int64)
    elif arr.dtype.kind == "U" or (arr.dtype.kind == "O" and all(isinstance(x, str) for x in arr)):
        got = "str"
        # Checked on the values given: numpy's fixed-width strings drop trailing NULs ("a\x00" -> "a").
        given = seq if seq is not None else (arr.tolist() if arr.dtype.kind == "O" else [])
        arr = arr.astype(str)
        if any("\x00" in s for s in given) or any("\x00" in s for s in arr.tolist()):
            raise ValueError(f"{fn}: string ids may not contain NUL characters")
    else:
        raise TypeError(f"{fn}: doc_ids must be all integers or all strings, got {arr.dtype}")
    if kind is not None and got != kind:
        raise TypeError(f"{fn}: this index has {kind} ids, got {got} ids")
    if len(np.unique(arr)) != n:
        raise ValueError(f"{fn}: doc_ids are not unique")
    return arr, got


class SegmentWriter:
    """One segment's files: ``write`` appends tokens (codes, packed residuals, local document numbers) to
    the codes and residuals files, streaming; ``finish`` writes the IVF, doclens and ids and returns the
    segment's manifest entry. Used as a context manager, an exception removes the unfinished files."""

    def __init__(self, path: str, prefix: str, num_centroids: int, packed_dim: int) -> None:
        self.path, self.prefix, self.num_centroids = path, prefix, num_centroids
        self._codes = ArrayWriter(path, f"{prefix}-codes.bin", code_dtype(num_centroids))
        self._residuals = ArrayWriter(path, f"{prefix}-residuals.bin", np.uint8, (packed_dim,))
        # Unique (centroid, document) pairs per write: at most 8 bytes per token, the IVF's only input.
        self._keys: list[np.ndarray] = []

    def write(self, codes: Any, residuals: Any, docs: np.ndarray) -> None:
        codes = np.asarray(codes)
        self._codes.write(codes)
        self._residuals.write(residuals)
        self._keys.append(np.unique((codes.astype(np.int64) << 32) | docs.astype(np.int64)))

    def finish(self, doclens: np.ndarray, ids: np.ndarray, ivf: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
        """``ivf``: (ivf, ivf_offsets) known from elsewhere (a colbert-ai import) instead of the written codes."""
        check_segment_sizes(doclens)
        files = {"codes": self._codes.finish(), "residuals": self._residuals.finish()}
        lists, list_offsets = ivf if ivf is not None else ivf_from_keys(self._keys, self.num_centroids)
        self._keys = []
        files["ivf"] = write_array(self.path, f"{self.prefix}-ivf.bin", lists)
        files["ivf_offsets"] = write_array(self.path, f"{self.prefix}-ivf_offsets.bin", list_offsets)
        files["doclens"] = write_array(self.path, f"{self.prefix}-doclens.bin", np.asarray(doclens, np.int32))
        files["ids"] = write_array(self.path, f"{self.prefix}-ids.bin", ids)
        return {"num_docs": len(doclens), "num_tokens": int(np.sum(doclens, dtype=np.int64)), "files": files}

    def abort(self) -> None:
        self._codes.abort()
        self._residuals.abort()

    def __enter__(self) -> "SegmentWriter":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            self.abort()


def write_segment(path: str, prefix: str, src: Any, ids: np.ndarray, codec: Any, num_centroids: int, nbits: int,
                  num_threads: int | None, progress: bool | None, fn: str) -> dict:
    """Compresses a source (index/_sources) chunk by chunk into a new segment."""
    with SegmentWriter(path, prefix, num_centroids, src.dim * nbits // 8) as seg, \
            progress_bar(src.num_tokens, f"{fn}: compress", enabled=progress, unit="tokens") as bar:
        for d0, d1 in src.chunks():
            lo, hi = int(src.offsets[d0]), int(src.offsets[d1])
            if hi == lo:
                continue
            codes, residuals = codec.compress(src.tokens(lo, hi), num_threads=num_threads)
            seg.write(codes, residuals, np.repeat(np.arange(d0, d1, dtype=np.int64), np.diff(src.offsets[d0:d1 + 1])))
            bar.update(hi - lo)
        return seg.finish(np.diff(src.offsets), ids)


def compact_segments(path: str, prefix: str, segments: list, live: np.ndarray, num_centroids: int, packed_dim: int,
                     progress: bool | None) -> dict:
    """The live documents of ``segments`` (codes and residuals copied, never recompressed) as one segment."""
    lens, ids = [], []
    out_doc = 0
    total = sum(int(s.offsets[-1]) for s in segments)
    step = max(1, min(1 << 20, COMPACT_CHUNK_BYTES // (packed_dim + 4)))
    with SegmentWriter(path, prefix, num_centroids, packed_dim) as seg, \
            progress_bar(total, "Index.compact", enabled=progress, unit="tokens") as bar:
        for s in segments:
            keep = live[s.base:s.base + s.n]
            d0 = 0
            while d0 < s.n:  # document-aligned chunks of about `step` tokens
                d1 = int(np.searchsorted(s.offsets, s.offsets[d0] + step, side="right")) - 1
                d1 = min(max(d1, d0 + 1), s.n)
                sel = np.flatnonzero(keep[d0:d1]) + d0
                if len(sel):
                    tok = ragged_ranges(s.offsets[sel], s.offsets[sel + 1])
                    dl = (s.offsets[sel + 1] - s.offsets[sel]).astype(np.int64)
                    seg.write(s.codes[tok], s.residuals[tok],
                              np.repeat(np.arange(out_doc, out_doc + len(sel), dtype=np.int64), dl))
                    lens.append(dl)
                    ids.append(np.asarray(s.ids[sel]))
                    out_doc += len(sel)
                bar.update(int(s.offsets[d1] - s.offsets[d0]))
                d0 = d1
        id_dtype: Any = segments[0].ids.dtype if segments else np.dtype(np.int64)
        if ids and id_dtype.kind == "U":
            id_dtype = np.result_type(*[i.dtype for i in ids])
        doclens = np.concatenate(lens) if lens else np.empty(0, np.int64)
        return seg.finish(doclens, np.concatenate(ids).astype(id_dtype) if ids else np.empty(0, id_dtype))
