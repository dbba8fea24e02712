"""Index quality on realistic embeddings (issue 5): the pydocs corpus (shared/data/pydocs) embedded with
the project's encoder (all-MiniLM-L6-v2 through `Encoder.from_pretrained(offline_model_path())`, dim 384,
every token kept; a real 48-dim ColBERT checkpoint is not available offline). Reports, per nbits: the
codec ceiling (exhaustive MaxSim over the decoded tokens), recall@10 of `search` against exhaustive
MaxSim on the float embeddings, MRR@10 of both against the dev queries' relevance labels, the
recall/latency curve over nprobe and ndocs, and single-query p50/p99 at 1 and 2 threads.

    .venv/bin/python bench/bench_index_pydocs.py --cache /tmp/pydocs_minilm.npz --dir /tmp/pydocs_idx

Embeddings are cached (float16) in --cache: encoding the 10,655 passages takes 15-25 min on 2 cores.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

import numpy as np

import edgecolbert_native as ec
from edgecolbert_native.index import Index

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "edgecolbert_native", "data", "pydocs")


def load_jsonl(path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def embeddings(cache, corpus, limit):
    if os.path.exists(cache):
        z = np.load(cache)
        return z["tokens"], z["offsets"], [str(i) for i in z["ids"]]
    from edgecolbert_native.encoder import Encoder, offline_model_path

    enc = Encoder.from_pretrained(offline_model_path())
    docs = corpus[:limit] if limit else corpus
    t = time.perf_counter()
    tok, off = enc.encode_documents([d["text"] for d in docs], show_progress_bar=True)
    print(f"encoded {len(docs)} passages in {time.perf_counter() - t:.0f} s", flush=True)
    tok, off = tok.numpy().astype(np.float16), off.numpy()
    ids = [d["id"] for d in docs]
    np.savez(cache, tokens=tok, offsets=off, ids=np.array(ids))
    return tok, off, ids


def mrr10(ranked_ids, queries):
    total = 0.0
    for row, qr in zip(ranked_ids, queries):
        rel = set(qr["relevant"])
        for r, d in enumerate(row[:10]):
            if d in rel:
                total += 1.0 / (r + 1)
                break
    return total / len(queries)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default="/tmp/pydocs_minilm.npz")
    ap.add_argument("--dir", default="/tmp/pydocs_idx")
    ap.add_argument("--limit", type=int, default=0, help="first N passages only (0: all)")
    ap.add_argument("--nbits", type=int, nargs="+", default=[4, 2])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--curve-queries", type=int, default=200)
    args = ap.parse_args()
    corpus = load_jsonl(os.path.join(DATA, "corpus.jsonl.gz"))
    queries = load_jsonl(os.path.join(DATA, "queries-dev.jsonl.gz"))[:args.queries]
    tok, off, ids = embeddings(args.cache, corpus, args.limit)
    ids = np.array(ids)
    print(f"pydocs: {len(off) - 1} passages, {len(tok):,} tokens, dim {tok.shape[1]}; {len(queries)} dev queries", flush=True)
    from edgecolbert_native.encoder import Encoder, offline_model_path

    enc = Encoder.from_pretrained(offline_model_path())
    q, m = enc.encode_queries([x["text"] for x in queries])
    q, m = q.numpy(), m.numpy()
    t = time.perf_counter()
    _, true = ec.maxsim_topk(q, tok, off, 10, query_mask=m)
    print(f"exhaustive MaxSim (float16 embeddings): {time.perf_counter() - t:.0f} s; MRR@10 {mrr10(ids[true], queries):.4f}",
          flush=True)

    def recall(found):
        return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, true)]))

    for nbits in args.nbits:
        path = os.path.join(args.dir, f"nbits{nbits}")
        if os.path.exists(os.path.join(path, "manifest.json")):
            idx = Index.open(path, verify=False)
        else:
            t = time.perf_counter()
            idx = Index.build(path, tok, off, nbits=nbits, progress=False)
            print(f"nbits {nbits}: build {time.perf_counter() - t:.0f} s", flush=True)
        pos_of = {str(v): i for i, v in enumerate(idx._ids_all())}
        # The index's ids may be strings (CLI-built) or 0..n-1: compare positions.
        seg = idx.segments[0]
        best_s = np.full((len(q), 10), -np.inf, np.float32)
        best_i = np.zeros((len(q), 10), np.int64)
        for d0 in range(0, seg.n, 1000):
            d1 = min(seg.n, d0 + 1000)
            lo, hi = int(seg.offsets[d0]), int(seg.offsets[d1])
            dec = idx.codec.decompress(np.asarray(seg.codes[lo:hi], np.int32), np.asarray(seg.residuals[lo:hi]))
            sc = ec.maxsim(q, dec, seg.offsets[d0:d1 + 1] - lo, query_mask=m)
            cs = np.concatenate([best_s, sc], 1)
            ci = np.concatenate([best_i, d0 + np.broadcast_to(np.arange(d1 - d0), sc.shape)], 1)
            o = np.argsort(-cs, axis=1, kind="stable")[:, :10]
            best_s, best_i = np.take_along_axis(cs, o, 1), np.take_along_axis(ci, o, 1)
        print(f"\n## nbits {nbits}: {idx.num_centroids} centroids, defaults {idx.default_params()}")
        print(f"ceiling (exhaustive MaxSim over decoded tokens): recall@10 {recall(best_i):.3f}, "
              f"MRR@10 {mrr10(ids[best_i], queries):.4f}", flush=True)

        def run(nq, threads=1, **kw):
            ts, found = [], []
            idx.search(q[:2], 10, query_mask=m[:2], num_threads=threads, **kw)
            for i in range(nq):
                t = time.perf_counter()
                _, r = idx.search(q[i:i + 1], 10, query_mask=m[i:i + 1], num_threads=threads, **kw)
                ts.append(time.perf_counter() - t)
                found.append(np.array([pos_of[str(v)] for v in r[0]]))
            return np.array(ts) * 1e3, found

        for th in (1, 2):
            ts, found = run(len(q), th)
            print(f"defaults, {th} thread(s), {len(q)} queries: recall@10 {recall(found):.3f}, "
                  f"MRR@10 {mrr10(ids[np.array(found)], queries):.4f}, p50 {np.percentile(ts, 50):.1f} ms, "
                  f"p99 {np.percentile(ts, 99):.1f} ms", flush=True)
        nc = args.curve_queries
        if nc <= 0:  # no curve asked for
            continue
        print(f"| nprobe \\ ndocs | 256 | 512 | 1024 | 2048 |   (recall@10 (p50 ms), {nc} queries, 1 thread)")
        print("|---:|---:|---:|---:|---:|")
        for nprobe in (2, 4, 8, 16):
            cells = []
            for ndocs in (256, 512, 1024, 2048):
                ts, found = run(nc, 1, nprobe=nprobe, ndocs=ndocs)
                cells.append(f"{np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, true[:nc])]):.3f} "
                             f"({np.percentile(ts, 50):.1f})")
            print(f"| {nprobe} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
