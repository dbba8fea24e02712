"""Index.search (one native call per query batch, csrc/cpu/plaid_search.cpp) against the stage-by-stage
reference (tests/plaid_reference.py) in every index state (issue 21): one and several segments, tombstones,
dense and selective subsets and both at once, empty queries and empty subsets, k beyond the candidates,
uint16 and int32 codes, int8 and float32 centroid scores, nbits 1, 2 and 4, 1 and 2 threads, and the
exhaustive mode. Ids and scores must be bit-identical."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import plaid_reference as R
import index_helpers as H
from edgecolbert_native.index import Index, _search

N_DOCS = 900


@pytest.fixture(scope="module")
def data():
    x, off, _ = H.clustered(N_DOCS, dim=24, mean_len=20, n_topics=64, seed=21)
    q = H.queries_from(x, off, 10, lq=20, seed=22)
    return x, off, q


def _docs(x, off, a, b):
    return x[off[a]:off[b]], off[a:b + 1] - off[a]


@pytest.fixture(scope="module", params=[1, 2, 4])
def states(request, data, tmp_path_factory):
    """name -> Index, all over the same documents and codec: one segment; three segments (build on half,
    add a quarter twice); each of them with 15% of the documents deleted."""
    nbits = request.param
    x, off, _ = data
    root = tmp_path_factory.mktemp(f"states{nbits}")
    one = Index.build(root / "one", x, off, nbits=nbits, num_centroids=128)
    h, t = N_DOCS // 2, 3 * N_DOCS // 4
    multi = Index.build(root / "multi", *_docs(x, off, 0, h), nbits=nbits, codec=one.codec)
    multi.add(*_docs(x, off, h, t), doc_ids=np.arange(h, t))
    multi.add(*_docs(x, off, t, N_DOCS), doc_ids=np.arange(t, N_DOCS))
    assert len(multi.segments) == 3
    gone = np.random.default_rng(nbits).choice(N_DOCS, size=N_DOCS * 15 // 100, replace=False)
    out = {"one": one, "multi": multi}
    for name in ("one", "multi"):
        shutil.copytree(root / name, root / f"{name}-deleted")
        d = Index.open(root / f"{name}-deleted")
        d.delete(gone)
        out[f"{name}-deleted"] = d
    return out


def _subsets(rng):
    return {"none": None, "dense": rng.choice(N_DOCS, size=N_DOCS * 6 // 10, replace=False),
            "filled": rng.choice(N_DOCS, size=N_DOCS // 9, replace=False),
            "selective": rng.choice(N_DOCS, size=25, replace=False), "empty": np.empty(0, np.int64)}


def _mode(idx, subset, ndocs):
    allowed = _search.allowed_mask(idx, subset, "test")
    return _search.choose_mode(False, True, int(allowed.sum()), ndocs, idx.num_centroids)


def test_the_subsets_take_every_mode(states):
    """The subsets above reach each mode of a filtered search (so the comparisons below cover them)."""
    rng = np.random.default_rng(1)
    subs = _subsets(rng)
    for idx in states.values():
        assert _mode(idx, subs["dense"], 16) == "plaid"
        assert _mode(idx, subs["filled"], 16) == "fill"
        assert _mode(idx, subs["filled"], 40) == "selective"
        assert _mode(idx, subs["selective"], 16) == "selective"


def test_every_subset_filled_equals_the_reference(states, data, monkeypatch):
    """With any subset filled (no limit): dense subsets, tombstones, several segments."""
    monkeypatch.setattr(_search, "FILL_DOCS_PER_CENTROID", 10**9)
    _, _, q = data
    rng = np.random.default_rng(5)
    for name, idx in states.items():
        sub = rng.choice(N_DOCS, size=N_DOCS * 6 // 10, replace=False)
        assert _mode(idx, sub, 16) == "fill"
        for prm in PARAMS[:3]:
            s, ids = _same(idx, q, 10, subset=sub, exhaustive=False, **prm)
            assert np.isin(ids[ids >= 0], sub).all(), name


# (nprobe 1 with ndocs 300: a query's probed lists hold fewer documents, so tombstones and subsets widen the
# probe; nprobe 128 = K: nothing left to widen)
PARAMS = [dict(nprobe=1, ndocs=16), dict(nprobe=2, ndocs=40, centroid_score_threshold=0.3, rerank=12),
          dict(nprobe=3, ndocs=7), dict(nprobe=1, ndocs=300, rerank=40), dict(nprobe=128, ndocs=2000)]


def _same(idx, q, k, **kw):
    got_s, got_i = idx.search(q, k, **kw)
    want_s, want_p = R.search(idx, q, k, **kw)
    np.testing.assert_array_equal(got_i, R.ids_of(idx, want_p), err_msg=str(kw))
    np.testing.assert_array_equal(got_s, want_s, err_msg=str(kw))
    return got_s, got_i


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("scores", ["float32", "int8"])
def test_native_search_equals_the_reference_in_every_state(states, data, monkeypatch, threads, scores):
    monkeypatch.setattr(_search, "CENTROID_SCORES", scores)
    _, _, q = data
    mask = np.ones(q.shape[:2], bool)
    mask[1, 5:] = False
    mask[2, :] = False  # an empty query: no hits from the PLAID stages
    rng = np.random.default_rng(threads)
    for name, idx in states.items():
        for sname, subset in _subsets(rng).items():
            for prm in PARAMS:
                for k in (1, 10, 300):  # 300: more than the candidates
                    s, ids = _same(idx, q, k, subset=subset, query_mask=mask, exhaustive=False, num_threads=threads,
                                   **prm)
                    if sname == "empty":
                        assert np.all(np.isneginf(s))
                    if subset is not None:
                        assert np.isin(ids[ids >= 0], subset).all(), (name, sname)
            # the exhaustive mode (decoded tokens); the empty query matches nothing there too
            s, _ = _same(idx, q, 10, subset=subset, query_mask=mask, exhaustive=True, num_threads=threads)
            assert np.isneginf(s[2]).all()


def test_int32_codes_equal_uint16_codes(states, data):
    """Codes are uint16 up to 65,536 centroids, int32 beyond: the same results from either."""
    _, _, q = data
    idx = states["multi-deleted"]
    want = [idx.search(q, 10, exhaustive=False, nprobe=2, ndocs=40, subset=sub) for sub in (None, np.arange(0, 900, 2))]
    for s in idx.segments:
        assert s.codes.dtype == np.uint16
        s.codes = np.asarray(s.codes, np.int32)
        s._distinct = None  # stage B's distinct codes are rebuilt from the int32 codes (int32 too)
    try:
        for w, sub in zip(want, (None, np.arange(0, 900, 2))):
            got = _same(idx, q, 10, exhaustive=False, nprobe=2, ndocs=40, subset=sub)
            np.testing.assert_array_equal(got[1], w[1])
            np.testing.assert_array_equal(got[0], w[0])
        assert all(s._distinct[0].dtype == np.int32 for s in idx.segments)
    finally:
        for s in idx.segments:
            s.codes = np.asarray(s.codes, np.uint16)
            s._distinct = None


def test_default_parameters_and_batches(states, data):
    """Defaults (exhaustive chosen by size) and a 2-d single query."""
    _, _, q = data
    for idx in states.values():
        _same(idx, q, 10)
        _same(idx, q[0], 5, exhaustive=False)


@pytest.mark.parametrize("scores", ["float32", "int8"])
def test_non_finite_queries_under_a_mask(states, data, monkeypatch, scores):
    """A query holding inf or NaN gives non-finite centroid scores (int8 falls back to float32 for it): the
    probe's miss rule for them, and the widened probe taken as a prefix of a deeper one, stay the reference's.
    Index.search refuses such queries; the native stages' rule is checked past that check (huge finite
    values overflow to the same scores)."""
    monkeypatch.setattr(_search, "CENTROID_SCORES", scores)
    monkeypatch.setattr(_search, "check_finite", lambda q, mask, fn: None)
    _, _, q = data
    bad = q.copy()
    bad[0, 0, 0] = np.inf
    bad[1, :, 3] = -np.inf
    bad[2, 2, 1] = np.nan
    rng = np.random.default_rng(11)
    for name in ("one-deleted", "multi"):
        idx = states[name]
        # (the subset of 100 documents is filled at ndocs 16)
        for subset in (None, rng.choice(N_DOCS, size=300, replace=False), rng.choice(N_DOCS, size=100, replace=False)):
            for prm in (dict(nprobe=1, ndocs=300, rerank=40), dict(nprobe=2, ndocs=40), dict(nprobe=1, ndocs=16)):
                with np.errstate(invalid="ignore"):
                    _same(idx, bad, 10, subset=subset, exhaustive=False, **prm)
