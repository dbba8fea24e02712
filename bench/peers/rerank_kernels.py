"""The exact re-rank's kernel choice on a real PLAID operating point (issue 23): the decoding kernel against
the nibble-table kernel (WARP's implicit decompression, which needs exact query-centroid scores for the
re-ranked tokens' distinct codes), with and without stored token norms, on the documents the search really
re-ranks (k = rerank returns them), 1 thread, best of 3 per query, median over the queries.

    .venv/bin/python bench/peers/rerank_kernels.py --data build/peers/data-pydocs48/data.npz \\
        --index build/peers/idx-pydocs48/edgecolbert-k16384 --nprobe 2 --ndocs 384 --rerank 40
"""
from __future__ import annotations

import json
import os
import statistics
import time

import numpy as np

import edgecolbert_native as ec
from edgecolbert_native.index import Index
from peer_common import setting_parser


def main() -> None:
    ap = setting_parser(__doc__, queries=200)
    args = ap.parse_args()

    queries = np.ascontiguousarray(np.load(args.data)["queries"][: args.queries], np.float32)
    idx = Index.open(args.index)
    if len(idx.segments) != 1:
        raise SystemExit("rerank_kernels: needs an index of one segment")
    seg = idx.segments[0]
    codes = np.asarray(seg.codes).astype(np.int32)
    residuals, offsets = np.asarray(seg.residuals), np.asarray(seg.offsets, np.int64)
    times: dict[str, list[float]] = {"decode": [], "lut": [], "lut + stored norms": []}
    tokens, distinct = [], []
    for q in queries:
        pos = idx.search(q, args.rerank, nprobe=args.nprobe, ndocs=args.ndocs, rerank=args.rerank, num_threads=1)[1][0]
        pos = pos[pos >= 0]  # ids are positions in these indexes
        # the re-ranked documents alone, so that the kernels see only them (as the search's re-rank does)
        c = np.concatenate([codes[offsets[d]:offsets[d + 1]] for d in pos])
        r = np.concatenate([residuals[offsets[d]:offsets[d + 1]] for d in pos])
        off = np.concatenate([[0], np.cumsum(offsets[pos + 1] - offsets[pos])]).astype(np.int64)
        norms = idx.codec.token_norms(c, r)
        tokens.append(len(c))
        distinct.append(len(np.unique(c)))
        for name in times:
            os.environ["EDGECOLBERT_COMPRESSED_KERNEL"] = "decode" if name == "decode" else "lut"
            kw = {"token_norms": norms} if "norms" in name else {}
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                ec.maxsim_compressed(q[None], c, r, off, idx.codec, num_threads=1, **kw)
                best = min(best, time.perf_counter() - t)
            times[name].append(best)
    print(json.dumps({"setting": f"{args.nprobe} / {args.ndocs} / {args.rerank}", "queries": len(queries),
                      "variant": str(ec.kernels.info()["variant"]),
                      "mean_reranked_tokens": float(np.mean(tokens)), "mean_distinct_codes": float(np.mean(distinct)),
                      "median_us": {k: 1e6 * statistics.median(v) for k, v in times.items()}}, indent=1))


if __name__ == "__main__":
    main()
