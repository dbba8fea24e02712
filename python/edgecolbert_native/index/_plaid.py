"""Thin wrappers over the native PLAID stages (csrc/cpu/plaid.cpp, csrc/include/edgecolbert/plaid.hpp).

``search`` runs a whole batch in one native call (csrc/cpu/plaid_search.cpp); ``source`` and ``drive`` are the
stage interface the sharded coordinator uses. The single stages (``probe``, ``stage_a``: candidate generation
from the IVF with WARP's missing-similarity estimate; ``centroid_interaction``: PLAID's stage B,
``Σ_i max_t S'[i, code_t]`` with centroid pruning; ``gather``) run on one segment: the tests build their
stage-by-stage reference from them (tests/plaid_reference.py)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


def _native() -> Any:
    global _NATIVE
    if _NATIVE is None:  # imported on first use (the import costs ~1 us per search otherwise)
        from .. import _native as n

        _NATIVE = n
    return _NATIVE


_NATIVE: Any = None


class CentroidScores(NamedTuple):
    """One query's centroid scores, centroid-major: ``t[c, i]`` = <query token i, centroid c> for the
    ``m`` kept tokens (``t`` is [K, stride], stride a multiple of 32; columns past m are 0). The probe and
    stage B read a centroid's scores for every query token as one contiguous row."""

    t: np.ndarray
    m: int

    @property
    def rows(self) -> np.ndarray:
        """The scores as [m, K] (a transposed view)."""
        return self.t[:, :self.m].T


def centroid_scores(q: np.ndarray, centroids: np.ndarray, num_threads: int | None = None,
                    centroids_i8: tuple | None = None) -> CentroidScores:
    """Scores of the query tokens ``q`` [m, dim] against every centroid, centroid-major, in one pass
    (the kernel's tiles are this layout: no transposition). With ``centroids_i8`` (from
    ``ResidualCodec.centroids_int8``) the int8 scores of the quantised rows, unless q holds a non-finite
    value (then float32, as the native search does)."""
    q = np.ascontiguousarray(q, np.float32)
    if centroids_i8 is not None and np.isfinite(q).all():
        return CentroidScores(_native().centroid_scores_t_i8(q, centroids_i8, num_threads=num_threads), int(q.shape[0]))
    return CentroidScores(_native().centroid_scores_t(q, centroids, num_threads=num_threads), int(q.shape[0]))


def from_rows(S: np.ndarray) -> CentroidScores:
    """A row-major [m, K] score matrix as ``CentroidScores`` (tests, and callers holding S)."""
    S = np.asarray(S, np.float32)
    m, K = S.shape
    t = np.zeros((K, max(1, -(-m // 32)) * 32), np.float32)
    t[:, :m] = S.T
    return CentroidScores(t, m)


def probe(S: CentroidScores, nprobe: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (cells int32 [m, p], their scores [m, p], miss [m]): each token's p = min(nprobe, K) best
    centroids, best first (ties to the lower id), and its (p+1)-th best score (0 when p = K)."""
    return _native().plaid_probe(S.t, S.m, int(nprobe))


def stage_a(cells: np.ndarray, cell_scores: np.ndarray, miss: np.ndarray, ivf: np.ndarray, ivf_offsets: np.ndarray,
            num_docs: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """-> (segment-local docs int64, estimates float32) of every allowed document in a probed list."""
    return _native().plaid_stage_a(np.ascontiguousarray(cells, np.int32), np.ascontiguousarray(cell_scores, np.float32),
                                   np.ascontiguousarray(miss, np.float32), ivf, ivf_offsets, int(num_docs),
                                   None if allowed is None else np.ascontiguousarray(allowed, np.uint8))


def gather(codes: np.ndarray, residuals: np.ndarray, offsets: np.ndarray,
           docs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (codes int32, residual rows, offsets [len(docs)+1]) of segment-local ``docs``, concatenated in
    the order given (the re-rank's input)."""
    return _native().plaid_gather(codes, residuals, offsets, np.ascontiguousarray(docs, np.int64))


def gather_positions(segments: Any, pos: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes (int32), residual rows (``width`` bytes) and offsets [len(pos)+1] of the documents at global
    positions ``pos`` of the segments (in position order), in the order given: one native gather per segment
    holding some of them."""
    from ._segments import ragged_ranges as _ragged

    pos = np.asarray(pos, np.int64)
    lens = np.zeros(len(pos), np.int64)
    parts = []
    for s in segments:
        sel = np.flatnonzero((pos >= s.base) & (pos < s.base + s.n))
        if len(sel):
            c, r, off = gather(s.codes, s.residuals, s.offsets, pos[sel] - s.base)
            lens[sel] = np.diff(off)
            parts.append((sel, c, r))
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    if len(parts) == 1 and len(parts[0][0]) == len(pos):  # one segment: gathered in order
        return parts[0][1], parts[0][2], offsets
    codes = np.empty(int(offsets[-1]), np.int32)
    res = np.empty((int(offsets[-1]), width), np.uint8)
    for sel, c, r in parts:
        dst = _ragged(offsets[sel], offsets[sel + 1])
        codes[dst], res[dst] = c, r
    return codes, res, offsets


def centroid_interaction(S: CentroidScores, codes: np.ndarray, offsets: np.ndarray, docs: np.ndarray,
                         threshold: float | None, num_threads: int | None = None) -> np.ndarray:
    """Stage B approximate scores (float32 [len(docs)]) of segment-local ``docs``; ``threshold`` None
    prunes no centroid."""
    th = -np.inf if threshold is None else float(threshold)
    return _native().plaid_centroid_interaction(S.t, S.m, codes, offsets, np.ascontiguousarray(docs, np.int64), th,
                                                num_threads=num_threads)


def distinct_codes(segment: Any, num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(codes, offsets [n+1]): each document's distinct codes, ascending, in CSR (``plaid_distinct_codes``).
    Stage B reads these instead of every code: its maximum over a document's tokens does not see repeats,
    so the scores are the same bits, and on real text about half of a document's codes are repeats
    (docs/index.md, "Search"). Computed on the first search that needs them and kept on the segment (an open
    index's segments never change): the codes' width per distinct code, for a few tens of ms per million tokens."""
    if segment._distinct is None:
        segment._distinct = _native().plaid_distinct_codes(segment.codes, segment.offsets, num_threads=num_threads)
    return segment._distinct


def _segments(segments: Any, distinct: bool = False, num_threads: int | None = None) -> list[tuple]:
    """The native call's per-segment tuples; ``distinct``: with each document's distinct codes (stage B runs)."""
    if not distinct:
        return [(s.codes, s.residuals, s.offsets, s.ivf, s.ivf_offsets) for s in segments]
    return [(s.codes, s.residuals, s.offsets, s.ivf, s.ivf_offsets, *distinct_codes(s, num_threads)) for s in segments]


def search(q: np.ndarray, mask: np.ndarray | None, codec: Any, segments: Any, allowed: np.ndarray | None,
           subset: bool, nprobe: int, ndocs: int, rerank: int, k: int, threshold: float | None, mode: str,
           decoded: list | None, num_threads: int | None, centroids_i8: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A batch searched in one native call (``plaid_search``, csrc/cpu/plaid_search.cpp) over every segment,
    returning only positions where ``allowed`` (None: every one) is set; ``subset``: allowed holds a caller's
    subset (the probe's widening rule). ``mode``: "plaid", "fill" (the plaid stages with every allowed document a
    candidate), "selective" or "exhaustive" (which reads
    ``decoded``, each segment's float32 tokens). -> (scores float32 [nq, k'], global positions int64
    [nq, k']; -inf / -1 past the hits), k' = min(k, positions)."""
    th = -np.inf if threshold is None else float(threshold)
    return _native().plaid_search(np.ascontiguousarray(q, np.float32), mask, codec.centroids, codec.bucket_weights,
                                  codec.nbits, _segments(segments, mode in ("plaid", "fill"), num_threads), allowed,
                                  bool(subset), int(nprobe), int(ndocs),
                                  int(rerank), int(k), th, mode, decoded, num_threads=num_threads,
                                  centroids_i8=centroids_i8)


def source(q: np.ndarray, mask: np.ndarray | None, codec: Any, segments: Any, allowed: np.ndarray | None,
           threshold: float | None, num_threads: int | None, centroids_i8: tuple | None = None,
           fill: bool = False) -> Any:
    """The native source of the PLAID stages over the segments (``PlaidIndexSource``): ``candidates(queries,
    probes, ndocs)``, ``approximate(queries, offsets, docs)``, ``exact(queries, offsets, docs)``, for
    queries of the batch ``q``, documents as global positions in CSR by query (plaid_search.hpp); ``fill``:
    every allowed document a candidate (plaid_stage_a_fill)."""
    th = -np.inf if threshold is None else float(threshold)
    return _native().PlaidIndexSource(np.ascontiguousarray(q, np.float32), mask, codec.centroids, codec.bucket_weights,
                                      codec.nbits, _segments(segments, True, num_threads), allowed, False, th,
                                      num_threads=num_threads,
                                      centroids_i8=centroids_i8, fill=bool(fill))


def drive(source: Any, active: np.ndarray, nprobe: int, ndocs: int, rerank: int, k: int, num_centroids: int,
          n_allowed: int, subset: bool) -> tuple[np.ndarray, np.ndarray]:
    """The stage loop of a PLAID search (``plaid_drive``) over ``source`` (a ``PlaidIndexSource`` or a Python
    subclass of ``_native.PlaidSource``) for the queries with ``active`` set. -> (scores [nq, k'], positions
    [nq, k']; -inf / -1 past the hits), k' <= k the most hits a query got (at least 1)."""
    return _native().plaid_drive(source, np.ascontiguousarray(active, np.uint8), int(nprobe), int(ndocs), int(rerank),
                                 int(k), int(num_centroids), int(n_allowed), bool(subset))
