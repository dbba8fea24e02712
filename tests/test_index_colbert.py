"""Import of colbert-ai (PLAID) index directories: a small directory hand-built in colbert-ai's
layout (always, needs only torch to write .pt files), and an index colbert-ai itself builds where
colbert-ai is installed."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import index_helpers as H
import edgecolbert_native as ec
from edgecolbert_native.index import Index, import_colbert

torch = pytest.importorskip("torch")


def _write_colbert_dir(d, codec, x, off, chunks=((0, 120), (120, 300)), with_ivf=True):
    os.makedirs(d)
    n = len(off) - 1
    torch.save(torch.from_numpy(np.array(codec.centroids)).half(), os.path.join(d, "centroids.pt"))
    torch.save((torch.from_numpy(np.array(codec.bucket_cutoffs)), torch.from_numpy(np.array(codec.bucket_weights))),
               os.path.join(d, "buckets.pt"))
    all_codes = []
    for i, (a, b) in enumerate(chunks):
        codes, res = codec.compress(x[off[a]:off[b]])
        all_codes.append(np.asarray(codes))
        torch.save(torch.from_numpy(np.asarray(codes, np.int32)), os.path.join(d, f"{i}.codes.pt"))
        torch.save(torch.from_numpy(np.asarray(res)), os.path.join(d, f"{i}.residuals.pt"))
        json.dump(np.diff(off[a:b + 1]).tolist(), open(os.path.join(d, f"doclens.{i}.json"), "w"))
        json.dump({"passage_offset": a, "num_passages": b - a, "num_embeddings": int(off[b] - off[a]),
                   "embedding_offset": int(off[a])}, open(os.path.join(d, f"{i}.metadata.json"), "w"))
    codes = np.concatenate(all_codes).astype(np.int64)
    if with_ivf:
        doc = np.repeat(np.arange(n), np.diff(off))
        pairs = np.unique(codes * n + doc)
        cells, pids = pairs // n, pairs % n
        lengths = np.bincount(cells, minlength=codec.num_centroids)
        # colbert-ai's optimize_ivf pads the pid list with max(lengths) zeros when the last list is short
        if len(lengths) and lengths[:-1].sum() + lengths.max() > len(pids):
            pids = np.concatenate([pids, np.zeros(lengths.max(), pids.dtype)])
        torch.save((torch.from_numpy(pids.astype(np.int32)), torch.from_numpy(lengths)), os.path.join(d, "ivf.pid.pt"))
    json.dump({"config": {"dim": int(x.shape[1]), "nbits": int(codec.nbits)}, "num_chunks": len(chunks),
               "num_partitions": codec.num_centroids, "num_embeddings": int(off[-1]),
               "avg_doclen": float(off[-1] / n)}, open(os.path.join(d, "metadata.json"), "w"))
    return codes


@pytest.mark.parametrize("with_ivf", [True, False])
def test_import_hand_built_colbert_directory(tmp_path, with_ivf):
    x, off, _ = H.clustered(300, seed=4)
    q = H.queries_from(x, off, 10, seed=2)
    codec = ec.ResidualCodec.train(x, 128, 2)
    # colbert-ai stores centroids in float16: the imported codec decodes with those values.
    codec = ec.ResidualCodec(np.asarray(codec.centroids, np.float16).astype(np.float32), codec.bucket_cutoffs,
                             codec.bucket_weights, 2)
    codes = _write_colbert_dir(str(tmp_path / "colbert"), codec, x, off, with_ivf=with_ivf)
    idx = import_colbert(tmp_path / "colbert", tmp_path / "ours")
    assert len(idx) == 300 and idx.nbits == 2 and idx.num_centroids == 128
    np.testing.assert_array_equal(np.asarray(idx.segments[0].codes, np.int64), codes)
    np.testing.assert_array_equal(idx.segments[0].doclens, np.diff(off))
    dec = codec.decompress(np.asarray(idx.segments[0].codes, np.int32), np.asarray(idx.segments[0].residuals))
    true = np.argsort(-ec.maxsim(q, dec, off), axis=1, kind="stable")[:, :10]
    s, ids = idx.search(q, 10, exhaustive=False, nprobe=128, ndocs=1200)
    assert H.recall(ids, true) == 1.0  # same codes, residuals, lengths and ids as colbert-ai's
    s, ids = idx.search(q, 10)
    assert H.recall(ids, true) >= 0.95
    # the imported index is an ordinary index: updatable and reopenable
    idx.add([x[:5]], doc_ids=[1000])
    assert len(Index.open(tmp_path / "ours")) == 301


def test_import_refuses_inconsistent_directory(tmp_path):
    x, off, _ = H.clustered(300, seed=4)
    codec = ec.ResidualCodec.train(x, 64, 2)
    _write_colbert_dir(str(tmp_path / "c"), codec, x, off)
    good = import_colbert(tmp_path / "c", tmp_path / "ours")
    files = sorted(os.listdir(tmp_path / "ours"))
    json.dump([1, 2, 3], open(tmp_path / "c" / "doclens.1.json", "w"))
    with pytest.raises(ValueError, match="chunk 1"):
        import_colbert(tmp_path / "c", tmp_path / "new")
    # Over an index: a failed import leaves it whole (its files were collected first, and generation 1's names
    # rewritten in place), and nothing of its own.
    with pytest.raises(ValueError, match="chunk 1"):
        import_colbert(tmp_path / "c", tmp_path / "ours", overwrite=True)
    assert sorted(os.listdir(tmp_path / "ours")) == files
    again = Index.open(tmp_path / "ours", verify=True)
    assert len(again) == len(good) == 300 and again.manifest["generation"] == 1


def test_import_index_built_by_colbert_ai(tmp_path, monkeypatch):
    """colbert-ai's own CollectionIndexer writes the index (plan, codec, chunked codes/residuals/doclens,
    metadata, IVF via its optimize_ivf); only the two parts that need a GPU stack or a model are stood in
    for: the checkpoint (the token vectors are given, as if encoded) and faiss k-means (replaced by this
    library's spherical k-means, whose centroids colbert-ai then normalises and uses itself)."""
    pytest.importorskip("colbert", reason="colbert-ai is not installed here")
    try:
        import colbert.indexing.collection_indexer as ci
        from colbert.data.collection import Collection
        from colbert.indexing.codecs.residual import ResidualCodec as ColbertCodec
        from colbert.indexing.codecs.residual_embeddings import ResidualEmbeddings
        from colbert.indexing.index_saver import IndexSaver
        from colbert.infra.config import ColBERTConfig
    except Exception as e:  # colbert-ai is an optional test extra
        pytest.skip(f"colbert-ai not importable: {e}")
    import random

    x, off, _ = H.clustered(400, seed=5)
    n, dim = len(off) - 1, x.shape[1]
    q = H.queries_from(x, off, 10, seed=3)

    class GivenEmbeddings:  # CollectionEncoder's interface: passages "doc <i>" -> their token vectors
        def encode_passages(self, passages):
            ids = [int(p.split()[1]) for p in passages]
            embs = [torch.from_numpy(x[off[i]:off[i + 1]]) for i in ids]
            return (torch.cat(embs) if embs else torch.empty(0, dim)), [int(off[i + 1] - off[i]) for i in ids]

    def kmeans(dim_, k, niters, shared_lists, return_value_queue=None):
        sample = shared_lists[0][0].float().numpy()
        return torch.from_numpy(np.ascontiguousarray(ec.kmeans(sample, k, niters=niters, seed=0, progress=False)))

    monkeypatch.setattr(ci, "compute_faiss_kmeans", kmeans)
    monkeypatch.setattr(Collection, "get_chunksize", lambda self: 150)  # three chunks: 150, 150, 100 passages
    random.seed(0)
    d = str(tmp_path / "colbert")
    os.makedirs(d)
    cfg = ColBERTConfig(index_path=d, nbits=2, dim=dim, kmeans_niters=2, gpus=0)
    indexer = object.__new__(ci.CollectionIndexer)  # its __init__ only loads a checkpoint
    indexer.verbose, indexer.config, indexer.rank, indexer.nranks = 0, cfg, 0, 1
    indexer.use_gpu = False
    indexer.collection = Collection(data=[f"doc {i}" for i in range(n)])
    indexer.encoder, indexer.saver = GivenEmbeddings(), IndexSaver(cfg)
    indexer.run(shared_lists=[[[None]]])
    for f in ("plan.json", "metadata.json", "centroids.pt", "buckets.pt", "ivf.pid.pt", "2.codes.pt", "doclens.2.json"):
        assert os.path.exists(os.path.join(d, f)), f

    idx = import_colbert(d, tmp_path / "ours")
    theirs = ColbertCodec.load(index_path=d)
    assert len(idx) == n and idx.nbits == 2 and idx.num_centroids == theirs.centroids.shape[0]
    codes = np.concatenate([torch.load(os.path.join(d, f"{c}.codes.pt")).numpy() for c in range(3)])
    res = np.concatenate([torch.load(os.path.join(d, f"{c}.residuals.pt")).numpy() for c in range(3)])
    ours_codes = np.concatenate([np.asarray(s.codes, np.int64) for s in idx.segments])
    ours_res = np.concatenate([np.asarray(s.residuals) for s in idx.segments])
    np.testing.assert_array_equal(ours_codes, codes)
    np.testing.assert_array_equal(ours_res, res)
    np.testing.assert_array_equal(np.concatenate([s.doclens for s in idx.segments]), np.diff(off))
    # The imported codec decodes colbert-ai's codes to colbert-ai's own vectors.
    want = theirs.decompress(ResidualEmbeddings(torch.from_numpy(codes).int(), torch.from_numpy(res))).float().numpy()
    got = idx.codec.decompress(codes.astype(np.int32), res)
    np.testing.assert_allclose(got, want, atol=2e-3, rtol=0)  # colbert-ai decodes in float16 on the way
    true = np.argsort(-ec.maxsim(q, got, off), axis=1, kind="stable")[:, :10]
    _, ids = idx.search(q, 10, exhaustive=False, nprobe=idx.num_centroids, ndocs=4 * n)
    assert H.recall(ids, true) == 1.0
    _, ids = idx.search(q, 10, exhaustive=False)
    assert H.recall(ids, true) >= 0.95

    # colbert-ai's IndexUpdater.remove + persist_to_disk (its way to delete passages): a removed passage's
    # doclen becomes 0, its codes go, its pid leaves ivf.pid.pt, whose lists shrink but keep the padding of
    # the old longest list. The import has those passages deleted, and is otherwise the same index.
    import types

    from colbert.index_updater import IndexUpdater

    pids, lengths = torch.load(os.path.join(d, "ivf.pid.pt"))
    starts = np.concatenate([[0], np.cumsum(lengths.numpy())])
    longest = int(lengths.argmax())
    removed = sorted({int(p) for p in pids[starts[longest]:starts[longest + 1]].tolist()} - {0})[:5] + [n - 1]
    ranker = types.SimpleNamespace(doclens=torch.from_numpy(np.diff(off)), ivf=None, embeddings=types.SimpleNamespace(
        codes=torch.empty(0, dtype=torch.int32), residuals=torch.empty(0, res.shape[1], dtype=torch.uint8)))
    updater = IndexUpdater(None, types.SimpleNamespace(index=d, ranker=ranker))
    updater.remove(removed)
    updater.persist_to_disk()
    after = import_colbert(d, tmp_path / "ours2")
    assert len(after) == n - len(removed) and not any(p in after for p in removed)
    keep = [p for p in range(n) if p not in removed]
    want_s, want_ids = idx.search(q, 10, exhaustive=True, subset=keep)
    for kw in ({"exhaustive": True}, {"exhaustive": False, "nprobe": idx.num_centroids, "ndocs": 4 * n}):
        s, ids = after.search(q, 10, **kw)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(s, want_s, rtol=1e-6)
    _, ids = after.search(q, 3, subset=removed[:2] + [keep[0]])
    assert set(ids.ravel().tolist()) <= {keep[0], -1}
