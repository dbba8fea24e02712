"""Shared data for the peer comparison (issue 5): ONE embeddings file read by all three systems.

    .venv/bin/python bench/peers/make_data.py --docs 5000 --out build/peers/data-5000

Writes <out>/data.npz with
  tokens   float32 [T, 48]   unit vectors (tests/index_helpers.clustered: 1,024 topics, 3 per document,
                             noise norm 0.6, lengths uniform 1 .. 2*mean_len-1)
  offsets  int64 [n+1]       CSR document offsets
  queries  float32 [nq, 32, 48]  known-item queries (tests/index_helpers.queries_from, noise 0.4)
  truth    int64 [nq, 10]    exact top-10 by exhaustive MaxSim on the float32 tokens (edgecolbert_native.maxsim_topk)
and prints one JSON line describing it. Data stays outside the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
import index_helpers as H  # noqa: E402
import edgecolbert_native as ec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=5000)
    ap.add_argument("--mean-len", type=int, default=180)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--out", default="build/peers/data-5000")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tokens, offsets, _ = H.clustered(a.docs, 48, mean_len=a.mean_len, seed=0)
    queries = H.queries_from(tokens, offsets, a.queries, lq=32, seed=1)
    t = time.perf_counter()
    _, truth = ec.maxsim_topk(queries, tokens, offsets, 10)
    t_exact = time.perf_counter() - t
    path = os.path.join(a.out, "data.npz")
    np.savez(path, tokens=tokens, offsets=offsets, queries=queries, truth=truth.astype(np.int64))
    print(json.dumps({"file": path, "docs": a.docs, "tokens": int(offsets[-1]), "dim": 48,
                      "mean_len": a.mean_len, "queries": a.queries, "query_len": 32,
                      "exact_top10_s": round(t_exact, 2)}))


if __name__ == "__main__":
    main()
