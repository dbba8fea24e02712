"""Thin wrappers over the native PLAID stages (csrc/cpu/plaid.cpp, csrc/include/edgecolbert/plaid.hpp).

``stage_a`` (candidate generation from the IVF with WARP's missing-similarity estimate) and
``centroid_interaction`` (PLAID's stage B, ``Σ_i max_t S'[i, code_t]`` with centroid pruning) run on
one segment; the search loop in ``_search`` calls them per segment."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


def _native() -> Any:
    from .. import _native

    return _native


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


def centroid_interaction(S: CentroidScores, codes: np.ndarray, offsets: np.ndarray, docs: np.ndarray,
                         threshold: float | None, num_threads: int | None = None) -> np.ndarray:
    """Stage B approximate scores (float32 [len(docs)]) of segment-local ``docs``; ``threshold`` None
    prunes no centroid."""
    th = -np.inf if threshold is None else float(threshold)
    return _native().plaid_centroid_interaction(S.t, S.m, codes, offsets, np.ascontiguousarray(docs, np.int64), th,
                                                num_threads=num_threads)


def search_segment(q: np.ndarray, mask: np.ndarray | None, codec: Any, seg: Any, nprobe: int, ndocs: int, rerank: int,
                   k: int, threshold: float | None, num_threads: int | None,
                   centroids_i8: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every stage of a search of one segment in which every document may be returned, in one native
    call per batch (``plaid_search``): the results of the stage-by-stage loop in ``_search``, without
    its Python between stages. -> (scores float32 [nq, k'], segment-local docs int64 [nq, k']; -inf / -1
    past the hits), k' = min(k, documents in the segment)."""
    th = -np.inf if threshold is None else float(threshold)
    return _native().plaid_search(np.ascontiguousarray(q, np.float32), mask, codec.centroids, codec.bucket_weights,
                                  codec.nbits, seg.codes, seg.residuals, seg.offsets, seg.ivf, seg.ivf_offsets,
                                  int(nprobe), int(ndocs), int(rerank), int(k), th, num_threads=num_threads,
                                  centroids_i8=centroids_i8)
