"""Sharded search on a local Ray cluster: throughput and per-query latency for 1, 2 and 4 shards.

    .venv/bin/python bench/bench_distributed.py [--docs 20000] [--queries 200]

Synthetic clustered unit vectors (tests/index_helpers.clustered), dim 48, nbits 4. Each shard is
one Ray actor holding its index memory-mapped; a query is fanned out to every actor and the per-shard
top-10 lists are merged. Latency: one query at a time; throughput: all queries as one batch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from index_helpers import clustered, queries_from  # noqa: E402

from edgecolbert_native.distributed import ShardedIndex, build_sharded  # noqa: E402


def _lat(fn, q) -> list[float]:
    out = []
    for i in range(len(q)):
        t1 = time.perf_counter()
        fn(q[i : i + 1])
        out.append(time.perf_counter() - t1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    import ray

    import edgecolbert_native as ec

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    x, off, _ = clustered(args.docs, 48, mean_len=40)
    q = queries_from(x, off, args.queries)
    n = len(off) - 1
    print(f"{args.docs} documents, {len(x)} tokens, dim 48, nbits 4, {args.queries} queries, "
          f"{os.cpu_count()} cores, ray {ray.__version__}")
    rows, agree = [], []
    single = None
    for shards in (1, 2, 4):
        d = tempfile.mkdtemp()
        t0 = time.perf_counter()
        build_sharded(os.path.join(d, "s"), x, off, num_shards=shards, nbits=4)
        build = time.perf_counter() - t0
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs) / 1e6
        if single is None:  # one index over the same data with the same codec: the reference
            single = ec.Index.build(os.path.join(d, "one"), x, off, nbits=4, progress=False,
                                    codec=ec.ResidualCodec.load(os.path.join(d, "s", "codec.bin")))
            ref = single.search(q, 10, num_threads=1)
            ref_exact = single.search(q, 10, ndocs=4 * n, num_threads=1)
        local = ShardedIndex.open(os.path.join(d, "s"))
        shard_lat = _lat(lambda qq: local.searchers[0].index.search(qq, 10, num_threads=1, **local.default_params(10)), q)
        got = local.search(q, 10, num_threads=1)
        got_exact = local.search(q, 10, ndocs=4 * n, num_threads=1)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got[1], ref[1])])
        same = np.mean([np.array_equal(a, b) for a, b in zip(got[1], ref[1])])
        ex_same = np.mean([np.array_equal(a, b) for a, b in zip(got_exact[1], ref_exact[1])])
        ex_d = float(np.abs(got_exact[0] - ref_exact[0]).max())
        agree.append((shards, overlap, same, float(np.mean(got[0][:, :10].sum(1) - ref[0][:, :10].sum(1))), ex_same, ex_d))
        sx = ShardedIndex.open(os.path.join(d, "s"), ray_address="auto")
        sx.search(q[:4], 10)
        lat = _lat(lambda qq: sx.search(qq, 10, num_threads=1), q)
        t1 = time.perf_counter()
        sx.search(q, 10, num_threads=1)
        tput = len(q) / (time.perf_counter() - t1)
        rows.append((shards, build, size, 1e3 * np.median(shard_lat), 1e3 * np.median(lat),
                     1e3 * np.percentile(lat, 99), tput))
        sx.close()
    ray.shutdown()
    print("| shards | build s | index MB | one shard p50 ms (in-process) | Ray p50 ms | Ray p99 ms | batch queries/s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print("| %d | %.1f | %.1f | %.2f | %.2f | %.2f | %.0f |" % r)
    print()
    print("Against one index over the same data with the same codec (top-10):")
    print("| shards | defaults: id overlap | defaults: identical lists | defaults: mean sum-of-scores gain "
          "| ndocs = 4n: identical lists | ndocs = 4n: max abs score diff |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in agree:
        print("| %d | %.4f | %.3f | %+.5f | %.3f | %.1e |" % r)


if __name__ == "__main__":
    main()
