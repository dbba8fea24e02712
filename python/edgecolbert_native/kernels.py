"""MaxSim kernels (and hierarchical token pooling) on numpy arrays and CPU torch tensors.

Layouts (see DESIGN.md): queries ``[nq, Lq, dim]`` with an optional boolean ``query_mask [nq, Lq]``
(False rows are ignored); documents in CSR form, ``doc_tokens [T, dim]`` row-major and
``doc_offsets`` int64 ``[n+1]`` (``offsets[0] == 0``, non-decreasing, ``offsets[n] == T``). Token dtypes
float32, float16 and bfloat16 (torch bf16 tensors, ml_dtypes arrays, or uint16 storage with
``dtype="bfloat16"``); queries and documents may differ; accumulation is float32; scores float32.

``score(q, d) = sum over kept query tokens i of max over tokens j of <q_i, d_j>``; an empty document
scores 0. A NaN similarity is ignored by the max (numpy.fmax semantics), so NaN never reaches a
score; a query token whose similarities are all NaN contributes -inf. Contiguous inputs are read in
place; non-contiguous ones are refused with a ValueError
rather than copied behind the caller's back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _native
from ._arrays import as_array, as_index_array, as_mask


def _csr_args(fn: str, queries: Any, doc_tokens: Any, doc_offsets: Any, query_mask: Any,
              dtype: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, str, str]:
    """The arguments every CSR kernel takes, as the binding reads them: (queries, doc_tokens, doc_offsets
    int64, query_mask or None, queries' declared dtype, documents' declared dtype)."""
    q, qd = as_array(queries, fn, "queries", dtype)
    d, dd = as_array(doc_tokens, fn, "doc_tokens", dtype)
    return q, d, as_index_array(doc_offsets, fn, "doc_offsets"), as_mask(query_mask, fn, "query_mask"), qd, dd


def maxsim(
    queries: Any,
    doc_tokens: Any,
    doc_offsets: Any,
    *,
    query_mask: Any = None,
    num_threads: int | None = None,
    dtype: str | None = None,
    _isa: str = "",
) -> np.ndarray:
    """Scores every query against every document: float32 ``[nq, n]``.

    queries ``[nq, Lq, dim]``; doc_tokens ``[T, dim]``; doc_offsets int64 ``[n+1]``;
    query_mask bool ``[nq, Lq]``; num_threads defaults to every core this process may use (results
    do not depend on it); dtype="bfloat16" reads uint16 arrays as bfloat16.
    """
    q, d, off, mask, qd, dd = _csr_args("maxsim", queries, doc_tokens, doc_offsets, query_mask, dtype)
    return _native.maxsim(q, d, off, mask, num_threads, qd, dd, _isa)


def maxsim_topk(
    queries: Any,
    doc_tokens: Any,
    doc_offsets: Any,
    k: int,
    *,
    query_mask: Any = None,
    num_threads: int | None = None,
    dtype: str | None = None,
    _isa: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Fused top-k: ``(scores float32 [nq, k], indices int64 [nq, k])``, best first.

    The full score matrix is never materialised. Ties go to the lower document index; NaN scores
    rank last. ``1 <= k <= n``.
    """
    fn = "maxsim_topk"
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError(f"{fn}: k must be an int, got {type(k).__name__}")
    q, d, off, mask, qd, dd = _csr_args(fn, queries, doc_tokens, doc_offsets, query_mask, dtype)
    return _native.maxsim_topk(q, d, off, int(k), mask, num_threads, qd, dd, _isa)


def maxsim_candidates(
    queries: Any,
    doc_tokens: Any,
    doc_offsets: Any,
    candidates: Any,
    *,
    query_mask: Any = None,
    num_threads: int | None = None,
    dtype: str | None = None,
    _isa: str = "",
) -> np.ndarray:
    """Scores only the given documents per query: candidates int ``[nq, c]`` -> float32 ``[nq, c]``."""
    fn = "maxsim_candidates"
    q, d, off, mask, qd, dd = _csr_args(fn, queries, doc_tokens, doc_offsets, query_mask, dtype)
    return _native.maxsim_candidates(q, d, off, as_index_array(candidates, fn, "candidates"), mask, num_threads,
                                     qd, dd, _isa)


def maxsim_padded(
    queries: Any,
    docs: Any,
    doc_mask: Any = None,
    *,
    query_mask: Any = None,
    num_threads: int | None = None,
    dtype: str | None = None,
    _isa: str = "",
) -> np.ndarray:
    """Padded documents ``[n, Ld, dim]`` with an optional boolean ``doc_mask [n, Ld]``: ``[nq, n]``.

    Follows PyLate's ``colbert_scores`` exactly: masked document tokens score 0 rather than being
    dropped, so a document with any masked token has every query row's max clamped at >= 0 (and a
    fully masked document scores 0). Masks that keep a prefix of each row are read in place; other
    masks gather the kept tokens into a compact copy.
    """
    fn = "maxsim_padded"
    q, qd = as_array(queries, fn, "queries", dtype)
    d, dd = as_array(docs, fn, "docs", dtype)
    if d.ndim != 3:
        raise ValueError(f"{fn}: docs must have 3 dimensions [n, Ld, dim], got shape {d.shape}")
    n, ld, dim = d.shape
    if not d.flags.c_contiguous:
        raise ValueError(f"{fn}: docs must be C-contiguous (numpy.ascontiguousarray makes a copy)")
    tokens = d.reshape(n * ld, dim)
    mask = as_mask(doc_mask, fn, "doc_mask")
    starts = np.arange(n, dtype=np.int64) * ld
    if mask is None:
        begin, end, floor = starts, starts + ld, None
    else:
        if mask.shape != (n, ld):
            raise ValueError(f"{fn}: doc_mask must have shape {(n, ld)} like docs, got {mask.shape}")
        lengths = mask.sum(axis=1, dtype=np.int64)
        floor = (lengths < ld).astype(np.uint8)
        if np.array_equal(mask, np.arange(ld)[None, :] < lengths[:, None]):
            begin, end = starts, starts + lengths
        else:
            tokens = np.ascontiguousarray(tokens[mask.reshape(-1)])
            end = np.cumsum(lengths)
            begin = end - lengths
    return _native.maxsim_ranges(
        q, tokens, begin, end, floor, as_mask(query_mask, fn, "query_mask"), num_threads, qd, dd, _isa, fn
    )


def pool_tokens(
    doc_tokens: Any,
    doc_offsets: Any,
    pool_factor: int,
    *,
    protected_tokens: int = 1,
    num_threads: int | None = None,
    return_rows: bool = False,
    dtype: str | None = None,
) -> tuple[np.ndarray, ...]:
    """Pools each document's tokens by hierarchical clustering, as PyLate's ``pool_factor`` does:
    ``(tokens float32 [T', dim], offsets int64 [n+1])``, CSR like the input.

    Per document, the first ``protected_tokens`` rows are kept as they are; the other m rows are
    clustered into at most ``max(m // pool_factor, 1)`` clusters by Ward linkage on the distances
    ``1 - <x_i, x_j>`` and ``fcluster(criterion="maxclust")`` (scipy's algorithm, ties included), and
    replaced by the cluster means in scipy's label order. ``pool_factor=1`` and documents with at most
    one row to pool are returned as they are. The clustering is O(m^2) memory and time per document.
    ``return_rows=True`` also returns int64 ``[T]``: the row, inside its document's pooled rows, that
    each input token went into. Documents are spread over ``num_threads``; results do not depend on it.
    float16 / bfloat16 inputs are widened to float32 (the output is float32); ``dtype="bfloat16"`` reads a
    2-byte integer array as bfloat16 storage, as the other kernels do.
    """
    fn = "pool_tokens"
    for name, value in (("pool_factor", pool_factor), ("protected_tokens", protected_tokens)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__}")
    arr, declared = as_array(doc_tokens, fn, "doc_tokens", dtype)
    if declared == "bfloat16":  # bfloat16 is the top half of a float32: widening is exact
        arr = (np.ascontiguousarray(arr).astype(np.uint32) << 16).view(np.float32)
    elif arr.dtype != np.float32:
        if arr.dtype.kind != "f":
            raise TypeError(f"{fn}: doc_tokens must be float32, float16 or bfloat16, got {arr.dtype}")
        arr = arr.astype(np.float32)
    return _native.pool_tokens(np.ascontiguousarray(arr), as_index_array(doc_offsets, fn, "doc_offsets"),
                               int(pool_factor), int(protected_tokens), num_threads, bool(return_rows))


def info() -> dict:
    """CPU features seen, compiled variants, the paths this CPU can run and the chosen one.

    Keys: ``features`` (CPU features read at start-up, with ``os_ymm``/``os_zmm`` when the OS saves the
    wide registers), ``compiled`` (variants built into this module), ``variants`` (compiled variants
    this CPU can run), ``paths`` (runnable ISA families: scalar, avx2, avx512, neon), ``isa`` (chosen
    family), ``variant`` (chosen variant: scalar, avx2, avx2_vnni, avx512, avx512_vnni, avx512_bf16,
    neon, neon_dotprod, neon_bf16, neon_i8mm), ``fast_int8_centroid_scores`` (whether the index scores
    centroids in int8 by default: a dot-product instruction, docs/index.md), ``default_num_threads``.
    """
    return dict(_native.info())
