"""`edgecolbert demo`: index the pydocs passages shipped in the package, search the dev queries, and
print results, the time of every stage, and MRR@10 / Recall@100 next to a BM25 baseline from the same
run on the same passages.

Default subset (so that a fresh 2-core machine finishes in minutes): pages of the Python docs drawn in
a seeded random order (seed 0) until at least 1,500 passages are taken, always whole pages; the dev
queries are those whose relevant passages all lie in the subset. `--passages N` draws the same way until
N (the first pages of the same order, so a smaller subset lies inside a larger one; `make test-arm-demo` runs
one under emulation). `--full` takes all 10,655 passages and all 1,000 queries. Only `text` is encoded (the `heading` queries repeat section titles).
The index lives in `.edgecolbert-demo/` under the working directory; a second run reuses it.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .._arrays import to_numpy
from .index_dir import CliIndex, build_cli_index, default_model, load_encoder, quality_line, ranked_ids, say, snippet
from .bm25 import BM25
from .corpus import Document, Query, pydocs_paths, read_documents, read_queries

SUBSET_PASSAGES = 1500


def bm25_ranked(bm: BM25, texts: list[str], doc_ids: list[str], k: int = 100) -> list[list[str]]:
    """BM25's top-k ids per query, only documents with a query term: one with none scores 0, BM25 did not
    find it, and it must get no Recall@100 credit (search() fills its k with them in position order)."""
    scores, positions = bm.search(texts, k=k)
    return [[doc_ids[j] for j, s in zip(row, srow) if s > 0] for row, srow in zip(positions, scores)]

def pydocs_subset(full: bool, min_passages: int = SUBSET_PASSAGES) -> tuple[list[Document], list[Query]]:
    corpus, queries = pydocs_paths()
    docs = list(read_documents(corpus))
    qs = read_queries(queries)
    if full:
        return docs, qs
    pages: dict[str, list[Document]] = {}
    for d in docs:
        pages.setdefault(d.id.split("#", 1)[0], []).append(d)
    order = np.random.default_rng(0).permutation(sorted(pages))
    chosen: list[Document] = []
    for page in order:
        if len(chosen) >= min_passages:
            break
        chosen.extend(pages[page])
    ids = {d.id for d in chosen}
    return chosen, [q for q in qs if q.relevant and all(r in ids for r in q.relevant)]


def model_label(model: str) -> str:
    from ..encoder import offline_model_path

    if offline_model_path() and os.path.normpath(model) == os.path.normpath(offline_model_path() or ""):
        return "all-MiniLM-L6-v2"
    return os.path.basename(os.path.normpath(model)).replace("/", "_")


def run(full: bool = False, model: str | None = None, workdir: str = ".edgecolbert-demo", nbits: int = 4,
        examples: int = 3, passages: int = SUBSET_PASSAGES) -> dict:
    if passages < 1:
        raise ValueError(f"demo: passages must be at least 1, got {passages}")
    t_all = time.perf_counter()
    docs, queries = pydocs_subset(full, passages)
    if not queries:
        raise ValueError(f"demo: no dev query has all its relevant passages in the first {len(docs)} passages; "
                         "ask for more (--passages)")
    note = None
    if model is None:
        model, note = default_model()
    if note:
        say(note)
    label = model_label(model)
    name = f"{label}-{'full' if full else f'subset{passages}'}-nbits{nbits}"
    path = os.path.join(workdir, name)
    timings: dict[str, float] = {}
    reused = False
    try:
        ci = CliIndex.open(path)
        reused = ci.meta.get("num_docs") == len(docs) and ci.meta.get("model") == model
    except (FileNotFoundError, OSError, ValueError):
        reused = False
    print(f"pydocs: {len(docs)} passages, {len(queries)} dev queries ({'full set' if full else 'default subset'})")
    if reused:
        print(f"reusing the index in {path}")
    else:
        timings.update(build_cli_index(docs, path, model=model, nbits=nbits))
        ci = CliIndex.open(path)
    print(f"index: {ci.index!r}")
    t0 = time.perf_counter()
    encoder, _ = load_encoder(model)
    timings["load model (search)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    q, mask = encoder.encode_queries([x.text for x in queries])
    timings["encode queries"] = time.perf_counter() - t0
    qn, mn = to_numpy(q), to_numpy(mask)
    t0 = time.perf_counter()
    scores, ids = ci.index.search(qn, k=min(100, len(ci.index)), query_mask=mn)
    timings["search (all queries)"] = time.perf_counter() - t0
    lat = []
    for i in range(min(50, len(queries))):
        t1 = time.perf_counter()
        ci.index.search(qn[i : i + 1], k=10, query_mask=mn[i : i + 1], num_threads=1)
        lat.append(time.perf_counter() - t1)
    t0 = time.perf_counter()
    bm = BM25(d.text for d in docs)
    timings["BM25 build"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bm_ranked = bm25_ranked(bm, [x.text for x in queries], [d.id for d in docs])
    timings["BM25 search"] = time.perf_counter() - t0

    ranked = ranked_ids(ids)
    for qi in range(min(examples, len(queries))):
        print(f"\nquery: {queries[qi].text!r}   (relevant: {', '.join(queries[qi].relevant[:2])})")
        for r in range(min(3, len(ranked[qi]))):
            d = ci.documents([ranked[qi][r]])[0]
            mark = "*" if d.id in queries[qi].relevant else " "
            print(f"  {mark}{r + 1}. {scores[qi, r]:7.3f}  {d.id}  {snippet(d.text, 80)}")
    print("\nstage timings:")
    for k, v in timings.items():
        print(f"  {k:<24} {v:8.2f} s")
    if lat:
        print(f"  {'one query, 1 thread':<24} p50 {1e3 * float(np.median(lat)):.1f} ms, "
              f"p99 {1e3 * float(np.percentile(lat, 99)):.1f} ms (search only, {len(lat)} queries)")
    colbert = quality_line(ranked, queries)
    bm25 = quality_line(bm_ranked, queries)
    print(f"\nquality on {len(queries)} dev queries ({len(docs)} passages):")
    head = f"edgecolbert ({label}, nbits {nbits})"
    print(f"  {head:<44} {colbert}")
    print(f"  {'BM25 (k1 1.2, b 0.75, same passages)':<44} {bm25}")
    print(f"total {time.perf_counter() - t_all:.1f} s")
    return {"colbert": colbert, "bm25": bm25, "timings": timings}
