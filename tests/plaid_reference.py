"""The stage-by-stage search: the oracle that the native search (one call per batch, csrc/cpu/plaid_search.cpp)
is compared with (issue 21). It is the Python loop that ``index/_search.py`` ran before issue 21 for
filters, tombstones, several segments, selective subsets and small collections, copied here before the
library lost it, built from the native stage kernels (``_plaid.probe``, ``stage_a``,
``centroid_interaction``, ``gather``), ``maxsim_compressed`` (decoding kernel) and ``maxsim``, with numpy
selections between them. One deliberate difference from that loop: its final top-k took
``np.argpartition`` first, which breaks an exact tie at the k-th place arbitrarily (an empty query, whose
every document scores 0, got documents 984.. of 1,000); here, as in the native search, ties go to the lower
position at every place.

Per query (``m`` kept rows, centroid scores ``S``):
  probe ``nprobe`` -> stage A in every segment (allowed documents only) -> the ``ndocs`` best estimates;
  with a subset, while the pool is short of min(ndocs, allowed) the probe widens (x4, up to K); tombstones
  never widen it (a search after deletions is the compacted index's); a subset of at most
  FILL_DOCS_PER_CENTROID documents per centroid ("fill") instead makes every allowed document a candidate:
  stage A's estimate where a probed list holds it, the sum of the tokens' miss scores where none does;
  stage B when more than ``rerank`` remain -> the ``rerank`` best; exact MaxSim from the codes -> top-k.
Selections: value descending, NaN as -inf, ties to the lower position. Top-k: score descending, NaN last,
ties to the lower position.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import edgecolbert_native as ec
from edgecolbert_native.index import _plaid, _search


def search(index: Any, queries: Any, k: int = 10, *, nprobe: int | None = None, ndocs: int | None = None,
           centroid_score_threshold: float | None = None, subset: Any = None, query_mask: Any = None,
           exhaustive: bool | None = None, num_threads: int | None = None,
           rerank: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``Index.search``'s results, stage by stage: (scores [nq, k], global positions [nq, k]; -inf / -1 past
    the hits)."""
    fn = "reference"
    q = np.asarray(queries, np.float32)
    if q.ndim == 2:
        q = q[None]
    nq = q.shape[0]
    mask = None if query_mask is None else np.asarray(query_mask, bool)
    # a query with no kept token matches nothing, in every mode (it ties every document at 0)
    empty = np.full(nq, q.shape[1] == 0) if mask is None else ~mask.reshape(nq, -1).any(axis=1)
    nprobe, ndocs, threshold = _search.resolve_params(index, k, nprobe, ndocs, centroid_score_threshold, fn)
    allowed = _search.allowed_mask(index, subset, fn)
    n_allowed = int(np.count_nonzero(allowed))
    tokens = int(sum(int(s.offsets[-1]) for s in index.segments))
    if exhaustive is None:
        exhaustive = tokens <= _search.EXHAUSTIVE_TOKENS
    rerank = _search.rerank_count(k, ndocs, rerank, fn)

    out_s = np.full((nq, k), -np.inf, np.float32)
    out_p = np.full((nq, k), -1, np.int64)
    if n_allowed == 0:
        return out_s, out_p
    if exhaustive:
        scores = np.concatenate([ec.maxsim(q, _decoded(index, s), s.offsets, query_mask=mask, num_threads=num_threads)
                                 for s in index.segments], axis=1)
        apos = np.flatnonzero(allowed)
        for i in np.flatnonzero(~empty):
            sc, p = topk(scores[i, apos], apos, k)
            out_s[i, :len(sc)], out_p[i, :len(p)] = sc, p
        return out_s, out_p
    if subset is not None and n_allowed <= 4 * ndocs:
        # A selective subset: every allowed document scored from its residuals.
        apos = np.flatnonzero(allowed)
        c, r, off = gather(index, apos)
        scores = ec.maxsim_compressed(q, c, r, off, index.codec, query_mask=mask, num_threads=num_threads,
                                      _kernel="decode")
        for i in np.flatnonzero(~empty):
            sc, p = topk(scores[i], apos, k)
            out_s[i, :len(sc)], out_p[i, :len(p)] = sc, p
        return out_s, out_p
    fill = subset is not None and n_allowed <= _search.FILL_DOCS_PER_CENTROID * index.num_centroids
    C = np.asarray(index.codec.centroids, np.float32)
    ci8 = _search.centroids_i8(index)
    for i in range(nq):
        qi = q[i] if mask is None else q[i][mask[i]]
        if len(qi) == 0:
            continue
        S = _plaid.centroid_scores(qi, C, num_threads, ci8)
        if fill:
            pos, est = every_allowed(index, S, nprobe, allowed)
            count = len(pos)  # every allowed document: the pool is never short
            est, pos = select(est, pos, ndocs)
        else:
            pos, est, count = candidates(index, S, nprobe, allowed, ndocs)
        target = min(ndocs, n_allowed) if subset is not None else 0
        probe = nprobe
        while count < target and probe < index.num_centroids:
            probe = min(probe * 4, index.num_centroids)
            pos, est, count = candidates(index, S, probe, allowed, ndocs)
        if len(pos) > rerank:
            _, pos = select(stage_b(index, S, pos, threshold, num_threads), pos, rerank)
        pos = np.sort(pos)
        sc, p = topk(exact(index, qi, pos, num_threads), pos, k)
        out_s[i, :len(sc)], out_p[i, :len(p)] = sc, p
    return out_s, out_p


def ids_of(index: Any, pos: np.ndarray) -> np.ndarray:
    """Positions -> the caller's ids as ``Index.search`` returns them (-1 / None past the hits)."""
    all_ids = np.concatenate([np.asarray(s.ids) for s in index.segments])
    valid = pos >= 0
    out = np.full(pos.shape, -1 if index.id_kind == "int" else None, np.int64 if index.id_kind == "int" else object)
    out[valid] = all_ids[pos[valid]]
    return out


def candidates(index: Any, S: _plaid.CentroidScores, probe: int, allowed: np.ndarray,
               ndocs: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Stage A at one probe width: (the best ndocs positions, their estimates, allowed documents the probed
    lists held)."""
    pos, est = stage_a(index, S, probe, allowed)
    count = len(pos)
    est, pos = select(est, pos, ndocs)
    return pos, est, count


def every_allowed(index: Any, S: _plaid.CentroidScores, nprobe: int,
                  allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fill's stage A: every allowed position with stage A's estimate where a probed list holds it,
    and the sum of the tokens' miss scores (in float64, in token order, as stage A's base) where none does."""
    pos, est = stage_a(index, S, nprobe, allowed)
    _, _, miss = _plaid.probe(S, nprobe)
    base = np.float32(sum(float(x) for x in miss))
    rest = np.setdiff1d(np.flatnonzero(allowed), pos)
    return np.concatenate([pos, rest]), np.concatenate([est, np.full(len(rest), base, np.float32)])


def stage_a(index: Any, S: _plaid.CentroidScores, nprobe: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def stage_b(index: Any, S: _plaid.CentroidScores, pos: np.ndarray, threshold: float | None,
            num_threads: int | None) -> np.ndarray:
    out = np.zeros(len(pos), np.float32)
    for s, local, sel in split(index, pos):
        out[sel] = _plaid.centroid_interaction(S, s.codes, s.offsets, local, threshold, num_threads)
    return out


def exact(index: Any, qi: np.ndarray, pos: np.ndarray, num_threads: int | None) -> np.ndarray:
    """MaxSim of the query rows ``qi`` with the documents at ``pos``, from their codes (decoding kernel)."""
    if len(pos) == 0:
        return np.empty(0, np.float32)
    c, r, off = gather(index, pos)
    return ec.maxsim_compressed(qi[None], c, r, off, index.codec, num_threads=num_threads, _kernel="decode")[0]


def select(values: np.ndarray, pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n best (value descending, NaN as -inf, ties to the lower position), in no particular order."""
    if len(values) <= n:
        return values, pos
    key = np.where(np.isnan(values), -np.inf, values)
    thr = key[np.argpartition(-key, n - 1)[n - 1]]
    above = np.flatnonzero(key > thr)
    eq = np.flatnonzero(key == thr)
    sel = np.concatenate([above, eq[np.argsort(pos[eq], kind="stable")[:n - len(above)]]])
    return values[sel], pos[sel]


def topk(scores: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best, best first: score descending, NaN last, ties to the lower position."""
    o = np.lexsort((pos, -scores))[:k]
    return scores[o], pos[o]


def split(index: Any, pos: np.ndarray) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    """Global positions -> [(segment, local documents, indices into pos)]."""
    out = []
    for s in index.segments:
        sel = np.flatnonzero((pos >= s.base) & (pos < s.base + s.n))
        if len(sel):
            out.append((s, pos[sel] - s.base, sel))
    return out


def gather(index: Any, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes (int32), residuals and offsets of the documents at global positions ``pos``, in that order."""
    rb = index.dim * index.nbits // 8
    lens = np.zeros(len(pos), np.int64)
    parts = []
    for s, local, sel in split(index, pos):
        c, r, off = _plaid.gather(s.codes, s.residuals, s.offsets, local)
        lens[sel] = np.diff(off)
        parts.append((sel, c, r, off))
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    codes = np.empty(int(offsets[-1]), np.int32)
    res = np.empty((int(offsets[-1]), rb), np.uint8)
    for sel, c, r, off in parts:
        for j, at in enumerate(sel):
            codes[offsets[at]:offsets[at + 1]] = c[off[j]:off[j + 1]]
            res[offsets[at]:offsets[at + 1]] = r[off[j]:off[j + 1]]
    return codes, res, offsets


def _decoded(index: Any, s: Any) -> np.ndarray:
    return np.ascontiguousarray(index.codec.decompress(np.asarray(s.codes, np.int32), np.asarray(s.residuals)),
                                dtype=np.float32)
