"""edgecolbert_native.Index on the shared embeddings (bench/peers/make_data.py): build time, bytes per
token, recall@10 over an nprobe/ndocs sweep, single-query p50/p99 at 1 and 2 threads.

    .venv/bin/python bench/peers/run_edgecolbert.py build   --nbits 2
    .venv/bin/python bench/peers/run_edgecolbert.py sweep   --nbits 2
    .venv/bin/python bench/peers/run_edgecolbert.py latency --nbits 2 --threads 1 --nprobe 8 --ndocs 1024

Build uses the defaults (num_centroids = PLAID's 2^floor(log2(16 sqrt(T))), the same rule as colbert-ai /
PyLate). One query [1, 32, 48] per `search` call with num_threads=<threads> (latency also sets
OMP/MKL thread env vars to <threads> before numpy is imported). `--threshold` none = no centroid pruning
(the default). Each mode prints one JSON line (sweep: one per setting).
"""

from __future__ import annotations

import sys

if "--threads" in sys.argv:
    import os as _os
    for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        _os.environ[_v] = sys.argv[sys.argv.index("--threads") + 1]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from edgecolbert_native import Index  # noqa: E402


def load(path):
    z = np.load(path)
    return z["tokens"], z["offsets"], z["queries"], z["truth"]


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def recall(found, truth):
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def commit():
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.check_output(["git", "-C", here, "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:  # noqa: BLE001
        return None


def _cpu():
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["build", "sweep", "latency"])
    ap.add_argument("--data", default="build/peers/data-5000/data.npz")
    ap.add_argument("--index", default=None, help="default build/peers/idx-5000/edgecolbert-nb<nbits>")
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nprobe", type=int, default=None)
    ap.add_argument("--ndocs", type=int, default=None)
    ap.add_argument("--rerank", type=int, default=None, help="documents re-ranked exactly (default ndocs // 4)")
    ap.add_argument("--threshold", default="none")
    a = ap.parse_args()
    th = None if a.threshold == "none" else float(a.threshold)
    path = a.index or f"build/peers/idx-5000/edgecolbert-nb{a.nbits}"
    tokens, offsets, queries, truth = load(a.data)
    T = int(offsets[-1])
    if a.mode == "build":
        c = _cpu()
        t = time.perf_counter()
        idx = Index.build(path, tokens, offsets, nbits=a.nbits, overwrite=True, num_threads=a.threads,
                          progress=False)
        build_s = time.perf_counter() - t
        build_cpu_s = _cpu() - c
        nbytes = dir_bytes(path)
        print(json.dumps({"system": "edgecolbert", "commit": commit(), "nbits": a.nbits, "docs": len(idx),
                          "tokens": T, "num_centroids": idx.manifest["num_centroids"],
                          "build_s": round(build_s, 1), "build_cpu_s": round(build_cpu_s, 1), "build_threads": a.threads, "index_bytes": nbytes,
                          "bytes_per_token": round(nbytes / T, 2)}), flush=True)
        return
    idx = Index.open(path)
    if a.mode == "sweep":
        print(json.dumps({"defaults": idx.default_params(10)}), flush=True)
        for nprobe in (1, 2, 4, 8, 16):
            for ndocs in (64, 128, 256, 512, 1024, 2048, 4096):
                t = time.perf_counter()
                _, ids = idx.search(queries, 10, nprobe=nprobe, ndocs=ndocs, centroid_score_threshold=th,
                                    num_threads=a.threads)
                ms = (time.perf_counter() - t) / len(queries) * 1e3
                print(json.dumps({"system": "edgecolbert", "nbits": a.nbits, "nprobe": nprobe, "ndocs": ndocs,
                                  "threshold": th, "recall@10": round(recall(ids, truth), 4),
                                  "batched_ms_per_q": round(ms, 2)}), flush=True)
        return
    kw = dict(nprobe=a.nprobe, ndocs=a.ndocs, centroid_score_threshold=th, num_threads=a.threads, rerank=a.rerank)
    idx.search(queries[:5], 10, **kw)
    ts, cs, found = [], [], []
    for i in range(len(queries)):
        c = time.process_time()
        t = time.perf_counter()
        _, ids = idx.search(queries[i:i + 1], 10, **kw)
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
        found.append(ids[0])
    ts, cs = np.array(ts) * 1e3, np.array(cs) * 1e3
    print(json.dumps({"system": "edgecolbert", "commit": commit(), "nbits": a.nbits, "nprobe": a.nprobe,
                      "ndocs": a.ndocs, "rerank": a.rerank, "threshold": th, "queries": len(queries),
                      "recall@10": round(recall(found, truth), 4), "threads": a.threads,
                      "p50_ms": round(float(np.percentile(ts, 50)), 2),
                      "p99_ms": round(float(np.percentile(ts, 99)), 2),
                      "cpu_p50_ms": round(float(np.percentile(cs, 50)), 2),
                      "cpu_p99_ms": round(float(np.percentile(cs, 99)), 2)}), flush=True)


if __name__ == "__main__":
    main()
