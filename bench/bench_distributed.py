"""Sharded search on a local Ray cluster: throughput and per-query latency for 1, 2 and 4 shards.

    .venv/bin/python bench/bench_distributed.py [--docs 20000] [--queries 200]

Synthetic clustered unit vectors (tests/test_index_support.clustered), dim 48, nbits 4. Each shard is
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

from test_index_support import clustered, queries_from  # noqa: E402

from edgecolbert_native.distributed import ShardedIndex, build_sharded  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    x, off, _ = clustered(args.docs, 48, mean_len=40)
    q = queries_from(x, off, args.queries)
    print(f"{args.docs} documents, {len(x)} tokens, dim 48, nbits 4, {args.queries} queries, "
          f"{os.cpu_count()} cores, ray {ray.__version__}")
    print("| shards | build s | index MB | p50 ms | p99 ms | batch queries/s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for shards in (1, 2, 4):
        d = tempfile.mkdtemp()
        t0 = time.perf_counter()
        build_sharded(os.path.join(d, "s"), x, off, num_shards=shards, nbits=4)
        build = time.perf_counter() - t0
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs) / 1e6
        sx = ShardedIndex.open(os.path.join(d, "s"), ray_address="auto")
        sx.search(q[:4], 10)
        lat = []
        for i in range(len(q)):
            t1 = time.perf_counter()
            sx.search(q[i : i + 1], 10, num_threads=1)
            lat.append(time.perf_counter() - t1)
        t1 = time.perf_counter()
        sx.search(q, 10, num_threads=1)
        tput = len(q) / (time.perf_counter() - t1)
        print(f"| {shards} | {build:.1f} | {size:.1f} | {1e3 * np.median(lat):.2f} | {1e3 * np.percentile(lat, 99):.2f} | {tput:.0f} |")
        sx.close()
    ray.shutdown()


if __name__ == "__main__":
    main()
