"""The CUDA module edgecolbert_native._cuda.

Without a GPU (CI, these machines): the module is built and imports without a driver, reports why no
device is usable, refuses bad descriptors with errors naming the argument, and the GPU path refuses
an explicit opt-in with a RuntimeError instead of crashing.

With a GPU (marked ``gpu``; skipped with the reason otherwise): every kernel against the CPU kernels on
awkward sizes, with outputs poisoned before the launch (NaN) so an unwritten element shows; the torch
path on CUDA tensors against the CPU; and compute-sanitizer (memcheck, racecheck) on a small case.
After this file passes on a real device, record it in python/edgecolbert_native/gpu/cuda_verified.json.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import edgecolbert_native as ec  # noqa: E402
from edgecolbert_native import gpu  # noqa: E402
from edgecolbert_native.gpu import _backend, _torch_path  # noqa: E402
from edgecolbert_native.gpu._backend import desc as _desc  # noqa: E402

from codec_reference import compress as ref_compress  # noqa: E402

try:
    from edgecolbert_native import _cuda
except ImportError as e:  # the wheel was built without nvcc
    _cuda = None
    _CUDA_IMPORT_ERROR = str(e)

needs_module = pytest.mark.skipif(_cuda is None, reason="edgecolbert_native._cuda not built (no nvcc at build time)")


def _gpu_reason() -> str | None:
    if _cuda is None:
        return "edgecolbert_native._cuda not built (no nvcc at build time)"
    if not torch.cuda.is_available():
        return "no CUDA GPU visible to torch (this torch build or machine has none)"
    rt = _cuda.runtime_info()
    if rt["device_count"] == 0:
        return f"no CUDA device for the module: {rt['error']}"
    return None


_REASON = _gpu_reason()
needs_gpu = pytest.mark.skipif(_REASON is not None, reason=f"GPU test skipped: {_REASON}")


# -- without a GPU ------------------------------------------------------------------------------------------
@needs_module
def test_module_imports_and_reports_without_driver():
    rt = _cuda.runtime_info()
    assert rt["runtime_version"] >= 12000
    assert "compute_80" in rt["architectures"] and "compute_90" in rt["architectures"]
    if rt["device_count"] == 0:
        assert rt["error"]  # the reason, e.g. cudaErrorInsufficientDriver / cudaErrorNoDevice
    assert _cuda.kernel_for("float16", 128) == "wmma"
    assert _cuda.kernel_for("bfloat16", 48) == "wmma"
    assert _cuda.kernel_for("float32", 128) == "simt"
    assert _cuda.kernel_for("float16", 300) == "simt"
    assert _cuda.kernel_for("float32", 600) == "none"


def _d(shape, dtype="float32", device=0, ptr=0):
    strides, s = [], 1
    for n in reversed(shape):
        strides.insert(0, s)
        s *= n
    return (ptr, tuple(shape), tuple(strides), dtype, device)


@needs_module
def test_descriptor_checks_name_the_argument():
    # Zero-element arrays: shapes and dtypes are checked without touching the driver.
    q, toks, off = _d((0, 3, 4)), _d((0, 4)), _d((1,), "int64")
    with pytest.raises(ValueError, match="maxsim: queries must have 3 dimensions"):
        _cuda.maxsim(_d((0, 4)), toks, off, None, _d((0, 0)), 0, 0)
    with pytest.raises(ValueError, match="doc_tokens have dim 5 but queries have dim 4"):
        _cuda.maxsim(q, _d((0, 5)), off, None, _d((0, 0)), 0, 0)
    with pytest.raises(TypeError, match="doc_offsets must be int64, got int32"):
        _cuda.maxsim(q, toks, _d((1,), "int32"), None, _d((0, 0)), 0, 0)
    with pytest.raises(ValueError, match=r"out must have shape \(0, 0\)"):
        _cuda.maxsim(q, toks, off, None, _d((0, 1)), 0, 0)
    with pytest.raises(ValueError, match="queries is on cuda:1 but the call runs on cuda:0"):
        _cuda.maxsim(_d((0, 3, 4), device=1), toks, off, None, _d((0, 0)), 0, 0)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        _cuda.maxsim((0, (0, 3, 4), (1, 1, 1), "float32", 0), toks, off, None, _d((0, 0)), 0, 0)
    with pytest.raises(ValueError, match="nbits must be 1, 2, 4 or 8"):
        _cuda.decompress(_d((0,), "int32"), _d((0, 4), "uint8"), _d((0, 8)), _d((8,)), 3, _d((0, 8)), 0, 0)
    with pytest.raises(ValueError, match=r"nprobe must be in \[1, min\(K, 32\)\]"):
        _cuda.centroid_topk(_d((0, 8), "float16"), _d((100, 8), "float16"), 33, None, _d((0, 33), "int32"), 0, 0)


@needs_module
def test_host_memory_is_refused_not_read():
    if _REASON is None:
        pytest.skip("covered by the GPU tests on this machine")
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="queries is not CUDA memory|queries is host memory"):
        _cuda.maxsim(_d((2, 3, 4), ptr=x.ctypes.data), _d((0, 4)), _d((1,), "int64"), None, _d((2, 0)), 0, 0)


def test_opt_in_without_gpu_is_a_runtime_error(monkeypatch):
    if _REASON is None:
        pytest.skip("a GPU is present")
    monkeypatch.setenv("EDGECOLBERT_CUDA_KERNELS", "1")

    class FakeCuda:
        type = "cuda"
        index = 0

    with pytest.raises(RuntimeError, match="asks for the CUDA kernels"):
        _backend.use_kernels(FakeCuda())


# -- with a GPU ------------------------------------------------------------------------------------------------
DT = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _cpu_arg(t):
    t = t.cpu()
    return t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16 else t.numpy()


def _kw(t):
    return {"dtype": "bfloat16"} if t.dtype == torch.bfloat16 else {}


def _poisoned(shape, dtype=torch.float32):
    t = torch.empty(shape, dtype=dtype, device="cuda")
    t.fill_(float("nan") if dtype.is_floating_point else -7)
    return t


def _awkward(rng, shape, dtype):
    x = rng.standard_normal(shape).astype(np.float32)
    x[rng.random(shape) < 0.05] = 0
    return torch.from_numpy(x).to(DT[dtype])


def _ragged(rng, n, hi):
    lens = rng.integers(0, hi + 1, size=n)
    lens[0] = 0
    return np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)


def _launch(fn, *args):
    dev = torch.device("cuda", torch.cuda.current_device())
    fn(*args, dev.index, _backend.stream(dev))
    torch.cuda.synchronize()


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(DT))
@pytest.mark.parametrize("dim", [1, 7, 33, 48, 64, 127, 128, 129, 300])
@pytest.mark.parametrize("lq", [1, 32, 33])
def test_kernel_maxsim_vs_cpu(rng, dtype, dim, lq):
    if dtype == "float32" and dim > 512:
        pytest.skip("not a kernel shape")
    nq, n = 3, 37
    q = _awkward(rng, (nq, lq, dim), dtype)
    off = _ragged(rng, n, 40)
    off[-1] = off[-2] + 1100  # a long document: three work items
    d = _awkward(rng, (int(off[-1]), dim), dtype)
    mask = torch.from_numpy(rng.random((nq, lq)) < 0.8)
    want = ec.maxsim(_cpu_arg(q), _cpu_arg(d), off, query_mask=mask.numpy(), **_kw(q))
    qc, dc, oc, mc = q.cuda(), d.cuda(), torch.from_numpy(off).cuda(), mask.cuda()
    out = _poisoned((nq, n))
    _launch(_cuda.maxsim, _desc(qc), _desc(dc), _desc(oc), _desc(mc), _desc(out))
    got = out.cpu().numpy()
    assert not np.isnan(got).any()
    # WMMA rounds the query to the document dtype; the SIMT path is the scalar order up to FMA.
    tol = 2e-2 if _cuda.kernel_for(dtype, dim) == "wmma" else 1e-4
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(dim))
    # candidates (with duplicates) and fused top-k
    cand = torch.from_numpy(rng.integers(0, n, size=(nq, 9))).cuda()
    outc = _poisoned((nq, 9))
    _launch(_cuda.maxsim_candidates, _desc(qc), _desc(dc), _desc(oc), _desc(cand), _desc(mc),
            _desc(outc))
    np.testing.assert_allclose(outc.cpu().numpy(), np.take_along_axis(got, cand.cpu().numpy(), 1), rtol=1e-6, atol=1e-6)
    for k in (1, 10, n):
        s, i = _poisoned((nq, k)), _poisoned((nq, k), torch.int64)
        _launch(_cuda.maxsim_topk, _desc(qc), _desc(dc), _desc(oc), k, _desc(mc), _desc(s), _desc(i))
        order = np.lexsort((np.arange(n)[None, :].repeat(nq, 0), -got), axis=1)[:, :k]
        np.testing.assert_array_equal(i.cpu().numpy(), order)


@needs_gpu
@pytest.mark.gpu
def test_kernel_topk_many_documents(rng):
    q = _awkward(rng, (2, 32, 48), "float16")
    off = np.arange(0, 5 * 20001, 5, dtype=np.int64)
    d = _awkward(rng, (int(off[-1]), 48), "float16")
    qc, dc, oc = q.cuda(), d.cuda(), torch.from_numpy(off).cuda()
    full = _poisoned((2, 20000))
    _launch(_cuda.maxsim, _desc(qc), _desc(dc), _desc(oc), None, _desc(full))
    for k in (1, 100, 1024):
        s, i = _poisoned((2, k)), _poisoned((2, k), torch.int64)
        _launch(_cuda.maxsim_topk, _desc(qc), _desc(dc), _desc(oc), k, None, _desc(s), _desc(i))
        ws, wi = _torch_path.topk_total_order(full, k)
        torch.testing.assert_close(i, wi)
        torch.testing.assert_close(s, ws)


@needs_gpu
@pytest.mark.gpu
def test_kernel_topk_three_rounds_workspace():
    # nq=100, n=10^6, k=10: the first round writes N = 100 * ceil(10^6 / 2048) * 10 = 489,000 entries
    # (N % 64 == 40) and there are three rounds, the shape where the old ping-pong layout let round 1's
    # ids overrun round 2's scores. Scores rise with the document id (one token of value id, query 1),
    # exactly in float32, so the answer is the last k ids.
    nq, n, k = 100, 10**6, 10
    q = torch.ones((nq, 1, 1), dtype=torch.float32, device="cuda")
    d = torch.arange(n, dtype=torch.float32, device="cuda").reshape(n, 1)
    off = torch.arange(n + 1, dtype=torch.int64, device="cuda")
    s, i = _poisoned((nq, k)), _poisoned((nq, k), torch.int64)
    _launch(_cuda.maxsim_topk, _desc(q), _desc(d), _desc(off), k, None, _desc(s), _desc(i))
    want = torch.arange(n - 1, n - 1 - k, -1, dtype=torch.int64).repeat(nq, 1)
    torch.testing.assert_close(i.cpu(), want)
    torch.testing.assert_close(s.cpu(), want.float())


@needs_gpu
@pytest.mark.gpu
def test_kernel_zero_query_rows(rng):
    # Lq = 0: no row-max launch (its grid would have gridDim.y = 0); 0 per document, NaN for a candidate
    # outside [0, n), as the torch path.
    nq, n, dim = 2, 5, 16
    q = torch.zeros((nq, 0, dim), dtype=torch.float16, device="cuda")
    off = torch.tensor([0, 3, 3, 10, 11, 20], dtype=torch.int64, device="cuda")
    d = _awkward(rng, (20, dim), "float16").cuda()
    out = _poisoned((nq, n))
    _launch(_cuda.maxsim, _desc(q), _desc(d), _desc(off), None, _desc(out))
    assert (out.cpu() == 0).all()
    cand = torch.tensor([[4, -1], [1, 7]], device="cuda")
    outc = _poisoned((nq, 2))
    _launch(_cuda.maxsim_candidates, _desc(q), _desc(d), _desc(off), _desc(cand), None, _desc(outc))
    got = outc.cpu()
    assert got[0, 0] == 0 and got[1, 0] == 0 and torch.isnan(got[0, 1]) and torch.isnan(got[1, 1])
    s, i = _poisoned((nq, 2)), _poisoned((nq, 2), torch.int64)
    _launch(_cuda.maxsim_topk, _desc(q), _desc(d), _desc(off), 2, None, _desc(s), _desc(i))
    assert (s.cpu() == 0).all() and (i.cpu() == torch.tensor([[0, 1], [0, 1]])).all()


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("nbits", [1, 2, 4, 8])
@pytest.mark.parametrize("dim", [8, 48, 64, 128])
def test_kernel_codec_vs_cpu(rng, nbits, dim):
    K = 50
    cents = rng.standard_normal((K, dim)).astype(np.float32)
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    cutoffs = np.sort(rng.standard_normal((1 << nbits) - 1).astype(np.float32) * 0.1)
    weights = np.sort(rng.standard_normal(1 << nbits).astype(np.float32) * 0.1)
    off = _ragged(rng, 23, 30)
    codes, res = ref_compress(rng.standard_normal((int(off[-1]), dim)).astype(np.float32), cents, cutoffs, nbits)
    codec = ec.ResidualCodec(cents, cutoffs, weights, nbits)
    c = {k: torch.from_numpy(v).cuda() for k, v in dict(codes=codes, res=res, cents=cents, w=weights, off=off).items()}
    for dt in DT.values():
        out = _poisoned((len(codes), dim), dt)
        _launch(_cuda.decompress, _desc(c["codes"]), _desc(c["res"]), _desc(c["cents"]), _desc(c["w"]), nbits,
                _desc(out))
        want = codec.decompress(codes, res)
        np.testing.assert_allclose(out.float().cpu().numpy(), want, atol=1e-5 if dt == torch.float32 else 1e-2)
    q = _awkward(rng, (3, 33, dim), "float32")
    qc = q.cuda()
    cand = rng.integers(0, 23, size=(3, 6))
    for cnd in (None, cand):
        cols = 23 if cnd is None else 6
        out = _poisoned((3, cols))
        cc = None if cnd is None else torch.from_numpy(cnd).cuda()
        _launch(_cuda.maxsim_compressed, _desc(qc), _desc(c["codes"]), _desc(c["res"]), _desc(c["off"]),
                _desc(c["cents"]), _desc(c["w"]), nbits, _desc(cc), None, _desc(out))
        want = ec.maxsim_compressed(q.numpy(), codes, res, off, codec, candidates=cnd)
        np.testing.assert_allclose(out.cpu().numpy(), want, rtol=1e-4, atol=1e-4)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(DT))
@pytest.mark.parametrize("dim", [7, 48, 128])
@pytest.mark.parametrize("nprobe", [1, 8, 32])
def test_kernel_centroid_search_vs_cpu(rng, dtype, dim, nprobe):
    m, K = 1000, 5000
    rows = _awkward(rng, (m, dim), dtype)
    cents = _awkward(rng, (K, dim), dtype)
    s, i = _poisoned((m, nprobe)), _poisoned((m, nprobe), torch.int32)
    _launch(_cuda.centroid_topk, _desc(rows.cuda()), _desc(cents.cuda()), nprobe, _desc(s), _desc(i))
    ws, wi = ec.centroid_search(_cpu_arg(rows), _cpu_arg(cents), nprobe, **_kw(rows))
    tol = 2e-2 if dtype != "float32" else 1e-4
    np.testing.assert_allclose(s.cpu().numpy(), ws, rtol=tol, atol=tol)
    assert (i.cpu().numpy() == wi).mean() > (0.99 if dtype == "float32" else 0.9)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("kernels", ["0", "1"])
def test_gpu_entry_points_on_cuda_tensors(rng, monkeypatch, kernels):
    monkeypatch.setenv("EDGECOLBERT_CUDA_KERNELS", kernels)
    assert gpu.info()["cuda_tensors"] == ("cuda-kernels" if kernels == "1" else "torch")
    q = _awkward(rng, (2, 32, 64), "float16")
    off = _ragged(rng, 50, 60)
    d = _awkward(rng, (int(off[-1]), 64), "float16")
    out = gpu.maxsim(q.cuda(), d.cuda(), torch.from_numpy(off).cuda())
    assert out.device.type == "cuda"
    want = ec.maxsim(q.numpy(), d.numpy(), off)
    np.testing.assert_allclose(out.cpu().numpy(), want, rtol=2e-2, atol=0.1)
    with pytest.raises(ValueError, match="same device"):
        gpu.maxsim(q.cuda(), d, torch.from_numpy(off))


@needs_gpu
@pytest.mark.gpu
def test_compute_sanitizer_small_case(tmp_path):
    tool = shutil.which("compute-sanitizer") or (
        "/usr/local/cuda/bin/compute-sanitizer" if os.path.exists("/usr/local/cuda/bin/compute-sanitizer") else None
    )
    if tool is None:
        pytest.skip("compute-sanitizer not installed")
    script = tmp_path / "small.py"
    script.write_text(textwrap.dedent("""
        import os, numpy as np, torch
        os.environ["EDGECOLBERT_CUDA_KERNELS"] = "1"
        from edgecolbert_native import gpu
        g = np.random.default_rng(0)
        for dt in (torch.float16, torch.float32):
            q = torch.from_numpy(g.standard_normal((2, 33, 48)).astype(np.float32)).to(dt).cuda()
            off = torch.tensor([0, 0, 5, 600, 613], device="cuda")
            d = torch.from_numpy(g.standard_normal((613, 48)).astype(np.float32)).to(dt).cuda()
            gpu.maxsim(q, d, off); gpu.maxsim_topk(q, d, off, 3)
            gpu.maxsim_candidates(q, d, off, torch.tensor([[3, 0], [1, 1]], device="cuda"))
            gpu.centroid_search(d[:70], d[100:400], 8)
        codes = torch.from_numpy(g.integers(0, 7, 613).astype(np.int32)).cuda()
        res = torch.from_numpy(g.integers(0, 256, (613, 12)).astype(np.uint8)).cuda()
        cents, w = torch.randn(7, 48, device="cuda"), torch.randn(4, device="cuda")
        gpu.decompress(codes, res, cents, w, 2)
        gpu.maxsim_compressed(q.float(), codes, res, off, cents, w, 2)
        torch.cuda.synchronize()
        print("ok")
    """))
    for t in ("memcheck", "racecheck", "synccheck"):
        r = subprocess.run([tool, "--tool", t, "--error-exitcode", "3", sys.executable, str(script)],
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0 and "ok" in r.stdout, f"{t}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
