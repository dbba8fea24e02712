"""Bucket placement: ColBERTv2's quantiles against their Lloyd-Max refinement (docs/codec.md, "Bucket
placement"). Same sample, seed and centroids as `Index.build` would use; for each placement: the squared
error of the held-out residuals and the recall@10 ceiling (exhaustive MaxSim over every decoded token,
against the exhaustive float top-10 stored in the data file).

    .venv/bin/python bench/bench_buckets.py --data build/peers/data-20000/data.npz --nbits 2 --queries 200

The data file is `bench/peers/make_data.py`'s (tokens, offsets, queries, truth).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import edgecolbert_native as ec
from edgecolbert_native.index.index import default_num_centroids, default_sample_tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="build/peers/data-20000/data.npz")
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    z = np.load(a.data)
    x, off, q, truth = z["tokens"], z["offsets"], z["queries"][:a.queries], z["truth"][:a.queries]
    T = len(x)
    k = min(default_num_centroids(T), T - int(0.05 * T))
    ns = default_sample_tokens(T, k)
    pos = np.sort(np.random.default_rng(0).choice(T, size=ns, replace=False)) if ns < T else np.arange(T)
    sample = x[pos]
    held = sample[np.random.default_rng(0).permutation(len(sample))[:int(min(0.05 * len(sample), 50_000))]]
    for buckets in ("quantile", "lloyd"):
        t0 = time.perf_counter()
        codec = ec.ResidualCodec.train(sample, k, a.nbits, seed=0, num_threads=a.threads, progress=False,
                                       buckets=buckets)
        train_s = time.perf_counter() - t0
        r = (held - codec.centroids[ec.assign(held, codec.centroids)]).reshape(-1)
        err = float(np.mean((r - codec.bucket_weights[np.searchsorted(codec.bucket_cutoffs, r, side="left")]) ** 2))
        dec = codec.decompress(*codec.compress(x, num_threads=a.threads), num_threads=a.threads)
        top = np.argsort(-ec.maxsim(q, dec, off, num_threads=a.threads), axis=1, kind="stable")[:, :10]
        rec = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(top, truth)]))
        print(json.dumps({"buckets": buckets, "nbits": a.nbits, "centroids": k, "tokens": T, "queries": len(q),
                          "train_s": round(train_s, 1), "heldout_sq_err": float(f"{err:.4g}"),
                          "ceiling_recall@10": round(rec, 4),
                          "cutoffs": [round(float(v), 5) for v in codec.bucket_cutoffs][:7],
                          "weights": [round(float(v), 5) for v in codec.bucket_weights][:8]}), flush=True)


if __name__ == "__main__":
    main()
