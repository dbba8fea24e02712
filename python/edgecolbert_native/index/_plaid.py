"""Thin wrappers over the native PLAID stages (csrc/cpu/plaid.cpp, csrc/include/edgecolbert/plaid.hpp).

``stage_a`` (candidate generation from the IVF with WARP's missing-similarity estimate) and
``centroid_interaction`` (PLAID's stage B, ``Σ_i max_t S'[i, code_t]`` with centroid pruning) run on
one segment; the search loop in ``_search`` calls them per segment."""

from __future__ import annotations

from typing import Any

import numpy as np


def _native() -> Any:
    from .. import _native

    return _native


def probe(S: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (cells int32 [m, p], their scores [m, p], miss [m]): each row's p = min(nprobe, K) best
    centroids, best first (ties to the lower id), and its (p+1)-th best score (0 when p = K)."""
    return _native().plaid_probe(np.ascontiguousarray(S, np.float32), int(nprobe))


def stage_a(cells: np.ndarray, cell_scores: np.ndarray, miss: np.ndarray, ivf: np.ndarray, ivf_offsets: np.ndarray,
            num_docs: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """-> (segment-local docs int64, estimates float32) of every allowed document in a probed list."""
    return _native().plaid_stage_a(np.ascontiguousarray(cells, np.int32), np.ascontiguousarray(cell_scores, np.float32),
                                   np.ascontiguousarray(miss, np.float32), ivf, ivf_offsets, int(num_docs),
                                   None if allowed is None else np.ascontiguousarray(allowed, np.uint8))


def centroid_interaction(S: np.ndarray, codes: np.ndarray, offsets: np.ndarray, docs: np.ndarray,
                         threshold: float | None, num_threads: int | None = None) -> np.ndarray:
    """Stage B approximate scores (float32 [len(docs)]) of segment-local ``docs``; ``threshold`` None
    prunes no centroid."""
    th = -np.inf if threshold is None else float(threshold)
    return _native().plaid_centroid_interaction(S, codes, offsets, np.ascontiguousarray(docs, np.int64), th,
                                                num_threads=num_threads)
