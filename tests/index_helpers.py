"""Shared helpers for the index tests (and bench/bench_index.py): clustered synthetic data, queries,
exhaustive references and recall."""

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


def crash_documents(ids) -> tuple[list[str], list[dict]]:
    """Texts and metadata of the crash tests' documents, a function of the id: the document with id i
    holds the vectors of source document i % 1000 (ids 0.., 1000.. and 5000.. in those tests)."""
    ids = [int(i) for i in ids]
    return [f"text of {i}" for i in ids], [{"id": i, "src": i % 1000, "tags": ["t"] * (i % 3)} for i in ids]


def documents_agree(idx, tokens, offsets) -> None:
    """Every live document's text and metadata belong to its id, and its decoded vectors are its source
    document's (same length, close to the originals): vectors, ids and documents agree."""
    ids = np.asarray(idx.ids)
    texts, metas = crash_documents(ids)
    for i, doc, vec, text, meta in zip(ids.tolist(), idx.get(ids), idx.decode(ids), texts, metas):
        assert doc["text"] == text and doc["metadata"] == meta, (i, doc)
        orig = tokens[offsets[i % 1000]:offsets[i % 1000 + 1]]
        assert vec.shape == orig.shape, (i, vec.shape, orig.shape)
        assert float(np.mean(np.sum(vec * orig, axis=1))) > 0.8, i
