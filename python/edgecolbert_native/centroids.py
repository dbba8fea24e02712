"""Centroid search, assignment and spherical k-means on numpy arrays and CPU torch tensors.

Scores are inner products, accumulated in float32 (token and centroid dtypes float32, float16 or
bfloat16). Every call is one native call that releases the GIL and splits its work over
``num_threads`` (default: every core this process may use); results do not depend on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _native
from ._arrays import as_array, check_threads
from ._progress import progress_bar


def centroid_search(
    query_tokens: Any,
    centroids: Any,
    nprobe: int,
    *,
    num_threads: int | None = None,
    dtype: str | None = None,
    _isa: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``nprobe`` centroids per token: ``(scores float32 [m, nprobe], ids int32 [m, nprobe])``.

    query_tokens ``[m, dim]``, centroids ``[K, dim]``. Best first; equal scores go to the lower id; NaN
    scores rank last. Streaming: no ``[m, K]`` matrix is built. ``1 <= nprobe <= K``.
    """
    fn = "centroid_search"
    _check_int(nprobe, fn, "nprobe")
    q, qd = as_array(query_tokens, fn, "query_tokens", dtype)
    c, cd = as_array(centroids, fn, "centroids", dtype)
    return _native.centroid_topk(q, c, int(nprobe), True, num_threads, qd, cd, _isa, fn, "query_tokens")


def centroid_scores(
    query_tokens: Any, centroids: Any, *, num_threads: int | None = None, dtype: str | None = None, _isa: str = ""
) -> np.ndarray:
    """Dense scores ``float32 [m, K]``: ``out[i, j] = <query_tokens[i], centroids[j]>`` (PLAID's centroid
    interaction)."""
    fn = "centroid_scores"
    q, qd = as_array(query_tokens, fn, "query_tokens", dtype)
    c, cd = as_array(centroids, fn, "centroids", dtype)
    return _native.centroid_scores(q, c, num_threads, qd, cd, _isa)


def assign(
    tokens: Any, centroids: Any, *, num_threads: int | None = None, dtype: str | None = None, _isa: str = ""
) -> np.ndarray:
    """Nearest centroid by inner product for every token: ``int32 [T]``, ties to the lower id.

    Streams over tokens 256 at a time against L2-sized slices of the centroids, so memory stays
    O(threads) whatever T (10^8 tokens never need a ``T x K`` buffer).
    """
    fn = "assign"
    t, td = as_array(tokens, fn, "tokens", dtype)
    c, cd = as_array(centroids, fn, "centroids", dtype)
    ids = _native.centroid_topk(t, c, 1, False, num_threads, td, cd, _isa, fn, "tokens")
    return ids.reshape(-1)


def _check_int(v: Any, fn: str, arg: str) -> None:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise TypeError(f"{fn}: {arg} must be an int, got {type(v).__name__}")


def as_float32_matrix(x: Any, fn: str, arg: str, dtype: str | None = None) -> np.ndarray:
    """A C-contiguous float32 [n, dim] copy or view of a token matrix (bf16 / f16 widened exactly)."""
    a, declared = as_array(x, fn, arg, dtype)
    if a.ndim != 2:
        raise ValueError(f"{fn}: {arg} must have 2 dimensions [n, dim], got shape {a.shape}")
    if declared == "bfloat16":
        a = (np.ascontiguousarray(a).astype(np.uint32) << 16).view(np.float32)
    return np.ascontiguousarray(a, dtype=np.float32)


# Bytes of the temporaries a k-means step or a finiteness check makes at once (not a copy of the sample).
_BLOCK_BYTES = 1 << 24


def _block_rows(x: np.ndarray, bytes_per_value: int) -> int:
    return max(1, _BLOCK_BYTES // (bytes_per_value * max(x.shape[1], 1)))


def all_finite(x: np.ndarray) -> bool:
    """``np.isfinite(x).all()`` for a 2-d array, a block of rows at a time (no boolean copy of ``x``)."""
    step = _block_rows(x, 1)
    return all(bool(np.isfinite(x[i:i + step]).all()) for i in range(0, x.shape[0], step))


def _cluster_sums(x: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """float64 ``[k, dim]``: the sum of each cluster's rows, added in ascending row order. Clusters are
    gathered a group at a time (rows whose float32 copy and float64 cast fit _BLOCK_BYTES; a larger cluster
    alone), instead of one reordered float32 copy plus its float64 cast (3x the sample); each cluster is
    still one ``add.reduceat`` segment, so the sums are those of one call over ``x[argsort(codes)]``, bit
    for bit."""
    counts = np.bincount(codes, minlength=k)
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(counts)
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    step = _block_rows(x, 12)
    c0 = 0
    while c0 < k:
        lo = int(ends[c0 - 1]) if c0 else 0
        c1 = min(max(int(np.searchsorted(ends, lo + step, side="right")), c0 + 1), k)
        group = np.arange(c0, c1)[counts[c0:c1] > 0]
        if len(group):
            hi = int(ends[c1 - 1])
            starts = (ends[group] - counts[group]) - lo
            sums[group] = np.add.reduceat(x[order[lo:hi]], starts, axis=0, dtype=np.float64)
        c0 = c1
    return sums


def _normalize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(x, axis=1)
    ok = norms > 0
    out = np.zeros_like(x, dtype=np.float32)
    out[ok] = (x[ok] / norms[ok, None]).astype(np.float32)
    return out, ok


def _directions(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows normalised to unit norm; a zero row cannot be a direction and becomes a random unit vector."""
    cents, ok = _normalize_rows(rows)
    if not ok.all():
        g = rng.standard_normal((int((~ok).sum()), rows.shape[1]))
        cents[~ok] = (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)
    return cents


def kmeans(
    sample: Any,
    k: int,
    *,
    niters: int = 4,
    seed: int = 0,
    num_threads: int | None = None,
    progress: bool | None = None,
    dtype: str | None = None,
    _isa: str = "",
) -> np.ndarray:
    """Spherical k-means (unit-norm centroids, as PLAID and fast-plaid use): ``float32 [k, dim]``.

    Initialised with ``k`` distinct sample rows drawn by ``numpy.random.default_rng(seed)``; each of
    ``niters`` iterations assigns every row with :func:`assign` (inner product), sums each cluster in
    float64 and re-normalises. A cluster left empty (or with a zero sum) is re-seeded with a random
    sample row from the same generator. Deterministic for a seed (and any thread count: assignment
    does not depend on it). ``progress=None`` shows a stderr progress line when stderr is a terminal
    or the run is long.
    """
    fn = "kmeans"
    _check_int(k, fn, "k")
    _check_int(niters, fn, "niters")
    check_threads(num_threads, fn)
    x = as_float32_matrix(sample, fn, "sample", dtype)
    n, dim = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"{fn}: k must be in [1, n] with n = {n} sample rows, got {k}")
    if niters < 0:
        raise ValueError(f"{fn}: niters must be >= 0, got {niters}")
    if not all_finite(x):
        raise ValueError(f"{fn}: sample contains NaN or infinity")
    rng = np.random.default_rng(seed)
    cents = _directions(x[rng.choice(n, size=k, replace=False)].astype(np.float64), rng)
    long_run = float(n) * k * dim * max(niters, 1) >= 2e11
    with progress_bar(niters, f"kmeans k={k} n={n}", enabled=progress, long_run=long_run) as bar:
        for _ in range(niters):
            codes = assign(x, cents, num_threads=num_threads, _isa=_isa)
            cents, ok = _normalize_rows(_cluster_sums(x, codes, k))
            bad = np.flatnonzero(~ok)
            if bad.size:
                # a zero row drawn here left a zero centroid for good (it attracts nothing to move it)
                cents[bad] = _directions(x[rng.choice(n, size=bad.size, replace=bad.size > n)].astype(np.float64), rng)
            bar.update()
    return cents
