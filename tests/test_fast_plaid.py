"""fast-plaid 1.4 users (issue 22): an index directory fast-plaid wrote is imported (vectors, order, metadata),
and ``edgecolbert_native.integrations.fast_plaid`` runs fast-plaid's documented examples and its API contract."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil

import numpy as np
import pytest

from edgecolbert_native.index import Index, import_fast_plaid
from edgecolbert_native.integrations.fast_plaid import FastPlaid, filtering

DATA = pathlib.Path(__file__).resolve().parent / "data" / "fast_plaid_14"
SRC = DATA / "index"  # written by fast-plaid 1.4.7 (tests/data/fast_plaid_14/make_index.py)


@pytest.fixture(scope="module")
def expected():
    with np.load(DATA / "expected.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def imported(tmp_path_factory, expected):
    return Index.import_fast_plaid(SRC, tmp_path_factory.mktemp("fp") / "idx")


def _decoded(expected, i):
    off = expected["decoded_offsets"]
    return expected["decoded"][off[i]:off[i + 1]]


def test_import_decodes_what_fast_plaid_decodes(imported, expected):
    n = len(expected["decoded_offsets"]) - 1
    assert len(imported) == n == 72 and imported.dim == 16 and imported.nbits == 4
    dec = imported.decode(np.arange(n))
    for i in range(n):
        ref = _decoded(expected, i)
        assert dec[i].shape == ref.shape
        # fast-plaid decodes with float16 bucket weights; the import keeps its float32 ones
        np.testing.assert_allclose(dec[i], ref, atol=2e-3)


def test_import_searches_like_fast_plaid(imported, expected):
    q = expected["queries"]
    k = expected["ids"].shape[1]
    ex_s, ex_ids = imported.search(q, k, exhaustive=True)
    np.testing.assert_array_equal(ex_ids, expected["ids"])
    # fast-plaid scores float16 queries; these are float32
    np.testing.assert_allclose(ex_s, expected["scores"], rtol=2e-3, atol=2e-3)
    s, ids = imported.search(q, k, exhaustive=False, nprobe=imported.num_centroids, ndocs=len(imported),
                             rerank=len(imported))
    np.testing.assert_array_equal(ids, expected["ids"])
    np.testing.assert_allclose(s, ex_s, rtol=1e-5, atol=1e-5)


def test_import_keeps_the_ivf_and_the_metadata(imported, expected):
    ivf, lengths = np.load(SRC / "ivf.npy"), np.load(SRC / "ivf_lengths.npy")
    seg = imported.segments[0]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    assert len(lengths) == imported.num_centroids
    for c in range(len(lengths)):
        ours = seg.ivf[seg.ivf_offsets[c]:seg.ivf_offsets[c + 1]]
        assert sorted(ivf[starts[c]:starts[c + 1]].tolist()) == ours.tolist()
    _, ids = imported.search(expected["queries"][:1], 72, where="lang = ?", params=("en",), exhaustive=True)
    assert sorted(i for i in ids[0].tolist() if i >= 0) == expected["where_lang_en"].tolist()
    # fast-plaid deleted documents 3, 10 and 61 and renumbered: row 3 was document 4 (year 2004), row 58
    # document 60 (the first updated one, tag t0), row 59 document 62 (t2); NULL columns are left out
    docs = imported.get([3, 58, 59])
    assert docs[0]["metadata"] == {"lang": "fr", "year": 2004, "score": 2.0}
    assert docs[1]["metadata"] == {"lang": "en", "year": 2030, "tag": "t0"}
    assert docs[2]["metadata"] == {"lang": "en", "year": 2032, "tag": "t2"}
    assert imported.fields == {"lang": "TEXT", "year": "INTEGER", "score": "REAL", "tag": "TEXT"}
    assert imported.manifest["imported_from"]["fast_plaid_dir"] == str(SRC)


def test_import_of_a_frozen_index(tmp_path, imported):
    """fast-plaid's freeze() drops the per-chunk codes and residuals and marks metadata.json; the merged
    arrays (padded at the end) are then the only copy."""
    src = tmp_path / "frozen"
    shutil.copytree(SRC, src)
    meta = json.loads((src / "metadata.json").read_text())
    for i in range(meta["num_chunks"]):
        os.unlink(src / f"{i}.codes.npy")
        os.unlink(src / f"{i}.residuals.npy")
    meta["frozen"] = True
    (src / "metadata.json").write_text(json.dumps(meta))
    frozen = import_fast_plaid(src, tmp_path / "idx")
    for a, b in zip(frozen.decode(np.arange(72)), imported.decode(np.arange(72))):
        np.testing.assert_array_equal(a, b)


def test_import_refuses_what_is_not_a_fast_plaid_index(tmp_path):
    src = tmp_path / "bad"
    shutil.copytree(SRC, src)
    os.unlink(src / "centroids.npy")
    with pytest.raises(FileNotFoundError, match="centroids.npy"):
        import_fast_plaid(src, tmp_path / "a")
    shutil.copy(SRC / "centroids.npy", src / "centroids.npy")
    # an object array would need unpickling, which could run code: refused
    np.save(src / "0.codes.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="0.codes.npy"):
        import_fast_plaid(src, tmp_path / "b")
    shutil.copy(SRC / "0.codes.npy", src / "0.codes.npy")
    (src / "doclens.1.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="doclens.1.json"):
        import_fast_plaid(src, tmp_path / "c")
    shutil.copy(SRC / "doclens.1.json", src / "doclens.1.json")
    lens = json.loads((SRC / "doclens.1.json").read_text())
    (src / "doclens.1.json").write_text(json.dumps(lens[:-1]))  # no longer matches the codes
    with pytest.raises(ValueError, match="_subset_ 71 is not a document"):  # the metadata rows notice first
        import_fast_plaid(src, tmp_path / "d")
    os.unlink(src / "metadata.db")
    with pytest.raises(ValueError, match="chunk 1"):
        import_fast_plaid(src, tmp_path / "d")


# --------------------------------------------------------------------------- the drop-in
def _readme_examples() -> list[str]:
    text = (DATA / "readme_examples.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_fast_plaid_readme_examples_run_unchanged_but_the_import(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    blocks = _readme_examples()
    assert len(blocks) == 6 and all("from fast_plaid import" in b for b in blocks if "import" in b)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for i, code in enumerate(blocks):
        code = code.replace("from fast_plaid import", "from edgecolbert_native.integrations.fast_plaid import")
        exec(compile(code, f"fast-plaid README [block {i}]", "exec"), ns)  # noqa: S102 - the test's own data
        if i == 0:  # Quick Start: 2 queries, top 10 of 100 documents, (passage id, score) pairs
            first = ns["scores"]
            assert len(first) == 2 and all(len(r) == 10 for r in first)
            assert all(isinstance(p, int) and 0 <= p < 100 and isinstance(s, float) for r in first for p, s in r)
        if i == 1:  # Update: 100 more documents, passage ids 100..199
            assert len(Index.open("index")) == 200
        if i == 2:  # Filtering: the last search had one subset per query
            assert {p for p, _ in ns["scores"][0]} <= {0, 1, 2, 3, 4}
            assert {p for p, _ in ns["scores"][1]} <= {10, 11, 12, 13, 14}
        if i == 3:
            assert all(tuple(t.shape) == (50, 300) for _, _, t in ns["results"][0])
    # Built-in SQLite Filtering: Alice, Alex and Amanda joined after 2022 and start with A
    assert ns["subset"] == [0, 2, 4]
    assert len(ns["scores"]) == 1 and {p for p, _ in ns["scores"][0]} <= {0, 2, 4}
    rows = filtering.get(index="metadata_index", subset=[2, 4])
    assert rows == [
        {"_subset_": 2, "name": "Alex", "category": "A", "join_date": "2023-08-01", "status": None},
        {"_subset_": 4, "name": "Amanda", "category": "A", "join_date": "2024-01-10", "status": "active"},
    ]
    assert "Metadata of matched documents:" in capsys.readouterr().out


def _brute_force(queries, docs, k):
    scores = np.array([[float((q @ d.T).max(axis=1).sum()) for d in docs] for q in queries])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, 1)


def test_drop_in_returns_exact_maxsim_with_numpy_inputs(tmp_path):
    rng = np.random.default_rng(1)
    docs = [rng.standard_normal((int(rng.integers(2, 30)), 32)).astype(np.float32) for _ in range(60)]
    fp = FastPlaid(str(tmp_path / "i"), device=["cuda:0", "cuda:1"])  # accepted; this engine runs on the CPU
    assert fp.devices == ["cuda:0", "cuda:1"]
    fp.create(docs, nbits=8)
    queries = rng.standard_normal((3, 6, 32)).astype(np.float32)
    res = fp.search(queries, top_k=5)
    dec = fp.get_embeddings(list(range(60)))
    order, best = _brute_force(queries, [np.asarray(d) for d in dec], 5)
    assert [[p for p, _ in r] for r in res] == order.tolist()
    np.testing.assert_allclose([[s for _, s in r] for r in res], best, rtol=1e-5)
    # a list of queries of different lengths is padded with zero rows, which add nothing
    ragged = fp.search([queries[0][:2], queries[1]], top_k=5)
    assert [p for p, _ in ragged[1]] == order[1].tolist()


def test_drop_in_delete_renumbers_and_metadata_follow(tmp_path):
    rng = np.random.default_rng(2)
    docs = [rng.standard_normal((5, 16)).astype(np.float32) for _ in range(10)]
    fp = FastPlaid(str(tmp_path / "i"))
    fp.create(docs, metadata=[{"n": i} for i in range(10)])
    before = [np.asarray(e) for e in fp.get_embeddings(list(range(10)))]
    for ids in (np.arange(3), (0, 1, 2), [0, 1, 2]):  # the forms search and delete take
        assert [np.array_equal(np.asarray(a), b) for a, b in zip(fp.get_embeddings(ids), before)] == [True] * 3
    assert fp.get_embeddings(np.array([], np.int64)) == [] and fp.get_embeddings([]) == []
    fp.delete([3, 7])
    after = [np.asarray(e) for e in fp.get_embeddings(list(range(8)))]
    assert [np.array_equal(a, b) for a, b in zip(after, [before[i] for i in (0, 1, 2, 4, 5, 6, 8, 9)])] == [True] * 8
    queries = rng.standard_normal((4, 3, 16)).astype(np.float32)
    order, _ = _brute_force(queries, after, 8)
    assert [[p for p, _ in r] for r in fp.search(queries, top_k=8)] == order.tolist()
    assert filtering.where(str(tmp_path / "i"), "n >= ?", (5,)) == [4, 5, 6, 7]  # n 5, 6, 8, 9
    assert [r["n"] for r in filtering.get(str(tmp_path / "i"))] == [0, 1, 2, 4, 5, 6, 8, 9]
    fp.update([rng.standard_normal((5, 16)).astype(np.float32)], metadata=[{"n": 10}])
    assert filtering.get(str(tmp_path / "i"), subset=[8]) == [{"_subset_": 8, "n": 10}]
    with pytest.raises(ValueError, match="passage ids"):
        fp.delete([9])


def test_drop_in_subset_rules(tmp_path):
    rng = np.random.default_rng(3)
    fp = FastPlaid(str(tmp_path / "i"))
    fp.create([rng.standard_normal((4, 16)).astype(np.float32) for _ in range(20)])
    q = rng.standard_normal((2, 3, 16)).astype(np.float32)
    assert [[p for p, _ in r] for r in fp.search(q, top_k=5, subset=7)] == [[7], [7]]
    assert all(len(r) == 5 for r in fp.search(q, top_k=5, subset=[]))  # fast-plaid: an empty list filters nothing
    with pytest.raises(ValueError, match="Subset length must match"):
        fp.search(q, top_k=5, subset=[[1, 2]])
    with pytest.raises(FileNotFoundError, match="create the index"):
        FastPlaid(str(tmp_path / "empty")).search(q)


def test_filtering_writers_point_to_fastplaid(tmp_path):
    for fn in (lambda: filtering.create(str(tmp_path), [{}]), lambda: filtering.update(str(tmp_path), [{}]),
               lambda: filtering.delete(str(tmp_path), [0])):
        with pytest.raises(ValueError, match="FastPlaid"):
            fn()
    with pytest.raises(FileNotFoundError, match="No metadata database"):
        filtering.where(str(tmp_path / "none"), "x = 1")
