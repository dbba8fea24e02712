"""Hybrid search on pydocs (issue 22): MRR@10 and Recall@100 of late interaction alone, BM25 (FTS5) alone and
their fusion, on the all-MiniLM-L6-v2 index the demo builds (full corpus, nbits 4, texts stored), with the
fusion, its weight and the FTS5 tokenizer chosen on held-in queries and reported on the held-out ones; and
the latency hybrid search adds per query.

    HF_HUB_OFFLINE=1 .venv/bin/edgecolbert index python/edgecolbert_native/data/pydocs/corpus.jsonl.gz -o DIR
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_hybrid.py DIR [--latency-queries 200]

Held in: half of the 1,000 dev queries (a seeded permutation, seed 0; the other half is held out). On the
held-in half: the FTS5 tokenizer (`unicode61` or `porter unicode61`: BM25 alone, computed here on an in-memory
FTS5 table over the stored texts), then the fusion (`rrf`, `normalized`) and the lexical weight (0.1 .. 0.9).
The chosen setting is reported on the held-out half and on all 1,000.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import time

import numpy as np

from edgecolbert_native.index import Index
from edgecolbert_native.index import _search


def load_queries(path):
    import gzip

    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def mrr_recall(ranked, relevant):
    mrr = rec = 0.0
    for ids, rel in zip(ranked, relevant):
        rs = set(rel)
        for r, i in enumerate(ids[:10], 1):
            if i in rs:
                mrr += 1.0 / r
                break
        rec += len(set(ids[:100]) & rs) / len(rs)
    return mrr / len(ranked), rec / len(ranked)


def fts_ranking(texts, queries, tokenize, k=100):
    """BM25 (FTS5 bm25(), words OR-ed and quoted as the index's lexical side does) on an in-memory table."""
    c = sqlite3.connect(":memory:")
    c.execute(f"CREATE VIRTUAL TABLE f USING fts5(x, tokenize='{tokenize}')")
    c.executemany("INSERT INTO f(rowid, x) VALUES (?, ?)", ((i, t or "") for i, t in enumerate(texts)))
    out = []
    for q in queries:
        words = list(dict.fromkeys(w.lower() for w in re.findall(r"\w+", q)))
        if not words:
            out.append([])
            continue
        match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        out.append([r[0] for r in c.execute("SELECT rowid FROM f WHERE f MATCH ? ORDER BY rank LIMIT ?", (match, k))])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", help="a CLI index directory built with texts (edgecolbert index)")
    ap.add_argument("--queries", default=os.path.join(os.path.dirname(__file__), "..", "python", "edgecolbert_native",
                                                       "data", "pydocs", "queries-dev.jsonl.gz"))
    ap.add_argument("--latency-queries", type=int, default=200)
    args = ap.parse_args()
    from edgecolbert_native.encoder import Encoder

    meta = json.load(open(os.path.join(args.dir, "meta.json")))
    idx = Index.open(os.path.join(args.dir, "index"))
    qs = load_queries(args.queries)
    texts_q = [q["text"] for q in qs]
    rel = [q["relevant"] for q in qs]
    perm = np.random.default_rng(0).permutation(len(qs))
    held_in, held_out = np.sort(perm[: len(qs) // 2]), np.sort(perm[len(qs) // 2:])
    enc = Encoder.from_pretrained(meta["model"])
    q, mask = enc.encode_queries(texts_q)
    q, mask = q.numpy(), mask.numpy()
    ids_all = np.asarray(idx._ids_all())

    def names(pos_rows):
        return [[str(ids_all[p]) for p in row if p >= 0] for row in pos_rows]

    def evaluate(ranked, sel):
        return mrr_recall([ranked[i] for i in sel], [rel[i] for i in sel])

    print(f"{idx!r}; {len(qs)} queries, {len(held_in)} held in, {len(held_out)} held out")
    # the lexical side: choose the tokenizer on held-in queries
    doc_texts = [d["text"] for d in idx.get(ids_all)]
    for tok in ("unicode61", "porter unicode61"):
        lex = fts_ranking(doc_texts, texts_q, tok)
        m, r = evaluate([[str(ids_all[p]) for p in row] for row in lex], held_in)
        print(f"BM25 tokenize={tok!r:<20} held-in MRR@10 {m:.4f} Recall@100 {r:.4f}")
    print(f"(the index's FTS5 tokenizer: {idx.docstore.parts[0][2].conn.execute('SELECT sql FROM sqlite_master WHERE name = ?', ('fts',)).fetchone()[0]})")
    s_li, p_li = idx.search(q, 100, query_mask=mask)
    li = [[str(i) for i in row if i is not None] for row in p_li]
    live = idx.live
    lex_pos = [idx.docstore.lexical(t, 100, live)[0] for t in texts_q]
    lexical = names(lex_pos)
    # The late-interaction side once; each setting fuses it with BM25 by the function search(hybrid=) calls.
    order = np.argsort(ids_all, kind="stable")
    pos_li = np.where(p_li == None, -1, 0).astype(np.int64)  # noqa: E711 - object array of str ids
    ok = pos_li == 0
    pos_li[ok] = order[np.searchsorted(ids_all[order], p_li[ok].astype(ids_all.dtype))]
    results = {}
    for fusion in ("rrf", "normalized"):
        for w in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            _, p = _search.fuse(idx, s_li, pos_li, texts_q, live, 100, w, fusion)
            results[(fusion, w)] = names(p)
            m, r = evaluate(results[(fusion, w)], held_in)
            print(f"hybrid {fusion:<10} w={w:.1f} held-in MRR@10 {m:.4f} Recall@100 {r:.4f}")
    best = max(results, key=lambda key: evaluate(results[key], held_in)[0])
    _, p = idx.search(q[:50], 100, query_mask=mask[:50], hybrid=best[1], fusion=best[0], query_texts=texts_q[:50])
    assert [[str(i) for i in row if i is not None] for row in p] == results[best][:50]  # the same fusion
    print(f"chosen on held-in (MRR@10): fusion={best[0]} weight={best[1]}")
    print(f"default (_search.HYBRID_FUSION={_search.HYBRID_FUSION}, HYBRID_WEIGHT={_search.HYBRID_WEIGHT})")
    for label, sel in (("held-out", held_out), ("all 1000", np.arange(len(qs)))):
        for name, ranked in (("late interaction", li), ("BM25 (FTS5)", lexical), (f"hybrid {best}", results[best])):
            m, r = evaluate(ranked, sel)
            print(f"{label:<9} {name:<34} MRR@10 {m:.4f} Recall@100 {r:.4f}")
    # latency: one query at a time, 1 thread, interleaved (late interaction alone, then hybrid, per query)
    n = min(args.latency_queries, len(qs))
    t_li, t_h = [], []
    for i in range(n):
        t0 = time.perf_counter()
        idx.search(q[i:i + 1], 10, query_mask=mask[i:i + 1], num_threads=1)
        t_li.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        idx.search(q[i:i + 1], 10, query_mask=mask[i:i + 1], num_threads=1, hybrid=best[1], fusion=best[0],
                   query_texts=texts_q[i:i + 1])
        t_h.append(time.perf_counter() - t0)
    t_li, t_h = np.array(t_li) * 1e3, np.array(t_h) * 1e3
    print(f"latency over {n} queries, 1 thread, k 10 (ms): late interaction p50 {np.median(t_li):.2f} "
          f"p99 {np.percentile(t_li, 99):.2f}; hybrid p50 {np.median(t_h):.2f} p99 {np.percentile(t_h, 99):.2f}; "
          f"added per query p50 {np.median(t_h - t_li):.2f} mean {np.mean(t_h - t_li):.2f}")


if __name__ == "__main__":
    main()
