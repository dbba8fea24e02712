"""Index benchmark (issue 5): build time, bytes per token, recall@10 against exhaustive MaxSim,
the codec's ceiling (exhaustive MaxSim over the decoded tokens), the recall/latency curve over nprobe and
ndocs, per-stage time (native stage B against the former numpy one), single-query p50/p99 at 1 and 2
threads, the exhaustive/PLAID crossover and the checksum cost.

    .venv/bin/python bench/bench_index.py --docs 25000 --queries 500

Data: tests/index_helpers.clustered — unit vectors around 1,024 random unit "topic" directions
in dim 48; each document (1 to 79 tokens, mean 40) draws its tokens from 3 topics, noise of total norm
0.6; queries are 32 tokens of one random document each plus noise of norm 0.4 (known-item style).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import index_helpers as H  # noqa: E402
import plaid_reference as R  # noqa: E402  (the stage-by-stage search, to time each stage)
import edgecolbert_native as ec  # noqa: E402
from edgecolbert_native.index import Index  # noqa: E402
from edgecolbert_native.index import _plaid, _search  # noqa: E402
from edgecolbert_native.index._segments import ragged_ranges as _ragged  # noqa: E402
from edgecolbert_native.index._storage import file_crc32  # noqa: E402


def latency(idx, q, threads, **kw):
    ts = []
    idx.search(q[:5], 10, num_threads=threads, **kw)
    for i in range(len(q)):
        t = time.perf_counter()
        idx.search(q[i:i + 1], 10, num_threads=threads, **kw)
        ts.append(time.perf_counter() - t)
    ts = np.array(ts) * 1e3
    return np.percentile(ts, 50), np.percentile(ts, 99)


def stage_b_numpy(idx, S, pos, threshold):
    """The pre-kernel numpy stage B (gather + maximum.reduceat), kept to report the kernel's speed-up."""
    th = -np.inf if threshold is None else threshold
    S = np.where(S.max(axis=0, keepdims=True) >= th, S, 0.0).astype(np.float32)
    out = np.zeros(len(pos), np.float64)
    for s, local, sel in R.split(idx, pos):
        lo, hi = s.offsets[local], s.offsets[local + 1]
        ne = hi > lo
        lo, hi, sel = lo[ne], hi[ne], sel[ne]
        tok = _ragged(lo, hi)
        vals = S[:, np.asarray(s.codes[tok], np.int64)]
        starts = np.concatenate([[0], np.cumsum(hi - lo)[:-1]])
        out[sel] = np.maximum.reduceat(vals, starts, axis=1).sum(axis=0)
    return out


def stages(idx, q, n=200):
    """Per-stage time (ms per query, 1 thread) at the default parameters; stage B native vs numpy."""
    d = idx.default_params()
    C = np.asarray(idx.codec.centroids, np.float32)
    t = dict(scores=0.0, a=0.0, b=0.0, b_numpy=0.0, rerank=0.0)
    for i in range(min(n, len(q))):
        t0 = time.perf_counter()
        S = _plaid.centroid_scores(q[i], C, num_threads=1)
        t1 = time.perf_counter()
        pos, est = R.stage_a(idx, S, d["nprobe"], idx.live)
        if len(pos) > d["ndocs"]:
            pos = pos[np.argpartition(-est, d["ndocs"] - 1)[:d["ndocs"]]]
        t2 = time.perf_counter()
        ap = R.stage_b(idx, S, pos, d["centroid_score_threshold"], 1)
        t3 = time.perf_counter()
        stage_b_numpy(idx, S.rows, pos, d["centroid_score_threshold"])
        t4 = time.perf_counter()
        keep = max(10, d["ndocs"] // _search.RERANK_DIVISOR)
        if len(pos) > keep:
            pos = pos[np.argpartition(-ap, keep - 1)[:keep]]
        R.exact(idx, q[i], np.sort(pos), 1)
        t5 = time.perf_counter()
        for k, v in (("scores", t1 - t0), ("a", t2 - t1), ("b", t3 - t2), ("b_numpy", t4 - t3), ("rerank", t5 - t4)):
            t[k] += v
    m = min(n, len(q))
    return {k: v / m * 1e3 for k, v in t.items()}


def index_bytes(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=25000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--nbits", type=int, nargs="+", default=[4, 2])
    ap.add_argument("--crossover", action="store_true")
    args = ap.parse_args()
    print(f"cpu threads {os.cpu_count()}, isa {ec.info()['variant']}")
    x, off, _ = H.clustered(args.docs, seed=0)
    q = H.queries_from(x, off, args.queries, seed=1)
    T = len(x)
    print(f"collection: {args.docs} docs, {T:,} tokens, dim {x.shape[1]}")
    t = time.perf_counter()
    true, _ = H.exhaustive_topk(q, x, off, 10)
    print(f"exhaustive maxsim ground truth: {time.perf_counter() - t:.1f} s for {len(q)} queries")
    for nbits in args.nbits:
        d = tempfile.mkdtemp(dir=os.environ.get("BENCH_DIR"))
        t = time.perf_counter()
        idx = Index.build(os.path.join(d, "i"), x, off, nbits=nbits, progress=False)
        bt = time.perf_counter() - t
        path = os.path.join(d, "i")
        nb = index_bytes(path)
        print(f"\n## nbits {nbits}: build {bt:.1f} s, {idx.num_centroids} centroids, {nb / T:.2f} bytes/token "
              f"(all files), defaults {idx.default_params()}")
        t = time.perf_counter()
        Index.open(path, verify=True)
        ot = time.perf_counter() - t
        print(f"open with verify: {ot * 1e3:.0f} ms for {nb / 1e6:.0f} MB")
        seg = idx.segments[0]
        dec = np.ascontiguousarray(idx.codec.decompress(np.asarray(seg.codes, np.int32), np.asarray(seg.residuals)),
                                   np.float32)
        dtop, _ = H.exhaustive_topk(q, dec, off, 10)
        del dec
        print(f"ceiling: exhaustive maxsim over the DECODED tokens, recall@10 {H.recall(dtop, true):.3f}")
        s, ids = idx.search(q, 10, exhaustive=False)
        print(f"recall@10 defaults (PLAID path): {H.recall(ids, true):.3f}")
        st = stages(idx, q)
        print("stages at defaults, ms/query, 1 thread: " + ", ".join(f"{k} {v:.3f}" for k, v in st.items())
              + f"; stage B numpy/native {st['b_numpy'] / st['b']:.1f}x")
        print("| nprobe | ndocs | recall@10 | p50 ms (1 thr) |")
        print("|---:|---:|---:|---:|")
        for nprobe in (2, 4, 8, 16):
            for ndocs in (128, 256, 512, 1024):
                s, ids = idx.search(q, 10, exhaustive=False, nprobe=nprobe, ndocs=ndocs)
                p50, _ = latency(idx, q[:100], 1, exhaustive=False, nprobe=nprobe, ndocs=ndocs)
                print(f"| {nprobe} | {ndocs} | {H.recall(ids, true):.3f} | {p50:.2f} |")
        for th in (1, 2):
            p50, p99 = latency(idx, q, th, exhaustive=False)
            print(f"defaults, {th} thread(s), {len(q)} queries: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    big = os.path.join(tempfile.mkdtemp(), "blob")
    with open(big, "wb") as f:
        f.write(os.urandom(1 << 29))
    t = time.perf_counter()
    file_crc32(big)
    dt = time.perf_counter() - t
    print(f"\nchecksum (CRC-32, zlib): {0.5 / dt:.2f} GB/s, {dt * 2:.2f} s per GB (file in page cache)")
    os.unlink(big)
    if args.crossover:
        print("\n## exhaustive vs PLAID, nbits 4, default parameters, 1 thread, p50 ms")
        print("| tokens | exhaustive | PLAID |")
        print("|---:|---:|---:|")
        for n in (1000, 3000, 6000, 12000):
            xs, offs = x[: off[n]], off[: n + 1]
            idx = Index.build(os.path.join(tempfile.mkdtemp(), "i"), xs, offs, nbits=4, progress=False)
            idx.search(q[:2], 10, exhaustive=True)
            e50, _ = latency(idx, q[:100], 1, exhaustive=True)
            p50, _ = latency(idx, q[:100], 1, exhaustive=False)
            print(f"| {int(offs[-1]):,} | {e50:.2f} | {p50:.2f} |")
        print(f"(EXHAUSTIVE_TOKENS is {_search.EXHAUSTIVE_TOKENS:,})")


if __name__ == "__main__":
    main()
