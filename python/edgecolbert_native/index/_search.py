"""PLAID-style search (Santhanam et al., 2022) with WARP's missing-similarity estimate
(Scheerer et al., 2025) for the first, cheapest stage: one native call per query batch, whatever the
index's state (several segments, tombstones, a ``subset``), csrc/cpu/plaid_search.cpp.

Per query (``m`` kept tokens), after scoring its tokens against every centroid (int8 where that is faster,
CENTROID_SCORES):

1. probe: the top ``nprobe`` centroids per query token;
2. stage A, from the IVF alone: for every document in a probed list, per query token the best score
   of a probed centroid holding it, or the token's (nprobe+1)-th centroid score when none does (an
   upper bound on what an unprobed centroid could give); the sum over tokens ranks the candidates;
   keep the best ``ndocs`` (live and in the subset only), over every segment at once; the probe widens
   (x4) while a filter leaves the pool short (docs/index.md, "Search");
3. stage B, PLAID's centroid interaction: ``Σ_i max_j S[i, code_j]`` over the tokens of each of those
   documents (centroids whose best score over the query tokens is under ``centroid_score_threshold``
   count as 0; no pruning by default), read from each document's distinct codes (the same maxima;
   ``_plaid.distinct_codes``); keep the best ``rerank`` (default ``max(k, ndocs // RERANK_DIVISOR)``);
4. re-rank them from codes and residuals (fused decode + MaxSim) and return top-k.

A subset of at most 4·ndocs documents is scored exactly instead ("selective"), a subset of at most
FILL_DOCS_PER_CENTROID documents per centroid never widens the probe: its pool is filled with every one of
its documents ("fill"; stage B ranks those no probed list holds), and collections of at most
EXHAUSTIVE_TOKENS tokens are searched exhaustively with MaxSim over the decoded tokens (decoded once per open
index and cached), which is faster there: modes of the same native call.

The sharded coordinator (distributed/sharded/) drives the same stages over its shards: ``stage_source``
(a shard's native stages), ``drive`` (the stage loop, written once in C++), ``choose_mode``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .._arrays import as_array, as_mask, check_threads
from . import _plaid

# Measured crossover (docs/index.md, "Exhaustive or PLAID"): below this many tokens exhaustive
# MaxSim over the decoded tokens is faster than the PLAID stages at default parameters.
EXHAUSTIVE_TOKENS = 1 << 17
# Stage B keeps ndocs // RERANK_DIVISOR documents for the re-rank (PLAID: 4).
RERANK_DIVISOR = 4
# A subset of at most this many documents per centroid fills its pool ("fill") instead of widening the probe:
# every document of it is a candidate, at stage A's estimate or, where no probed list holds it, at the floor
# (the sum of the tokens' miss scores), and stage B ranks them. Below about one document per centroid the
# probed lists hold too few of a subset's documents at nprobe, and each x4 widening costs a pass over the
# centroid scores; the fill costs one pass over the subset (docs/index.md, "Filtered search").
FILL_DOCS_PER_CENTROID = 1
# Centroid scores for the candidate stages (probe, stage A, stage B): "int8" (quantised query rows and
# centroids, docs/index.md "int8 centroid scores"), "float32", or "auto": int8 where the CPU has a
# dot-product instruction that makes it faster (edgecolbert_native.info()["fast_int8_centroid_scores"]).
# The re-rank is exact MaxSim from the codes either way.
CENTROID_SCORES = "auto"
MAX_DIM_I8 = 65536  # kMaxDimI8, csrc/include/edgecolbert/centroids.hpp


def centroids_i8(index: Any) -> tuple | None:
    """The codec's int8 centroids when the candidate stages score in int8 (CENTROID_SCORES), else None."""
    mode = CENTROID_SCORES
    if mode == "auto":
        mode = "int8" if _fast_int8() else "float32"
    # Past MAX_DIM_I8 the int8 dot products could wrap their int32 sums (csrc/include/edgecolbert/centroids.hpp)
    return index.codec.centroids_int8() if mode == "int8" and index.dim <= MAX_DIM_I8 else None


@functools.lru_cache(maxsize=1)
def _fast_int8() -> bool:
    return bool(_ec().info().get("fast_int8_centroid_scores", False))


def _ec() -> Any:
    import edgecolbert_native as ec

    return ec


def default_params(index: Any, k: int = 10) -> dict:
    """The documented rule (docs/index.md, "Default parameters"): nprobe 4 (8 when nbits <= 2);
    ndocs = max(32·k, 1024) rounded up to a power of two, doubled for every factor 4 by which the
    index exceeds 2^22 tokens (the number of near-ties a query must see grows about like sqrt(T));
    ndocs // 4 of them are re-ranked; no centroid pruning (threshold None). Tuned on synthetic dim-48
    clusters (1M and 10M tokens) and on pydocs embedded with MiniLM (dim 384, 2.25M tokens)."""
    T = int(index.manifest["num_tokens"])
    nprobe = 8 if index.nbits <= 2 else 4
    ndocs = 1 << (max(32 * k, 1024) - 1).bit_length()  # rounded up to a power of two
    f = T / float(1 << 22)
    while f > 1.0:
        ndocs *= 2
        f /= 4.0
    return {"nprobe": nprobe, "ndocs": ndocs, "centroid_score_threshold": None}


def allowed_mask(index: Any, subset: Any, fn: str, where: str | None = None, params: Any = ()) -> np.ndarray:
    """Positions a search may return: live, in ``subset`` when one is given, and matching the metadata
    filter ``where`` when one is given (the document store evaluates it: index/_docstore.py). A filter is
    nothing but this mask, so it takes the path of ``subset`` everywhere below."""
    if subset is None:
        allowed = index.live
    else:
        pos = index._positions(subset, fn, strict=False, unique=False)
        allowed = np.zeros_like(index.live)
        allowed[pos] = True
    if where is not None:
        match = np.zeros_like(index.live)
        match[index.docstore.filter(where, params, fn)] = True
        allowed = allowed & match
    return allowed


def resolve_params(index: Any, k: int, nprobe: int | None, ndocs: int | None, threshold: float | None,
                   fn: str) -> tuple[int, int, float | None]:
    d = default_params(index, int(k))
    for name, v in (("nprobe", nprobe), ("ndocs", ndocs)):
        # int() would silently turn 1.9 into 1, as k and rerank are refused
        if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool)):
            raise ValueError(f"{fn}: {name} must be an int >= 1 or None, got {v!r}")
    nprobe = d["nprobe"] if nprobe is None else int(nprobe)
    ndocs = d["ndocs"] if ndocs is None else int(ndocs)
    if nprobe < 1 or ndocs < 1:
        raise ValueError(f"{fn}: nprobe and ndocs must be >= 1")
    ndocs = pool_size(ndocs, k)
    if threshold is not None and (isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float, np.number))
                                  or np.isnan(threshold)):
        raise ValueError(f"{fn}: centroid_score_threshold must be a number (not NaN) or None, got {threshold!r}")
    threshold = d["centroid_score_threshold"] if threshold is None else float(threshold)
    threshold = None if threshold is not None and threshold <= -np.inf else threshold
    return nprobe, ndocs, threshold


def pool_size(ndocs: int, k: int) -> int:
    """Stage A's pool, never fewer than k: a smaller one would pad rows that more documents could fill."""
    return max(int(ndocs), int(k))


def rerank_count(k: int, ndocs: int, rerank: Any, fn: str) -> int:
    """Documents stage B hands to the exact re-rank: ``max(k, ndocs // RERANK_DIVISOR)`` (PLAID's rule)
    unless ``rerank`` says otherwise (never fewer than k)."""
    if rerank is None:
        return max(int(k), ndocs // RERANK_DIVISOR)
    if not isinstance(rerank, (int, np.integer)) or isinstance(rerank, bool) or rerank < 1:
        raise ValueError(f"{fn}: rerank must be a positive int or None, got {rerank!r}")
    return max(int(k), int(rerank))


def search(index: Any, queries: Any, k: int, nprobe: int | None, ndocs: int | None, threshold: float | None,
           subset: Any, query_mask: Any, exhaustive: bool | None, num_threads: int | None, rerank: Any = None, *,
           where: str | None = None, params: Any = (), hybrid: Any = False, query_texts: Any = None,
           fusion: str | None = None):
    fn = "Index.search"
    check_k(k, fn)
    check_exhaustive(exhaustive, fn)
    check_threads(num_threads, fn)
    weight, fusion = hybrid_options(index, hybrid, fusion, fn)
    q, mask = query_batch(queries, query_mask, index.dim, fn)
    nq, lq, _ = q.shape
    texts = _query_texts(query_texts, nq, fn) if weight is not None else None
    nprobe, ndocs, threshold = resolve_params(index, k, nprobe, ndocs, threshold, fn)
    k_out = k
    if weight is not None:  # more late-interaction results to fuse; ndocs stays the default for k
        k = max(k, HYBRID_DEPTH)
    allowed = allowed_mask(index, subset, fn, where, params)
    filtered = subset is not None or where is not None
    n_allowed = int(np.count_nonzero(allowed))  # (6x faster than a bool sum: it is per query)
    if exhaustive is None:  # the tokens the decoded cache would hold (deleted documents' too)
        exhaustive = int(sum(int(s.offsets[-1]) for s in index.segments)) <= EXHAUSTIVE_TOKENS
    rerank = rerank_count(k, ndocs, rerank, fn)

    mode = choose_mode(bool(exhaustive), filtered, n_allowed, ndocs, index.num_centroids)
    if mode is None:
        out_s, out_p = np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64)
    else:
        out_s, out_p = _plaid.search(q, mask, index.codec, index.segments,
                                     None if n_allowed == len(allowed) else allowed.view(np.uint8),
                                     filtered, nprobe, ndocs, rerank, k, threshold, mode,
                                     [_decoded(index, s) for s in index.segments] if mode == "exhaustive" else None,
                                     num_threads, centroids_i8(index) if mode in ("plaid", "fill") else None)
        if out_s.shape[1] < k:  # fewer positions than k: padded
            out_s = np.pad(out_s, ((0, 0), (0, k - out_s.shape[1])), constant_values=-np.inf)
            out_p = np.pad(out_p, ((0, 0), (0, k - out_p.shape[1])), constant_values=-1)
        # A query with no kept token ties every document at 0: it matches nothing, in every mode (the
        # exhaustive ones would otherwise return the first k documents, the PLAID one none).
        empty = np.ones(nq, bool) if lq == 0 else None if mask is None else ~mask.any(axis=1)
        if empty is not None and empty.any():
            out_s[empty], out_p[empty] = -np.inf, -1
    if weight is not None and texts is not None:
        out_s, out_p = fuse(index, out_s, out_p, texts, allowed, k_out, weight, fusion)
    return out_s, to_ids(index, out_p)


def check_finite(q: np.ndarray, mask: np.ndarray | None, fn: str) -> None:
    """Refuses a NaN or infinity in a kept query row: every document would score NaN and come back as a real
    id at -inf, the padding's score (the native stages order such scores by a fixed rule, but the answer
    means nothing). Masked rows may hold anything."""
    finite = np.isfinite(q)
    if not finite.all():
        bad = ~finite.all(axis=2) if mask is None else ~finite.all(axis=2) & mask
        if bad.any():
            i, r = np.argwhere(bad)[0]
            raise ValueError(f"{fn}: queries[{i}, {r}] holds a NaN or infinite value")


def check_k(k: Any, fn: str) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{fn}: k must be a positive int, got {k!r}")


def check_exhaustive(exhaustive: Any, fn: str) -> None:
    """None (the index decides) or a bool: a string such as "no" would read as True."""
    if exhaustive is not None and not isinstance(exhaustive, (bool, np.bool_)):
        raise TypeError(f"{fn}: exhaustive must be True, False or None, got {exhaustive!r}")


def as_queries(queries: Any, fn: str, arg: str = "queries") -> np.ndarray:
    """Queries (any array or tensor; bfloat16 too) as a C-contiguous float32 array, shape unchecked."""
    q, declared = as_array(queries, fn, arg)
    if declared == "bfloat16":
        q = (np.ascontiguousarray(q).astype(np.uint32) << 16).view(np.float32)
    return np.ascontiguousarray(q, np.float32)  # the kernels read rows in place: a sliced query is copied once


def query_batch(queries: Any, query_mask: Any, dim: int, fn: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(queries [nq, Lq, dim] float32, their mask [nq, Lq] or None), checked: one query ``[Lq, dim]`` (its
    mask ``[Lq]``) is a batch of one. What ``Index.search`` and the sharded search accept."""
    q = as_queries(queries, fn)
    one = q.ndim == 2
    if one:
        q = q[None]
    if q.ndim != 3 or q.shape[2] != dim:
        raise ValueError(f"{fn}: queries must be [nq, Lq, {dim}], got shape {q.shape}")
    nq, lq, _ = q.shape
    mask = as_mask(query_mask, fn, "query_mask")
    if one and mask is not None and mask.ndim == 1:  # one query [Lq, dim], its mask [Lq]
        mask = mask[None]
    if mask is not None and mask.shape != (nq, lq):
        raise ValueError(f"{fn}: query_mask must have shape {(nq, lq)}, got {mask.shape}")
    check_finite(q, mask, fn)
    return q, mask


def choose_mode(exhaustive: bool, subset_given: bool, n_allowed: int, ndocs: int, num_centroids: int) -> str | None:
    """How a search is answered: None (nothing may be returned), "exhaustive", "selective" (a subset of at
    most 4·ndocs documents: every one is scored from its residuals, about the work of one unfiltered re-rank,
    so nothing in it can be missed), "fill" (a subset of at most FILL_DOCS_PER_CENTROID documents per
    centroid: the plaid stages with every document of the subset a candidate), or "plaid"."""
    if n_allowed == 0:
        return None
    if exhaustive:
        return "exhaustive"
    if not subset_given:
        return "plaid"
    if n_allowed <= 4 * ndocs:
        return "selective"
    return "fill" if n_allowed <= FILL_DOCS_PER_CENTROID * num_centroids else "plaid"


def stage_source(index: Any, queries: np.ndarray, query_mask: np.ndarray | None, subset: Any, threshold: float | None,
                 num_threads: int | None, fn: str, fill: bool = False, where: str | None = None,
                 params: Any = ()) -> Any:
    """The PLAID stages of ``index`` for a query batch (candidates, approximate, exact; positions are the
    index's): what a shard answers the sharded coordinator's stage calls with; ``fill``: every allowed
    document a candidate (the coordinator's "fill" mode). ``subset``/``where``: as ``allowed_mask``."""
    allowed = allowed_mask(index, subset, fn, where, params).view(np.uint8)
    return _plaid.source(queries, query_mask, index.codec, index.segments, allowed, threshold, num_threads,
                         centroids_i8(index), fill)


def drive(source: Any, active: np.ndarray, nprobe: int, ndocs: int, rerank: int, k: int, num_centroids: int,
          n_allowed: int, subset_given: bool) -> tuple[np.ndarray, np.ndarray]:
    """The PLAID stage loop (native, plaid_drive) over any source of the three stages: probe widening,
    selections and top-k. -> (scores [nq, k], positions [nq, k]; -inf / -1 past the hits)."""
    s_, p_ = _plaid.drive(source, active, nprobe, ndocs, rerank, k, num_centroids, n_allowed, subset_given)
    out_s = np.full((len(active), k), -np.inf, np.float32)
    out_p = np.full((len(active), k), -1, np.int64)
    out_s[:, :s_.shape[1]], out_p[:, :p_.shape[1]] = s_, p_
    return out_s, out_p


def _decoded(index: Any, s: Any) -> np.ndarray:
    """A segment's tokens decoded (float32), cached on the open index: the exhaustive mode's input."""
    if s._decoded is None:
        s._decoded = np.ascontiguousarray(index.codec.decompress(np.asarray(s.codes, np.int32), np.asarray(s.residuals)),
                                          dtype=np.float32)
    return s._decoded


# Hybrid search: how many results of each ranking are fused (at least k), the fusion and the lexical weight
# that `hybrid=True` means, and RRF's rank constant (Cormack et al., 2009). The defaults are what measured
# best on the held-in half of the pydocs dev queries (bench/bench_hybrid.py; BENCHMARKS.md, "Hybrid search"):
# normalized at 0.2 had the best MRR@10 of every setting (and beat rrf at each weight up to 0.7); rrf at
# 0.5 ranked below late interaction alone.
HYBRID_DEPTH = 100
HYBRID_FUSION = "normalized"
HYBRID_WEIGHT = 0.2
RRF_K = 60


def hybrid_options(index: Any, hybrid: Any, fusion: str | None, fn: str) -> tuple[float | None, str]:
    """(the lexical weight, or None for no hybrid search; the fusion), checked."""
    fusion = HYBRID_FUSION if fusion is None else fusion
    if fusion not in ("rrf", "normalized"):
        raise ValueError(f"{fn}: fusion must be 'rrf' or 'normalized', got {fusion!r}")
    if hybrid is None or (isinstance(hybrid, (bool, np.bool_)) and not hybrid):
        return None, fusion
    weight = HYBRID_WEIGHT if isinstance(hybrid, (bool, np.bool_)) else hybrid
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating, np.integer)) or not 0 <= weight <= 1:
        raise ValueError(f"{fn}: hybrid must be True, False or a lexical weight in [0, 1], got {hybrid!r}")
    if not index.docstore.has_text:
        raise ValueError(f"{fn}: hybrid search ranks the documents' texts, and this index stores none "
                         "(pass texts= to Index.build / add)")
    return float(weight), fusion


def _query_texts(query_texts: Any, nq: int, fn: str) -> list[str]:
    if isinstance(query_texts, str):
        query_texts = [query_texts]
    if query_texts is None or len(query_texts) != nq or not all(isinstance(t, str) for t in query_texts):
        raise ValueError(f"{fn}: hybrid search needs query_texts, one string per query ({nq})")
    return list(query_texts)


def fuse(index: Any, li_scores: np.ndarray, li_pos: np.ndarray, texts: list[str], allowed: np.ndarray, k: int,
         weight: float, fusion: str) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the late-interaction ranking (rows of positions, -1 padded) fused with BM25's over the
    allowed documents: ``rrf`` scores a document ``(1-w)/(RRF_K + rank) + w/(RRF_K + rank_bm25)``,
    ``normalized`` ``(1-w)·minmax(MaxSim) + w·minmax(BM25)`` over each list's results; a document missing
    from one list gets nothing from it. Ties go to the lower position."""
    nq = li_pos.shape[0]
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_p = np.full((nq, k), -1, np.int64)
    depth = li_pos.shape[1]
    for i in range(nq):
        ok = li_pos[i] >= 0
        a_pos, a_sc = li_pos[i][ok], li_scores[i][ok].astype(np.float64)
        b_pos, b_sc = index.docstore.lexical(texts[i], depth, allowed)
        pos = np.union1d(a_pos, b_pos)
        if len(pos) == 0:
            continue
        fused = np.zeros(len(pos))
        for side, (p, sc) in ((1.0 - weight, (a_pos, a_sc)), (weight, (b_pos, b_sc.astype(np.float64)))):
            if len(p) == 0 or side == 0:
                continue
            at = np.searchsorted(pos, p)
            if fusion == "rrf":
                fused[at] += side / (RRF_K + np.arange(1, len(p) + 1))  # both lists come best first
            else:
                lo, hi = sc.min(), sc.max()
                fused[at] += side * ((sc - lo) / (hi - lo) if hi > lo else np.ones_like(sc))
        top = np.lexsort((pos, -fused))[:k]
        out_s[i, :len(top)], out_p[i, :len(top)] = fused[top], pos[top]
    return out_s, out_p


def to_ids(index: Any, pos: np.ndarray) -> np.ndarray:
    """Global positions -> the caller's ids (-1 / None where pos < 0)."""
    all_ids = index._ids_all()
    valid = pos >= 0
    if index.id_kind == "int":
        if valid.all():  # every row full (the usual search): one gather
            return all_ids[pos].astype(np.int64, copy=False)
        out = np.full(pos.shape, -1, np.int64)
        out[valid] = all_ids[pos[valid]]
        return out
    out = np.full(pos.shape, None, dtype=object)
    out[valid] = all_ids[pos[valid]].astype(object)
    return out
