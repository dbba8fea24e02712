"""PLAID-style search (Santhanam et al., 2022) with WARP's missing-similarity estimate
(Scheerer et al., 2025) for the first, cheapest stage.

Per query (``m`` kept tokens), after scoring its tokens against every centroid (centroid-major,
``_plaid.CentroidScores``):

1. probe: the top ``nprobe`` centroids per query token;
2. stage A, from the IVF alone: for every document in a probed list, per query token the best score
   of a probed centroid holding it, or the token's (nprobe+1)-th centroid score when none does (an
   upper bound on what an unprobed centroid could give); the sum over tokens ranks the candidates;
   keep the best ``ndocs`` (live and in the subset only);
3. stage B, PLAID's centroid interaction: ``Σ_i max_j S[i, code_j]`` over the tokens of each of those
   documents (centroids whose best score over the query tokens is under ``centroid_score_threshold``
   count as 0; no pruning by default); keep
   the best ``rerank`` (default ``max(k, ndocs // RERANK_DIVISOR)``);
4. re-rank them from codes and residuals (``maxsim_compressed``: fused decode + MaxSim)
   and return top-k.

An index of one segment with nothing filtered or deleted runs all of it in one native call per batch
(``_plaid.search_segment``: csrc/cpu/plaid_search.cpp), with the same results as the stage-by-stage loop
below, which handles filters, tombstones and several segments (its stages are native kernels too,
``_plaid``). The centroid scores that choose candidates are int8 where that is faster
(CENTROID_SCORES).

Collections of at most EXHAUSTIVE_TOKENS live tokens are searched exhaustively with ``maxsim`` over
the decompressed tokens (decoded once per open index and cached), which is faster there.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .._arrays import as_array, as_mask
from . import _plaid
from ._segments import ragged_ranges as _ragged

# Measured crossover (docs/index.md, "Exhaustive or PLAID"): below this many tokens exhaustive
# MaxSim over the decoded tokens is faster than the PLAID stages at default parameters.
EXHAUSTIVE_TOKENS = 1 << 17
# Stage B keeps ndocs // RERANK_DIVISOR documents for the re-rank (PLAID: 4).
RERANK_DIVISOR = 4
# One segment with nothing filtered or deleted is searched in one native call (_plaid.search_segment);
# False forces the stage-by-stage loop, which the tests compare it with.
NATIVE_SEARCH = True
# Centroid scores for the candidate stages (probe, stage A, stage B): "int8" (quantised query rows and
# centroids, docs/index.md "int8 centroid scores"), "float32", or "auto": int8 where the CPU has a
# dot-product instruction that makes it faster (edgecolbert_native.info()["fast_int8_centroid_scores"]).
# The re-rank is exact MaxSim from the codes either way.
CENTROID_SCORES = "auto"
# The compressed-MaxSim kernel of the re-rank and of selective-subset scoring: the decoding one, which the
# native search's re-rank runs too, so a document's score is the same bits whichever path scored it (the
# table kernel needs exact query-centroid scores for the re-ranked tokens' centroids, which cost about as
# much as the FMAs it saves on a re-rank; docs/codec.md).
RERANK_KERNEL = "decode"


def centroids_i8(index: Any) -> tuple | None:
    """The codec's int8 centroids when the candidate stages score in int8 (CENTROID_SCORES), else None."""
    mode = CENTROID_SCORES
    if mode == "auto":
        mode = "int8" if _fast_int8() else "float32"
    return index.codec.centroids_int8() if mode == "int8" else None


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


def _split(index: Any, pos: np.ndarray) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """Global positions -> [(segment, local docs, indices into pos)]."""
    out = []
    for s in index.segments:
        sel = np.flatnonzero((pos >= s.base) & (pos < s.base + s.n))
        if len(sel):
            out.append((s, pos[sel] - s.base, sel))
    return out


def _gather_compact(index: Any, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes (int32), residuals and offsets of the documents at global positions ``pos``, in that order
    (one native gather per segment)."""
    parts = []
    for s, local, sel in _split(index, pos):
        parts.append((sel, *_plaid.gather(s.codes, s.residuals, s.offsets, local)))
    rb = index.dim * index.nbits // 8
    if not parts:
        return np.empty(0, np.int32), np.empty((0, rb), np.uint8), np.zeros(len(pos) + 1, np.int64)
    if len(parts) == 1:  # one segment: pos was gathered in order
        return parts[0][1], parts[0][2], parts[0][3]
    # Several segments: place every document's rows at its position in pos.
    lens = np.empty(len(pos), np.int64)
    for sel, _, _, off in parts:
        lens[sel] = np.diff(off)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    c = np.empty(int(offsets[-1]), np.int32)
    r = np.empty((int(offsets[-1]), rb), np.uint8)
    for sel, pc, pr, off in parts:
        dst = _ragged(offsets[sel], offsets[sel + 1])
        c[dst], r[dst] = pc, pr
    return c, r, offsets


def _rerank(index: Any, q: np.ndarray, pos: np.ndarray, num_threads: int | None) -> np.ndarray:
    """Exact MaxSim of the documents at ``pos`` from their codes (fused decode + MaxSim: no decompressed
    copy, the scores of decompress-then-``maxsim`` up to rounding of the renormalisation)."""
    if len(pos) == 0:
        return np.empty(0, np.float32)
    c, r, off = _gather_compact(index, pos)
    return _ec().maxsim_compressed(q[None], c, r, off, index.codec, num_threads=num_threads, _kernel=RERANK_KERNEL)[0]


def _decoded(index: Any, s: Any) -> np.ndarray:
    if s._decoded is None:
        s._decoded = np.ascontiguousarray(index.codec.decompress(np.asarray(s.codes, np.int32), np.asarray(s.residuals)),
                                          dtype=np.float32)
    return s._decoded


def _stage_a(index: Any, S: _plaid.CentroidScores, nprobe: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cells, cs, miss = _plaid.probe(S, nprobe)
    pos_all, est_all = [], []
    for s in index.segments:
        docs, est = _plaid.stage_a(cells, cs, miss, s.ivf, s.ivf_offsets, s.n, allowed[s.base:s.base + s.n])
        if len(docs):
            pos_all.append(docs + s.base)
            est_all.append(est)
    if not pos_all:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(pos_all), np.concatenate(est_all)


def _stage_b(index: Any, S: _plaid.CentroidScores, pos: np.ndarray, threshold: float | None,
             num_threads: int | None) -> np.ndarray:
    out = np.zeros(len(pos), np.float32)
    for s, local, sel in _split(index, pos):
        out[sel] = _plaid.centroid_interaction(S, s.codes, s.offsets, local, threshold, num_threads)
    return out


def _topk(scores: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        scores, pos = scores[part], pos[part]
    o = np.lexsort((pos, -scores))
    return scores[o], pos[o]


def _select(values: np.ndarray, pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n best (value descending, ties to the lower position), in no particular order. Deterministic,
    so that shards of a collection select exactly what one index over it selects (NaN ranks last)."""
    if len(values) <= n:
        return values, pos
    key = np.where(np.isnan(values), -np.inf, values)
    thr = key[np.argpartition(-key, n - 1)[n - 1]]
    above = np.flatnonzero(key > thr)
    eq = np.flatnonzero(key == thr)
    sel = np.concatenate([above, eq[np.argsort(pos[eq], kind="stable")[:n - len(above)]]])
    return values[sel], pos[sel]


def allowed_mask(index: Any, subset: Any, fn: str, where: str | None = None, params: Any = ()) -> np.ndarray:
    """Positions a search may return: live, in ``subset`` when one is given, and matching the metadata
    filter ``where`` when one is given (the document store evaluates it: index/_docstore.py). A filter is
    nothing but this mask, so it takes the path of ``subset`` everywhere below."""
    if subset is None:
        allowed = index.live
    else:
        pos = index._positions(subset, fn, strict=False)
        allowed = np.zeros_like(index.live)
        allowed[pos] = True
    if where is not None:
        match = np.zeros_like(index.live)
        match[index.docstore.filter(where, params, fn)] = True
        allowed = allowed & match
    return allowed


def per_query(index: Any, q: np.ndarray, mask: np.ndarray | None, num_threads: int | None,
              wanted: Any = None):
    """Yields (i, kept query rows, their centroid scores) for each query: ``_plaid.CentroidScores``,
    centroid-major [K, 32·ceil(m/32)], the layout the probe and stage B read (a query's scores are
    computed for its kept rows alone, 32 rows per kernel block, so batching queries would not save
    arithmetic). With ``wanted`` (a flag per query) the others are skipped."""
    C = np.asarray(index.codec.centroids, np.float32)
    ci8 = centroids_i8(index)
    for i in range(q.shape[0]):
        if wanted is not None and not wanted[i]:
            continue
        qi = q[i] if mask is None else q[i][mask[i]]
        if len(qi) == 0:
            yield i, qi, _plaid.CentroidScores(np.zeros((index.num_centroids, 32), np.float32), 0)
        else:
            yield i, qi, _plaid.centroid_scores(qi, C, num_threads, ci8)


def candidates(index: Any, S: _plaid.CentroidScores, probe: int, allowed: np.ndarray, ndocs: int,
               pool: bool = False) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Stages A at one probe width: (the best ndocs positions, their estimates, how many allowed
    documents the probed lists held in all, and with ``pool`` how many documents they held with no
    filter and no tombstones (else 0))."""
    pos, est = _stage_a(index, S, probe, allowed)
    count = len(pos)
    unfiltered = 0
    if pool:
        unfiltered = count if bool(allowed.all()) else len(_stage_a(index, S, probe, np.ones_like(allowed))[0])
    est, pos = _select(est, pos, ndocs)
    return pos, est, count, unfiltered


def pool_target(ndocs: int, n_allowed: int, unfiltered: int, subset_given: bool) -> int:
    """How many candidates stage A must find before the probe stops widening. With a subset: ndocs (or
    every allowed document), so that the filter costs no recall inside it. Without one: as many as the
    probed lists hold with tombstones counted, so that deletions do not shrink the pool; an index with
    nothing deleted never widens, and nprobe means what it says."""
    return min(ndocs, n_allowed) if subset_given else min(ndocs, unfiltered)


def approximate(index: Any, S: _plaid.CentroidScores, pos: np.ndarray, threshold: float | None, num_threads: int | None) -> np.ndarray:
    """Stage B scores of the positions ``pos`` (PLAID's centroid interaction)."""
    return _stage_b(index, S, pos, threshold, num_threads)


def exact(index: Any, qi: np.ndarray, pos: np.ndarray, num_threads: int | None) -> np.ndarray:
    """MaxSim of the query rows ``qi`` with the documents at ``pos``, from their codes."""
    return _rerank(index, qi, np.asarray(pos, np.int64), num_threads)


def resolve_params(index: Any, k: int, nprobe: int | None, ndocs: int | None, threshold: float | None,
                   fn: str) -> tuple[int, int, float | None]:
    d = default_params(index, int(k))
    nprobe = d["nprobe"] if nprobe is None else int(nprobe)
    ndocs = d["ndocs"] if ndocs is None else int(ndocs)
    if nprobe < 1 or ndocs < 1:
        raise ValueError(f"{fn}: nprobe and ndocs must be >= 1")
    threshold = d["centroid_score_threshold"] if threshold is None else threshold
    threshold = None if threshold is not None and threshold <= -np.inf else threshold
    return nprobe, ndocs, threshold


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
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{fn}: k must be a positive int, got {k!r}")
    weight, fusion = hybrid_options(index, hybrid, fusion, fn)
    q, declared = as_array(queries, fn, "queries")
    if declared == "bfloat16":
        q = (np.ascontiguousarray(q).astype(np.uint32) << 16).view(np.float32)
    q = np.ascontiguousarray(q, np.float32)  # the kernels read rows in place: a sliced query is copied once
    if q.ndim == 2:
        q = q[None]
    if q.ndim != 3 or q.shape[2] != index.dim:
        raise ValueError(f"{fn}: queries must be [nq, Lq, {index.dim}], got shape {q.shape}")
    nq, lq, _ = q.shape
    mask = as_mask(query_mask, fn, "query_mask")
    if mask is not None and mask.shape != (nq, lq):
        raise ValueError(f"{fn}: query_mask must have shape {(nq, lq)}, got {mask.shape}")
    texts = _query_texts(query_texts, nq, fn) if weight is not None else None
    nprobe, ndocs, threshold = resolve_params(index, k, nprobe, ndocs, threshold, fn)
    k_out = k
    if weight is not None:  # more late-interaction results to fuse; ndocs stays the default for k
        k = max(k, HYBRID_DEPTH)
    allowed = allowed_mask(index, subset, fn, where, params)
    filtered = subset is not None or where is not None
    n_allowed = int(np.count_nonzero(allowed))  # (6x faster than a bool sum: it is per query)
    live_tokens = int(sum(int(s.offsets[-1]) for s in index.segments))
    if exhaustive is None:
        exhaustive = live_tokens <= EXHAUSTIVE_TOKENS
    rerank = rerank_count(k, ndocs, rerank, fn)

    out_s = np.full((nq, k), -np.inf, np.float32)
    out_p = np.full((nq, k), -1, np.int64)
    ec = _ec()
    if n_allowed == 0:
        pass
    elif exhaustive:
        scores = np.concatenate([ec.maxsim(q, _decoded(index, s), s.offsets, query_mask=mask, num_threads=num_threads)
                                 for s in index.segments], axis=1)
        apos = np.flatnonzero(allowed)
        for i in range(nq):
            sc, p = _topk(scores[i, apos], apos, k)
            out_s[i, :len(sc)], out_p[i, :len(p)] = sc, p
    elif filtered and n_allowed <= 4 * ndocs:
        # A selective subset: every allowed document is scored from its residuals (at most 4·ndocs,
        # about the work of one unfiltered re-rank), so nothing in it can be missed.
        apos = np.flatnonzero(allowed)
        c, r, off = _gather_compact(index, apos)
        scores = ec.maxsim_compressed(q, c, r, off, index.codec, query_mask=mask, num_threads=num_threads,
                                      _kernel=RERANK_KERNEL)
        for i in range(nq):
            sc, p = _topk(scores[i], apos, k)
            out_s[i, :len(sc)], out_p[i, :len(p)] = sc, p
    elif len(index.segments) == 1 and not filtered and n_allowed == index.segments[0].n and NATIVE_SEARCH:
        # Nothing filtered or deleted in one segment: the whole loop below in one native call.
        s_, p_ = _plaid.search_segment(q, mask, index.codec, index.segments[0], nprobe, ndocs, rerank, k,
                                       threshold, num_threads, centroids_i8(index))
        out_s[:, :s_.shape[1]], out_p[:, :p_.shape[1]] = s_, p_
    else:
        for i, qi, S in per_query(index, q, mask, num_threads):
            if len(qi) == 0:
                continue
            pos, est, count, unfiltered = candidates(index, S, nprobe, allowed, ndocs, pool=not filtered)
            # A filter (or tombstones) leaves fewer candidates in the probed lists than the search
            # would have without it: probe more centroids until the pool is back (pool_target).
            target = pool_target(ndocs, n_allowed, unfiltered, filtered)
            probe = nprobe
            while count < target and probe < index.num_centroids:
                probe = min(probe * 4, index.num_centroids)
                pos, est, count, _ = candidates(index, S, probe, allowed, ndocs)
            if len(pos) > rerank:
                approx, pos = _select(approximate(index, S, pos, threshold, num_threads), pos, rerank)
            pos = np.sort(pos)
            sc, p = _topk(exact(index, qi, pos, num_threads), pos, k)
            out_s[i, :len(sc)], out_p[i, :len(p)] = sc, p
    if weight is not None and texts is not None:
        out_s, out_p = fuse(index, out_s, out_p, texts, allowed, k_out, weight, fusion)
    return out_s, _to_ids(index, out_p)


# Hybrid search: how many results of each ranking are fused (at least k), the fusion and the lexical weight
# that `hybrid=True` means, and RRF's rank constant (Cormack et al., 2009). The defaults are what measured
# best on held-in pydocs queries (docs/guide.md, "Hybrid search"; BENCHMARKS.md).
HYBRID_DEPTH = 100
HYBRID_FUSION = "rrf"
HYBRID_WEIGHT = 0.5
RRF_K = 60


def hybrid_options(index: Any, hybrid: Any, fusion: str | None, fn: str) -> tuple[float | None, str]:
    """(the lexical weight, or None for no hybrid search; the fusion), checked."""
    fusion = HYBRID_FUSION if fusion is None else fusion
    if fusion not in ("rrf", "normalized"):
        raise ValueError(f"{fn}: fusion must be 'rrf' or 'normalized', got {fusion!r}")
    if hybrid is False or hybrid is None:
        return None, fusion
    weight = HYBRID_WEIGHT if hybrid is True else hybrid
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


def _to_ids(index: Any, pos: np.ndarray) -> np.ndarray:
    all_ids = index._ids_all()
    valid = pos >= 0
    if index.id_kind == "int":
        out = np.full(pos.shape, -1, np.int64)
        out[valid] = all_ids[pos[valid]]
        return out
    out = np.full(pos.shape, None, dtype=object)
    out[valid] = all_ids[pos[valid]].astype(object)
    return out
