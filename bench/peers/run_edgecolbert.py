"""edgecolbert_native.Index on the shared embeddings (bench/peers/make_data.py): build time, bytes per
token, recall@10 over an nprobe/ndocs sweep, single-query p50/p99 at 1 and 2 threads.

    .venv/bin/python bench/peers/run_edgecolbert.py build   --nbits 2
    .venv/bin/python bench/peers/run_edgecolbert.py sweep   --nbits 2
    .venv/bin/python bench/peers/run_edgecolbert.py latency --nbits 2 --threads 1 --nprobe 8 --ndocs 1024

Build uses the defaults (num_centroids = PLAID's 2^floor(log2(16 sqrt(T))), the same rule as colbert-ai /
PyLate) unless `--num-centroids N` is given (docs/index.md, "The centroid count"). One query [1, 32, 48] per
`search` call with num_threads=<threads> (latency also sets OMP/MKL thread env vars to <threads> before numpy
is imported). `--threshold` none = no centroid pruning
(the default). Each mode prints one JSON line (sweep: one per setting).
"""

from __future__ import annotations

import sys

if "--threads" in sys.argv:
    import os as _os
    for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        _os.environ[_v] = sys.argv[sys.argv.index("--threads") + 1]

import json  # noqa: E402
import time  # noqa: E402

from edgecolbert_native import Index  # noqa: E402
from peer_common import build_row, commit, cpu_seconds, load, parser, recall, timed  # noqa: E402


def main() -> None:
    ap = parser("edgecolbert", None)  # --index default: build/peers/idx-5000/edgecolbert-nb<nbits>
    ap.add_argument("--nprobe", type=int, default=None)
    ap.add_argument("--ndocs", type=int, default=None)
    ap.add_argument("--rerank", type=int, default=None, help="documents re-ranked exactly (default ndocs // 4)")
    ap.add_argument("--threshold", default="none")
    ap.add_argument("--num-centroids", type=int, default=None, help="build: the index's centroid count (default PLAID's rule)")
    a = ap.parse_args()
    th = None if a.threshold == "none" else float(a.threshold)
    path = a.index or f"build/peers/idx-5000/edgecolbert-nb{a.nbits}"
    tokens, offsets, queries, truth = load(a.data)
    T = int(offsets[-1])
    if a.mode == "build":
        c = cpu_seconds()
        t = time.perf_counter()
        idx = Index.build(path, tokens, offsets, nbits=a.nbits, num_centroids=a.num_centroids, overwrite=True,
                          num_threads=a.threads, progress=False)
        row = build_row(path, T, time.perf_counter() - t, cpu_seconds() - c)
        print(json.dumps({"system": "edgecolbert", "commit": commit(), "nbits": a.nbits, "docs": len(idx),
                          "num_centroids": idx.manifest["num_centroids"], "build_threads": a.threads, **row}), flush=True)
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
    found, lat = timed(lambda q: idx.search(q[None], 10, **kw)[1][0], queries)
    print(json.dumps({"system": "edgecolbert", "commit": commit(), "nbits": a.nbits, "nprobe": a.nprobe,
                      "ndocs": a.ndocs, "rerank": a.rerank, "threshold": th, "queries": len(queries),
                      "recall@10": round(recall(found, truth), 4), "threads": a.threads, **lat}), flush=True)


if __name__ == "__main__":
    main()
