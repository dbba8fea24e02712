"""Real text at a small dimension for the peer scripts: the pydocs passages and dev queries embedded by the
offline MiniLM (dim 384; bench/bench_index_pydocs.py's cache, encoded first when it is missing) and mapped
linearly to --dim dimensions, written in bench/peers/make_data.py's format so that every peer script reads it
unchanged.

    .venv/bin/python bench/peers/make_data_pydocs.py --cache /tmp/pydocs_minilm.npz --out build/peers/data-pydocs48

No real 48-dimensional ColBERT checkpoint is available offline; this is the closest stand-in for what one
produces: real text's token geometry (MiniLM's contextual token vectors) through a linear head.
The map is the top --dim right singular vectors of the uncentred token matrix (fitted on a 262,144-token
sample): the rank-(--dim) linear map that keeps most of the tokens' energy, and, like a ColBERT projection
head, it keeps the common direction that centring would remove. Tokens and query rows are then normalised to
unit length, as the models' outputs are.

Writes <out>/data.npz with tokens float32 [T, dim], offsets int64 [n+1], queries float32 [nq, 32, dim] (the
first --queries dev queries, encoded by the same encoder: MiniLM has no [MASK] expansion, so a query's live
rows, 7.7 on average, are repeated cyclically to the 32 rows of a ColBERT query, which the peer scripts
assume; the truth and every system see the same 32 rows),
truth int64 [nq, 10] (exhaustive MaxSim top-10 over the float tokens), plus ids (passage ids) and relevant
(JSON lists of relevant passage ids) for MRR@10.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import edgecolbert_native as ec

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from bench_index_pydocs import DATA, embeddings, load_jsonl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/tmp/pydocs_minilm.npz", help="bench/bench_index_pydocs.py's embeddings")
    ap.add_argument("--dim", type=int, default=48)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--out", default="build/peers/data-pydocs48")
    a = ap.parse_args()
    # encodes the passages into the cache when it is missing (6-25 min on 2 cores)
    tokens16, offsets, ids = embeddings(a.cache, load_jsonl(os.path.join(DATA, "corpus.jsonl.gz")), 0)
    offsets = offsets.astype(np.int64)
    rng = np.random.default_rng(0)
    sample = tokens16[np.sort(rng.choice(len(tokens16), min(len(tokens16), 1 << 18), replace=False))]
    _, sv, vt = np.linalg.svd(sample.astype(np.float64), full_matrices=False)
    head = np.ascontiguousarray(vt[:a.dim].T.astype(np.float32))  # [384, dim]

    def project(x: np.ndarray) -> np.ndarray:
        y = x.astype(np.float32) @ head
        return y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-12)

    tokens = np.concatenate([project(tokens16[i:i + (1 << 18)]) for i in range(0, len(tokens16), 1 << 18)])
    from edgecolbert_native.encoder import Encoder, offline_model_path

    queries = load_jsonl(os.path.join(DATA, "queries-dev.jsonl.gz"))[:a.queries]
    enc = Encoder.from_pretrained(offline_model_path())
    q, m = enc.encode_queries([x["text"] for x in queries])
    q, m = project(q.numpy()), m.numpy().astype(bool)
    lq = 32
    rows = np.empty((len(queries), lq, a.dim), np.float32)
    for j in range(len(queries)):
        live = q[j][m[j]]
        rows[j] = live[np.arange(lq) % len(live)]
    t = time.perf_counter()
    _, truth = ec.maxsim_topk(rows, tokens, offsets, 10)
    t_exact = time.perf_counter() - t
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "data.npz")
    np.savez(path, tokens=tokens, offsets=offsets, queries=rows, truth=truth.astype(np.int64), ids=np.array(ids),
             relevant=np.array([json.dumps(x["relevant"]) for x in queries]))
    kept = float((sv[:a.dim] ** 2).sum() / (sv ** 2).sum())  # the sample's energy the map keeps
    print(json.dumps({"file": path, "docs": len(offsets) - 1, "tokens": int(offsets[-1]), "dim": a.dim,
                      "queries": len(queries), "query_len": lq, "live_query_rows_mean": float(m.sum(1).mean()),
                      "energy_kept": round(kept, 4), "exact_top10_s": round(t_exact, 2)}))


if __name__ == "__main__":
    main()
