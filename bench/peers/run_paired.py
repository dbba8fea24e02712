"""Paired single-query latency, edgecolbert against PyLate's PLAID (use_fast=False), in one process:
each query is searched by edgecolbert, then by PyLate's `Searcher.search`, then through PyLate's public
`index(queries_embeddings, k)` call, one after the other, so every pair of timings shares the machine's
state (this 2-core host is shared and its speed drifts by 30 % within minutes; back-to-back runs of
separate scripts compared different minutes). Prints one JSON line: p50 / p99 and recall@10 per system,
the ratio of the p50s, and the median of the per-query ratios.

Runs in the PyLate venv, which also sees the project's venv (it imports both):
    build/peers/venv-pylate/bin/python bench/peers/run_paired.py --data build/peers/data-20000/data.npz \
        --ours build/peers/idx-20000/edgecolbert-nb2 --pylate build/peers/idx-20000/pylate \
        --threads 1 --nprobe 1 --ndocs 256 --rerank 32 --ncells 1 --pylate-ndocs 256 --threshold 0.5
"""

from __future__ import annotations

import sys

if "--threads" in sys.argv:  # before torch is imported
    import os as _os

    for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        _os.environ[_v] = sys.argv[sys.argv.index("--threads") + 1]

import argparse
import json
import os
import time

import numpy as np
import torch

from edgecolbert_native.index import Index
from run_pylate_plaid import load, make, quiet, recall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="build/peers/data-20000/data.npz")
    ap.add_argument("--ours", default="build/peers/idx-20000/edgecolbert-nb2")
    ap.add_argument("--pylate", default="build/peers/idx-20000/pylate")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--nprobe", type=int, default=None)
    ap.add_argument("--ndocs", type=int, default=None)
    ap.add_argument("--rerank", type=int, default=None)
    ap.add_argument("--ncells", type=int, default=1)
    ap.add_argument("--pylate-ndocs", type=int, default=256)
    ap.add_argument("--threshold", type=float, default=0.5)
    a = ap.parse_args()
    _, _, queries, truth = load(a.data)
    torch.set_num_threads(a.threads)
    ours = Index.open(a.ours)
    with quiet():
        plaid = make(a.pylate, 2, False)
    searcher = plaid._index.searcher
    searcher.configure(ncells=a.ncells, ndocs=a.pylate_ndocs, centroid_score_threshold=a.threshold)
    kw = dict(nprobe=a.nprobe, ndocs=a.ndocs, rerank=a.rerank, num_threads=a.threads)

    systems = {
        "edgecolbert": lambda q: ours.search(q[None], 10, **kw)[1][0].tolist(),
        "pylate_searcher": lambda q: list(searcher.search(q, k=10)[0]),
        "pylate_index_api": lambda q: [int(r["id"]) for r in plaid(q, k=10)[0]],
    }
    for q in queries[:5]:  # warm-up (PyLate loads its C++ extensions on first use)
        for f in systems.values():
            f(q)
    ms = {name: [] for name in systems}
    found = {name: [] for name in systems}
    for q in queries:
        for name, f in systems.items():
            t = time.perf_counter()
            ids = f(q)
            ms[name].append((time.perf_counter() - t) * 1e3)
            found[name].append(ids)
    out = {"threads": a.threads, "queries": len(queries), "ours": {"nprobe": a.nprobe, "ndocs": a.ndocs, "rerank": a.rerank},
           "pylate": {"ncells": a.ncells, "ndocs": a.pylate_ndocs, "threshold": a.threshold},
           "load_avg": os.getloadavg()[0]}
    for name in systems:
        t = np.array(ms[name])
        out[name] = {"p50_ms": round(float(np.percentile(t, 50)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3),
                     "recall@10": round(recall(found[name], truth), 4)}
    mine = np.array(ms["edgecolbert"])
    for name in ("pylate_searcher", "pylate_index_api"):
        other = np.array(ms[name])
        out[f"ratio_p50_{name}"] = round(float(np.percentile(other, 50) / np.percentile(mine, 50)), 2)
        out[f"median_paired_ratio_{name}"] = round(float(np.median(other / mine)), 2)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
