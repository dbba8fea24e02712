"""float64 numpy references for MaxSim, written for clarity, not speed."""

from __future__ import annotations

import numpy as np


def maxsim_ref(queries, tokens, offsets, query_mask=None):
    """Exact MaxSim in float64: [nq, n]. Empty documents score 0; masked query rows are ignored."""
    q = np.asarray(queries, dtype=np.float64)
    t = np.asarray(tokens, dtype=np.float64)
    nq, lq, _ = q.shape
    n = len(offsets) - 1
    out = np.zeros((nq, n))
    keep = np.ones((nq, lq), bool) if query_mask is None else np.asarray(query_mask, bool)
    for d in range(n):
        b, e = offsets[d], offsets[d + 1]
        if e == b:
            continue
        sims = np.einsum("qld,td->qlt", q, t[b:e])
        out[:, d] = np.where(keep, sims.max(axis=2), 0.0).sum(axis=1)
    return out


def pylate_colbert_scores_ref(queries, docs, query_mask=None, doc_mask=None):
    """PyLate's colbert_scores semantics in float64: masked entries are multiplied to 0, then max, sum."""
    s = np.einsum("ash,bth->abst", np.asarray(queries, np.float64), np.asarray(docs, np.float64))
    if query_mask is not None:
        s = s * np.asarray(query_mask, np.float64)[:, None, :, None]
    if doc_mask is not None:
        s = s * np.asarray(doc_mask, np.float64)[None, :, None, :]
    return s.max(axis=-1).sum(axis=-1)


def rel_err(out, ref):
    ref = np.asarray(ref, np.float64)
    den = np.linalg.norm(ref)
    return float(np.linalg.norm(np.asarray(out, np.float64) - ref) / (den if den > 0 else 1.0))
