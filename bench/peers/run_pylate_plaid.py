"""PyLate's PLAID index with use_fast=False (its bundled Stanford ColBERT PLAID code) on the shared
embeddings (bench/peers/make_data.py): build time, bytes per token, recall@10 over a parameter sweep,
single-query p50/p99 at 1 or 2 threads (--threads: OMP/MKL env vars set before torch is imported,
and torch.set_num_threads); recall@10 of the latency run is computed from the timed searches themselves.

    build/peers/venv-pylate/bin/python bench/peers/run_pylate_plaid.py build  --data build/peers/data-5000/data.npz --index build/peers/idx-5000/pylate
    build/peers/venv-pylate/bin/python bench/peers/run_pylate_plaid.py sweep  --data ... --index ...
    build/peers/venv-pylate/bin/python bench/peers/run_pylate_plaid.py latency --data ... --index ... \
        --threads 1 --ncells 8 --ndocs 8192 --threshold 0.35

build/peers/venv-pylate (`make bench-peers` makes it): a venv over the project's venv (a .pth file adds the project .venv's site-packages: torch
2.13.0+cpu, pylate 1.6.0, ninja, ujson, bitarray, GitPython) plus psutil and fastkmeans, which the bundled
ColBERT code imports. The C++ extensions are JIT-compiled (ninja) on first use; `build` first builds a
200-document warm-up index so that compilation is not counted in the build time.

Latency is timed around `Searcher.search` (one query [32, 48] at a time), i.e. the PLAID search itself;
PyLate's public `index(queries_embeddings, k)` additionally opens its SQLite id map and looks up every result
on each call: `--api` times that path instead (what a PyLate user's call costs).
Each mode prints one JSON line.
"""

from __future__ import annotations

import sys

if "--threads" in sys.argv:
    import os as _os
    for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        _os.environ[_v] = sys.argv[sys.argv.index("--threads") + 1]

import contextlib
import io
import json
import os
import shutil
import time

import torch

from peer_common import build_row, cpu_seconds, load, parser, recall, timed
from pylate import indexes


def docs_list(tokens, offsets):
    return [tokens[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def make(index_dir, nbits, override):
    folder, name = os.path.split(index_dir.rstrip("/"))
    return indexes.PLAID(index_folder=folder, index_name=name, override=override, use_fast=False,
                         nbits=nbits, embedding_size=48)


def search_all(searcher, queries, k=10):
    out = []
    for q in queries:
        pids, _, _ = searcher.search(q, k=k)
        out.append(list(pids))
    return out


def latency(searcher, queries, threads, api=None):
    """One query per call; returns (found ids, p50/p99 wall and CPU ms). With ``api`` (the PLAID index object) each
    call goes through PyLate's public ``index(queries_embeddings, k)``, which adds its SQLite id map."""
    torch.set_num_threads(threads)

    def one(q):
        if api is None:
            return list(searcher.search(q, k=10)[0])
        return [int(r["id"]) for r in api(q, k=10)[0]]

    return timed(one, queries)


def quiet():
    return contextlib.redirect_stdout(io.StringIO())


def main() -> None:
    ap = parser("PyLate's PLAID (use_fast=False)", "build/peers/idx-5000/pylate")
    ap.add_argument("--ncells", type=int, default=None)
    ap.add_argument("--ndocs", type=int, default=None)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--grid", default="1,256,0.5 2,256,0.5 2,1024,0.45 4,1024,0.4 4,4096,0.4 8,4096,0.35 8,8192,0.35",
                    help="sweep: space-separated ncells,ndocs,threshold (last = PyLate's defaults: "
                         "ncells=n_ivf_probe 8, ndocs=n_full_scores 8192, threshold 0.35)")
    ap.add_argument("--sweep-queries", type=int, default=100)
    ap.add_argument("--api", action="store_true", help="latency through PyLate's public index(...) call "
                                                        "(Searcher.search plus its SQLite id lookups)")
    a = ap.parse_args()
    tokens, offsets, queries, truth = load(a.data)
    T = int(offsets[-1])
    ids = [str(i) for i in range(len(offsets) - 1)]
    if a.mode == "build":
        warm = a.index.rstrip("/") + "-warmup"
        with quiet():
            make(warm, a.nbits, True).add_documents(ids[:200], documents_embeddings=docs_list(tokens, offsets)[:200])
        shutil.rmtree(warm, ignore_errors=True)
        docs = docs_list(tokens, offsets)
        c = cpu_seconds()
        t = time.perf_counter()
        with quiet():
            idx = make(a.index, a.nbits, True)
            idx.add_documents(ids, documents_embeddings=docs)
        row = build_row(a.index, T, time.perf_counter() - t, cpu_seconds() - c)
        print(json.dumps({"system": "pylate-plaid(use_fast=False)", "nbits": a.nbits, "docs": len(ids),
                          "torch": torch.__version__, "build_threads": torch.get_num_threads(), **row}), flush=True)
        return
    with quiet():
        idx = make(a.index, a.nbits, False)
    searcher = idx._index.searcher
    if a.mode == "sweep":
        torch.set_num_threads(2)
        grid = [tuple(map(float, g.split(","))) for g in a.grid.split()]
        sub = queries[:a.sweep_queries]
        for nc, nd, th in grid:
            nc, nd = int(nc), int(nd)
            searcher.configure(ncells=nc, ndocs=nd, centroid_score_threshold=th)
            t = time.perf_counter()
            r = recall(search_all(searcher, sub), truth[:len(sub)])
            ms = (time.perf_counter() - t) / len(sub) * 1e3
            print(json.dumps({"system": "pylate-plaid", "ncells": nc, "ndocs": nd, "threshold": th,
                              f"recall@10_{len(sub)}q": round(r, 4), "mean_ms_2t": round(ms, 1)}), flush=True)
        return
    searcher.configure(ncells=a.ncells, ndocs=a.ndocs, centroid_score_threshold=a.threshold)
    found, lat = latency(searcher, queries, a.threads, idx if a.api else None)
    print(json.dumps({"system": "pylate-plaid(use_fast=False)" + (" via index(...)" if a.api else ""), "nbits": a.nbits, "ncells": a.ncells,
                      "ndocs": a.ndocs, "threshold": a.threshold, "queries": len(queries),
                      "recall@10": round(recall(found, truth), 4), "threads": a.threads,
                      **lat}), flush=True)

if __name__ == "__main__":
    main()
