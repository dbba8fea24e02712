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

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from fast_plaid import search as fp_search  # noqa: E402


def load(path):
    z = np.load(path)
    return z["tokens"], z["offsets"], z["queries"], z["truth"]


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def search_one(idx, q, nprobe, nfull):
    res = idx.search(q, top_k=10, n_full_scores=nfull, n_ivf_probe=nprobe, show_progress=False)
    return [d for d, _ in res[0]]


def _cpu():
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["build", "sweep", "latency"])
    ap.add_argument("--data", default="build/peers/data-5000/data.npz")
    ap.add_argument("--index", default=None, help="default build/peers/idx-5000/fastplaid-nb<nbits>")
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
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
        c = _cpu()
        t = time.perf_counter()
        fp_search.FastPlaid(index=path, device="cpu").create(documents_embeddings=docs, nbits=a.nbits)
        build_s = time.perf_counter() - t
        build_cpu_s = _cpu() - c
        nbytes = dir_bytes(path)
        print(json.dumps({"system": "fast-plaid", "version": _version(), "nbits": a.nbits, "docs": len(docs),
                          "tokens": T, "build_s": round(build_s, 1), "build_cpu_s": round(build_cpu_s, 1), "build_threads": a.threads,
                          "index_bytes": nbytes, "bytes_per_token": round(nbytes / T, 2),
                          "torch": torch.__version__}), flush=True)
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
    found = []
    for q in qs[:5]:
        search_one(idx, q, a.nprobe, a.nfull)
    ts, cs = [], []
    for q in qs:
        c = time.process_time()
        t = time.perf_counter()
        found.append(search_one(idx, q, a.nprobe, a.nfull))
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    ts, cs = np.array(ts) * 1e3, np.array(cs) * 1e3
    print(json.dumps({"system": "fast-plaid", "version": _version(), "nbits": a.nbits, "nprobe": a.nprobe,
                      "n_full_scores": a.nfull, "queries": len(qs), "recall@10": round(recall(found, truth), 4),
                      "threads": a.threads, "p50_ms": round(float(np.percentile(ts, 50)), 2),
                      "p99_ms": round(float(np.percentile(ts, 99)), 2),
                      "cpu_p50_ms": round(float(np.percentile(cs, 50)), 2),
                      "cpu_p99_ms": round(float(np.percentile(cs, 99)), 2)}), flush=True)


def _version():
    from importlib.metadata import version
    return version("fast-plaid")


if __name__ == "__main__":
    main()
