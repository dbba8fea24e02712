"""A small float64 reference of ColBERTv2's residual codec as published (colbert-ai's ResidualCodec,
written from the algorithm, not copied): nearest centroid by inner product, torch.bucketize
(right=False) buckets, nbits bits per dimension least significant first, numpy.packbits bytes,
decompression as centroid + bucket weight then L2 normalisation."""

from __future__ import annotations

import numpy as np


def compress(x: np.ndarray, centroids: np.ndarray, cutoffs: np.ndarray, nbits: int, codes: np.ndarray | None = None):
    x = np.asarray(x, dtype=np.float32)
    if codes is None:
        codes = np.argmax(x.astype(np.float64) @ centroids.astype(np.float64).T, axis=1)
    resid = x - centroids[codes]  # float32, as the codec computes it
    buckets = np.searchsorted(cutoffs, resid, side="left").astype(np.uint8)  # #cutoffs strictly below
    bits = (buckets[..., None] >> np.arange(nbits, dtype=np.uint8)) & 1  # LSB first
    packed = np.packbits(bits.reshape(len(x), -1), axis=1)  # first bit = MSB
    return codes.astype(np.int32), packed


def buckets_of(residuals: np.ndarray, dim: int, nbits: int) -> np.ndarray:
    bits = np.unpackbits(residuals, axis=1)[:, : dim * nbits].reshape(len(residuals), dim, nbits).astype(np.int64)
    return (bits << np.arange(nbits)).sum(axis=2)


def decompress(codes, residuals, centroids, weights, nbits) -> np.ndarray:
    dim = centroids.shape[1]
    v = centroids[codes].astype(np.float64) + weights.astype(np.float64)[buckets_of(residuals, dim, nbits)]
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def maxsim(queries: np.ndarray, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    q = queries.astype(np.float64)
    out = np.zeros((q.shape[0], len(offsets) - 1))
    for d in range(len(offsets) - 1):
        t = tokens[offsets[d]:offsets[d + 1]].astype(np.float64)
        if len(t):
            out[:, d] = (q @ t.T).max(axis=2).sum(axis=1)
    return out
