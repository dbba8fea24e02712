"""Stage B from each document's distinct codes against stage B from every code, on an index on disk.

1. The share of (document, code) pairs that are distinct within their document.
2. Stage B alone (``plaid_centroid_interaction``) on each query's ``--ndocs`` best candidates, float32 centroid
   scores fresh in cache, every code vs the distinct codes, the two alternating; outputs compared bit for bit.
3. Whole searches (``Index.search``, 1 thread), alternating query by query in one process between segments
   passed with and without their distinct codes (``_plaid._segments``), ids compared.

    .venv/bin/python bench/bench_stage_b_distinct.py --data build/peers/data-pydocs48/data.npz \\
        --index build/peers/idx-pydocs48/edgecolbert-k16384 --nprobe 2 --ndocs 384 --rerank 40
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a peer data file (bench/peers/make_data*.py): its 'queries'")
    ap.add_argument("--index", required=True)
    ap.add_argument("--nprobe", type=int, default=2)
    ap.add_argument("--ndocs", type=int, default=384)
    ap.add_argument("--rerank", type=int, default=40)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from edgecolbert_native import Index, _native
    from edgecolbert_native.index import _plaid

    Q = np.load(args.data)["queries"][:args.queries]
    idx = Index.open(args.index)
    pairs = sum(len(s.codes) for s in idx.segments)
    t0 = time.perf_counter()
    distinct = [_plaid.distinct_codes(s, 1) for s in idx.segments]
    build_ms = (time.perf_counter() - t0) * 1e3
    kept = sum(len(d[0]) for d in distinct)
    print(f"distinct codes: {kept:,} of {pairs:,} ({kept / pairs:.1%}), built in {build_ms:.0f} ms on 1 thread")

    if len(idx.segments) == 1:  # stage B alone reads one segment's local document numbers
        seg, (dc, doff) = idx.segments[0], distinct[0]
        _, ids = idx.search(Q[:100], args.ndocs, nprobe=args.nprobe, ndocs=args.ndocs, rerank=args.ndocs,
                            exhaustive=False, num_threads=1)
        cands = [np.sort(idx._positions([x for x in row if x is not None and x != -1], "bench", strict=False,
                                        unique=False)) for row in ids]
        times: dict[str, list] = {"every code": [], "distinct": []}
        same = True
        for _ in range(args.rounds):
            for q, docs in zip(Q[:100], cands):
                S = _plaid.centroid_scores(q, idx.codec.centroids)
                out = {}
                for name, (c, o) in (("every code", (seg.codes, seg.offsets)), ("distinct", (dc, doff))):
                    t = time.perf_counter()
                    out[name] = _native.plaid_centroid_interaction(S.t, S.m, c, o, docs, num_threads=1)
                    times[name].append(time.perf_counter() - t)
                same &= np.array_equal(out["every code"].view(np.uint32), out["distinct"].view(np.uint32))
        print(f"stage B alone on {args.ndocs} candidates, median us: "
              + ", ".join(f"{k} {np.median(v) * 1e6:.1f}" for k, v in times.items()) + f"; bit-identical {same}")

    plain = _plaid._segments
    every = lambda segs, distinct=False, num_threads=None: plain(segs, False, num_threads)  # noqa: E731
    ts: dict[int, list] = {0: [], 1: []}
    ids_same = True
    for r in range(args.rounds):
        for i, q in enumerate(Q):
            got = {}
            for v in ((0, 1) if (i + r) % 2 else (1, 0)):  # alternate which goes first
                _plaid._segments = plain if v else every
                t = time.perf_counter()
                got[v] = idx.search(q, 10, nprobe=args.nprobe, ndocs=args.ndocs, rerank=args.rerank, exhaustive=False,
                                    num_threads=1)[1]
                ts[v].append(time.perf_counter() - t)
            ids_same &= np.array_equal(got[0], got[1])
    _plaid._segments = plain
    print(f"Index.search p50 ms at {args.nprobe} / {args.ndocs} / {args.rerank}, 1 thread: every code "
          f"{np.median(ts[0]) * 1e3:.3f}, distinct {np.median(ts[1]) * 1e3:.3f}; ids identical {ids_same}")


if __name__ == "__main__":
    main()
