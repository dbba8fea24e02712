"""Writes the small fast-plaid 1.4 index that tests/test_fast_plaid.py imports (run once, by hand, never in
`make test`: fast-plaid wheels are built for one torch release each, so it runs in its own venv).

    python3 -m venv build/venv-fp14
    echo "$PWD/build/peers/venv-fastplaid/lib/python3.11/site-packages" \
        > build/venv-fp14/lib/python3.11/site-packages/peers-fastplaid.pth     # torch 2.11.0
    build/venv-fp14/bin/pip install --no-deps fast-plaid==1.4.7.2110 fastkmeans==0.5.0 joblib filelock
    build/venv-fp14/bin/python tests/data/fast_plaid_14/make_index.py

What it writes next to itself:
  index/         the directory fast-plaid 1.4.7 wrote: `create` (60 documents of 3..24 tokens, dim 16, nbits 4,
                 in 3 chunks, with metadata) then `update` (15 documents, metadata with a new field) then `delete`
                 (3 documents, so the survivors were renumbered), exactly as fast-plaid left it;
  expected.npz   queries, fast-plaid's `search` results for them (top 8, probing every centroid, n_full_scores
                 4x the documents: with fewer, its centroid-score pruning drops true top-8 documents on these
                 random vectors; so the results are exhaustive MaxSim over fast-plaid's decoded vectors), and
                 `get_embeddings` of every document (fast-plaid's decoding), to compare the import with.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import torch
from fast_plaid import filtering, search

HERE = os.path.dirname(os.path.abspath(__file__))
DIM = 16


def main() -> None:
    out = os.path.join(HERE, "index")
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def docs(n: int) -> list[torch.Tensor]:
        return [torch.nn.functional.normalize(torch.randn(int(rng.integers(3, 25)), DIM), dim=-1) for _ in range(n)]

    fp = search.FastPlaid(index=out, device="cpu")
    first = docs(60)
    meta = [{"lang": ["en", "fr", "de"][i % 3], "year": 2000 + i % 25, "score": 0.5 * i} for i in range(60)]
    # batch_size 25: three chunks on disk ({0,1,2}.codes.npy ...), so the import reads more than one.
    fp.create(documents_embeddings=first, nbits=4, batch_size=25, metadata=meta, seed=42, use_triton_kmeans=False)
    more = docs(15)
    # start_from_scratch=0: an incremental update (a new chunk, 15 < buffer_size documents compressed at once),
    # not the rebuild fast-plaid does below 999 documents.
    fp.update(documents_embeddings=more, start_from_scratch=0, metadata=[{"lang": "en", "year": 2030 + i, "tag": f"t{i}"} for i in range(15)])
    fp.delete(subset=[3, 10, 61])

    queries = torch.nn.functional.normalize(torch.randn(6, 7, DIM), dim=-1)
    n_docs = json.load(open(os.path.join(out, "metadata.json")))["num_documents"]
    k_all = int(np.load(os.path.join(out, "centroids.npy")).shape[0])
    res = fp.search(queries_embeddings=queries, top_k=8, n_ivf_probe=k_all, n_full_scores=4 * n_docs, show_progress=False)
    ids = np.array([[p for p, _ in r] for r in res], np.int64)
    scores = np.array([[s for _, s in r] for r in res], np.float32)
    emb = fp.get_embeddings(list(range(n_docs)))
    lens = np.array([len(e) for e in emb], np.int64)
    np.savez_compressed(
        os.path.join(HERE, "expected.npz"),
        queries=queries.numpy(), ids=ids, scores=scores,
        decoded=torch.cat(emb).float().numpy(), decoded_offsets=np.concatenate([[0], np.cumsum(lens)]),
        where_lang_en=np.array(filtering.where(index=out, condition="lang = ?", parameters=("en",)), np.int64),
    )
    fp.close()
    print(f"{out}: {n_docs} documents, {k_all} centroids; files:", sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
