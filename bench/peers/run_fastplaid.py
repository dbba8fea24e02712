"""fast-plaid (lightonai, Rust + libtorch) on the shared embeddings (bench/peers/make_data.py), CPU only:
build time, bytes per token, recall@10 over a parameter sweep, single-query p50/p99 at 1 or 2 threads.

fast-plaid wheels are built for one torch release each (1.7.0.2110 = torch 2.11.0) and crash against
another, so it runs in its own venv, never the project's (`make bench-peers` makes it from
requirements/peers-fastplaid.txt):

    build/peers/venv-fastplaid/bin/python bench/peers/run_fastplaid.py build   --nbits 2
    build/peers/venv-fastplaid/bin/python bench/peers/run_fastplaid.py sweep   --nbits 2
    build/peers/venv-fastplaid/bin/python bench/peers/run_fastplaid.py latency --nbits 2 --threads 1 --nprobe 8 --nfull 1024

--threads sets OMP_NUM_THREADS, MKL_NUM_THREADS and RAYON_NUM_THREADS before torch / fast_plaid are imported
(fast-plaid's Rust side uses rayon) and torch.set_num_threads. One query [32, 48] per `search` call
(show_progress=False, n_processes default 1). Each mode prints one JSON line (sweep: one per setting).
"""

from __future__ import annotations

import sys

_THREADS = None
if "--threads" in sys.argv:
    _THREADS = sys.argv[sys.argv.index("--threads") + 1]
    import os as _os
    for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        _os.environ[_v] = _THREADS

import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from fast_plaid import search as fp_search  # noqa: E402
from peer_common import build_row, cpu_seconds, load, parser, recall, timed  # noqa: E402


def search_one(idx, q, nprobe, nfull):
    res = idx.search(q, top_k=10, n_full_scores=nfull, n_ivf_probe=nprobe, show_progress=False)
    return [d for d, _ in res[0]]


def main() -> None:
    ap = parser("fast-plaid", None)  # --index default: build/peers/idx-5000/fastplaid-nb<nbits>
    ap.add_argument("--nprobe", type=int, default=8)
    ap.add_argument("--nfull", type=int, default=4096)
    ap.add_argument("--grid", default="1,256 2,256 2,1024 4,1024 8,4096",
                    help="sweep: space-separated n_ivf_probe,n_full_scores (last = fast-plaid's defaults)")
    ap.add_argument("--sweep-queries", type=int, default=100)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    path = a.index or f"build/peers/idx-5000/fastplaid-nb{a.nbits}"
    tokens, offsets, queries, truth = load(a.data)
    T = int(offsets[-1])
    qs = [torch.from_numpy(queries[i:i + 1]) for i in range(len(queries))]
    if a.mode == "build":
        docs = [torch.from_numpy(tokens[offsets[i]:offsets[i + 1]]) for i in range(len(offsets) - 1)]
        c = cpu_seconds()
        t = time.perf_counter()
        fp_search.FastPlaid(index=path, device="cpu").create(documents_embeddings=docs, nbits=a.nbits)
        row = build_row(path, T, time.perf_counter() - t, cpu_seconds() - c)
        print(json.dumps({"system": "fast-plaid", "version": _version(), "nbits": a.nbits, "docs": len(docs),
                          "build_threads": a.threads, "torch": torch.__version__, **row}), flush=True)
        return
    idx = fp_search.FastPlaid(index=path, device="cpu")
    if a.mode == "sweep":
        sub = qs[:a.sweep_queries]
        for g in a.grid.split():
            nprobe, nfull = map(int, g.split(","))
            t = time.perf_counter()
            found = [search_one(idx, q, nprobe, nfull) for q in sub]
            ms = (time.perf_counter() - t) / len(sub) * 1e3
            print(json.dumps({"system": "fast-plaid", "nbits": a.nbits, "nprobe": nprobe, "n_full_scores": nfull,
                              f"recall@10_{len(sub)}q": round(recall(found, truth[:len(sub)]), 4),
                              "mean_ms": round(ms, 1), "threads": a.threads}), flush=True)
        return
    found, lat = timed(lambda q: search_one(idx, q, a.nprobe, a.nfull), qs)
    print(json.dumps({"system": "fast-plaid", "version": _version(), "nbits": a.nbits, "nprobe": a.nprobe,
                      "n_full_scores": a.nfull, "queries": len(qs), "recall@10": round(recall(found, truth), 4),
                      "threads": a.threads, **lat}), flush=True)


def _version():
    from importlib.metadata import version
    return version("fast-plaid")


if __name__ == "__main__":
    main()
