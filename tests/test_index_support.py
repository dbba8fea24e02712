"""Shared helpers for the index tests: clustered synthetic data and, only while the kernel
engineer's codec/centroid API has not landed, a pure-numpy stand-in installed into the package
namespace (TODO(#5): delete the stand-in once ``edgecolbert_native.ResidualCodec`` exists)."""

from __future__ import annotations

import numpy as np

import edgecolbert_native as ec


def clustered(n_docs: int, dim: int = 48, *, mean_len: int = 40, n_topics: int = 1024, seed: int = 0,
              noise: float = 0.6):
    """Unit token vectors around ``n_topics`` random unit directions: each document draws most of its
    tokens from 2-3 topics (so documents differ), lengths vary from 1 to 2*mean_len."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((n_topics, dim)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    lens = rng.integers(1, 2 * mean_len, size=n_docs)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    T = int(offsets[-1])
    doc_topics = rng.integers(0, n_topics, size=(n_docs, 3))
    tok_doc = np.repeat(np.arange(n_docs), lens)
    pick = doc_topics[tok_doc, rng.integers(0, 3, size=T)]
    x = topics[pick] + (noise / np.sqrt(dim)) * rng.standard_normal((T, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), offsets, topics


def queries_from(tokens, offsets, nq: int, lq: int = 32, seed: int = 1, noise: float = 0.4):
    """Queries built from the tokens of random documents plus noise (known-item style)."""
    rng = np.random.default_rng(seed)
    n = len(offsets) - 1
    docs = rng.integers(0, n, size=nq)
    out = np.empty((nq, lq, tokens.shape[1]), np.float32)
    for i, d in enumerate(docs):
        lo, hi = offsets[d], offsets[d + 1]
        src = tokens[rng.integers(lo, hi, size=lq)] if hi > lo else rng.standard_normal((lq, tokens.shape[1]))
        q = src + (noise / np.sqrt(src.shape[1])) * rng.standard_normal(src.shape)
        out[i] = q / np.linalg.norm(q, axis=1, keepdims=True)
    return out


def exhaustive_topk(queries, tokens, offsets, k, allowed=None):
    s = ec.maxsim(queries, tokens, offsets)
    if allowed is not None:
        s[:, ~allowed] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :k], s


def recall(found_ids, true_ids):
    hits = [len(set(a.tolist()) & set(b.tolist())) / len(b) for a, b in zip(found_ids, true_ids)]
    return float(np.mean(hits))


def _install_fallback() -> None:
    try:
        ec.ResidualCodec  # noqa: B018
        return
    except (AttributeError, ImportError):
        pass

    def centroid_scores(q, c, *, num_threads=None):
        return np.asarray(q, np.float32) @ np.asarray(c, np.float32).T

    def centroid_search(q, c, nprobe, *, num_threads=None):
        s = centroid_scores(q, c)
        ids = np.argsort(-s, axis=1, kind="stable")[:, :nprobe].astype(np.int32)
        return np.take_along_axis(s, ids, 1), ids

    def assign(t, c, *, num_threads=None):
        t = np.asarray(t, np.float32)
        out = np.empty(len(t), np.int32)
        for i in range(0, len(t), 65536):
            out[i:i + 65536] = np.argmax(t[i:i + 65536] @ c.T, axis=1)
        return out

    def kmeans(sample, k, *, niters=4, seed=0, num_threads=None, progress=None):
        rng = np.random.default_rng(seed)
        x = np.asarray(sample, np.float32)
        c = x[rng.choice(len(x), size=k, replace=False)].copy()
        for _ in range(niters):
            a = assign(x, c)
            sums = np.zeros_like(c)
            np.add.at(sums, a, x)
            cnt = np.bincount(a, minlength=k)
            nz = cnt > 0
            c[nz] = sums[nz] / cnt[nz, None]
            c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        return c

    class ResidualCodec:
        def __init__(self, centroids, bucket_cutoffs, bucket_weights, nbits):
            self.centroids = np.ascontiguousarray(centroids, np.float32)
            self.bucket_cutoffs = np.ascontiguousarray(bucket_cutoffs, np.float32)
            self.bucket_weights = np.ascontiguousarray(bucket_weights, np.float32)
            self.nbits = int(nbits)
            self.num_centroids, self.dim = self.centroids.shape

        @classmethod
        def train(cls, sample, num_centroids, nbits, *, niters=4, seed=0, num_threads=None):
            c = kmeans(sample, num_centroids, niters=niters, seed=seed)
            x = np.asarray(sample, np.float32)
            r = (x - c[assign(x, c)]).ravel()
            b = 1 << nbits
            cut = np.quantile(r, np.arange(1, b) / b).astype(np.float32)
            w = np.quantile(r, (np.arange(b) + 0.5) / b).astype(np.float32)
            return cls(c, cut, w, nbits)

        def compress(self, tokens):
            t = np.asarray(tokens, np.float32)
            codes = assign(t, self.centroids)
            buckets = np.searchsorted(self.bucket_cutoffs, t - self.centroids[codes], side="left").astype(np.uint8)
            bits = (buckets[..., None] >> np.arange(self.nbits, dtype=np.uint8)) & 1
            return codes, np.packbits(bits.reshape(len(t), -1), axis=1)

        def decompress(self, codes, residuals, *, dtype=np.float32):
            codes = np.asarray(codes).astype(np.int64)
            bits = np.unpackbits(np.asarray(residuals), axis=1).reshape(len(codes), self.dim, self.nbits)
            buckets = (bits.astype(np.uint8) << np.arange(self.nbits, dtype=np.uint8)).sum(-1)
            v = self.centroids[codes] + self.bucket_weights[buckets]
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            return v.astype(dtype)

    def maxsim_compressed(queries, codes, residuals, doc_offsets, codec, *, candidates=None, query_mask=None,
                          num_threads=None):
        toks = codec.decompress(codes, residuals)
        if candidates is None:
            return ec.maxsim(queries, toks, doc_offsets, query_mask=query_mask)
        return ec.maxsim_candidates(queries, toks, doc_offsets, candidates, query_mask=query_mask)

    for name, fn in dict(centroid_scores=centroid_scores, centroid_search=centroid_search, assign=assign,
                         kmeans=kmeans, ResidualCodec=ResidualCodec, maxsim_compressed=maxsim_compressed).items():
        setattr(ec, name, fn)


_install_fallback()
