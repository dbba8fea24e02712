"""Recall against the centroid count (docs/index.md, "The centroid count"): for each edgecolbert index built on
one peer data file with a different `--num-centroids`, the codec's ceiling (exhaustive MaxSim over every
document's decoded tokens, `Index.decode`) and recall@10 of `search` over an nprobe x ndocs x rerank grid
(batched, so no timing here: run_edgecolbert.py latency times a setting). MRR@10 too where the data file has
relevance labels (make_data_pydocs.py's ids / relevant).

    .venv/bin/python bench/peers/run_centroid_grid.py --data build/peers/data-pydocs48/data.npz \\
        --index build/peers/idx-pydocs48/edgecolbert-k16384 build/peers/idx-pydocs48/edgecolbert-k2048

One JSON line per index and setting.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import edgecolbert_native as ec
from edgecolbert_native import Index
from edgecolbert_native.cli.evaluate import mrr_at
from peer_common import recall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--index", nargs="+", required=True)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--ndocs", type=int, nargs="+", default=[128, 160, 256, 384, 512])
    ap.add_argument("--rerank", type=int, nargs="+", default=[16, 20, 24, 32, 48, 64])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    z = np.load(a.data)
    offsets, queries, truth = z["offsets"], z["queries"], z["truth"]
    labels = None
    if "relevant" in z.files:
        labels = (z["ids"], [json.loads(r) for r in z["relevant"]])

    def mrr10(found: np.ndarray) -> float | None:
        if labels is None:
            return None
        ids, rel = labels
        return round(mrr_at([[str(ids[d]) for d in row if d >= 0] for row in found], rel, 10), 4)

    print(json.dumps({"exhaustive_float": {"recall@10": 1.0, "mrr@10": mrr10(truth)}}), flush=True)
    for path in a.index:
        idx = Index.open(path)
        k = idx.num_centroids
        decoded = np.concatenate(idx.decode(np.arange(len(offsets) - 1)))
        _, ceiling = ec.maxsim_topk(queries, decoded, offsets, 10)
        print(json.dumps({"index": path, "num_centroids": k, "ceiling_recall@10": round(recall(ceiling, truth), 4),
                          "ceiling_mrr@10": mrr10(ceiling)}), flush=True)
        for nprobe in a.nprobe:
            for ndocs in a.ndocs:
                for rerank in (r for r in a.rerank if r <= ndocs):
                    _, found = idx.search(queries, 10, nprobe=nprobe, ndocs=ndocs, rerank=rerank,
                                          num_threads=a.threads)
                    print(json.dumps({"num_centroids": k, "nprobe": nprobe, "ndocs": ndocs, "rerank": rerank,
                                      "recall@10": round(recall(found, truth), 4), "mrr@10": mrr10(found)}),
                          flush=True)
        _, found = idx.search(queries, 10, num_threads=a.threads)
        print(json.dumps({"num_centroids": k, "defaults": idx.default_params(10),
                          "recall@10": round(recall(found, truth), 4), "mrr@10": mrr10(found)}), flush=True)


if __name__ == "__main__":
    main()
