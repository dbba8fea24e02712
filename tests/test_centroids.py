"""centroid_search, centroid_scores, assign, kmeans: every ISA path against float64 numpy, exact
ties to the lower id, dtypes, thread-count independence, progress output and bad input."""

import numpy as np
import pytest

import edgecolbert_native as ec

PATHS = ec.info()["paths"]


def topk_ref(scores, k):
    # best first, ties to the lower id (stable sort on the negated score)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.mark.parametrize("isa", PATHS)
@pytest.mark.parametrize("dim", [1, 7, 48, 64, 129])
@pytest.mark.parametrize("cdtype", ["float32", "float16", "bfloat16"])
def test_search_and_scores_match_float64(rng, isa, dim, cdtype):
    torch = pytest.importorskip("torch") if cdtype == "bfloat16" else None
    K, m = 1500 + dim, 37
    c = rng.standard_normal((K, dim)).astype(np.float32)
    c[5] = c[900]  # exact duplicates: equal scores, lower id first
    q = rng.standard_normal((m, dim)).astype(np.float32)
    if cdtype == "float16":
        c_in = c.astype(np.float16)
        c = c_in.astype(np.float32)
    elif cdtype == "bfloat16":
        c_in = torch.from_numpy(c).to(torch.bfloat16)
        c = c_in.float().numpy()
    else:
        c_in = c
    full = q.astype(np.float64) @ c.astype(np.float64).T
    got = ec.centroid_scores(q, c_in, num_threads=2, _isa=isa)
    assert got.dtype == np.float32 and got.shape == (m, K)
    tol = 1e-5 * np.abs(q).astype(np.float64) @ np.abs(c).astype(np.float64).T + 1e-6
    assert np.all(np.abs(got - full) <= tol)
    s, ids = ec.centroid_search(q, c_in, 8, num_threads=3, _isa=isa)
    assert s.dtype == np.float32 and ids.dtype == np.int32 and ids.shape == (m, 8)
    # against the path's own dense scores: exact (same arithmetic), then ids vs float64 modulo near-ties
    ws, wi = topk_ref(got, 8)
    np.testing.assert_array_equal(ids, wi)
    np.testing.assert_array_equal(s, ws)
    _, fi = topk_ref(full, 8)
    gap = np.sort(full, axis=1)[:, ::-1]
    clear = (gap[:, 7] - gap[:, 8]) > 1e-4 * np.abs(gap[:, 0])
    assert np.array_equal(np.sort(ids[clear], 1), np.sort(fi[clear], 1))
    s1, i1 = ec.centroid_search(q, c_in, 8, num_threads=1, _isa=isa)
    np.testing.assert_array_equal(i1, ids)
    np.testing.assert_array_equal(s1, s)


@pytest.mark.parametrize("isa", PATHS)
def test_assign_ties_and_streaming(rng, isa):
    c = rng.standard_normal((300, 33)).astype(np.float32)
    c[10] = c[200]
    x = rng.standard_normal((5000, 33)).astype(np.float32)
    x[:50] = c[200] * 3  # nearest is the duplicated pair: the lower id wins
    a = ec.assign(x, c, num_threads=2, _isa=isa)
    assert a.dtype == np.int32 and a.shape == (5000,)
    assert np.all(a[:50] == 10)
    dense = ec.centroid_scores(x, c, _isa=isa)
    np.testing.assert_array_equal(a, np.argmax(dense, axis=1))
    np.testing.assert_array_equal(a, ec.assign(x, c, num_threads=1, _isa=isa))
    assert ec.assign(np.zeros((0, 33), np.float32), c).shape == (0,)


def test_kmeans_spherical_deterministic_reseeds(rng, capsys):
    x = rng.standard_normal((3000, 48)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    a = ec.kmeans(x, 64, niters=3, seed=7, num_threads=2, progress=True)
    err = capsys.readouterr().err
    assert "kmeans" in err and "3/3" in err
    b = ec.kmeans(x, 64, niters=3, seed=7, num_threads=1, progress=False)
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (64, 48)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    assert not np.array_equal(a, ec.kmeans(x, 64, niters=3, seed=8, progress=False))
    # 5 distinct points, k = 8: clusters go empty and are re-seeded; centroids stay unit and finite
    few = np.repeat(x[:5], 40, axis=0)
    c = ec.kmeans(few, 8, niters=3, seed=0, progress=False)
    assert np.isfinite(c).all()
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-6)
    # mean inner product of points to their centroid improves on the initial guess
    c0 = ec.kmeans(x, 64, niters=0, seed=7)
    fit = lambda cc: (x * cc[ec.assign(x, cc)]).sum(1).mean()  # noqa: E731
    assert fit(a) > fit(c0)


def test_bad_input_is_named(rng):
    c = rng.standard_normal((10, 8)).astype(np.float32)
    q = rng.standard_normal((3, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"centroid_search: nprobe must be in \[1, K\] with K = 10"):
        ec.centroid_search(q, c, 11)
    with pytest.raises(TypeError, match="centroid_search: nprobe must be an int"):
        ec.centroid_search(q, c, 2.0)
    with pytest.raises(ValueError, match="centroid_search: query_tokens have dim 8 but centroids have dim 4"):
        ec.centroid_search(q, c[:, :4].copy(), 2)
    with pytest.raises(ValueError, match=r"centroid_scores: query_tokens must have 2 dimensions"):
        ec.centroid_scores(q[0], c)
    with pytest.raises(ValueError, match="assign: tokens must be C-contiguous"):
        ec.assign(q[:, ::2], c[:, :4].copy())
    with pytest.raises(ValueError, match=r"kmeans: k must be in \[1, n\]"):
        ec.kmeans(q, 4)
    with pytest.raises(ValueError, match="kmeans: sample contains NaN"):
        ec.kmeans(np.full((5, 8), np.nan, np.float32), 2)


@pytest.mark.parametrize("dim", [1, 5, 48, 130])
def test_int8_centroid_scores_match_their_definition(dim):
    """quantize_rows_i8 and centroid_scores_t_i8 (PLAID's int8 candidate scores) against numpy: rows
    round(x * 127 / max|x|), and float32(exact int dot) * (qscale * cscale), bit for bit on every path."""
    from edgecolbert_native import _native

    rng = np.random.default_rng(dim)
    q = rng.standard_normal((37, dim)).astype(np.float32)
    C = rng.standard_normal((301, dim)).astype(np.float32)
    q[3] = 0
    c8, cs, csum = _native.quantize_rows_i8(C)
    dim4 = -(-dim // 4) * 4
    mx = np.abs(C).max(axis=1)
    np.testing.assert_array_equal(cs, mx / np.float32(127))
    want8 = np.zeros((301, dim4), np.int8)
    want8[:, :dim] = np.rint(C * (np.float32(127) / mx)[:, None]).astype(np.int8)
    np.testing.assert_array_equal(c8, want8)
    np.testing.assert_array_equal(csum, 128 * c8.astype(np.int32).sum(axis=1))
    q8, qs, _ = _native.quantize_rows_i8(q)
    assert qs[3] == 0 and not q8[3].any()
    dots = (q8.astype(np.int64) @ c8.astype(np.int64).T).astype(np.float32)
    want = (dots * (qs[:, None] * cs[None, :])).T
    for isa in ec.info()["variants"]:
        St = _native.centroid_scores_t_i8(q, (c8, cs, csum), num_threads=2, isa=isa)
        assert St.shape == (301, 64)
        np.testing.assert_array_equal(St[:, :37], want, err_msg=isa)
        assert not St[:, 37:].any()
    # close to the float32 scores: the error of rounding both sides to 8 bits
    np.testing.assert_allclose(want, (q @ C.T).T, atol=float(dim) * 0.02 * float(mx.max()) * float(np.abs(q).max()))
    with pytest.raises(ValueError, match="not finite"):
        _native.quantize_rows_i8(np.array([[1.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match="not finite"):
        _native.centroid_scores_t_i8(np.full((2, dim), np.inf, np.float32), (c8, cs, csum))
    with pytest.raises(ValueError, match="bytes"):
        _native.centroid_scores_t_i8(np.zeros((2, dim + 4), np.float32), (c8, cs, csum))
    with pytest.raises(TypeError, match="tuple"):
        _native.centroid_scores_t_i8(q, c8)
    with pytest.raises(ValueError, match="csum"):
        _native.centroid_scores_t_i8(q, (c8, cs, csum[:-1]))


@pytest.mark.parametrize("block_bytes", [1, 12 * 8 * 50, 1 << 24])
def test_kmeans_cluster_sums_by_groups_equal_one_reordered_copy(rng, monkeypatch, block_bytes):
    """k-means sums its clusters a group of clusters at a time (no reordered copy of the sample): each
    cluster is still one reduceat segment, so the sums equal, bit for bit, the one-call sums over the
    reordered sample, whatever the group size (one row, ~50 rows, everything), with empty clusters and a
    cluster larger than a group."""
    from edgecolbert_native import centroids

    monkeypatch.setattr(centroids, "_BLOCK_BYTES", block_bytes)
    x = rng.standard_normal((3000, 8)).astype(np.float32) * (10.0 ** rng.uniform(-8, 8, size=(3000, 1))).astype(np.float32)
    k = 40
    codes = rng.integers(0, k, size=3000).astype(np.int32)
    codes[:700] = 5  # a cluster of 700+ rows
    codes[codes == 7] = 8  # empty clusters
    codes[codes == 39] = 0
    counts = np.bincount(codes, minlength=k)
    order = np.argsort(codes, kind="stable")
    nonempty = np.flatnonzero(counts)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[nonempty]
    want = np.zeros((k, 8))
    want[nonempty] = np.add.reduceat(x[order], starts, axis=0, dtype=np.float64)
    got = centroids._cluster_sums(x, codes, k)
    assert got.tobytes() == want.tobytes()


def test_kmeans_never_keeps_a_zero_centroid():
    """An empty cluster re-seeded with a zero sample row stayed zero for good (17 of 20 rows zero, k 6:
    norms [1, 1, 1, 1, 1, 0]); such a draw now becomes a random unit vector, as at initialisation."""
    rng = np.random.default_rng(0)
    x = np.zeros((20, 8), np.float32)
    x[:3] = rng.standard_normal((3, 8))
    for seed in range(5):
        c = ec.kmeans(x, 6, niters=2, seed=seed)
        np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-6)
