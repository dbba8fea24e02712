"""The GPU path's device-agnostic torch implementation (edgecolbert_native.gpu), run on CPU tensors in CI:
every entry point against the CPU kernels (edgecolbert_native.maxsim*, centroid_search, ResidualCodec) and
the float64 references, on awkward sizes, plus its argument checks and the kernel-choice policy. The same
code is what runs on CUDA tensors until the custom kernels are verified on hardware."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import edgecolbert_native as ec  # noqa: E402
from edgecolbert_native import gpu  # noqa: E402
from edgecolbert_native.gpu import _backend, _torch_path  # noqa: E402

from codec_reference import compress as ref_compress  # noqa: E402
from codec_reference import decompress as ref_decompress  # noqa: E402
from maxsim_reference import maxsim_ref, rel_err  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Relative error against float64 on inputs already rounded to the dtype: the arithmetic is float32.
TOL = 2e-5


def awkward(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    pick = rng.random(shape)
    x[pick < 0.05] = 0.0
    x[(pick >= 0.05) & (pick < 0.08)] = 0.5
    return x


def ragged(rng, n, max_len=9):
    lens = rng.integers(0, max_len + 1, size=n)
    if n:
        lens[0] = 0  # an empty document
    return np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)


def rounded(x, dtype):
    t = torch.from_numpy(x).to(DTYPES[dtype])
    return t, t.float().numpy()


def cpu_arg(t):
    """A CPU-kernel argument: bf16 goes as uint16 storage with dtype="bfloat16"."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


@pytest.fixture(autouse=True)
def torch_path(monkeypatch):
    monkeypatch.setenv("EDGECOLBERT_CUDA_KERNELS", "0")


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("dim", [1, 7, 33, 48, 128, 129])
def test_maxsim_matches_cpu_kernels_and_float64(rng, dtype, dim):
    nq, lq, n = 3, 5, 11
    q, qf = rounded(awkward(rng, (nq, lq, dim)), dtype)
    off = ragged(rng, n)
    d, df = rounded(awkward(rng, (int(off[-1]), dim)), dtype)
    mask = rng.random((nq, lq)) < 0.75
    out = gpu.maxsim(q, d, torch.from_numpy(off), query_mask=torch.from_numpy(mask))
    assert out.dtype == torch.float32 and out.shape == (nq, n)
    ref = maxsim_ref(qf, df, off, mask)
    assert not torch.isnan(out).any()
    assert rel_err(out.numpy(), ref) < TOL
    kw = {"dtype": "bfloat16"} if dtype == "bfloat16" else {}
    cpu = ec.maxsim(cpu_arg(q), cpu_arg(d), off, query_mask=mask, **kw)
    np.testing.assert_allclose(out.numpy(), cpu, rtol=1e-4, atol=1e-4)
    assert (out[:, 0] == 0).all()  # the empty document


def test_maxsim_long_document_spans_token_blocks(rng, monkeypatch):
    # A document longer than one block of the torch path's chunking, next to short ones; queries in
    # groups of one (row-maxima budget).
    monkeypatch.setitem(_torch_path.CHUNK_ELEMS, "cpu", 64)
    monkeypatch.setitem(_torch_path.ROWMAX_ELEMS, "cpu", 30)
    dim = 8
    off = np.array([0, 3, 300, 301, 301, 340], np.int64)
    q = awkward(rng, (3, 4, dim))
    d = awkward(rng, (int(off[-1]), dim))
    out = gpu.maxsim(torch.from_numpy(q), torch.from_numpy(d), torch.from_numpy(off))
    assert rel_err(out.numpy(), maxsim_ref(q, d, off)) < TOL


def test_maxsim_single_query_row_and_no_documents(rng):
    q = torch.from_numpy(awkward(rng, (1, 1, 5)))
    d = torch.from_numpy(awkward(rng, (4, 5)))
    out = gpu.maxsim(q, d, torch.tensor([0, 4]))
    np.testing.assert_allclose(out.numpy(), maxsim_ref(q.numpy(), d.numpy(), [0, 4]), rtol=1e-6)
    empty = gpu.maxsim(q, d[:0], torch.tensor([0]))
    assert empty.shape == (1, 0)


def test_nan_dot_products_never_win(rng):
    q = torch.ones((1, 2, 3))
    d = torch.tensor([[float("nan"), 0, 0], [1.0, 1, 1]])
    out = gpu.maxsim(q, d, torch.tensor([0, 2]))
    cpu = ec.maxsim(q.numpy(), d.numpy(), np.array([0, 2]))
    np.testing.assert_array_equal(out.numpy(), cpu)
    assert out.item() == 6.0


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_maxsim_candidates_matches_cpu(rng, dtype):
    nq, lq, dim, n = 4, 6, 33, 13
    q, _ = rounded(awkward(rng, (nq, lq, dim)), dtype)
    off = ragged(rng, n)
    d, _ = rounded(awkward(rng, (int(off[-1]), dim)), dtype)
    cand = rng.integers(0, n, size=(nq, 7))
    mask = rng.random((nq, lq)) < 0.8
    out = gpu.maxsim_candidates(q, d, torch.from_numpy(off), torch.from_numpy(cand), query_mask=torch.from_numpy(mask))
    kw = {"dtype": "bfloat16"} if dtype == "bfloat16" else {}
    cpu = ec.maxsim_candidates(cpu_arg(q), cpu_arg(d), off, cand, query_mask=mask, **kw)
    np.testing.assert_allclose(out.numpy(), cpu, rtol=1e-4, atol=1e-4)


def test_maxsim_candidates_small_blocks(rng, monkeypatch):
    monkeypatch.setitem(_torch_path.CHUNK_ELEMS, "cpu", 40)
    q = awkward(rng, (3, 4, 5))
    off = np.array([0, 50, 50, 61, 200], np.int64)
    d = awkward(rng, (200, 5))
    cand = np.array([[0, 1, 3], [3, 3, 2], [1, 0, 0]])
    out = gpu.maxsim_candidates(torch.from_numpy(q), torch.from_numpy(d), torch.from_numpy(off), torch.from_numpy(cand))
    full = maxsim_ref(q, d, off)
    np.testing.assert_allclose(out.numpy(), np.take_along_axis(full, cand, 1), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("k", [1, 5, 40])
def test_maxsim_topk_total_order_like_cpu(rng, k):
    nq, lq, dim, n = 3, 4, 16, 40
    q = awkward(rng, (nq, lq, dim))
    off = ragged(rng, n, 3)  # many empty documents: ties at 0, broken by the lower index
    d = awkward(rng, (int(off[-1]), dim))
    s, i = gpu.maxsim_topk(torch.from_numpy(q), torch.from_numpy(d), torch.from_numpy(off), k)
    cs, ci = ec.maxsim_topk(q, d, off, k)
    assert i.dtype == torch.int64
    np.testing.assert_array_equal(i.numpy(), ci)
    np.testing.assert_allclose(s.numpy(), cs, rtol=1e-5, atol=1e-5)


def test_topk_order_nan_last_ties_lower_index():
    s = torch.tensor([[1.0, float("nan"), 3.0, 3.0, float("-inf"), float("nan"), 1.0]])
    vals, ids = _torch_path.topk_total_order(s, 7)
    assert ids.tolist() == [[2, 3, 0, 6, 4, 1, 5]]


# -- codec ---------------------------------------------------------------------------------------------
def make_codec(rng, dim, nbits, K=11):
    cents = awkward(rng, (K, dim))
    cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-6)
    cutoffs = np.sort(rng.standard_normal((1 << nbits) - 1).astype(np.float32) * 0.1)
    weights = np.sort(rng.standard_normal(1 << nbits).astype(np.float32) * 0.1)
    return cents.astype(np.float32), cutoffs, weights


@pytest.mark.parametrize("nbits", [1, 2, 4, 8])
@pytest.mark.parametrize("dim", [8, 48, 64, 128])
def test_decompress_matches_reference_and_cpu_codec(rng, nbits, dim):
    cents, cutoffs, weights = make_codec(rng, dim, nbits)
    x = awkward(rng, (37, dim))
    codes, res = ref_compress(x, cents, cutoffs, nbits)
    out = gpu.decompress(torch.from_numpy(codes), torch.from_numpy(res), torch.from_numpy(cents),
                         torch.from_numpy(weights), nbits)
    assert out.dtype == torch.float32 and out.shape == (37, dim)
    assert rel_err(out.numpy(), ref_decompress(codes, res, cents, weights, nbits)) < 1e-6
    cpu = ec.ResidualCodec(cents, cutoffs, weights, nbits).decompress(codes, res)
    np.testing.assert_allclose(out.numpy(), cpu, rtol=1e-5, atol=1e-6)
    half = gpu.decompress(torch.from_numpy(codes), torch.from_numpy(res), torch.from_numpy(cents),
                          torch.from_numpy(weights), nbits, torch.bfloat16)
    assert half.dtype == torch.bfloat16
    np.testing.assert_allclose(half.float().numpy(), out.numpy(), atol=1e-2)


@pytest.mark.parametrize("nbits", [1, 2, 4, 8])
@pytest.mark.parametrize("with_candidates", [False, True])
def test_maxsim_compressed_matches_cpu(rng, nbits, with_candidates):
    dim, nq, lq, n = 48, 3, 5, 9
    cents, cutoffs, weights = make_codec(rng, dim, nbits)
    off = ragged(rng, n)
    codes, res = ref_compress(awkward(rng, (int(off[-1]), dim)), cents, cutoffs, nbits)
    q = awkward(rng, (nq, lq, dim))
    mask = rng.random((nq, lq)) < 0.8
    cand = rng.integers(0, n, size=(nq, 4)) if with_candidates else None
    out = gpu.maxsim_compressed(
        torch.from_numpy(q), torch.from_numpy(codes), torch.from_numpy(res), torch.from_numpy(off),
        torch.from_numpy(cents), torch.from_numpy(weights), nbits,
        None if cand is None else torch.from_numpy(cand), query_mask=torch.from_numpy(mask),
    )
    codec = ec.ResidualCodec(cents, cutoffs, weights, nbits)
    cpu = ec.maxsim_compressed(q, codes, res, off, codec, candidates=cand, query_mask=mask)
    np.testing.assert_allclose(out.numpy(), cpu, rtol=1e-4, atol=1e-4)
    full = maxsim_ref(q, ref_decompress(codes, res, cents, weights, nbits), off, mask)
    ref = full if cand is None else np.take_along_axis(full, cand, 1)
    assert rel_err(out.numpy(), ref) < TOL


# -- centroid search -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("nprobe", [1, 4, 32])
def test_centroid_search_matches_cpu(rng, dtype, nprobe, monkeypatch):
    monkeypatch.setitem(_torch_path.CHUNK_ELEMS, "cpu", 2000)  # several blocks of centroids
    m, K, dim = 17, 300, 48
    q, _ = rounded(awkward(rng, (m, dim)), dtype)
    c, _ = rounded(awkward(rng, (K, dim)), dtype)
    c[5] = c[7]  # tied centroids: the lower id first
    s, i = gpu.centroid_search(q, c, nprobe)
    assert s.dtype == torch.float32 and i.dtype == torch.int32 and i.shape == (m, nprobe)
    kw = {"dtype": "bfloat16"} if dtype == "bfloat16" else {}
    cs, ci = ec.centroid_search(cpu_arg(q), cpu_arg(c), nprobe, **kw)
    np.testing.assert_allclose(s.numpy(), cs, rtol=1e-4, atol=1e-4)
    # Equal up to float32 near-ties: ids agree wherever the CPU's scores are clearly separated.
    agree = (i.numpy() == ci).mean()
    assert agree > 0.97, agree


def test_assign_matches_cpu(rng):
    t = awkward(rng, (50, 24))
    c = awkward(rng, (70, 24))
    out = gpu.assign(torch.from_numpy(t), torch.from_numpy(c))
    assert out.dtype == torch.int32
    np.testing.assert_array_equal(out.numpy(), ec.assign(t, c))


# -- arguments -----------------------------------------------------------------------------------------
def test_bad_arguments_name_function_and_argument(rng):
    q = torch.zeros((2, 3, 4))
    d = torch.zeros((5, 4))
    off = torch.tensor([0, 2, 5])
    with pytest.raises(ValueError, match=r"maxsim: queries must have 3 dimensions"):
        gpu.maxsim(q[0], d, off)
    with pytest.raises(ValueError, match=r"doc_tokens have dim 3 but queries have dim 4"):
        gpu.maxsim(q, d[:, :3], off)
    with pytest.raises(ValueError, match=r"non-decreasing"):
        gpu.maxsim(q, d, torch.tensor([0, 3, 2, 5]))
    with pytest.raises(ValueError, match=r"doc_offsets\[-1\] must equal"):
        gpu.maxsim(q, d, torch.tensor([0, 4]))
    with pytest.raises(TypeError, match=r"doc_offsets must hold integers"):
        gpu.maxsim(q, d, torch.tensor([0.0, 5.0]))
    with pytest.raises(TypeError, match=r"queries must be float32, float16 or bfloat16"):
        gpu.maxsim(q.to(torch.int32), d, off)
    with pytest.raises(ValueError, match=r"query_mask must have shape \(2, 3\)"):
        gpu.maxsim(q, d, off, query_mask=torch.ones((2, 2), dtype=torch.bool))
    with pytest.raises(ValueError, match=r"candidates holds 7"):
        gpu.maxsim_candidates(q, d, off, torch.tensor([[0, 7], [1, 1]]))
    with pytest.raises(ValueError, match=r"k must be in \[1, n\]"):
        gpu.maxsim_topk(q, d, off, 3)
    with pytest.raises(TypeError, match=r"k must be an int"):
        gpu.maxsim_topk(q, d, off, 1.0)
    with pytest.raises(ValueError, match=r"nbits must be 1, 2, 4 or 8"):
        gpu.decompress(torch.zeros(2, dtype=torch.int32), torch.zeros((2, 1), dtype=torch.uint8), torch.zeros((3, 8)),
                       torch.zeros(8), 3)
    with pytest.raises(ValueError, match=r"codes holds 3"):
        gpu.decompress(torch.tensor([0, 3], dtype=torch.int32), torch.zeros((2, 2), dtype=torch.uint8),
                       torch.zeros((3, 8)), torch.zeros(4), 2)
    with pytest.raises(ValueError, match=r"nprobe must be in \[1, K\]"):
        gpu.centroid_search(d, torch.zeros((3, 4)), 4)
    # assign names its own arguments, and checks its centroids when there are no tokens too.
    for tokens in (d, d[:0]):
        with pytest.raises(ValueError, match=r"assign: tokens have dim 4 but centroids have dim 5"):
            gpu.assign(tokens, torch.zeros((3, 5)))
        with pytest.raises(ValueError, match=r"assign: centroids must have at least 1 row, got 0"):
            gpu.assign(tokens, torch.zeros((0, 4)))
        with pytest.raises(TypeError, match=r"assign: centroids must be float32"):
            gpu.assign(tokens, torch.zeros((3, 4), dtype=torch.int32))


def test_mixed_devices_are_a_clear_error():
    q = torch.zeros((1, 2, 4))
    d = torch.zeros((3, 4), device="meta")
    with pytest.raises(ValueError, match=r"doc_tokens is on meta but queries is on cpu"):
        gpu.maxsim(q, d, torch.tensor([0, 3]), validate=False)


# -- choice of implementation ---------------------------------------------------------------------------
def test_verification_record_is_in_the_repository_and_false():
    record = json.loads(_backend.VERIFIED_FILE.read_text())
    assert record["verified"] is False  # flip only with a device, commit and passing GPU run recorded
    assert gpu.kernels_verified()["verified"] is False


def test_info_says_torch_path_until_verified(monkeypatch):
    monkeypatch.delenv("EDGECOLBERT_CUDA_KERNELS", raising=False)
    i = gpu.info()
    assert i["cuda_tensors"] == "torch"
    assert i["kernels_verified_on_hardware"] is False
    assert "not yet verified" in i["reason"]


def test_opt_in_without_gpu_says_why(monkeypatch):
    monkeypatch.setenv("EDGECOLBERT_CUDA_KERNELS", "1")
    i = gpu.info()
    if not torch.cuda.is_available():
        assert i["cuda_tensors"] == "torch"
        assert "cannot run here" in i["reason"]
    monkeypatch.setenv("EDGECOLBERT_CUDA_KERNELS", "yes")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        gpu.info()


def test_cpu_tensors_never_use_the_kernels(rng, monkeypatch):
    monkeypatch.setenv("EDGECOLBERT_CUDA_KERNELS", "1")  # opt-in only concerns CUDA tensors
    q = torch.from_numpy(awkward(rng, (1, 2, 4)))
    d = torch.from_numpy(awkward(rng, (3, 4)))
    out = gpu.maxsim(q, d, torch.tensor([0, 3]))
    assert out.device.type == "cpu"


def test_numpy_and_dlpack_inputs(rng):
    q = awkward(rng, (2, 3, 4))
    d = awkward(rng, (5, 4))
    off = np.array([0, 2, 5])
    out = gpu.maxsim(q, d, off)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), maxsim_ref(q, d, off), rtol=1e-5)


def test_codec_dim_zero_routes_to_torch_path():
    # The codec kernels take dim in [1, 512]; dim 0 goes to the torch path, which gives empty vectors and
    # zero scores (the kernels' checks refused it).
    from edgecolbert_native.gpu import _api

    assert [_api.codec_kernel_takes(d) for d in (0, 1, 512, 513)] == [False, True, True, False]
    c, w = torch.zeros((3, 0)), torch.zeros(2)
    codes, res = torch.zeros(4, dtype=torch.int32), torch.zeros((4, 0), dtype=torch.uint8)
    assert gpu.decompress(codes, res, c, w, 1).shape == (4, 0)
    out = gpu.maxsim_compressed(torch.zeros((2, 3, 0)), codes, res, torch.tensor([0, 2, 4]), c, w, 1)
    assert out.shape == (2, 2) and (out == 0).all()


class _FakeModule:
    """A CUDA module on a device with a given opt-in shared-memory limit; the formula is the real
    module's when it is built (it needs no driver), else rowmax_simt's 256 * dim bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        try:
            from edgecolbert_native import _cuda

            self.real = _cuda if hasattr(_cuda, "shared_memory_bytes") else None
        except ImportError:
            self.real = None

    def runtime_info(self):
        return {"max_shared_memory_per_block": [self.limit], "max_topk": 1024, "max_probe": 32}

    def kernel_for(self, dtype, dim):
        if dtype != "float32" and dim <= 128:
            return "wmma"
        return "simt" if dim <= 512 else "none"

    def shared_memory_bytes(self, kernel, dtype, dim, nbits=0):
        if self.real is not None:
            return self.real.shared_memory_bytes(kernel, dtype, dim, nbits)
        return 256 * dim


@pytest.mark.parametrize("limit, fits_396, fits_397", [(99 * 1024, True, False), (227 * 1024, True, True)])
def test_shared_memory_routing_with_faked_device_limit(monkeypatch, limit, fits_396, fits_397):
    # sm_86/89/120 allow 99 KB of shared memory per block: rowmax_simt (256 * dim B) no longer fits at
    # dim 397, so such shapes go to the torch path; sm_80/90 (227 KB) take them.
    from edgecolbert_native.gpu import _api

    monkeypatch.setattr(_api, "_SMEM_LIMIT", {})
    mod = _FakeModule(limit)
    assert _api.maxsim_kernel_takes(mod, "float32", 396, 0) is fits_396
    assert _api.maxsim_kernel_takes(mod, "float32", 397, 0) is fits_397
    assert _api.maxsim_kernel_takes(mod, "float16", 397, 0) is fits_397  # fp16 beyond 128: SIMT too
    assert _api.maxsim_kernel_takes(mod, "float32", 600, 0) is False
    assert _api.smem_limit(mod, 0) == limit
    assert _api.smem_limit(mod, 3) == 0  # a device not listed: no known limit, nothing fits (torch path)
    assert _api.kernel_fits(mod, "maxsim", "float16", 64, 3) is False


def test_shared_memory_formulas_of_the_module():
    # The module's formulas (no driver needed) at the reviewer's thresholds for a 99 KB device.
    cuda = pytest.importorskip("edgecolbert_native._cuda")
    if not hasattr(cuda, "shared_memory_bytes"):
        pytest.skip("the _cuda module here predates shared_memory_bytes (rebuild it)")
    kb99 = 99 * 1024
    assert cuda.shared_memory_bytes("maxsim", "float32", 396) <= kb99 < cuda.shared_memory_bytes("maxsim", "float32", 397)
    assert cuda.shared_memory_bytes("maxsim", "float16", 128) < 48 * 1024  # WMMA: static, always fits
    assert (cuda.shared_memory_bytes("maxsim_compressed", "float32", 364, 1) <= kb99
            < cuda.shared_memory_bytes("maxsim_compressed", "float32", 365, 1))
    assert cuda.shared_memory_bytes("centroid_search", "float32", 197) > kb99  # 384 * dim + ~25 KB
    assert cuda.shared_memory_bytes("centroid_search", "float32", 190) <= kb99
    assert cuda.shared_memory_bytes("decompress", "float32", 512, 1) <= kb99
    with pytest.raises(ValueError):
        cuda.shared_memory_bytes("nope", "float32", 8, 1)
