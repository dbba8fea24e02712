"""The native PLAID stages (csrc/cpu/plaid.cpp) against numpy re-derivations of their formulas, their
argument checks, and the index's use of them (issue 5); the one-call search (csrc/cpu/plaid_search.cpp)
against the stage-by-stage reference (tests/plaid_reference.py; every index state: test_search_path.py)."""

from __future__ import annotations

import numpy as np
import pytest

import edgecolbert_native as ec
import plaid_reference as R
from emulation import EMULATED, size
from edgecolbert_native import _native
from edgecolbert_native.index import _plaid


def _segment(rng, n, K, u16):
    lens = rng.integers(0, 9, size=n)
    lens[::7] = 0
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    codes = rng.integers(0, K, size=int(off[-1])).astype(np.uint16 if u16 else np.int32)
    return codes, off


def _stage_b_ref(S, codes, off, docs, th):
    keep = S.max(axis=0) >= th
    Sp = np.where(keep[None, :], S, 0).astype(np.float64)
    out = np.zeros(len(docs))
    for j, d in enumerate(docs):
        c = codes[off[d]:off[d + 1]].astype(np.int64)
        if len(c):
            out[j] = Sp[:, c].max(axis=1).sum()
    return out


@pytest.mark.parametrize("m", [1, 7, 16, 33])
@pytest.mark.parametrize("u16", [False, True])
def test_centroid_interaction_matches_numpy(m, u16):
    rng = np.random.default_rng(m)
    K, n = 97, 300
    S = rng.standard_normal((m, K)).astype(np.float32)
    S[:, ::11] = 0.5  # ties
    codes, off = _segment(rng, n, K, u16)
    docs = rng.integers(0, n, size=200)
    for th in (None, 0.4, 10.0):
        want = _stage_b_ref(S, codes, off, docs, -np.inf if th is None else th)
        for threads in (1, 2):
            got = _plaid.centroid_interaction(_plaid.from_rows(S), codes, off, docs, th, threads)
            assert got.dtype == np.float32 and got.shape == (len(docs),)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * m)
        T = _plaid.from_rows(S)
        ref = _native.plaid_centroid_interaction(T.t, T.m, codes, off, docs, -np.inf if th is None else th,
                                                 reference=True)
        np.testing.assert_array_equal(ref, _plaid.centroid_interaction(T, codes, off, docs, th, 2))


@pytest.mark.parametrize("u16", [False, True])
def test_gather_matches_numpy(u16):
    rng = np.random.default_rng(5)
    n, K, w = 120, 97, 12
    codes, off = _segment(rng, n, K, u16)
    res = rng.integers(0, 256, size=(len(codes), w), dtype=np.uint8)
    docs = np.concatenate([rng.integers(0, n, size=60), [0, 0, 7]])  # repeats and empty documents
    c, r, o = _plaid.gather(codes, res, off, docs)
    tok = np.concatenate([np.arange(off[d], off[d + 1]) for d in docs]).astype(np.int64)
    assert c.dtype == np.int32 and r.dtype == np.uint8 and o.dtype == np.int64
    np.testing.assert_array_equal(c, codes[tok].astype(np.int32))
    np.testing.assert_array_equal(r, res[tok])
    np.testing.assert_array_equal(o, np.concatenate([[0], np.cumsum(off[docs + 1] - off[docs])]))
    c, r, o = _plaid.gather(codes, res, off, np.empty(0, np.int64))
    assert len(c) == 0 and r.shape == (0, w) and o.tolist() == [0]
    with pytest.raises(ValueError, match="not a document"):
        _native.plaid_gather(codes, res, off, np.array([n]))
    with pytest.raises(ValueError, match="residuals must be"):
        _native.plaid_gather(codes, res[:-1], off, np.array([0]))
    with pytest.raises(TypeError, match="uint8"):
        _native.plaid_gather(codes, res.astype(np.int16), off, np.array([0]))
    bad = off.copy()
    bad[3] = len(codes) + 5
    with pytest.raises(ValueError, match="outside"):
        _native.plaid_gather(codes, res, bad, np.array([2]))


def test_stage_a_matches_numpy():
    rng = np.random.default_rng(3)
    K, n, m, p = 50, 200, 6, 4
    doc_cells = [np.unique(rng.integers(0, K, size=rng.integers(1, 6))) for _ in range(n)]
    pairs = sorted((c, d) for d, cs in enumerate(doc_cells) for c in cs)
    ivf = np.array([d for _, d in pairs], np.int32)
    ivf_off = np.zeros(K + 1, np.int64)
    np.cumsum(np.bincount([c for c, _ in pairs], minlength=K), out=ivf_off[1:])
    S = rng.standard_normal((m, K)).astype(np.float32)
    order = np.argsort(-S, axis=1)
    cells, miss = order[:, :p], S[np.arange(m), order[:, p]]
    cs = np.take_along_axis(S, cells, 1)
    allowed = rng.random(n) < 0.7
    docs, est = _plaid.stage_a(cells, cs, miss, ivf, ivf_off, n, allowed)
    probed = {d for i in range(m) for c in cells[i] for d in ivf[ivf_off[c]:ivf_off[c + 1]]}
    assert set(docs.tolist()) == {d for d in probed if allowed[d]}
    for d, e in zip(docs, est):
        want = sum(max([S[i, c] for c in cells[i] if c in doc_cells[d]], default=miss[i]) for i in range(m))
        assert e == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_bad_arguments_are_value_errors():
    St = np.zeros((4, 32), np.float32)  # K = 4 centroids, centroid-major
    codes, off = np.array([0, 1, 7], np.int32), np.array([0, 2, 3], np.int64)
    with pytest.raises(ValueError, match="code outside"):
        _native.plaid_centroid_interaction(St, 2, codes, off, np.array([1]))
    with pytest.raises(ValueError, match="docs\\[0\\] = 5"):
        _native.plaid_centroid_interaction(St, 2, codes, off, np.array([5]))
    with pytest.raises(ValueError, match="outside"):
        _native.plaid_centroid_interaction(St, 2, codes, np.array([0, 2, 9]), np.array([1]))
    with pytest.raises(TypeError, match="int32 or uint16"):
        _native.plaid_centroid_interaction(St, 2, codes.astype(np.int64), off, np.array([0]))
    with pytest.raises(TypeError, match="float32"):
        _native.plaid_centroid_interaction(St.astype(np.float64), 2, codes, off, np.array([0]))
    for m in (-1, 33):
        with pytest.raises(ValueError, match="m \\(query tokens\\)"):
            _native.plaid_centroid_interaction(St, m, codes, off, np.array([0]))
        with pytest.raises(ValueError, match="m \\(query tokens\\)"):
            _native.plaid_probe(St, m, 1)
    ivf, io = np.array([0, 1, 9], np.int32), np.array([0, 2, 3, 3, 3], np.int64)
    cells, cs, miss = np.array([[0, 1]], np.int32), np.zeros((1, 2), np.float32), np.zeros(1, np.float32)
    with pytest.raises(ValueError, match="ivf names a document"):
        _native.plaid_stage_a(cells, cs, miss, ivf, io, 3)
    with pytest.raises(ValueError, match="cells\\[0, 1\\] = 4"):
        _native.plaid_stage_a(np.array([[0, 4]], np.int32), cs, miss, ivf, io, 3)
    with pytest.raises(ValueError, match="range"):
        _native.plaid_stage_a(cells, cs, miss, ivf, np.array([0, 2, 5, 5, 5]), 3)
    # Wider integer types are range-checked, not wrapped: 2^32 would alias centroid 0 / document 0.
    with pytest.raises(ValueError, match="cells holds 4294967296"):
        _native.plaid_stage_a(np.array([[0, 1 << 32]], np.int64), cs, miss, ivf, io, 3)
    with pytest.raises(ValueError, match="ivf holds 4294967296"):
        _native.plaid_stage_a(cells, cs, miss, np.array([0, 1 << 32, 2], np.int64), io, 3)
    ok = _native.plaid_stage_a(cells.astype(np.uint64), cs, miss, np.array([0, 1, 2], np.int64), io, 3)
    assert sorted(ok[0].tolist()) == [0, 1, 2]
    # Memory follows the documents the probed lists name, not num_docs: a huge num_docs is no MemoryError.
    docs, _ = _native.plaid_stage_a(cells, cs, miss, np.array([0, 1, 2], np.int32), io, 1 << 50)
    assert sorted(docs.tolist()) == [0, 1, 2]


def _probe_ref(S, p):
    """Each row's p best columns, best first, ties to the lower id, NaN below every number."""
    m, K = S.shape
    key = np.where(np.isnan(S), -np.inf, S)
    cells = np.empty((m, min(p, K)), np.int32)
    miss = np.zeros(m, np.float32)
    for i in range(m):
        order = np.lexsort((np.arange(K), -key[i]))
        cells[i] = order[:min(p, K)]
        if p < K:
            miss[i] = S[i, order[p]]
            if not np.isfinite(miss[i]):  # stage A's gains stay finite: the lowest finite probed score, or 0
                fin = S[i, cells[i]][np.isfinite(S[i, cells[i]])]
                miss[i] = fin.min() if len(fin) else 0.0
    return cells, miss


@pytest.mark.parametrize("K", [1, 5, 17, 97, 1000])
@pytest.mark.parametrize("p", [1, 3, 8, 33, 70, 2000])
def test_probe_matches_numpy(K, p):
    rng = np.random.default_rng(K * 1000 + p)
    m = 13
    S = rng.standard_normal((m, K)).astype(np.float32)
    S[:, ::3] = np.round(S[:, ::3], 1)  # many ties
    S[2, :] = 0.25  # a row of ties only
    S[3, :] = np.arange(K)  # ascending: every column enters the running top list
    S[4, ::2] = np.nan  # NaN ranks below every number
    S[5, 1::4] = -np.inf
    cells, cs, miss = _plaid.probe(_plaid.from_rows(S), p)
    ref_cells, ref_miss = _probe_ref(S, p)
    np.testing.assert_array_equal(cells, ref_cells)
    np.testing.assert_array_equal(cs, np.take_along_axis(S, ref_cells.astype(np.int64), 1))
    np.testing.assert_array_equal(miss, ref_miss)


def test_probe_nan_and_errors():
    S = _plaid.from_rows(np.array([[0.1, np.nan, 0.3, -np.inf, 0.2]], np.float32))
    cells, cs, miss = _plaid.probe(S, 2)
    assert cells.tolist() == [[2, 4]] and miss[0] == np.float32(0.1)
    cells, cs, miss = _plaid.probe(S, 4)  # the 5th best is NaN: miss falls back to the lowest finite probed
    assert cells.tolist() == [[2, 4, 0, 1]] and miss[0] == np.float32(0.1)
    assert _plaid.probe(S, 99)[0].shape == (1, 5)
    with pytest.raises(ValueError, match="nprobe"):
        _native.plaid_probe(S.t, 1, 0)
    with pytest.raises(ValueError, match="row"):
        _native.plaid_probe(np.zeros((0, 32), np.float32), 1, 1)
    with pytest.raises(TypeError):
        _native.plaid_probe(S.t.astype(np.float64), 1, 1)


@pytest.mark.skipif(EMULATED, reason="8 GiB of address space (never touched) under qemu-user")
def test_centroid_counts_past_int32_are_refused():
    """Centroid ids are int32 in the probe, the codes and the IVF: the 2^31-th centroid wrapped to a negative
    cell and the probe read 8 GiB before its array (SIGSEGV). np.zeros maps the rows without touching them,
    and both checks come before any read."""
    rows = np.zeros((2**31 + 1, 1), np.float32)
    with pytest.raises(ValueError, match="at most 2\\^31 - 1 rows"):
        _native.plaid_probe(rows, 1, 1)
    with pytest.raises(ValueError, match="at most 2\\^31 - 1 centroids"):
        _native.codec_compress(rows, np.zeros(255, np.float32), np.zeros(256, np.float32), 8,
                               np.zeros((1, 1), np.float32), "float32", None, "")


def test_int8_centroid_scores_only_where_int32_sums_cannot_wrap(tmp_path, monkeypatch):
    """At dim past 65,536 an int8 dot product's int32 sum could wrap (dim 140,000 scored -126,288 where
    float64 gives 140,000): quantize_rows_i8 refuses it and such an index scores its candidates in float32."""
    from edgecolbert_native.index import Index, _search

    with pytest.raises(ValueError, match="dim <= 65536"):
        _native.quantize_rows_i8(np.ones((2, 65537), np.float32))
    assert _native.quantize_rows_i8(np.ones((1, 65536), np.float32))[2].tolist() == [128 * 127 * 65536]
    monkeypatch.setattr(_search, "CENTROID_SCORES", "int8")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 65540)).astype(np.float32)
    idx = Index.build(tmp_path / "wide", x, np.arange(0, 25, 3), nbits=2, num_centroids=4, num_threads=1)
    assert _search.centroids_i8(idx) is None
    plaid = idx.search(x[None, :2], 3, nprobe=4, ndocs=8, rerank=8, exhaustive=False)  # every document re-ranked
    exact = idx.search(x[None, :2], 3, exhaustive=True)
    assert plaid[1].tolist() == exact[1].tolist()


@pytest.mark.parametrize("m", [1, 31, 32, 33, 70])
def test_centroid_scores_are_centroid_major(m):
    """The search's score layout: the same values as centroid_scores, transposed, zero-padded to 32 rows."""
    rng = np.random.default_rng(m)
    q = rng.standard_normal((m, 24)).astype(np.float32)
    C = rng.standard_normal((301, 24)).astype(np.float32)
    S = _plaid.centroid_scores(q, C, num_threads=2)
    assert S.m == m and S.t.shape == (301, -(-m // 32) * 32)
    np.testing.assert_array_equal(S.rows, ec.centroid_scores(q, C))
    assert not S.t[:, m:].any()
    np.testing.assert_allclose(S.rows, q.astype(np.float64) @ C.T.astype(np.float64), rtol=1e-5, atol=1e-4)


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    import index_helpers as H
    from edgecolbert_native.index import Index

    x, off, _ = H.clustered(900, dim=24, mean_len=30, n_topics=64, seed=3)
    q = H.queries_from(x, off, 12, lq=20, seed=4)
    return Index.build(tmp_path_factory.mktemp("plaid") / "idx", x, off, nbits=2, num_centroids=128), q


@pytest.mark.parametrize("nprobe,ndocs,threshold", [(1, 16, None), (3, 64, None), (2, 40, 0.3), (128, 2000, None),
                                                    (4, 7, -1.0)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("scores", ["float32", "int8"])
def test_native_search_equals_the_staged_loop(small_index, monkeypatch, nprobe, ndocs, threshold, threads, scores):
    """One native call per batch gives exactly the stage-by-stage reference's results: same stages, same
    selections, same kernels (float32 or int8 centroid scores)."""
    from edgecolbert_native.index import _search

    monkeypatch.setattr(_search, "CENTROID_SCORES", scores)
    # The index pins its re-rank kernel (the native search's): a process-wide choice of the table kernel
    # for maxsim_compressed must not make the two paths differ.
    monkeypatch.setenv("EDGECOLBERT_COMPRESSED_KERNEL", "lut")
    idx, q = small_index
    mask = np.ones(q.shape[:2], bool)
    mask[1, 3:] = False
    mask[2, :] = False  # a query with no kept token: no hits
    for k, rerank in ((1, None), (10, None), (3, 5)):
        kw = dict(nprobe=nprobe, ndocs=ndocs, centroid_score_threshold=threshold, exhaustive=False,
                  num_threads=threads, query_mask=mask, rerank=rerank)
        got = idx.search(q, k, **kw)
        want_s, want_p = R.search(idx, q, k, **kw)
        np.testing.assert_array_equal(got[0], want_s)
        np.testing.assert_array_equal(got[1], R.ids_of(idx, want_p))
        assert np.all(got[1][2] == -1) and np.all(got[0][2] == -np.inf)


@pytest.fixture(scope="module")
def many_centroids_index(tmp_path_factory):
    import index_helpers as H
    from edgecolbert_native.index import Index

    # (under emulation fewer documents: 4,800 tokens still train 2,500 centroids, and k-means is the cost there)
    x, off, _ = H.clustered(size(1500, 400), dim=32, mean_len=12, n_topics=300, seed=5)
    # 40 tokens (two blocks of 32 query rows), each from anywhere in the corpus: every token has its own
    # best centroids, so a probe that skipped one token's candidates would change the results.
    rng = np.random.default_rng(6)
    q = x[rng.integers(0, len(x), size=(6, 40))] + 0.05 * rng.standard_normal((6, 40, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=2, keepdims=True)
    return Index.build(tmp_path_factory.mktemp("plaid-k") / "idx", x, off, nbits=2, num_centroids=2500), q


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("nprobe", [1, 3])
def test_native_search_equals_the_staged_loop_over_many_probe_slices(many_centroids_index, monkeypatch, threads,
                                                                     nprobe):
    """K spans several of the native probe's slices, so it probes only the centroids the int8 kernel
    flags against each slice's starting thresholds: still exactly the reference's full probe."""
    from edgecolbert_native.index import _search

    monkeypatch.setattr(_search, "CENTROID_SCORES", "int8")
    idx, q = many_centroids_index
    assert idx.codec.centroids.shape[0] == 2500
    for k in (1, 10):
        got = idx.search(q, k, nprobe=nprobe, ndocs=64, exhaustive=False, num_threads=threads, rerank=16)
        want_s, want_p = R.search(idx, q, k, nprobe=nprobe, ndocs=64, exhaustive=False, num_threads=threads, rerank=16)
        np.testing.assert_array_equal(got[0], want_s)
        np.testing.assert_array_equal(got[1], R.ids_of(idx, want_p))
        assert np.all(got[1] >= 0)


def test_native_search_codes_and_isas(small_index):
    """int32 and uint16 codes give the same results; every ISA path agrees to float rounding."""
    idx, q = small_index
    seg = idx.segments[0]
    c = idx.codec

    def run(codes, isa=""):
        return _native.plaid_search(q, None, c.centroids, c.bucket_weights, c.nbits,
                                    [(codes, seg.residuals, seg.offsets, seg.ivf, seg.ivf_offsets)], nprobe=2, ndocs=64,
                                    rerank=16, k=10, num_threads=1, isa=isa)

    base = run(seg.codes)
    wide = run(np.asarray(seg.codes, np.int32))
    np.testing.assert_array_equal(base[0], wide[0])
    np.testing.assert_array_equal(base[1], wide[1])
    for isa in ec.info()["variants"]:
        s, d = run(seg.codes, isa)
        np.testing.assert_allclose(s, base[0], rtol=1e-4, atol=1e-4)
        assert np.mean(d == base[1]) >= 0.95, isa


def test_distinct_codes_are_each_documents_unique_codes(small_index):
    """plaid_distinct_codes: per document np.unique of its codes (uint16 and int32, 1-3 threads, empty
    documents), and its input checked."""
    idx, _ = small_index
    seg = idx.segments[0]
    rng = np.random.default_rng(8)
    lens = rng.integers(0, 12, size=1037)
    lens[::9] = 0
    off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    codes32 = rng.integers(0, 5, size=int(off[-1])).astype(np.int32)  # 5 centroids: many repeats
    for codes in (codes32, codes32.astype(np.uint16), np.asarray(seg.codes)):
        o_in = off if len(codes) == len(codes32) else seg.offsets
        for threads in (1, 2, 3):
            got, got_off = _native.plaid_distinct_codes(codes, o_in, num_threads=threads)
            assert got.dtype == codes.dtype and got_off.dtype == np.int64 and len(got_off) == len(o_in)
            want = [np.unique(codes[o_in[d]:o_in[d + 1]]) for d in range(len(o_in) - 1)]
            np.testing.assert_array_equal(np.diff(got_off), [len(w) for w in want])
            np.testing.assert_array_equal(got, np.concatenate(want))
    empty, empty_off = _native.plaid_distinct_codes(np.empty(0, np.uint16), np.zeros(1, np.int64))
    assert len(empty) == 0 and list(empty_off) == [0]
    with pytest.raises(ValueError, match="run from 0 to len\\(codes\\)"):
        _native.plaid_distinct_codes(codes32, off[:-1])
    bad = off.copy()
    bad[4] = bad[3] - 1
    with pytest.raises(ValueError, match="must not decrease \\(document 3\\)"):
        _native.plaid_distinct_codes(codes32, bad)
    with pytest.raises(TypeError, match="int32 or uint16"):
        _native.plaid_distinct_codes(codes32.astype(np.int64), off)


def test_stage_b_reads_distinct_codes_for_the_same_scores(small_index):
    """Stage B from each document's distinct codes equals stage B from every code, bit for bit (thresholds
    that prune nothing and some), and a search over segments with them equals one without; an open index
    builds them on its first PLAID search, once, and the exhaustive mode never does."""
    idx, q = small_index
    seg = idx.segments[0]
    c = idx.codec
    dc, doff = _native.plaid_distinct_codes(seg.codes, seg.offsets)
    assert len(dc) < len(seg.codes)  # the clustered documents repeat centroids
    docs = np.random.default_rng(9).integers(0, len(idx), size=300)
    for qi in range(len(q)):
        S = _plaid.centroid_scores(q[qi], c.centroids)
        for th in (None, 0.3):
            a = _plaid.centroid_interaction(S, seg.codes, seg.offsets, docs, th)
            b = _plaid.centroid_interaction(S, dc, doff, docs, th)
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    base = (seg.codes, seg.residuals, seg.offsets, seg.ivf, seg.ivf_offsets)
    for threads in (1, 2):
        kw = dict(nprobe=2, ndocs=64, rerank=16, k=10, num_threads=threads)
        s5, p5 = _native.plaid_search(q, None, c.centroids, c.bucket_weights, c.nbits, [base], **kw)
        s7, p7 = _native.plaid_search(q, None, c.centroids, c.bucket_weights, c.nbits, [base + (dc, doff)], **kw)
        np.testing.assert_array_equal(p5, p7)
        np.testing.assert_array_equal(s5, s7)
    from edgecolbert_native.index import Index

    fresh = Index.open(idx.path)
    fresh.search(q, 10, exhaustive=True)
    assert fresh.segments[0]._distinct is None
    fresh.search(q, 10, exhaustive=False, nprobe=2, ndocs=64)
    got = fresh.segments[0]._distinct
    np.testing.assert_array_equal(got[0], dc)
    np.testing.assert_array_equal(got[1], doff)
    fresh.search(q, 10, exhaustive=False, nprobe=2, ndocs=64)
    assert fresh.segments[0]._distinct is got


def test_native_search_refuses_corrupt_segments(small_index):
    """Every array of every segment, the allowed mask and the mode's inputs are checked: a ValueError or
    TypeError naming the segment and the argument, never a crash or a read out of bounds."""
    idx, q = small_index
    seg = idx.segments[0]
    c = idx.codec
    good = (seg.codes, seg.residuals, seg.offsets, seg.ivf, seg.ivf_offsets)
    args = dict(queries=q, query_mask=None, centroids=c.centroids, bucket_weights=c.bucket_weights, nbits=c.nbits,
                segments=[good], nprobe=128, ndocs=64, rerank=16, k=10)

    def call(at=0, **kw):
        """plaid_search with the segment at ``at`` of two (the first good) given the arrays in kw."""
        names = ("codes", "residuals", "doc_offsets", "ivf", "ivf_offsets")
        bad = tuple(kw.pop(n, a) for n, a in zip(names, good))
        segs = [good, good]
        segs[at] = bad
        return _native.plaid_search(**{**args, "segments": segs, **kw})

    for at in (0, 1):
        where = f"segments\\[{at}\\]"
        bad = np.array(seg.ivf, np.int32)
        bad[len(bad) // 2] = len(idx)
        with pytest.raises(ValueError, match=f"{where}: ivf names a document"):
            call(at, ivf=bad)
        io = np.array(seg.ivf_offsets, np.int64)
        io[5] = io[-1] + 10
        with pytest.raises(ValueError, match=f"{where}: ivf_offsets give a probed centroid"):
            call(at, ivf_offsets=io)
        with pytest.raises(ValueError, match=f"{where}: ivf_offsets must have shape"):
            call(at, ivf_offsets=io[:-1])
        codes = np.array(seg.codes, np.int32)
        codes[:] = 1000
        with pytest.raises(ValueError, match=f"{where}: a candidate document has a code outside"):
            call(at, codes=codes)
        with pytest.raises(ValueError, match="code outside"):  # no stage B (rerank >= ndocs): the re-rank checks
            call(at, codes=codes, rerank=64)
        for one_bad in (np.array(seg.codes, np.uint16), np.array(seg.codes, np.int32)):  # one bad code of either type
            one_bad[len(one_bad) // 3] = 128 if one_bad.dtype == np.uint16 else -1
            with pytest.raises(ValueError, match="code outside"):
                call(at, codes=one_bad, rerank=len(idx), nprobe=128, ndocs=len(idx))  # every document re-ranked
        with pytest.raises(ValueError, match="code outside"):  # the selective mode scores every allowed document
            call(at, codes=codes, mode="selective")
        off = np.array(seg.offsets, np.int64)
        off[-1] = len(seg.codes) + 5
        with pytest.raises(ValueError, match=f"{where}: doc_offsets give a candidate"):
            call(at, doc_offsets=off)
        with pytest.raises(ValueError, match=f"{where}: doc_offsets give a candidate"):
            call(at, doc_offsets=off, mode="exhaustive", decoded=[np.zeros((len(seg.codes), idx.dim), np.float32)] * 2)
        with pytest.raises(ValueError, match=f"{where}: residuals must have shape"):
            call(at, residuals=np.asarray(seg.residuals)[:-1])
        with pytest.raises(TypeError, match=f"{where}: codes must be int32 or uint16"):
            call(at, codes=np.asarray(seg.codes, np.int64))
    with pytest.raises(ValueError, match="queries have dim"):
        call(queries=q[..., :8].copy())
    with pytest.raises(TypeError, match="float32"):
        call(queries=q.astype(np.float64))
    with pytest.raises(ValueError, match="must be >= 1"):
        call(k=0)
    with pytest.raises(ValueError, match="query_mask"):
        call(query_mask=np.ones((2, 2), bool))
    with pytest.raises(TypeError, match="query_mask must be boolean"):  # the check maxsim shares
        call(query_mask=np.ones(q.shape[:2], np.float32))
    n = 2 * len(idx)
    for bad_allowed in (np.ones(n - 1, bool), np.ones(n + 1, bool), np.ones((2, len(idx)), bool)):
        with pytest.raises(ValueError, match=f"allowed must be 1-d with one entry per document position .*\\({n}\\)"):
            call(allowed=bad_allowed)
    with pytest.raises(TypeError, match="segments must be a sequence"):
        _native.plaid_search(**{**args, "segments": 3})
    with pytest.raises(TypeError, match="segments\\[1\\] must be a tuple"):
        _native.plaid_search(**{**args, "segments": [good, good[:4]]})
    with pytest.raises(TypeError, match="segments\\[1\\] must be a tuple"):
        _native.plaid_search(**{**args, "segments": [good, good + (seg.codes,)]})
    # Each document's distinct codes (stage B's input): shape, range and dtype checked like the codes.
    dc, doff = _native.plaid_distinct_codes(seg.codes, seg.offsets)
    with pytest.raises(ValueError, match="segments\\[1\\]: distinct_offsets must be 1-d"):
        _native.plaid_search(**{**args, "segments": [good + (dc, doff), good + (dc, doff[:-1])]})
    far = doff.copy()
    far[-1] = len(dc) + 3
    with pytest.raises(ValueError, match="segments\\[0\\]: doc_offsets give .* \\(or distinct_offsets outside"):
        _native.plaid_search(**{**args, "segments": [good + (dc, far)]})
    wild = np.full(len(dc), 1000, np.int32)
    with pytest.raises(ValueError, match="segments\\[0\\]: a candidate document has a code outside"):
        _native.plaid_search(**{**args, "segments": [good + (wild, doff)]})
    with pytest.raises(TypeError, match="segments\\[0\\]: codes must be int32 or uint16"):
        _native.plaid_search(**{**args, "segments": [good + (dc.astype(np.int64), doff)]})
    with pytest.raises(ValueError, match="mode must be"):
        call(mode="fast")
    with pytest.raises(ValueError, match="exhaustive mode needs decoded"):
        call(mode="exhaustive")
    with pytest.raises(ValueError, match="decoded\\[1\\] must have shape"):
        call(mode="exhaustive", decoded=[np.zeros((len(seg.codes), idx.dim), np.float32), np.zeros((3, idx.dim))])
    with pytest.raises(ValueError, match="decoded must hold one"):
        call(mode="exhaustive", decoded=[np.zeros((len(seg.codes), idx.dim), np.float32)])
    with pytest.raises(TypeError, match="decoded\\[0\\] must be float32"):
        call(mode="exhaustive", decoded=[np.zeros((len(seg.codes), idx.dim), np.float64)] * 2)
    # No segment, or nothing allowed: no hits, no error.
    s, p = _native.plaid_search(**{**args, "segments": []})
    assert np.all(p == -1) and np.all(np.isneginf(s))
    s, p = call(allowed=np.zeros(n, bool))
    assert np.all(p == -1)


def test_rerank_parameter(small_index):
    """rerank: how many of stage B's best are scored exactly; never fewer than k, and refused when not a
    positive int. Re-ranking every candidate is the same as having no stage B."""
    idx, q = small_index
    all_ = idx.search(q, 10, nprobe=4, ndocs=50, rerank=50, exhaustive=False)
    big = idx.search(q, 10, nprobe=4, ndocs=50, rerank=10**6, exhaustive=False)
    np.testing.assert_array_equal(all_[1], big[1])
    few = idx.search(q, 10, nprobe=4, ndocs=50, rerank=1, exhaustive=False)  # raised to k
    ten = idx.search(q, 10, nprobe=4, ndocs=50, rerank=10, exhaustive=False)
    np.testing.assert_array_equal(few[1], ten[1])
    for bad in (0, -3, 2.5, True, "8"):
        with pytest.raises(ValueError, match="rerank must be"):
            idx.search(q, 10, rerank=bad, exhaustive=False)


def test_ndocs_below_k_still_fills_k(small_index):
    """A candidate pool smaller than k is raised to k (as rerank is): a row is padded only when fewer than k
    documents qualify, not because ndocs was small."""
    idx, q = small_index
    for k in (5, 10):
        s, i = idx.search(q, k, nprobe=4, ndocs=2, exhaustive=False)
        assert np.isfinite(s).all() and (i >= 0).all()
        np.testing.assert_array_equal(i, idx.search(q, k, nprobe=4, ndocs=k, exhaustive=False)[1])


def test_int8_centroid_scores_keep_recall_and_fall_back_on_non_finite_queries(small_index, monkeypatch):
    """int8 candidate scores find what float32 ones find (the re-rank is exact either way); a query with a
    non-finite value is scored in float32 by both the native and the staged path (Index.search refuses
    such queries: the native rule is checked past that check, as huge finite values reach it too)."""
    from edgecolbert_native.index import _search

    idx, q = small_index
    got = {}
    for mode in ("float32", "int8"):
        monkeypatch.setattr(_search, "CENTROID_SCORES", mode)
        got[mode] = idx.search(q, 10, nprobe=2, ndocs=64, exhaustive=False)
    assert np.mean(got["int8"][1] == got["float32"][1]) >= 0.9
    kept = got["int8"][0] == got["float32"][0]
    np.testing.assert_array_equal(got["int8"][0][kept], got["float32"][0][kept])  # exact scores where both agree
    bad = q.copy()
    bad[0, 0, 0] = np.inf
    monkeypatch.setattr(_search, "check_finite", lambda q, mask, fn: None)
    monkeypatch.setattr(_search, "CENTROID_SCORES", "int8")
    native = idx.search(bad, 10, nprobe=2, ndocs=64, exhaustive=False)
    staged = R.search(idx, bad, 10, nprobe=2, ndocs=64, exhaustive=False)
    np.testing.assert_array_equal(native[1], R.ids_of(idx, staged[1]))
    monkeypatch.setattr(_search, "CENTROID_SCORES", "float32")
    f32 = idx.search(bad[:1], 10, nprobe=2, ndocs=64, exhaustive=False)
    np.testing.assert_array_equal(native[1][:1], f32[1])
