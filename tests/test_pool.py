"""Hierarchical token pooling (`pool_tokens`, PyLate's `pool_factor`) against PyLate 1.6.0's own
`ColBERT.pool_embeddings_hierarchical` and the scipy calls it makes: same rows, same clusters (the row each
token went into equals scipy's fcluster label), same means within 1e-5, on random unit vectors of awkward
lengths and on vectors built to tie exactly (duplicates, one-hot rows, a small palette of dyadic vectors
whose dot products are exact in any summation order). Then where PyLate fails (near-duplicates whose
float32 similarity exceeds 1, non-finite tokens), and argument errors. The encoder's pool_factor is
compared with PyLate end to end in test_encoder_parity.py."""

from __future__ import annotations

import numpy as np
import pytest

import edgecolbert_native as ec

torch = pytest.importorskip("torch", reason="PyLate's pooling takes torch tensors")
hierarchy = pytest.importorskip("scipy.cluster.hierarchy", reason="scipy comes with PyLate's test dependencies")

TOL = 1e-5


@pytest.fixture(scope="module")
def pylate_pool():
    import encoder_helpers as H

    pm = H.import_pylate()
    # An instance method that never reads self: called on the class, it is PyLate's code as shipped.
    return lambda docs, pf, prot: pm.ColBERT.pool_embeddings_hierarchical(None, docs, pool_factor=pf,
                                                                         protected_tokens=prot)


def scipy_labels(x: np.ndarray, k: int) -> np.ndarray:
    """The labels PyLate's pooling takes from scipy (its own steps: float32 Gram, 1 - cos, condensed)."""
    t = torch.from_numpy(x)
    dist = 1 - torch.mm(t, t.t()).numpy()
    z = hierarchy.linkage(dist[np.triu_indices(len(x), k=1)], method="ward")
    return hierarchy.fcluster(z, t=k, criterion="maxclust")


def csr(docs: list[np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.concatenate(docs) if docs else np.zeros((0, dim), np.float32)
    return np.ascontiguousarray(tokens, np.float32), np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32) if n else x


def check_against_pylate(pylate_pool, docs: list[np.ndarray], pf: int, prot: int, dim: int) -> int:
    """pool_tokens vs PyLate on these documents: rows, means, and each token's cluster vs scipy's label.
    Returns how many documents were actually pooled (to make sure a case exercised the clustering)."""
    tokens, offsets = csr(docs, dim)
    pooled, pooled_offsets, row_of = ec.pool_tokens(tokens, offsets, pf, protected_tokens=prot, return_rows=True)
    assert pooled.dtype == np.float32 and pooled_offsets.dtype == np.int64 and pooled_offsets[-1] == len(pooled)
    want = pylate_pool([torch.from_numpy(d) for d in docs], pf, prot)
    clustered = 0
    for i, (doc, ref) in enumerate(zip(docs, want)):
        mine = pooled[pooled_offsets[i]:pooled_offsets[i + 1]]
        ref = ref.numpy()
        assert mine.shape == ref.shape, f"pf={pf} prot={prot} doc {i} ({len(doc)} rows): {mine.shape} vs PyLate {ref.shape}"
        err = float(np.abs(mine - ref).max(initial=0.0))
        assert err <= TOL, f"pf={pf} prot={prot} doc {i}: max abs error {err}"
        rows = row_of[offsets[i]:offsets[i + 1]]
        keep = min(prot, len(doc))
        np.testing.assert_array_equal(rows[:keep], np.arange(keep))
        m = len(doc) - keep
        k = max(m // pf, 1)
        if k < m:
            labels = scipy_labels(doc[keep:], k)
            np.testing.assert_array_equal(rows[keep:], keep + labels - 1,
                                          err_msg=f"pf={pf} prot={prot} doc {i}: clusters or their order differ from scipy's")
            clustered += 1
        else:
            np.testing.assert_array_equal(rows, np.arange(len(doc)))
    return clustered


LENGTHS = [0, 1, 2, 3, 4, 5, 6, 7, 9, 16, 31, 64, 130, 257]


@pytest.mark.parametrize("pf", [1, 2, 3, 4, 7, 300])
@pytest.mark.parametrize("prot", [0, 1, 2, 5])
def test_random_unit_vectors_match_pylate(pylate_pool, pf, prot):
    rng = np.random.default_rng(1000 * pf + prot)
    dim = 48
    docs = [unit_rows(rng, n, dim) for n in LENGTHS]
    clustered = check_against_pylate(pylate_pool, docs, pf, prot, dim)
    assert clustered > 0 or pf == 1 or pf == 300 and prot == 5


@pytest.mark.parametrize("dim", [1, 3, 128, 384])
def test_dims_and_unnormalised_vectors(pylate_pool, dim):
    rng = np.random.default_rng(dim)
    # Unnormalised Gaussian rows (normalize=False in PyLate): distances below 0 are then common, and
    # PyLate refuses those (see test_near_duplicates_where_pylate_fails); scaled to norms < 1 they are not.
    docs = [0.5 * unit_rows(rng, n, dim) * rng.uniform(0.2, 1.0, (n, 1)).astype(np.float32) for n in (2, 3, 10, 50)]
    assert check_against_pylate(pylate_pool, [d.astype(np.float32) for d in docs], 2, 1, dim) == 3  # 2 rows: 1 to pool


def palette_docs(rng: np.random.Generator, dim: int = 8) -> list[np.ndarray]:
    """Rows drawn from a few vectors with entries in {0, +-0.5} and at most 4 non-zeros: every dot product
    is exact in float32 whatever the summation order, so PyLate's distances and ours agree bit for bit and
    the many exact ties (duplicates, equal distances) must break the same way."""
    palette = np.zeros((6, dim), np.float32)
    for p in range(6):
        nz = rng.choice(dim, size=rng.integers(1, 5), replace=False)
        palette[p, nz] = rng.choice([-0.5, 0.5], size=len(nz))
    one_hot = np.eye(dim, dtype=np.float32)
    docs = [palette[rng.integers(0, 6, size=n)] for n in (2, 3, 4, 5, 8, 13, 40)]
    docs += [one_hot[:n] for n in (3, 4, 7, 8)]  # all distances 1: every merge ties
    docs += [np.repeat(palette[:1], n, axis=0) for n in (2, 3, 6)]  # one vector repeated: all distances 0
    docs += [np.concatenate([one_hot[:4], one_hot[:4], palette[:3]])]
    return docs


@pytest.mark.parametrize("pf", [2, 3, 4])
@pytest.mark.parametrize("prot", [0, 1])
def test_exact_ties_break_like_scipy(pylate_pool, pf, prot):
    rng = np.random.default_rng(pf)
    docs = palette_docs(rng)
    assert check_against_pylate(pylate_pool, docs, pf, prot, 8) >= 10
    tokens, offsets = csr(docs, 8)
    pooled, pooled_offsets = ec.pool_tokens(tokens, offsets, pf, protected_tokens=prot)
    bound = [min(prot, len(d)) + max((len(d) - min(prot, len(d))) // pf, 1) for d in docs]
    # Equal heights make fcluster stop short of the asked count somewhere: the packing path runs.
    assert (np.diff(pooled_offsets) < np.minimum(bound, [len(d) for d in docs])).any()


def test_float32_distances_tie_as_in_pylate(pylate_pool):
    # <p0, p2> = 0.5 + 2^-30 in exact arithmetic but 0.5 in float32 (PyLate's torch.mm, any summation
    # order), tying with <p0, p1> = 0.5: the first pair then merges, giving {p0, p1}, {p2, p3}. Distances
    # kept in double would merge p0 with p2 instead and give {p0, p2}, {p1, p3}.
    tiny = np.float32(2.0 ** -15)
    doc = np.array([[1, 0, 0, tiny], [0.5, 0.5, 0, 0], [0.5, -0.5, 0.8, tiny], [0, 0.8, 1, 0]], np.float32)
    check_against_pylate(pylate_pool, [doc], 2, 0, 4)
    _, _, row_of = ec.pool_tokens(doc, [0, 4], 2, protected_tokens=0, return_rows=True)
    assert row_of[0] == row_of[1] != row_of[2] == row_of[3]


def test_pool_factor_one_and_larger_than_the_document(pylate_pool):
    rng = np.random.default_rng(5)
    docs = [unit_rows(rng, n, 16) for n in (0, 1, 2, 3, 10)]
    tokens, offsets = csr(docs, 16)
    same, same_offsets = ec.pool_tokens(tokens, offsets, 1)
    np.testing.assert_array_equal(same, tokens)
    np.testing.assert_array_equal(same_offsets, offsets)
    # Larger than the document: one cluster for every document with 2 or more rows to pool.
    out, out_offsets = ec.pool_tokens(tokens, offsets, 100)
    np.testing.assert_array_equal(np.diff(out_offsets), [0, 1, 2, 2, 2])
    np.testing.assert_allclose(out[-1], docs[-1][1:].mean(axis=0), atol=1e-6)
    check_against_pylate(pylate_pool, docs, 100, 1, 16)


def test_near_duplicates_where_pylate_fails(pylate_pool):
    # 2 * b * b rounds to 1.0000001 in float32: a distance of -1.19e-7, and PyLate (scipy's fcluster)
    # refuses the negative merge height. We clamp distances at 0 and pool the duplicates together.
    a, b = np.float32(0.70710677), np.float32(0.70710683)
    doc = np.array([[1, 0, 0], [b, b, 0], [b, b, 0], [a, a, 0], [0, 0, 1]], np.float32)
    with pytest.raises(ValueError, match="negative distances"):
        pylate_pool([torch.from_numpy(doc)], 2, 1)
    pooled, offsets, row_of = ec.pool_tokens(doc, [0, 5], 2, return_rows=True)
    assert np.isfinite(pooled).all() and offsets[-1] == 3
    assert row_of[1] == row_of[2] == row_of[3] != row_of[4]
    np.testing.assert_allclose(pooled[row_of[1]], doc[1:4].mean(axis=0), atol=1e-7)


def test_non_finite_tokens(pylate_pool):
    doc = np.array([[1, 0], [0, 1], [np.nan, 0], [1, 1]], np.float32)
    with pytest.raises(ValueError, match="finite"):
        pylate_pool([torch.from_numpy(doc)], 2, 1)
    tokens = np.concatenate([np.array([[np.inf, 0]], np.float32), doc])
    with pytest.raises(ValueError, match="pool_tokens: document 1 has a token similarity that is not finite"):
        ec.pool_tokens(tokens, [0, 1, 5], 2)
    # A row that is never compared (protected, or alone) passes through, as in PyLate.
    out, _ = ec.pool_tokens(tokens[:1], [0, 1], 2)
    assert np.isinf(out[0, 0])


def test_threads_dtypes_and_inputs():
    rng = np.random.default_rng(9)
    docs = [unit_rows(rng, n, 24) for n in rng.integers(0, 90, size=40)]
    tokens, offsets = csr(docs, 24)
    ref = ec.pool_tokens(tokens, offsets, 3, num_threads=1, return_rows=True)
    for threads in (2, 3, 8):
        got = ec.pool_tokens(tokens, offsets, 3, num_threads=threads, return_rows=True)
        for r, g in zip(ref, got):
            np.testing.assert_array_equal(r, g)
    # torch tensors (float32, bfloat16: widened exactly) and float16 / float64 numpy arrays
    t = torch.from_numpy(tokens)
    np.testing.assert_array_equal(ec.pool_tokens(t, torch.from_numpy(offsets), 3)[0], ref[0])
    bf = t.to(torch.bfloat16)
    np.testing.assert_array_equal(ec.pool_tokens(bf, offsets, 3)[0], ec.pool_tokens(bf.float(), offsets, 3)[0])
    # bf16 as uint16 storage with dtype="bfloat16", as the other kernels take it (the error asked for a
    # keyword pool_tokens did not have)
    raw = bf.view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(ec.pool_tokens(raw, offsets, 3, dtype="bfloat16")[0], ec.pool_tokens(bf, offsets, 3)[0])
    h = tokens.astype(np.float16)
    np.testing.assert_array_equal(ec.pool_tokens(h, offsets, 3)[0], ec.pool_tokens(h.astype(np.float32), offsets, 3)[0])
    np.testing.assert_array_equal(ec.pool_tokens(tokens.astype(np.float64), offsets, 3)[0], ref[0])
    # no documents at all
    empty, empty_offsets = ec.pool_tokens(np.zeros((0, 24), np.float32), [0], 2)
    assert empty.shape == (0, 24) and list(empty_offsets) == [0]


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(pool_factor=0), ValueError, "pool_factor must be >= 1, got 0"),
    (dict(pool_factor=-2), ValueError, "pool_factor must be >= 1"),
    (dict(pool_factor=2.0), TypeError, "pool_factor must be an int"),
    (dict(pool_factor=True), TypeError, "pool_factor must be an int"),
    (dict(pool_factor=2, protected_tokens=-1), ValueError, "protected_tokens must be >= 0"),
    (dict(pool_factor=2, doc_offsets=[0, 2, 1, 4]), ValueError, "non-decreasing"),
    (dict(pool_factor=2, doc_offsets=[0, 3]), ValueError, r"doc_offsets\[-1\] must equal the number of tokens 4"),
    (dict(pool_factor=2, doc_offsets=[1, 4]), ValueError, r"doc_offsets\[0\] must be 0"),
    (dict(pool_factor=2, doc_offsets=[0.0, 4.0]), TypeError, "must hold integers"),
    (dict(pool_factor=2, doc_tokens=np.ones((4, 3), np.int32)), TypeError, "float32, float16 or bfloat16"),
    (dict(pool_factor=2, doc_tokens=np.ones(4, np.float32)), ValueError, "2 dimensions"),
    (dict(pool_factor=2, doc_tokens=np.ones((4, 0), np.float32)), ValueError, "dim >= 1"),
    (dict(pool_factor=2, num_threads=0), ValueError, "num_threads must be in"),
])
def test_errors(kwargs, exc, match):
    args = dict(doc_tokens=np.ones((4, 3), np.float32), doc_offsets=[0, 4])
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        ec.pool_tokens(args.pop("doc_tokens"), args.pop("doc_offsets"), args.pop("pool_factor"), **args)
