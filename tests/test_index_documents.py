"""Documents and metadata in the index (issue 22): storage and round trips, metadata filters (exact against
brute force inside the filtered set, hostile filter strings refused), full-text search and fusion."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import index_helpers as H
import edgecolbert_native as ec
from edgecolbert_native.index import FilterError, Index
from edgecolbert_native.index import _search
from edgecolbert_native.index._storage import referenced_files

LANGS = ["en", "fr", "de", "es"]


def _meta(i: int) -> dict:
    return {"lang": LANGS[i % 4], "year": 1990 + i % 40, "grp": i % 10, "score": i / 7.0, "even": i % 2 == 0,
            "tags": ["a", "b"] if i % 5 == 0 else ["c"]}


def _text(i: int) -> str:
    return f"document {i} about {'cats' if i % 3 == 0 else 'dogs'} and {LANGS[i % 4]} words w{i % 17}"


@pytest.fixture(scope="module")
def data():
    x, off, _ = H.clustered(2500, dim=32, seed=0)
    q = H.queries_from(x, off, 24, seed=1)
    return x, off, q


@pytest.fixture(scope="module")
def idx(data, tmp_path_factory):
    x, off, _ = data
    n = len(off) - 1
    return Index.build(tmp_path_factory.mktemp("docs") / "idx", x, off, nbits=4, texts=[_text(i) for i in range(n)],
                       metadata=[_meta(i) for i in range(n)])


@pytest.fixture(scope="module")
def decoded_scores(idx, data):
    _, off, q = data
    dec = np.concatenate(idx.decode(np.arange(len(idx))))
    return ec.maxsim(q, dec, off)


def test_documents_round_trip(idx):
    got = idx.get([7, 0, 7])
    assert [g["id"] for g in got] == [7, 0, 7]
    assert got[0] == {"id": 7, "text": _text(7), "metadata": _meta(7)}
    assert got[1]["metadata"]["even"] is True and got[1]["metadata"]["tags"] == ["a", "b"]
    assert idx.fields == {"lang": "TEXT", "year": "INTEGER", "grp": "INTEGER", "score": "REAL", "even": "INTEGER",
                          "tags": "TEXT"}
    with pytest.raises(KeyError, match="99999"):
        idx.get([1, 99999])
    # one SQLite file for the segment, named by the manifest with its size and checksum
    entry = idx.manifest["segments"][0]["docs"]
    assert entry["file"] in referenced_files(idx.manifest) and entry["num_docs"] == len(idx)
    assert os.path.getsize(os.path.join(idx.path, entry["file"])) == entry["bytes"]


def test_values_and_errors(tmp_path):
    x, off, _ = H.clustered(6, dim=16, seed=2)
    meta = [{"n": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True), "l": (1, "x", None, 2.5), "z": None},
            None, {}, {"s": "ü\u2603"}, {"n": 2**62}, {"l": np.array([1, 2])}]
    idx = Index.build(tmp_path / "a", x, off, metadata=meta, texts=["t", None, "", "x", "y", "z"])
    got = idx.get(list(range(6)))
    assert got[0]["metadata"] == {"n": 3, "f": 0.5, "b": True, "l": [1, "x", None, 2.5], "z": None}
    assert got[1]["metadata"] is None and got[1]["text"] is None and got[2]["metadata"] == {}
    assert got[3]["metadata"]["s"] == "ü\u2603" and got[4]["metadata"]["n"] == 2**62 and got[5]["metadata"]["l"] == [1, 2]
    bad = [
        (dict(metadata=[{}] * 5), ValueError, "5 entries for 6"),
        (dict(metadata=[{"a": {"nested": 1}}] + [None] * 5), TypeError, r"metadata\[0\]\['a'\]"),
        (dict(metadata=[{"a": float("nan")}] + [None] * 5), ValueError, "finite"),
        (dict(metadata=[{"a": 2**64}] + [None] * 5), ValueError, "64 bits"),
        (dict(metadata=[{"Lang": 1}, {"lang": 2}] + [None] * 4), ValueError, "only in case"),
        (dict(metadata=[{"ROWID": 1}] + [None] * 5), ValueError, "reserved"),
        (dict(metadata=[{"": 1}] + [None] * 5), ValueError, "non-empty"),
        (dict(metadata=[{'a"b': 1}] + [None] * 5), ValueError, "double quotes"),
        # keys JSON escapes: their filter column would read NULL in every document
        (dict(metadata=[{"back\\slash": 1}] + [None] * 5), ValueError, "backslashes"),
        (dict(metadata=[{"tab\there": 1}] + [None] * 5), ValueError, "control characters"),
        (dict(metadata=[{"new\nline": 1}] + [None] * 5), ValueError, "control characters"),
        (dict(metadata=[{"a": "\ud800"}] + [None] * 5), ValueError, "not valid Unicode"),
        (dict(texts=["\udfff"] + [None] * 5), ValueError, r"texts\[0\]: .*not valid Unicode"),
        (dict(metadata=[1] + [None] * 5), TypeError, "dict or None"),
        (dict(metadata={"a": 1}), TypeError, "one dict"),
        (dict(texts="abc"), TypeError, "one str"),
        (dict(texts=[b"x"] + [None] * 5), TypeError, r"texts\[0\]"),
    ]
    for kwargs, err, match in bad:
        with pytest.raises(err, match=match):
            Index.build(tmp_path / "b", x, off, overwrite=True, **kwargs)
    # iterators are read once, while the store is written; a count that does not match commits nothing
    idx.add(x[: off[2]], off[:3], doc_ids=[10, 11], texts=iter(["p", "q"]), metadata=({"g": i} for i in range(2)))
    assert [d["metadata"] for d in idx.get([10, 11])] == [{"g": 0}, {"g": 1}] and idx.get([11])[0]["text"] == "q"
    for texts, err in ((iter(["p"]), "texts has 1 entries for 2"), (iter(["p", "q", "r"]), "more entries")):
        with pytest.raises(ValueError, match=err):
            idx.add(x[: off[2]], off[:3], doc_ids=[20, 21], texts=texts)
    assert 20 not in idx and len(idx) == 8
    assert not [f for f in os.listdir(idx.path) if ".tmp" in f]
    # a later add may not spell a field another way either
    with pytest.raises(ValueError, match="only in case"):
        idx.add(x[: off[1]], off[:2], metadata=[{"N": 1}])
    assert len(idx) == 8


def _matching(n: int, pred) -> np.ndarray:
    return np.array([i for i in range(n) if pred(_meta(i))], np.int64)


def _exact_topk(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    s = np.where(allowed, scores, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("where,params,pred", [
    ("lang = ? AND year >= ?", ("en", 2010), lambda m: m["lang"] == "en" and m["year"] >= 2010),
    ("grp < ?", (6,), lambda m: m["grp"] < 6),
    ("even AND score BETWEEN ? AND ?", (10, 300), lambda m: m["even"] and 10 <= m["score"] <= 300),
    ("EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)", ("a",), lambda m: "a" in m["tags"]),
    ("lang IN (?, ?) OR year = 1995", ("de", "es"), lambda m: m["lang"] in ("de", "es") or m["year"] == 1995),
])
def test_filter_is_exact_against_brute_force(idx, data, decoded_scores, tmp_path, where, params, pred):
    """Recall inside the filtered set equals recall without a filter: the filtered search over the whole
    index finds the true top 10 of the matching documents (exhaustive MaxSim over them) at least as often
    as an unfiltered search over an index holding only those documents (same codec, so the same decoded
    vectors and the same truth). ndocs 128 makes large filters take the PLAID path; the default sends
    these filters (at most 4·ndocs documents) to exact scoring of the allowed set."""
    x, off, q = data
    n = len(off) - 1
    match = _matching(n, pred)
    allowed = np.zeros(n, bool)
    allowed[match] = True
    truth = _exact_topk(decoded_scores, allowed, 10)
    sub = Index.build(tmp_path / "only", [x[off[i]:off[i + 1]] for i in match], doc_ids=match, codec=idx.codec)
    for ndocs in (128, None):
        s, ids = idx.search(q, 10, where=where, params=params, exhaustive=False, ndocs=ndocs)
        assert np.isin(ids[ids >= 0], match).all()
        assert ((ids >= 0).sum(axis=1) == min(10, len(match))).all()
        filtered = H.recall(ids, truth)
        _, sub_ids = sub.search(q, 10, exhaustive=False, ndocs=ndocs)
        unfiltered = H.recall(sub_ids, truth)
        assert filtered >= unfiltered - 0.005, (where, ndocs, filtered, unfiltered)
        if ndocs is None or len(match) <= 4 * ndocs:  # a small allowed set is scored exhaustively: exact
            assert filtered == 1.0
        # a filter is nothing but the allowed set: the same answer as subset= with the matching ids
        s2, ids2 = idx.search(q, 10, subset=match, exhaustive=False, ndocs=ndocs)
        np.testing.assert_array_equal(ids, ids2)
        np.testing.assert_array_equal(s, s2)


def test_filter_with_subset_segments_and_tombstones(data, tmp_path):
    x, off, q = data
    n = 800
    idx = Index.build(tmp_path / "s", x[: off[n]], off[: n + 1], nbits=2, metadata=[_meta(i) for i in range(n)])
    extra = 300  # a second segment: half with metadata of a new field, half without any
    idx.add(x[off[n]: off[n + extra]], off[n: n + extra + 1] - off[n], doc_ids=np.arange(5000, 5000 + extra),
            metadata=[{"lang": "en", "batch": 2} if i < 150 else None for i in range(extra)])
    idx.add(x[: off[50]], off[:51], doc_ids=np.arange(9000, 9050))  # a segment with no store at all
    idx.delete(list(range(0, 800, 4)) + [5000, 5001])
    ids_all = np.asarray(idx.ids)
    meta = {d["id"]: d["metadata"] for d in idx.get(ids_all)}

    def expect(pred):
        return {i for i in ids_all.tolist() if pred(meta[i] or {})}

    cases = [
        ("lang = ?", ("en",), lambda m: m.get("lang") == "en"),
        ("batch IS NULL AND lang = 'fr'", (), lambda m: m.get("batch") is None and m.get("lang") == "fr"),
        ("lang IS NULL", (), lambda m: m.get("lang") is None),  # the segment without a store, and the Nones
        ("coalesce(batch, 0) = 2", (), lambda m: m.get("batch") == 2),
    ]
    for where, params, pred in cases:
        want = expect(pred)
        _, got = idx.search(q[:2], len(idx), where=where, params=params, exhaustive=True)
        assert {i for i in got[0].tolist() if i >= 0} == want, where
    sub = np.arange(1, 800, 3)
    _, got = idx.search(q[:1], len(idx), where="lang = ?", params=("en",), subset=sub, exhaustive=True)
    assert {i for i in got[0].tolist() if i >= 0} == expect(lambda m: m.get("lang") == "en") & set(sub.tolist())
    # compaction keeps every document's text and metadata with its vectors
    before = idx.get(ids_all)
    idx.compact()
    assert len(idx.segments) == 1 and idx.get(ids_all) == before
    _, got = idx.search(q[:1], len(idx), where="batch = 2", exhaustive=True)
    assert {i for i in got[0].tolist() if i >= 0} == expect(lambda m: m.get("batch") == 2)
    reopened = Index.open(idx.path, verify=True)
    assert reopened.get(ids_all) == before


HOSTILE = [
    "lang = 'en'; DROP TABLE docs",
    "1); DROP TABLE metadata; --",
    "lang = 'en') UNION SELECT rowid, text FROM docs --",
    "(SELECT name FROM sqlite_master LIMIT 1) IS NOT NULL",
    "(SELECT name FROM sqlite_temp_master LIMIT 1) IS NOT NULL",
    "EXISTS (SELECT 1 FROM sqlite_schema)",
    "(SELECT text FROM docs LIMIT 1) IS NOT NULL",
    "EXISTS (SELECT 1 FROM fts WHERE fts MATCH 'cats')",
    "(SELECT count(*) FROM metadata) > 0",
    "(SELECT count(*) FROM main.metadata) > 0",
    "EXISTS (SELECT 1 FROM info)",
    "lang IN (SELECT lang FROM metadata)",
    "load_extension('/tmp/evil.so') IS NULL",
    "random() > 0",
    "length(randomblob(10)) = 10",
    "length(zeroblob(1000000000)) > 0",
    "EXISTS (SELECT * FROM pragma_table_info('docs'))",
    "EXISTS (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT 1 FROM c)",
    "ATTACH DATABASE 'evil.db' AS evil",
    "1=1; ATTACH DATABASE 'evil.db' AS evil",
    "PRAGMA writable_schema = 1",
    "(" * 5000 + "1" + ")" * 5000,
    "lang = '" + "x" * 100_000 + "'",
    # reaching past the parentheses the filter runs in: an open block comment swallows the closing one
    "year >= 2000) LIMIT 2 /*",
    "year < 0) UNION SELECT 3, 0 /*",
    "1) GROUP BY year > 2030 /*",
    "year < 0) UNION SELECT 999999, 0 /*",
    "lang = 'en' /* an open comment",
]


@pytest.mark.parametrize("first,added,where,want", [
    ([{"price": 9.5}], [{"price": 10}], "price / 4 >= 2.5", [1]),  # REAL overall: no integer division
    ([{"year": 2000}, {"year": 2005}], [{"year": "1999"}], "year >= 2001", [1, 2]),  # mixed: no affinity
    ([{"year": 2000}, {"year": 2005}], [{"year": "1999"}], "year = 1999", []),
])
def test_filter_uses_the_index_wide_field_types(tmp_path, first, added, where, want):
    """A field's kinds differ between segments: each segment is filtered with the merged type (Index.fields),
    as the one store compact writes is, so compacting changes no filter's result."""
    x = np.random.default_rng(0).standard_normal((3, 4, 16)).astype(np.float32)
    idx = Index.build(tmp_path / "t", list(x[:len(first)]), nbits=2, num_centroids=4, metadata=first)
    idx.add(list(x[len(first):len(first) + len(added)]), metadata=added)

    def hits():
        ids = idx.search(x[:1], 10, where=where)[1][0]
        return sorted(int(i) for i in ids if i >= 0)

    before = hits()
    idx.compact()
    assert before == hits() == want


def test_hostile_filters_are_refused_and_change_nothing(idx, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, _, q = data
    files = {name: os.path.getsize(os.path.join(idx.path, name)) for name in os.listdir(idx.path)}
    for where in HOSTILE:
        with pytest.raises(FilterError) as e:
            idx.search(q[:1], 5, where=where)
        assert "where" in str(e.value)
    # parameters are data, never SQL
    for p in ("en' OR '1'='1", "'; DROP TABLE docs; --", "x" * 1_000_000):
        _, ids = idx.search(q[:1], 5, where="lang = ?", params=(p,))
        assert (ids == -1).all()
    assert os.listdir(tmp_path) == []  # no database was attached (ATTACH would have created it)
    assert {name: os.path.getsize(os.path.join(idx.path, name)) for name in os.listdir(idx.path)} == files
    Index.open(idx.path, verify=True)  # every checksum still matches
    _, ids = idx.search(q[:1], 5, where="lang = ?", params=("en",))
    assert (ids >= 0).all()


def test_filters_with_parentheses_in_literals_and_comments(idx, data):
    """The one-expression check reads literals, quoted names and comments as SQLite does: a parenthesis
    inside them is text, not structure."""
    _, _, q = data
    want = idx.search(q[:2], 5, where="lang = 'en' AND (year > 2000 OR grp IN (1, 2))")
    for where in ("lang = 'en' AND (year > 2000 OR grp IN (1, 2)) AND 'x)' = 'x)'",
                  "lang = 'en' /* ) */ AND (year > 2000 OR grp IN (1, 2))",
                  "lang = 'en' AND (year > 2000 OR grp IN (1, 2)) -- )",
                  "\"lang\" = 'en' AND (\"year\" > 2000 OR [grp] IN (1, 2)) AND 'it''s)' <> ''"):
        got = idx.search(q[:2], 5, where=where)
        np.testing.assert_array_equal(got[1], want[1])


def test_authorizer_refuses_every_other_action():
    """Defence in depth: the statement is a SELECT on a read-only connection, so no filter string reaches
    these actions (the hostile strings above fail earlier); the authorizer refuses them all the same."""
    import sqlite3

    from edgecolbert_native.index._docstore import _Authorizer

    auth = _Authorizer("doc_fields_x")
    for action, a1, a2 in [(sqlite3.SQLITE_ATTACH, "evil.db", None), (sqlite3.SQLITE_INSERT, "docs", None),
                           (sqlite3.SQLITE_UPDATE, "metadata", "lang"), (sqlite3.SQLITE_DELETE, "docs", None),
                           (sqlite3.SQLITE_PRAGMA, "writable_schema", "1"), (sqlite3.SQLITE_DROP_TABLE, "docs", None),
                           (sqlite3.SQLITE_CREATE_TEMP_TABLE, "t", None), (sqlite3.SQLITE_TRANSACTION, "BEGIN", None),
                           (sqlite3.SQLITE_DETACH, "main", None), (sqlite3.SQLITE_READ, "docs", "text"),
                           (sqlite3.SQLITE_READ, "metadata", "lang"), (sqlite3.SQLITE_READ, "metadata", "")]:
        assert auth(action, a1, a2, "main", None) == sqlite3.SQLITE_DENY, action
    assert auth(sqlite3.SQLITE_READ, "metadata", "lang", "main", "doc_fields_x") == sqlite3.SQLITE_OK
    assert auth(sqlite3.SQLITE_READ, "doc_fields_x", "lang", "temp", None) == sqlite3.SQLITE_OK
    assert auth(sqlite3.SQLITE_FUNCTION, None, "lower", None, None) == sqlite3.SQLITE_OK


@pytest.mark.parametrize("where,params,match", [
    ("langg = ?", ("en",), r"unknown field 'langg' \(fields: even, grp, lang, score, tags, year\)"),
    ("lang = = ?", ("en",), "not a valid SQL expression"),
    ("lang = 'en", (), "not a valid SQL expression"),
    ("no_such_fn(lang)", (), "unknown SQL function 'no_such_fn'"),
    ("lang = ? AND year > ?", ("en",), "parameters do not fit"),
    ("lang = 'en')", (), "must be one SQL expression; it has a closing parenthesis without its opening one"),
    ("(lang = 'en'", (), "not a valid SQL expression"),
])
def test_filter_errors_name_the_problem(idx, data, where, params, match):
    _, _, q = data
    with pytest.raises(FilterError, match=match):
        idx.search(q[:1], 5, where=where, params=params)


def test_filter_argument_types(idx, data):
    _, _, q = data
    with pytest.raises(TypeError, match="where must be a string"):
        idx.search(q[:1], 5, where=1)
    with pytest.raises(TypeError, match="params must be a sequence"):
        idx.search(q[:1], 5, where="lang = ?", params="en")
    with pytest.raises(TypeError, match="list"):
        idx.search(q[:1], 5, where="lang = ?", params=(["en"],))
    _, ids = idx.search(q[:1], 5, where="lang = :l AND grp = :g", params={"l": "fr", "g": np.int64(1)})
    assert all(_meta(i)["lang"] == "fr" and _meta(i)["grp"] == 1 for i in ids[0].tolist())
    # an index without metadata: every field is unknown
    x, off, _ = H.clustered(5, dim=16, seed=3)
    bare = Index.build(os.path.join(idx.path + "-bare"), x, off, overwrite=True)
    with pytest.raises(FilterError, match="no metadata"):
        bare.search(q[:1, :, :16], 2, where="lang = 'en'")
    assert (bare.search(q[:1, :, :16], 2, where="1 = 1")[1] >= 0).all()


# --------------------------------------------------------------------------- full text and fusion
def _fts_reference(idx, text: str, allowed: np.ndarray, k: int) -> list[int]:
    """BM25 recomputed here (k1 1.2, b 0.75, FTS5's idf: log((N - df + 0.5) / (df + 0.5)), at least 1e-6; one
    term per query word, summed) from the stored texts, tokenised by the same FTS5 tokenizer."""
    import re
    import sqlite3

    n = len(allowed)
    texts = [d["text"] for d in idx.get(np.arange(n))]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    conn.executemany("INSERT INTO t(rowid, x) VALUES (?, ?)", enumerate(texts))
    tokens = [[] for _ in range(n)]
    for term, doc, _, _ in conn.execute("SELECT term, doc, col, offset FROM v ORDER BY doc, offset"):
        tokens[doc].append(term)
    lens = np.array([len(t) for t in tokens], float)
    conn.execute("CREATE VIRTUAL TABLE qt USING fts5(x, tokenize='porter unicode61')")
    conn.execute("CREATE VIRTUAL TABLE qv USING fts5vocab(qt, 'instance')")
    score = np.zeros(n)
    for j, w in enumerate(dict.fromkeys(m.lower() for m in re.findall(r"\w+", text))):
        conn.execute("INSERT INTO qt(rowid, x) VALUES (?, ?)", (j, w))
        phrase = [r[0] for r in conn.execute("SELECT term FROM qv WHERE doc = ? ORDER BY offset", (j,))]
        if len(phrase) != 1:
            continue  # the test queries are single-token words
        tf = np.array([t.count(phrase[0]) for t in tokens], float)
        df = int((tf > 0).sum())
        idf = max(np.log((n - df + 0.5) / (df + 0.5)), 1e-6)
        score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * lens / lens.mean()))
    score[~allowed] = 0
    order = np.lexsort((np.arange(n), -score))
    return [int(i) for i in order[:k] if score[i] > 0]


def test_lexical_ranking_is_bm25(idx):
    n = len(idx)
    allowed = np.ones(n, bool)
    for text in ("cats w3", "dogs fr words", "document 12"):
        pos, scores = idx.docstore.lexical(text, 20, allowed)
        assert np.all(np.diff(scores) <= 1e-6)
        ref = _fts_reference(idx, text, allowed, 20)
        assert pos.tolist()[:10] == ref[:10], text
    allowed = np.zeros(n, bool)
    allowed[::7] = True
    pos, _ = idx.docstore.lexical("cats w3", 20, allowed)
    assert allowed[pos].all() and pos.tolist() == _fts_reference(idx, "cats w3", allowed, 20)
    # query text is words, never FTS5 syntax
    for text in ('"unbalanced', "cats AND NOT dogs", "NEAR(cats dogs)", "col:cats", "*", "\x00", ""):
        idx.docstore.lexical(text, 5, np.ones(n, bool))


def test_hybrid_fusion(idx, data, decoded_scores):
    _, _, q = data
    n = len(idx)
    texts = ["cats w3"] * len(q)
    s_li, ids_li = idx.search(q, 100, exhaustive=True)
    s_h, ids_h = idx.search(q, 10, exhaustive=True, hybrid=0.5, fusion="rrf", query_texts=texts)
    lex, _ = idx.docstore.lexical("cats w3", 100, np.ones(n, bool))
    for i in range(len(q)):  # reciprocal rank fusion, recomputed
        fused: dict = {}
        for rank, d in enumerate(ids_li[i].tolist(), 1):
            fused[d] = fused.get(d, 0) + 0.5 / (_search.RRF_K + rank)
        for rank, d in enumerate(lex.tolist(), 1):
            fused[d] = fused.get(d, 0) + 0.5 / (_search.RRF_K + rank)
        want = sorted(fused, key=lambda d: (-fused[d], d))[:10]
        assert ids_h[i].tolist() == want
        np.testing.assert_allclose(s_h[i], [fused[d] for d in want], rtol=1e-6)
    # weight 0 is the late-interaction order, weight 1 BM25's
    _, ids0 = idx.search(q, 10, exhaustive=True, hybrid=0.0, query_texts=texts)
    np.testing.assert_array_equal(ids0, ids_li[:, :10])
    _, ids1 = idx.search(q, 10, exhaustive=True, hybrid=1.0, query_texts=texts)
    assert (ids1 == lex[:10]).all()
    # normalized fusion: min-max of each list
    _, idsn = idx.search(q[:1], 10, exhaustive=True, hybrid=0.5, fusion="normalized", query_texts=texts[:1])
    _, lex_s = idx.docstore.lexical("cats w3", 100, np.ones(n, bool))
    a = (s_li[0] - s_li[0].min()) / (s_li[0].max() - s_li[0].min())
    b = (lex_s - lex_s.min()) / (lex_s.max() - lex_s.min())
    fused = {}
    for d, v in zip(ids_li[0].tolist(), a):
        fused[d] = fused.get(d, 0) + 0.5 * v
    for d, v in zip(lex.tolist(), b):
        fused[d] = fused.get(d, 0) + 0.5 * v
    assert idsn[0].tolist() == sorted(fused, key=lambda d: (-fused[d], d))[:10]
    # with a filter, both sides stay inside it
    _, idsf = idx.search(q, 10, hybrid=True, query_texts=texts, where="lang = ?", params=("de",))
    assert all(_meta(i)["lang"] == "de" for i in idsf[idsf >= 0].tolist())
    with pytest.raises(ValueError, match="query_texts"):
        idx.search(q, 10, hybrid=True)
    with pytest.raises(ValueError, match="hybrid must be"):
        idx.search(q, 10, hybrid=1.5, query_texts=texts)
    with pytest.raises(ValueError, match="fusion"):
        idx.search(q, 10, hybrid=True, query_texts=texts, fusion="max")
    x, off, _ = H.clustered(5, dim=32, seed=3)
    bare = Index.build(idx.path + "-notext", x, off, overwrite=True, metadata=[{"a": 1}] * 5)
    with pytest.raises(ValueError, match="stores none"):
        bare.search(q[:1], 2, hybrid=True, query_texts=["x"])


def test_version_1_index_still_opens(data, tmp_path):
    """An index written before documents existed (format version 1, no stores) opens, searches, filters
    (every field NULL) and takes documents on its next add."""
    x, off, q = data
    idx = Index.build(tmp_path / "v1", x[: off[100]], off[:101], nbits=2)
    mpath = tmp_path / "v1" / "manifest.json"
    m = json.loads(mpath.read_text())
    m["format_version"] = 1
    from edgecolbert_native.index._storage import write_manifest
    write_manifest(str(tmp_path / "v1"), m)
    old = Index.open(tmp_path / "v1")
    assert old.get([3]) == [{"id": 3, "text": None, "metadata": None}]
    old.add(x[: off[3]], off[:4], texts=["a", "b", "c"], metadata=[{"k": 1}] * 3)
    assert json.loads(mpath.read_text())["format_version"] == 2
    _, ids = old.search(q[:1], 200, where="k IS NULL", exhaustive=True)
    assert sorted(i for i in ids[0].tolist() if i >= 0) == list(range(100))


def test_reader_keeps_its_snapshot_of_the_documents(data, tmp_path):
    """A reader opened before a writer's add, delete and compact keeps reading the documents of its
    generation (the stores it opened stay readable after the writer unlinked them)."""
    x, off, q = data
    n = 300
    path = tmp_path / "snap"
    Index.build(path, x[: off[n]], off[: n + 1], nbits=2, texts=[_text(i) for i in range(n)],
                metadata=[_meta(i) for i in range(n)])
    reader = Index.open(path)
    first = reader.get([5, 6])
    _, hits = reader.search(q[:1], n, where="lang = 'fr'", exhaustive=True)
    writer = Index.open(path)
    writer.add(x[: off[10]], off[:11], doc_ids=np.arange(1000, 1010), metadata=[{"lang": "fr"}] * 10)
    writer.delete(list(range(0, n, 2)))
    writer.compact()
    old = {e["docs"]["file"] for e in reader.manifest["segments"]}
    assert not any(os.path.exists(os.path.join(path, f)) for f in old)  # unlinked by the writer
    assert reader.get([5, 6]) == first
    _, again = reader.search(q[:1], n, where="lang = 'fr'", exhaustive=True)
    np.testing.assert_array_equal(hits, again)
    reader.reload()
    assert reader.get([1000])[0]["metadata"] == {"lang": "fr"} and 6 not in reader


def test_few_id_lookup_equals_the_sorted_one(tmp_path):
    """A lookup of a few ids before anything sorted the ids scans them; it must find what the sorted lookup
    finds, including an id deleted and added again (two copies, one live)."""
    x, off, _ = H.clustered(30, dim=16, seed=4)
    ids = [f"doc{i}" for i in range(20)]
    idx = Index.build(tmp_path / "f", x[: off[20]], off[:21], doc_ids=ids, texts=ids)
    idx.delete(["doc3"])
    idx.add(x[off[20]: off[21]], off[20:22] - off[20], doc_ids=["doc3"], texts=["doc3 again"])
    idx.add(x[off[21]: off[30]], off[21:31] - off[21], doc_ids=[f"new{i}" for i in range(9)])
    fresh = Index.open(idx.path)
    few = fresh._positions(["doc3", "new4", "doc0"], "t", strict=True, ordered=True)
    assert "id_index" not in fresh._cache  # the scan ran, nothing was sorted
    assert fresh.get(["doc3"])[0]["text"] == "doc3 again"
    fresh._id_lookup()
    np.testing.assert_array_equal(few, fresh._positions(["doc3", "new4", "doc0"], "t", strict=True, ordered=True))
    with pytest.raises(KeyError, match="nope"):
        Index.open(idx.path).get(["doc1", "nope"])
    assert "doc3" in Index.open(idx.path) and "nope" not in Index.open(idx.path)


def test_readers_in_threads_see_one_generation_while_a_thread_writes_through_the_same_object(tmp_path):
    """A server's shape: threads search and get through one open Index while another thread deletes,
    compacts and re-adds through it. Every commit swapped the state attribute by attribute, so a search
    could pair one generation's live mask with another's segments (ValueError, IndexError, ids of other
    documents) and get() read another document's text; readers now work on a snapshot of one state."""
    import threading

    rng = np.random.default_rng(0)
    n = 120
    lens = rng.integers(2, 6, n)
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    x = rng.standard_normal((int(off[-1]), 16)).astype(np.float32)
    texts, meta = [f"text of {i}" for i in range(n)], [{"id": i} for i in range(n)]
    idx = Index.build(tmp_path / "t", x, off, texts=texts, metadata=meta, nbits=2, num_centroids=8, num_threads=1)
    q = rng.standard_normal((8, 4, 16)).astype(np.float32)
    stop, failures = threading.Event(), []

    def reader(seed: int) -> None:
        r = np.random.default_rng(seed)
        while not stop.is_set():
            want = r.choice(n, 6, replace=False).tolist()
            try:
                for w, d in zip(want, idx.get(want)):
                    if d["text"] != f"text of {w}" or d["metadata"] != {"id": w}:
                        failures.append(f"get({w}) -> {d}")
            except KeyError:
                pass  # deleted at that moment
            except Exception as e:  # noqa: BLE001 - any other error is the finding
                failures.append(f"get: {e!r}")
            try:
                _, ids = idx.search(q[r.integers(8)], 5, where="id < ?", params=(60,), num_threads=1)
                failures.extend(f"where let {i} through" for i in ids[0].tolist() if i >= 60)
                idx.search(q[r.integers(8)], 5, num_threads=1, exhaustive=bool(r.integers(2)))
            except Exception as e:  # noqa: BLE001
                failures.append(f"search: {e!r}")

    def writer() -> None:
        r = np.random.default_rng(1)
        for _ in range(6):
            d = r.choice(n, 15, replace=False)
            idx.delete(d)
            idx.compact()
            idx.add([x[off[i]:off[i + 1]] for i in d], doc_ids=d, texts=[texts[i] for i in d],
                    metadata=[meta[i] for i in d], num_threads=1)
        stop.set()

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stop.set()
    assert not failures, failures[:5]
    assert sorted(idx.ids.tolist()) == list(range(n))


def test_lexical_query_words_split_as_unicode61_does(tmp_path):
    """The query's words are OR-ed (docs/guide.md): "foo_bar" was one quoted phrase, which FTS5 reads as "foo"
    directly followed by "bar"; a decomposed "cafés" split at its combining accent into "cafe" OR "s"."""
    texts = ["foo alone here", "bar alone here", "nothing to see", "foo bar together", "cafés in paris", "the s letter"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(texts) * 2, 16)).astype(np.float32)
    idx = Index.build(tmp_path / "u", x, np.arange(0, len(x) + 1, 2), texts=texts, nbits=2, num_centroids=4)
    allowed = np.ones(len(texts), bool)
    matched = lambda q: sorted(idx.docstore.lexical(q, 10, allowed)[0].tolist())  # noqa: E731
    assert matched("foo_bar") == matched("foo bar") == [0, 1, 3]
    assert matched("cafe\u0301s") == matched("cafés") == [4]
    q = x[None, :2]
    a = idx.search(q, 3, hybrid=np.True_, query_texts=["foo"])
    b = idx.search(q, 3, hybrid=True, query_texts=["foo"])
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert np.array_equal(idx.search(q, 3, hybrid=np.False_)[1], idx.search(q, 3)[1])


def test_demo_bm25_credits_only_documents_it_matched():
    """The demo's BM25 baseline filled its 100 with documents matching no query word (score 0, position
    order) and counted them in Recall@100."""
    from edgecolbert_native.cli.bm25 import BM25
    from edgecolbert_native.cli.demo import bm25_ranked

    bm = BM25(["alpha beta", "gamma", "delta", "beta beta"])
    assert bm25_ranked(bm, ["beta", "zzz"], ["a", "b", "c", "d"], k=4) == [["d", "a"], []]
