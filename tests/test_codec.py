"""ResidualCodec and maxsim_compressed: every ISA path against the float64 reference of the published
algorithm (tests/codec_reference.py), colbert-ai's own codec where it installs, files and bad input."""

import os

import numpy as np
import pytest

import edgecolbert_native as ec
import codec_reference as ref

PATHS = ec.info()["paths"]
NBITS_DIMS = [(1, 8), (1, 48), (1, 136), (2, 4), (2, 12), (2, 48), (2, 52), (4, 2), (4, 48), (4, 130),
              (8, 1), (8, 7), (8, 48), (8, 129)]


def clustered(rng, n, dim, k=None, noise=0.2):
    k = k or max(2, n // 50)
    c = rng.standard_normal((k, dim))
    x = c[rng.integers(0, k, n)] + noise * rng.standard_normal((n, dim)) * np.sqrt(1.0 / max(dim, 1)) * 4
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_codec(rng, dim, nbits, k=37):
    c = rng.standard_normal((k, dim))
    c = (c / np.linalg.norm(c, axis=1, keepdims=True)).astype(np.float32)
    nb = 1 << nbits
    cut = np.sort(rng.standard_normal(nb - 1) * 0.1).astype(np.float32)
    w = np.sort(rng.standard_normal(nb) * 0.1).astype(np.float32)
    return ec.ResidualCodec(c, cut, w, nbits)


@pytest.mark.parametrize("isa", PATHS)
@pytest.mark.parametrize("nbits,dim", NBITS_DIMS)
def test_compress_decompress_match_reference(rng, isa, nbits, dim):
    codec = make_codec(rng, dim, nbits)
    x = (codec.centroids[rng.integers(0, codec.num_centroids, 301)] + 0.1 * rng.standard_normal((301, dim))).astype(np.float32)
    x[0, 0] = codec.centroids[0, 0] + codec.bucket_cutoffs[0]  # may sit on a cutoff: goes to the lower bucket
    codes, res = codec.compress(x, num_threads=2, _isa=isa)
    assert codes.dtype == np.int32 and res.dtype == np.uint8 and res.shape == (301, dim * nbits // 8)
    s = x.astype(np.float64) @ codec.centroids.astype(np.float64).T
    best = s.max(axis=1)
    assert np.all(s[np.arange(301), codes] >= best - 1e-5)
    want_codes, want_res = ref.compress(x, codec.centroids, codec.bucket_cutoffs, nbits, codes=codes)
    np.testing.assert_array_equal(res, want_res)
    want = ref.decompress(codes, res, codec.centroids, codec.bucket_weights, nbits)
    got = codec.decompress(codes, res, num_threads=3, _isa=isa)
    assert got.dtype == np.float32 and got.shape == (301, dim)
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    got16 = codec.decompress(codes, res, dtype=np.float16, _isa=isa)
    assert got16.dtype == np.float16
    np.testing.assert_allclose(got16.astype(np.float64), want, atol=1e-3, rtol=0)


def test_bucketize_tie_goes_low_and_bit_layout():
    codec = ec.ResidualCodec(np.zeros((1, 4), np.float32), [-0.5, 0.0, 0.5], [-0.75, -0.25, 0.25, 0.75], 2)
    codes, res = codec.compress(np.array([[-0.5, 0.0, 0.5, 0.7]], np.float32))
    # buckets 0 1 2 3, each LSB first: 00 10 01 11 -> 0b00100111
    assert codes.tolist() == [0] and res.tolist() == [[0x27]]


# The two compressed-MaxSim kernels (decoding tiles, and byte tables where a path has them for the
# shape); by default each process measures which one this core runs faster.
KERNELS = ["decode", "lut"]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("isa", PATHS)
@pytest.mark.parametrize("nbits,dim", [(1, 48), (2, 48), (2, 12), (2, 96), (2, 64), (4, 130), (4, 32), (8, 33)])
def test_maxsim_compressed_equals_decompress_then_maxsim(rng, monkeypatch, kernel, isa, nbits, dim):
    monkeypatch.setenv("EDGECOLBERT_COMPRESSED_KERNEL", kernel)
    codec = make_codec(rng, dim, nbits, k=50)
    lens = rng.integers(0, 40, 25)
    lens[3] = 0
    offsets = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
    x = clustered(rng, int(offsets[-1]), dim)
    codes, res = codec.compress(x)
    dec = ref.decompress(codes, res, codec.centroids, codec.bucket_weights, nbits)
    for lq in (1, 32, 40):
        q = rng.standard_normal((3, lq, dim)).astype(np.float32)
        want = ref.maxsim(q, dec, offsets)
        got = ec.maxsim_compressed(q, codes, res, offsets, codec, num_threads=2, _isa=isa)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * lq)
        assert got[:, 3].tolist() == [0.0] * 3
        cand = rng.integers(0, 25, (3, 7))
        gc = ec.maxsim_compressed(q, codes, res, offsets, codec, candidates=cand, num_threads=1, _isa=isa)
        np.testing.assert_array_equal(gc, np.take_along_axis(got, cand, axis=1))
        mask = rng.random((3, lq)) < 0.7
        mask[:, 0] = True
        gm = ec.maxsim_compressed(q, codes, res, offsets, codec, query_mask=mask, _isa=isa)
        wm = np.stack([ref.maxsim(q[i:i + 1, mask[i]], dec, offsets)[0] for i in range(3)])
        np.testing.assert_allclose(gm, wm, rtol=2e-5, atol=2e-5 * lq)
        # and against the library's own decompress + maxsim
        np.testing.assert_allclose(got, ec.maxsim(q, codec.decompress(codes, res), offsets), rtol=2e-5, atol=2e-5 * lq)
        # the per-call kernel choice is the same kernel as the environment's
        np.testing.assert_array_equal(
            got, ec.maxsim_compressed(q, codes, res, offsets, codec, num_threads=2, _isa=isa, _kernel=kernel))
        # stored per-token norms give the same scores (the norm is the one decompress divides by)
        norms = codec.token_norms(codes, res, _isa=isa)
        gn = ec.maxsim_compressed(q, codes, res, offsets, codec, num_threads=2, token_norms=norms, _isa=isa)
        np.testing.assert_allclose(gn, want, rtol=2e-5, atol=2e-5 * lq)


@pytest.mark.parametrize("isa", PATHS)
@pytest.mark.parametrize("nbits,dim", NBITS_DIMS)
def test_token_norms_match_reference(rng, isa, nbits, dim):
    codec = make_codec(rng, dim, nbits)
    x = clustered(rng, 61, dim)
    codes, res = codec.compress(x)
    v = codec.centroids[codes].astype(np.float64) + codec.bucket_weights.astype(np.float64)[ref.buckets_of(res, dim, nbits)]
    got = codec.token_norms(codes, res, num_threads=2, _isa=isa)
    assert got.dtype == np.float32 and got.shape == (61,)
    np.testing.assert_allclose(got, np.linalg.norm(v, axis=1), rtol=2e-6, atol=1e-7)
    assert codec.token_norms(codes[:0], res[:0], _isa=isa).shape == (0,)


def test_token_norms_bad_input(rng):
    codec = make_codec(rng, 12, 2)
    codes, res = codec.compress(clustered(rng, 5, 12))
    q = np.ones((1, 2, 12), np.float32)
    with pytest.raises(ValueError, match=r"token_norms must have shape \(5,\)"):
        ec.maxsim_compressed(q, codes, res, [0, 5], codec, token_norms=np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"token_norms\[1\] = -1 is not a finite norm"):
        ec.maxsim_compressed(q, codes, res, [0, 5], codec, token_norms=np.array([1, -1, 1, 1, 1], np.float32))
    with pytest.raises(TypeError, match="token_norms must be a float array"):
        ec.maxsim_compressed(q, codes, res, [0, 5], codec, token_norms=np.ones(5, np.int32))


def test_train_follows_colbert_recipe(rng):
    x = clustered(rng, 4000, 48)
    codec = ec.ResidualCodec.train(x, 64, 2, seed=3, num_threads=2, progress=False)
    again = ec.ResidualCodec.train(x, 64, 2, seed=3, num_threads=1, progress=False)
    np.testing.assert_array_equal(codec.centroids, again.centroids)
    np.testing.assert_allclose(np.linalg.norm(codec.centroids, axis=1), 1.0, atol=1e-6)
    # cutoffs / weights are quantiles of the held-out residuals (200 rows = 5 % after the seeded shuffle)
    perm = np.random.default_rng(3).permutation(len(x))
    held = x[perm[:200]]
    codes = ec.assign(held, codec.centroids)
    r = (held - codec.centroids[codes]).reshape(-1)
    np.testing.assert_allclose(codec.bucket_cutoffs, np.quantile(r, [0.25, 0.5, 0.75]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(codec.bucket_weights, np.quantile(r, [0.125, 0.375, 0.625, 0.875]), rtol=1e-6, atol=1e-7)
    cos = (codec.decompress(*codec.compress(x)) * x).sum(1).mean()
    assert cos > 0.9
    tiny = ec.ResidualCodec.train(x[:10], 3, 4, niters=1)  # no held-out rows: training rows used
    assert tiny.bucket_cutoffs.shape == (15,)


@pytest.mark.slow
def test_lloyd_max_reaches_the_known_optima(rng):
    """Lloyd-Max from quantile buckets converges to the textbook optima: the uniform quantiser for a
    uniform density, Max's (1960) levels for a Gaussian."""
    from edgecolbert_native.codec import lloyd_max

    u = rng.uniform(-1, 1, 2_000_000).astype(np.float32)
    c, w = lloyd_max(u, np.quantile(u, [0.25, 0.5, 0.75]), np.quantile(u, [0.125, 0.375, 0.625, 0.875]) * 0.5)
    np.testing.assert_allclose(w, [-0.75, -0.25, 0.25, 0.75], atol=3e-3)
    np.testing.assert_allclose(c, [-0.5, 0.0, 0.5], atol=3e-3)
    g = rng.standard_normal(4_000_000).astype(np.float32)
    c, w = lloyd_max(g, np.quantile(g, [0.25, 0.5, 0.75]), np.quantile(g, [0.125, 0.375, 0.625, 0.875]))
    np.testing.assert_allclose(w, [-1.510, -0.4528, 0.4528, 1.510], atol=6e-3)
    np.testing.assert_allclose(c, [-0.9816, 0.0, 0.9816], atol=6e-3)
    assert np.all(np.diff(w) > 0) and np.all(np.diff(c) > 0)
    c1, w1 = lloyd_max(g[:1000], [0.0], [-1.0, 1.0])  # nbits 1: cutoff halfway between the two means
    assert c1[0] == pytest.approx((w1[0] + w1[1]) / 2, abs=1e-6)
    assert w1[0] == pytest.approx(g[:1000][g[:1000] <= c1[0]].mean(), abs=1e-5)


def test_train_lloyd_buckets_lower_the_error(rng):
    x = clustered(rng, 6000, 48)
    for nbits in (1, 2, 4):
        q = ec.ResidualCodec.train(x, 64, nbits, seed=1, progress=False)
        ll = ec.ResidualCodec.train(x, 64, nbits, seed=1, progress=False, buckets="lloyd")
        np.testing.assert_array_equal(q.centroids, ll.centroids)  # only the bucket numbers differ
        # squared quantisation error of the held-out residuals (those the buckets were fitted on)
        held = x[np.random.default_rng(1).permutation(len(x))[:300]]
        r = (held - q.centroids[ec.assign(held, q.centroids)]).reshape(-1)

        def sq_err(c):
            return float(np.mean((r - c.bucket_weights[np.searchsorted(c.bucket_cutoffs, r, side="left")]) ** 2))

        assert sq_err(ll) < sq_err(q)
        # midpoint cutoffs: bucketize is nearest-weight assignment
        np.testing.assert_allclose(ll.bucket_cutoffs, (ll.bucket_weights[1:] + ll.bucket_weights[:-1]) / 2, rtol=1e-5,
                                   atol=1e-7)
        # and whole vectors come back closer
        cos_q = (q.decompress(*q.compress(x)) * x).sum(1).mean()
        cos_l = (ll.decompress(*ll.compress(x)) * x).sum(1).mean()
        assert cos_l > cos_q
    with pytest.raises(ValueError, match="buckets"):
        ec.ResidualCodec.train(x, 8, 2, buckets="kmeans")


def test_save_load_roundtrip_and_golden(tmp_path, rng):
    codec = make_codec(rng, 16, 2, k=5)
    p = tmp_path / "codec.bin"
    codec.save(p)
    assert os.listdir(tmp_path) == ["codec.bin"]  # no temporary left behind
    back = ec.ResidualCodec.load(p)
    for a in ("centroids", "bucket_cutoffs", "bucket_weights"):
        np.testing.assert_array_equal(getattr(back, a), getattr(codec, a))
    assert back.nbits == 2 and back.dim == 16 and back.num_centroids == 5
    # The format is pinned by a golden file: its bytes are exactly what to_bytes writes.
    golden = os.path.join(os.path.dirname(__file__), "data", "codec_golden.bin")
    g = ec.ResidualCodec.load(golden)
    assert g.nbits == 2 and g.centroids.shape == (3, 8)
    np.testing.assert_array_equal(g.centroids, np.arange(24, dtype=np.float32).reshape(3, 8) / 32)
    np.testing.assert_array_equal(g.bucket_cutoffs, np.array([-0.25, 0, 0.25], np.float32))
    np.testing.assert_array_equal(g.bucket_weights, np.array([-0.5, -0.125, 0.125, 0.5], np.float32))
    with open(golden, "rb") as f:
        assert g.to_bytes() == f.read()
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 1
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        ec.ResidualCodec.load(bad)
    bad.write_bytes(b"not a codec")
    with pytest.raises(ValueError, match="magic"):
        ec.ResidualCodec.load(bad)


def test_bad_input_is_named():
    c = np.eye(4, 12, dtype=np.float32)
    with pytest.raises(ValueError, match="multiple of 8"):
        ec.ResidualCodec(np.zeros((2, 6), np.float32), np.zeros(3), np.zeros(4), 1)
    with pytest.raises(ValueError, match="nbits must be 1, 2, 4 or 8"):
        ec.ResidualCodec(c, np.zeros(7), np.zeros(8), 3)
    with pytest.raises(ValueError, match="bucket_weights must have 4"):
        ec.ResidualCodec(c, np.zeros(3), np.zeros(5), 2)
    with pytest.raises(ValueError, match="sorted"):
        ec.ResidualCodec(c, [0.1, 0.0, 0.2], np.zeros(4), 2)
    with pytest.raises(ValueError, match="NaN or infinity"):
        ec.ResidualCodec(c, [0.0, 0.1, np.nan], np.zeros(4), 2)
    codec = ec.ResidualCodec(c, [-0.1, 0.0, 0.1], [-0.2, -0.05, 0.05, 0.2], 2)
    with pytest.raises(ValueError, match=r"compress: tokens contain NaN"):
        codec.compress(np.full((2, 12), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"compress: tokens have dim 5"):
        codec.compress(np.zeros((2, 5), np.float32))
    codes, res = codec.compress(np.ones((3, 12), np.float32))
    with pytest.raises(ValueError, match=r"codes\[1\] = 4 is not a centroid id"):
        codec.decompress(np.array([0, 4, 1]), res)
    with pytest.raises(ValueError, match=r"residuals must have shape \(3, 3\)"):
        codec.decompress(codes, res[:, :2])
    with pytest.raises(TypeError, match="residuals must be uint8"):
        codec.decompress(codes, res.astype(np.int16))
    with pytest.raises(TypeError, match="float32 or float16"):
        codec.decompress(codes, res, dtype=np.float64)
    # Not a numpy dtype at all (a torch dtype, an object): the same message, not numpy's.
    with pytest.raises(TypeError, match="ResidualCodec.decompress: dtype must be float32 or float16"):
        codec.decompress(codes, res, dtype=object())
    q = np.ones((1, 2, 12), np.float32)
    with pytest.raises(ValueError, match=r"doc_offsets\[-1\] must equal the number of codes 3"):
        ec.maxsim_compressed(q, codes, res, [0, 2], codec)
    with pytest.raises(ValueError, match=r"candidates\[0, 0\] = 5 is not a document index"):
        ec.maxsim_compressed(q, codes, res, [0, 3], codec, candidates=[[5]])
    with pytest.raises(ValueError, match="queries have dim 4"):
        ec.maxsim_compressed(np.ones((1, 2, 4), np.float32), codes, res, [0, 3], codec)




@pytest.mark.parametrize("nbits,dim", [(1, 48), (2, 48), (2, 128), (4, 128), (1, 128)])
def test_matches_colbert_ai_codec(rng, nbits, dim):
    torch = pytest.importorskip("torch")
    try:
        from colbert.infra.config import ColBERTConfig
        from colbert.indexing.codecs.residual import ResidualCodec as ColbertCodec
        from colbert.indexing.codecs.residual_embeddings import ResidualEmbeddings
    except Exception as e:  # colbert-ai is an optional test extra
        pytest.skip(f"colbert-ai not importable: {e}")
    codec = make_codec(rng, dim, nbits, k=64)
    cfg = ColBERTConfig(dim=dim, nbits=nbits, gpus=0)
    theirs = ColbertCodec(cfg, torch.from_numpy(codec.centroids.copy()), 0.0,
                          torch.from_numpy(codec.bucket_cutoffs.copy()), torch.from_numpy(codec.bucket_weights.copy()))
    x = clustered(rng, 500, dim, k=64)
    emb = theirs.compress(torch.from_numpy(x))
    codes, res = codec.compress(x)
    np.testing.assert_array_equal(codes, emb.codes.numpy())
    np.testing.assert_array_equal(res, emb.residuals.numpy())
    # a colbert-ai index decodes to the same vectors
    want = theirs.decompress(ResidualEmbeddings(emb.codes, emb.residuals)).numpy()
    np.testing.assert_allclose(codec.decompress(emb.codes.numpy(), emb.residuals.numpy()), want, atol=1e-6, rtol=0)


def test_maxsim_compressed_rejects_an_unknown_kernel(rng):
    codec = make_codec(rng, 12, 2)
    codes, res = codec.compress(clustered(rng, 5, 12))
    with pytest.raises(ValueError, match="kernel must be"):
        ec.maxsim_compressed(np.ones((1, 2, 12), np.float32), codes, res, [0, 5], codec, _kernel="fast")


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(num_centroids=2.0), TypeError, "ResidualCodec.train: num_centroids must be an int"),
    (dict(num_centroids="4"), TypeError, "ResidualCodec.train: num_centroids must be an int"),
    (dict(niters=-1), ValueError, "ResidualCodec.train: niters must be >= 0"),
    (dict(num_threads=0), ValueError, "ResidualCodec.train: num_threads must be in"),
    (dict(heldout_fraction=-0.1), ValueError, "ResidualCodec.train: heldout_fraction must be in"),
    (dict(heldout_fraction=float("nan")), ValueError, "ResidualCodec.train: heldout_fraction must be in"),
    (dict(max_heldout=-5), ValueError, "ResidualCodec.train: max_heldout must be >= 0"),
])
def test_train_arguments_are_named(kwargs, exc, match):
    """A negative heldout_fraction held out the complement of the tail (k-means trained on 100 rows of 1,000);
    wrong types were reported as kmeans' or assign's own arguments."""
    args = dict(num_centroids=4, nbits=2) | kwargs
    with pytest.raises(exc, match=match):
        ec.ResidualCodec.train(np.random.default_rng(0).standard_normal((1000, 16)).astype(np.float32), **args)
    with pytest.raises(ValueError, match="heldout_split"):
        ec.ResidualCodec.heldout_split(1000, heldout_fraction=-0.1)
    with pytest.raises(ValueError, match="kmeans: num_threads"):
        ec.kmeans(np.ones((8, 4), np.float32), 2, num_threads=0)
