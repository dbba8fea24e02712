"""The fastest a PLAID search at one setting could be on this core: each query's work, counted from the search
itself, at the core's measured peaks (issue 23: how far the search is from what the hardware allows, and what
ratio to a peer that bounds).

Per query, from the index and the documents the stages actually handle:
  - centroid scores: Lq x K x dim multiply-adds, at the int8 dot peak (or the float32 FMA peak without one);
  - stage B: one St row (the query's rows rounded up to 32, float32) per distinct code of each candidate it scores,
    read at the L2 read rate (the fastest level that can hold a part of St, K x stride x 4 bytes; its own level
    is reported), the rows' max being free;
  - the exact re-rank: Lq x dim FMAs per token of the re-ranked documents, at the float32 FMA peak.
Stage A, the probe and Python are left out, so the floor is a lower bound on the search's time and
`--peer-p50` / floor an upper bound on the ratio any exact implementation of the setting reaches here.

    .venv/bin/python bench/peers/search_floor.py --data build/peers/data-pydocs48/data.npz \
        --index build/peers/idx-pydocs48/edgecolbert-k16384 --nprobe 2 --ndocs 384 --rerank 40 --peer-p50 8.5
"""
from __future__ import annotations

import json
import statistics
import time

import numpy as np

from edgecolbert_native import kernels, peaks
from edgecolbert_native.cli.bench_report import bandwidth_peak, compute_peak, level_of
from edgecolbert_native.index import Index
from edgecolbert_native.index._plaid import distinct_codes
from peer_common import setting_parser


def main() -> None:
    ap = setting_parser(__doc__, queries=500)
    ap.add_argument("--peer-p50", type=float, default=None, help="a peer's p50 in ms: prints peer / floor")
    args = ap.parse_args()

    queries = np.ascontiguousarray(np.load(args.data)["queries"][: args.queries], np.float32)
    nq, lq, dim = queries.shape
    idx = Index.open(args.index)
    if len(idx.segments) != 1 or not np.array_equal(np.asarray(idx.segments[0].ids), np.arange(idx.segments[0].n)):
        raise SystemExit("search_floor: needs an index of one segment whose ids are its positions")
    seg = idx.segments[0]
    doclens = np.asarray(seg.doclens, np.int64)
    _, dist_off = distinct_codes(seg)
    ndistinct = np.diff(dist_off)
    K = int(idx.manifest["num_centroids"])
    int8 = bool(kernels.info()["fast_int8_centroid_scores"])
    variant = str(kernels.info()["variant"])
    stride = -(-lq // 32) * 32  # St's row: the query's rows rounded up to kCentroidBlockRows (dispatch.hpp)

    limits = peaks.measure(threads=[1])
    fma = compute_peak(limits, variant, "float32", 1)
    dot = compute_peak(limits, variant, "int8", 1) if int8 else fma
    st_bytes = K * stride * 4
    st_level = level_of(st_bytes, 1, limits["caches"])
    bw = bandwidth_peak(limits, "L2", 1)
    if fma is None or dot is None or bw is None:
        raise SystemExit("search_floor: a peak this floor needs was not measured on this core")

    def search(i: int, k: int, rerank: int) -> np.ndarray:
        return idx.search(queries[i], k, nprobe=args.nprobe, ndocs=args.ndocs, rerank=rerank, num_threads=1)[1][0]

    parts: dict[str, list[float]] = {"centroid scores": [], "stage B": [], "re-rank": []}
    reranked_tokens: list[int] = []
    stage_b_docs: list[int] = []
    p50: list[float] = []
    for i in range(nq):
        pool = search(i, args.ndocs, args.ndocs)  # rerank = ndocs: the whole stage-A pool comes back
        pool = pool[pool >= 0]
        top = search(i, args.rerank, args.rerank)  # the documents stage B hands to the re-rank
        top = top[top >= 0]
        rows = int(ndistinct[pool].sum()) if len(pool) > args.rerank else 0
        tokens = int(doclens[top].sum())
        parts["centroid scores"].append(2.0 * lq * dim * K / (dot["best"] * 1e9))
        parts["stage B"].append(rows * stride * 4 / (bw["best"] * 1e9))
        parts["re-rank"].append(2.0 * lq * dim * tokens / (fma["best"] * 1e9))
        reranked_tokens.append(tokens)
        stage_b_docs.append(len(pool) if len(pool) > args.rerank else 0)
    for i in range(nq):  # the search itself, in a pass of its own (k = 10, as the peers' latency runs)
        t = time.perf_counter()
        search(i, 10, args.rerank)
        p50.append(time.perf_counter() - t)
    floor = [sum(p[i] for p in parts.values()) for i in range(nq)]
    out = {
        "setting": f"{args.nprobe} / {args.ndocs} / {args.rerank}", "queries": nq, "query_rows": lq, "centroids": K,
        "variant": variant, "peaks": {"centroid scores": dot["probe"] + f" {dot['best']:.1f}",
                                      "re-rank": fma["probe"] + f" {fma['best']:.1f}",
                                      "stage B": f"read L2 {bw['best']:.1f} GB/s (St {st_bytes / 2**20:.1f} MiB, fits {st_level})"},
        "mean_stage_b_docs": float(np.mean(stage_b_docs)), "mean_reranked_tokens": float(np.mean(reranked_tokens)),
        "floor_ms": {k: 1e3 * statistics.median(v) for k, v in parts.items()},
        "floor_p50_ms": 1e3 * statistics.median(floor),
        "measured_p50_ms": 1e3 * statistics.median(p50),
    }
    out["fraction"] = out["floor_p50_ms"] / out["measured_p50_ms"]
    if args.peer_p50 is not None:
        out["peer_p50_ms"] = args.peer_p50
        out["max_ratio"] = args.peer_p50 / out["floor_p50_ms"]
        out["measured_ratio"] = args.peer_p50 / out["measured_p50_ms"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
