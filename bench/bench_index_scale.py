"""Index at scale (issue 5): a synthetic collection of --tokens tokens (default 10^7, dim 48) built with the
streaming (iterator) build, so the collection is never in memory at once: build time, peak RSS
(resource.getrusage), bytes per token (all files), single-query p50/p99 search latency at 1 and 2 threads,
and recall@10 against exhaustive MaxSim (computed batch by batch over the regenerated collection).

    .venv/bin/python bench/bench_index_scale.py --tokens 10000000 --nbits 2 --dir /tmp/scale

Data: the generator of tests/index_helpers.clustered (unit vectors around 1,024 topic directions,
3 topics per document, lengths 1..79, noise 0.6), produced batch by batch from per-batch seeds.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import threading
import time

import numpy as np

import edgecolbert_native as ec
from edgecolbert_native.index import Index


def topics(dim: int, n_topics: int = 1024, seed: int = 0) -> np.ndarray:
    t = np.random.default_rng(seed).standard_normal((n_topics, dim)).astype(np.float32)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def batch(b: int, n_docs: int, tp: np.ndarray, mean_len: int = 40, noise: float = 0.6):
    rng = np.random.default_rng(1000 + b)
    dim = tp.shape[1]
    lens = rng.integers(1, 2 * mean_len, size=n_docs)
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    T = int(off[-1])
    dt = rng.integers(0, len(tp), size=(n_docs, 3))
    pick = dt[np.repeat(np.arange(n_docs), lens), rng.integers(0, 3, size=T)]
    x = tp[pick] + (noise / np.sqrt(dim)) * rng.standard_normal((T, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), off


class RssSampler:
    """Peak anonymous and file-backed resident memory (/proc/self/status, sampled every 0.2 s): the
    getrusage peak also counts pages of memory-mapped files (the spill file, the index arrays), which
    the kernel can drop at any time."""

    def __init__(self):
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                with open("/proc/self/status") as f:
                    for line in f:
                        k = line.split(":")[0]
                        if k in self.peak:
                            self.peak[k] = max(self.peak[k], int(line.split()[1]) // 1024)
            except OSError:
                return
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        self._t.join()
        return self.peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=48)
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--batch-docs", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--truth-queries", type=int, default=100, help="queries with exhaustive ground truth")
    ap.add_argument("--dir", default="/tmp/ec_scale")
    ap.add_argument("--search-only", action="store_true", help="reuse the index already in --dir")
    ap.add_argument("--ceiling", action="store_true", help="also exhaustive MaxSim over the decoded tokens")
    ap.add_argument("--sweep-ndocs", type=int, nargs="*", default=[], help="recall at these ndocs too")
    args = ap.parse_args()
    tp = topics(args.dim)
    n_batches = max(1, int(round(args.tokens / (40 * args.batch_docs))))

    def source():
        for b in range(n_batches):
            yield batch(b, args.batch_docs, tp)

    path = os.path.join(args.dir, "i")
    if not args.search_only:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(args.dir, exist_ok=True)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sampler = RssSampler()
        t = time.perf_counter()
        idx = Index.build(path, source(), nbits=args.nbits, progress=True)
        bt = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peaks = sampler.stop()
        T = int(idx.manifest["num_tokens"])
        nb = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
        print(f"build: {len(idx):,} docs, {T:,} tokens, dim {args.dim}, nbits {args.nbits}, {idx.num_centroids} centroids: "
              f"{bt:.0f} s; peak RSS {rss:.0f} MB (getrusage; before build {rss0:.0f} MB), sampled peaks: anonymous "
              f"{peaks['RssAnon']} MB, file-backed {peaks['RssFile']} MB; {nb / T:.2f} bytes/token ({nb / 1e6:.0f} MB)",
              flush=True)
    # Known-item queries from the first batch; ground truth by exhaustive MaxSim streamed over the batches.
    rng = np.random.default_rng(1)
    x0, o0 = batch(0, args.batch_docs, tp)
    docs = rng.integers(0, args.batch_docs, size=args.queries)
    q = np.empty((args.queries, 32, args.dim), np.float32)
    for i, d in enumerate(docs):
        src = x0[rng.integers(o0[d], o0[d + 1], size=32)]
        v = src + (0.4 / np.sqrt(args.dim)) * rng.standard_normal(src.shape)
        q[i] = v / np.linalg.norm(v, axis=1, keepdims=True)
    nt = min(args.truth_queries, args.queries)
    t = time.perf_counter()
    best_s = np.full((nt, 10), -np.inf, np.float32)
    best_i = np.zeros((nt, 10), np.int64)
    base = 0
    for b in range(n_batches):
        xb, ob = (x0, o0) if b == 0 else batch(b, args.batch_docs, tp)
        s = ec.maxsim(q[:nt], xb, ob)
        cs = np.concatenate([best_s, s], 1)
        ci = np.concatenate([best_i, base + np.broadcast_to(np.arange(s.shape[1]), s.shape)], 1)
        o = np.argsort(-cs, axis=1, kind="stable")[:, :10]
        best_s, best_i = np.take_along_axis(cs, o, 1), np.take_along_axis(ci, o, 1)
        base += s.shape[1]
    print(f"exhaustive ground truth for {nt} queries: {time.perf_counter() - t:.0f} s", flush=True)
    idx = Index.open(path, verify=False)
    print(f"defaults {idx.default_params()}", flush=True)
    if args.ceiling:
        t = time.perf_counter()
        cs_, ci_ = np.full((nt, 10), -np.inf, np.float32), np.zeros((nt, 10), np.int64)
        for seg in idx.segments:
            for d0 in range(0, seg.n, args.batch_docs):
                d1 = min(seg.n, d0 + args.batch_docs)
                lo, hi = int(seg.offsets[d0]), int(seg.offsets[d1])
                dec = idx.codec.decompress(np.asarray(seg.codes[lo:hi], np.int32), np.asarray(seg.residuals[lo:hi]))
                sc = ec.maxsim(q[:nt], dec, seg.offsets[d0:d1 + 1] - lo)
                a = np.concatenate([cs_, sc], 1)
                b = np.concatenate([ci_, seg.base + d0 + np.broadcast_to(np.arange(d1 - d0), sc.shape)], 1)
                o = np.argsort(-a, axis=1, kind="stable")[:, :10]
                cs_, ci_ = np.take_along_axis(a, o, 1), np.take_along_axis(b, o, 1)
        rec = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(ci_, best_i)])
        print(f"ceiling (exhaustive MaxSim over decoded tokens): recall@10 {rec:.3f} ({time.perf_counter() - t:.0f} s)",
              flush=True)
    for ndocs in args.sweep_ndocs:
        _, found = idx.search(q[:nt], 10, ndocs=ndocs)
        rec = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, best_i)])
        print(f"ndocs {ndocs} (other parameters default): recall@10 {rec:.3f}", flush=True)
    for th in (1, 2):
        idx.search(q[:5], 10, num_threads=th)
        ts, found = [], []
        for i in range(args.queries):
            t = time.perf_counter()
            _, ids = idx.search(q[i:i + 1], 10, num_threads=th)
            ts.append(time.perf_counter() - t)
            found.append(ids[0])
        ts_ms = np.array(ts) * 1e3
        rec = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found[:nt], best_i)])
        print(f"search, defaults, {th} thread(s), {args.queries} queries: p50 {np.percentile(ts_ms, 50):.2f} ms, "
              f"p99 {np.percentile(ts_ms, 99):.2f} ms, recall@10 {rec:.3f} (first {nt} queries)", flush=True)
    print(f"peak RSS overall {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)


if __name__ == "__main__":
    sys.exit(main())
