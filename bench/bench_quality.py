"""Quality through the index vs exhaustive MaxSim on the same embeddings (issue 7's bar).

    edgecolbert index python/edgecolbert_native/data/pydocs/corpus.jsonl.gz -o /tmp/pydocs-full --keep-encoded
    python bench/bench_quality.py /tmp/pydocs-full python/edgecolbert_native/data/pydocs/queries-dev.jsonl.gz

Prints MRR@10 / Recall@100 of (a) `index.search` with default parameters (what `edgecolbert search
--eval` reports) and (b) exhaustive `maxsim_topk` over the kept float16 embeddings, one line each.
"""

from __future__ import annotations

import sys
import time

from edgecolbert_native import maxsim_topk
from edgecolbert_native.cli.index_dir import CliIndex, load_encoded, load_encoder, quality_line, ranked_ids
from edgecolbert_native.cli.corpus import read_documents, read_queries


def main(index_dir: str, queries_path: str) -> None:
    ci = CliIndex.open(index_dir)
    queries = read_queries(queries_path)
    encoder, _ = load_encoder(ci.meta["model"])
    q, mask = encoder.encode_queries([x.text for x in queries])
    qn, mn = q.numpy(), mask.numpy()
    t0 = time.perf_counter()
    _, ids = ci.index.search(qn, k=100, query_mask=mn)
    t_index = time.perf_counter() - t0
    tokens, offsets = load_encoded(index_dir)
    doc_ids = list(ci.index.ids) if len(ci.index.ids) == len(offsets) - 1 else None
    # documents in corpus order, as encoded (the corpus the index was built from, recorded in meta.json)
    order = [d.id for d in read_documents(ci.meta["corpus"])] if ci.meta.get("corpus") else doc_ids
    t0 = time.perf_counter()
    _, pos = maxsim_topk(qn, tokens, offsets, 100, query_mask=mn)
    t_exh = time.perf_counter() - t0
    exhaustive = [[order[j] for j in row] for row in pos]
    print(f"documents {len(offsets) - 1}, tokens {len(tokens)}, dim {tokens.shape[1]}, queries {len(queries)}, "
          f"nbits {ci.meta['nbits']}, index ids match corpus order: {doc_ids == order}")
    print(f"index search (defaults)   {quality_line(ranked_ids(ids), queries)}   {t_index:.2f} s")
    print(f"exhaustive MaxSim (fp16)  {quality_line(exhaustive, queries)}   {t_exh:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
