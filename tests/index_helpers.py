"""Shared helpers for the index tests (and bench/bench_index.py): clustered synthetic data, queries,
exhaustive references and recall."""

from __future__ import annotations

import numpy as np

import edgecolbert_native as ec
# The clustered generator and known-item queries are also the bench's PLAID row data: one copy, in the package.
from edgecolbert_native.cli.bench import clustered, queries_from  # noqa: F401


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
