"""The PyLate drop-in, exercised through PyLate's own retrieve and rank code paths."""

from __future__ import annotations

import numpy as np
import pytest

import edgecolbert_native as ec
from edgecolbert_native.integrations.pylate import Index, colbert_scores
from maxsim_reference import pylate_colbert_scores_ref, rel_err
from index_helpers import clustered, queries_from

pylate = pytest.importorskip("pylate", reason="PyLate is a test extra (make test installs it)")
torch = pytest.importorskip("torch")


def clustered_docs(n, seed=0):
    tokens, offsets, _ = clustered(n, 48, mean_len=24, seed=seed)
    return [tokens[offsets[i] : offsets[i + 1]] for i in range(n)], tokens, offsets


def test_colbert_scores_matches_pylate(rng):
    from pylate.scores import colbert_scores as pl_scores

    q = torch.from_numpy(rng.standard_normal((3, 16, 24)).astype(np.float32))
    d = torch.from_numpy(rng.standard_normal((5, 30, 24)).astype(np.float32))
    qm = torch.from_numpy((rng.random((3, 16)) < 0.8).astype(np.float32))
    dm = torch.from_numpy((rng.random((5, 30)) < 0.7).astype(np.float32))
    for args in ((q, d), (q, d, qm, dm), (q, d, None, dm)):
        want = pl_scores(*args)
        got = colbert_scores(*args)
        assert isinstance(got, torch.Tensor) and got.shape == want.shape
        assert rel_err(got.numpy(), want.numpy()) <= 1e-5
    assert rel_err(colbert_scores(q, d, qm, dm).numpy(), pylate_colbert_scores_ref(q, d, qm, dm)) <= 1e-5


def test_documents_embeddings_of_an_unknown_longer_id(tmp_path, rng):
    """Ids "0".."9" are stored as '<U1': an absent "10" must raise KeyError, not be truncated to "1"."""
    docs = [rng.standard_normal((int(n), 16)).astype(np.float32) for n in rng.integers(2, 8, 10)]
    index = Index(index_folder=str(tmp_path), index_name="u1", override=True, nbits=4)
    index.add_documents(documents_ids=[str(i) for i in range(10)], documents_embeddings=docs)
    with pytest.raises(KeyError, match="10"):
        index.get_documents_embeddings([["10"]])
    with pytest.raises(KeyError, match="12"):
        index.get_documents_embeddings([["3"], ["12", "1"]])
    got = index.get_documents_embeddings([["9", "1"]])[0]
    assert [len(e) for e in got] == [len(docs[9]), len(docs[1])]
    np.testing.assert_array_equal(got[1], index.index.decode("1")[0])


def _small(tmp_path, rng, ids, name="s"):
    docs = [rng.standard_normal((int(n), 16)).astype(np.float32) for n in rng.integers(3, 9, len(ids))]
    index = Index(index_folder=str(tmp_path), index_name=name, override=True, nbits=4)
    return index.add_documents(documents_ids=ids, documents_embeddings=docs), docs


def test_integer_ids_come_back_as_integers(tmp_path, rng):
    """PyLate keeps the ids it was given (its examples index range(n)): hit["id"] == 5 must hold."""
    index, docs = _small(tmp_path, rng, list(np.arange(12)))  # numpy integers count as integers
    hits = index(torch.from_numpy(docs[5][None]), k=3)[0]
    assert hits[0]["id"] == 5 and type(hits[0]["id"]) is int
    assert {h["id"] for h in index(docs[5][None], k=12, subset=[5, 7, "7"])[0]} == {5, 7}
    index.remove_documents([5, "6", 99])  # a str on an integer index matches nothing
    assert len(index.index) == 11 and 6 in index.index and 5 not in index.index
    again = Index(index_folder=str(tmp_path), index_name="s")
    assert type(again(docs[7][None], k=1)[0][0]["id"]) is int
    assert [len(e) for e in again.get_documents_embeddings([[7, 0]])[0]] == [len(docs[7]), len(docs[0])]
    strs, _ = _small(tmp_path, rng, ["a", 1, "c"], name="t")  # not all integers: strings, as before
    assert {h["id"] for h in strs(docs[0][None], k=3)[0]} == {"a", "1", "c"}


def test_first_adds_from_two_threads_keep_both(tmp_path, rng, monkeypatch):
    """Two threads making the first add at once: one builds, the other appends after it (before, both
    built, the second with overwrite, and the first thread's documents were gone)."""
    import threading
    import time

    index = Index(index_folder=str(tmp_path), index_name="race", override=True, nbits=4)
    build = index._native_cls.build

    def slow_build(*args, **kwargs):  # widens the window between the check and the build
        time.sleep(0.3)
        return build(*args, **kwargs)

    monkeypatch.setattr(index, "_native_cls", type("Slow", (), {"build": staticmethod(slow_build)}))
    docs = [rng.standard_normal((int(n), 16)).astype(np.float32) for n in rng.integers(3, 9, 40)]
    errors = []

    def add(ids):
        try:
            index.add_documents(ids, [docs[i] for i in ids])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(list(range(j, 40, 2)),)) for j in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(index.index.ids.tolist()) == list(range(40))


def test_empty_query_list_and_a_second_handles_deletes(tmp_path, rng):
    """No queries: no results (a list was refused as a [0, 1, 1] batch). Two handles on one folder (an
    indexing job and a server; PyLate code re-creating Index(...)): ids the other handle deleted after this
    one read the index are skipped by remove_documents, as unknown ids are, and the rest are deleted."""
    index, docs = _small(tmp_path, rng, [f"d{i}" for i in range(10)])
    assert index([], k=3) == [] and index(np.zeros((0, 4, 16), np.float32), k=3) == []
    other = Index(index_folder=str(tmp_path), index_name="s")
    other.remove_documents(["d3"])
    index.remove_documents(["d3", "d4"])
    assert sorted(Index(index_folder=str(tmp_path), index_name="s").index.ids.tolist()) == [
        f"d{i}" for i in range(10) if i not in (3, 4)]


def test_list_of_single_query_batches(tmp_path, rng):
    """A list of [1, Lq, dim] tensors (one encoded query each) is read as fast-plaid and PyLate read it."""
    index, docs = _small(tmp_path, rng, [f"d{i}" for i in range(10)])
    q = [torch.from_numpy(docs[2][None]), torch.from_numpy(docs[7][:4][None])]
    assert index(q, k=4) == index([docs[2], docs[7][:4]], k=4)
    with pytest.raises(ValueError, match="each query must be"):
        index([docs[2][None, None]], k=4)


def test_remove_skips_unknown_ids_and_update_replaces(tmp_path, rng):
    """PyLate's remove_documents skips ids it does not know; one str is one id, never its characters;
    update_documents replaces documents (and adds new ids) in one commit; add refuses a present id."""
    index, docs = _small(tmp_path, rng, ["1", "2", "12", "3"])
    index.remove_documents("12")
    assert sorted(index.index.ids.tolist()) == ["1", "2", "3"]
    index.remove_documents(["3", "not-there"])
    assert sorted(index.index.ids.tolist()) == ["1", "2"]
    new = rng.standard_normal((11, 16)).astype(np.float32)  # longer than any first document
    with pytest.raises(ValueError, match="already in the index"):
        index.add_documents(["2"], [new])
    gen = index.index.manifest["generation"]
    index.update_documents(["2", "9"], [new, docs[0]])
    assert index.index.manifest["generation"] == gen + 1  # one commit
    assert sorted(index.index.ids.tolist()) == ["1", "2", "9"]
    assert index.get_documents_embeddings([["2"]])[0][0].shape == new.shape  # the new document, not the old
    assert index(new[None], k=1)[0][0]["id"] == "2"


@pytest.mark.slow
def test_retrieve_colbert_with_this_index(tmp_path, rng):
    from pylate import indexes, rank, retrieve

    docs, tokens, offsets = clustered_docs(1500)
    ids = [f"doc-{i}" for i in range(len(docs))]
    index = Index(index_folder=str(tmp_path), index_name="ec", override=True, nbits=4)
    assert isinstance(index, indexes.base.Base) and index.is_end_to_end_index
    # torch tensors in, as PyLate's encoder returns them; the first call trains and builds
    index.add_documents(documents_ids=ids[:1490], documents_embeddings=[torch.from_numpy(d) for d in docs[:1490]])
    index.add_documents(documents_ids=ids[1490:], documents_embeddings=docs[1490:])  # appended, same centroids
    q = queries_from(tokens, offsets, 100)
    retriever = retrieve.ColBERT(index=index)
    results = retriever.retrieve(queries_embeddings=torch.from_numpy(q), k=10)
    assert len(results) == 100 and all(len(r) == 10 for r in results)
    assert all(set(r[0]) >= {"id", "score"} for r in results)
    # recall@10 against exhaustive MaxSim on the same (original) embeddings
    _, exact = ec.maxsim_topk(q, tokens, offsets, 10)
    recall = np.mean([len({ids[j] for j in exact[i]} & {h["id"] for h in results[i]}) / 10 for i in range(100)])
    assert recall >= 0.95, recall
    # subset filtering through PyLate's retriever: only allowed ids come back
    allowed = ids[::7]
    sub = retriever.retrieve(queries_embeddings=torch.from_numpy(q[:5]), k=5, subset=allowed)
    assert all(h["id"] in set(allowed) for r in sub for h in r)
    # PyLate's own reranker on the decompressed embeddings this index returns
    cand = [[h["id"] for h in r] for r in results[:3]]
    embs = index.get_documents_embeddings(cand)
    assert [len(e) for e in embs] == [10, 10, 10]
    reranked = rank.rerank(documents_ids=cand, queries_embeddings=q[:3], documents_embeddings=embs)
    for r, orig in zip(reranked, results[:3]):
        assert {h["id"] for h in r} == {h["id"] for h in orig}
        assert abs(r[0]["score"] - orig[0]["score"]) <= 1e-3 * abs(orig[0]["score"])
    # removal and reopening
    index.remove_documents([results[0][0]["id"]])
    again = Index(index_folder=str(tmp_path), index_name="ec")
    top = again(torch.from_numpy(q[:1]), k=10)[0]
    assert results[0][0]["id"] not in {h["id"] for h in top}
    assert len(again.index) == len(docs) - 1
