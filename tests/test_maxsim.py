"""MaxSim: every runnable ISA variant against float64 numpy and the scalar reference, on awkward shapes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import edgecolbert_native as ec
from emulation import EMULATED, size
from maxsim_reference import maxsim_ref, pylate_colbert_scores_ref, rel_err

VARIANTS = ec.info()["variants"]
DTYPES = ["float32", "float16", "bfloat16"]
AWKWARD_DIMS = [1, 7, 8, 9, 31, 33, 48, 64, 96, 127, 128, 129, 130]
if EMULATED:  # every remainder modulo 4, and the 8- and 16-lane loops' shortest and longest tails
    AWKWARD_DIMS = [1, 7, 9, 33, 64, 127, 130]


def to_dtype(x: np.ndarray, dtype: str):
    """Returns (array to pass, float64 values the kernel actually sees)."""
    if dtype == "float32":
        a = x.astype(np.float32)
        return a, a.astype(np.float64)
    if dtype == "float16":
        a = x.astype(np.float16)
        return a, a.astype(np.float64)
    import torch

    t = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
    return t, t.float().numpy().astype(np.float64)


def random_docs(rng, n, max_len, dim, min_len=0):
    lens = rng.integers(min_len, max_len + 1, n)
    if n > 2:
        lens[rng.integers(0, n)] = 0  # always an empty document
    offsets = np.zeros(n + 1, np.int64)
    offsets[1:] = np.cumsum(lens)
    tokens = rng.standard_normal((int(offsets[-1]), dim))
    # zeros, exact ties and large values mixed in
    if tokens.size:
        tokens.flat[rng.integers(0, tokens.size, tokens.size // 20 + 1)] = 0.0
        tokens.flat[rng.integers(0, tokens.size, tokens.size // 50 + 1)] *= 30.0
    return tokens, offsets


def tolerance(qd: str, dd: str, variant: str) -> float:
    if "bf16" in variant and dd == "bfloat16":
        return 3e-5  # bf16 dot-product instructions with a hi/lo split of the float32 query
    return 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("qd", DTYPES)
@pytest.mark.parametrize("dd", DTYPES)
def test_matches_float64_and_scalar(variant, qd, dd, rng):
    for dim in AWKWARD_DIMS:
        nq = int(rng.integers(1, 18))
        lq = int(rng.choice([1, 2, 17, 32, 33, 64]))
        n = int(rng.integers(1, 40))
        tokens, offsets = random_docs(rng, n, 60 if variant != "scalar" else 20, dim)
        q, q64 = to_dtype(rng.standard_normal((nq, lq, dim)), qd)
        t, t64 = to_dtype(tokens, dd)
        mask = rng.random((nq, lq)) < 0.8
        ref = maxsim_ref(q64, t64, offsets, mask)
        out = ec.maxsim(q, t, offsets, query_mask=mask, num_threads=2, _isa=variant)
        assert out.dtype == np.float32 and out.shape == (nq, n)
        assert not np.isnan(out).any()
        assert rel_err(out, ref) <= tolerance(qd, dd, variant), (dim, lq, n)
        scalar = ec.maxsim(q, t, offsets, query_mask=mask, num_threads=1, _isa="scalar")
        assert rel_err(out, scalar) <= tolerance(qd, dd, variant)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_large_shapes(variant, rng):
    # n up to 5000, documents up to 600 tokens, Lq up to 64 (scalar gets a smaller case: it is slow)
    big = variant != "scalar"
    n = size(5000, 400) if big else 300
    dim = int(rng.choice([48, 64, 96, 128]))
    tokens, offsets = random_docs(rng, n, 600 if big else 100, dim)
    tokens = tokens.astype(np.float32)
    q = rng.standard_normal((3 if big else 2, 64, dim)).astype(np.float32)
    out = ec.maxsim(q, tokens, offsets, _isa=variant)
    assert rel_err(out, maxsim_ref(q, tokens, offsets)) <= 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_thread_count_does_not_change_results(variant, rng):
    tokens, offsets = random_docs(rng, 333, 50, 33)
    tokens = tokens.astype(np.float32)
    q = rng.standard_normal((5, 17, 33)).astype(np.float32)
    results = [ec.maxsim(q, tokens, offsets, num_threads=t, _isa=variant) for t in (1, 2, 3)]
    assert np.array_equal(results[0], results[1]) and np.array_equal(results[0], results[2])
    tk = [ec.maxsim_topk(q, tokens, offsets, 20, num_threads=t, _isa=variant) for t in (1, 2, 3)]
    for s, i in tk[1:]:
        assert np.array_equal(s, tk[0][0]) and np.array_equal(i, tk[0][1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_topk_equals_stable_sort(variant, rng):
    dim = 48
    tokens, offsets = random_docs(rng, 500, 30, dim, min_len=1)
    # duplicate documents give exact ties: the lower index must win
    tokens = np.concatenate([tokens, tokens]).astype(np.float32)
    offsets = np.concatenate([offsets, offsets[1:] + offsets[-1]])
    q = rng.standard_normal((7, 32, dim)).astype(np.float32)
    full = ec.maxsim(q, tokens, offsets, _isa=variant)
    for k in (1, 10, 999, 1000):
        s, idx = ec.maxsim_topk(q, tokens, offsets, k, num_threads=3, _isa=variant)
        assert idx.dtype == np.int64 and s.shape == (7, k)
        order = np.argsort(-full, axis=1, kind="stable")[:, :k]
        assert np.array_equal(idx, order)
        assert np.array_equal(s, np.take_along_axis(full, order, axis=1))


@pytest.mark.parametrize("variant", VARIANTS)
def test_candidates_equal_full_scores(variant, rng):
    tokens, offsets = random_docs(rng, 200, 40, 64)
    tokens = tokens.astype(np.float16)
    q = rng.standard_normal((4, 32, 64)).astype(np.float32)
    full = ec.maxsim(q, tokens, offsets, _isa=variant)
    cand = rng.integers(0, 200, (4, 37))
    out = ec.maxsim_candidates(q, tokens, offsets, cand, _isa=variant)
    assert np.array_equal(out, np.take_along_axis(full, cand, axis=1))
    empty = ec.maxsim_candidates(q, tokens, offsets, np.zeros((4, 0), np.int64))
    assert empty.shape == (4, 0)


@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_follows_pylate_semantics(variant, rng):
    n, ld, dim = 9, 23, 40
    docs = rng.standard_normal((n, ld, dim)).astype(np.float32)
    q = rng.standard_normal((3, 11, dim)).astype(np.float32)
    prefix = np.arange(ld)[None, :] < rng.integers(0, ld + 1, n)[:, None]
    holes = rng.random((n, ld)) < 0.6
    qmask = rng.random((3, 11)) < 0.7
    for mask in (None, prefix, holes, np.ones((n, ld), bool), np.zeros((n, ld), bool)):
        out = ec.maxsim_padded(q, docs, mask, query_mask=qmask, _isa=variant)
        ref = pylate_colbert_scores_ref(q, docs, qmask, mask)
        assert rel_err(out, ref) <= 1e-5


def test_padded_matches_pylate_itself(rng):
    pytest.importorskip("pylate", reason="PyLate is a test extra (make test installs it)")
    import torch
    from pylate.scores import colbert_scores

    q = torch.from_numpy(rng.standard_normal((4, 32, 48)).astype(np.float32))
    d = torch.from_numpy(rng.standard_normal((6, 50, 48)).astype(np.float32))
    qm = torch.from_numpy(rng.random((4, 32)) < 0.9)
    dm = torch.from_numpy(np.arange(50)[None, :] < rng.integers(0, 51, 6)[:, None])
    dm[2, 10] = False  # a hole, not a prefix
    want = colbert_scores(q, d, qm.float(), dm.float()).numpy()
    got = ec.maxsim_padded(q, d, dm, query_mask=qm)
    assert rel_err(got, want) <= 1e-5


def test_torch_inputs_are_read_in_place(rng):
    import torch

    tokens, offsets = random_docs(rng, 50, 30, 48)
    q = rng.standard_normal((2, 32, 48))
    ref = ec.maxsim(q.astype(np.float32), tokens.astype(np.float32), offsets)
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        tt = torch.from_numpy(tokens).to(dt)
        qt = torch.from_numpy(q).to(dt)
        out = ec.maxsim(qt, tt, torch.from_numpy(offsets))
        assert rel_err(out, ref) < (1e-5 if dt == torch.float32 else 2e-2)
    # numpy uint16 storage declared as bfloat16 gives the same as the torch bf16 tensor
    tb = torch.from_numpy(tokens).to(torch.bfloat16)
    raw = tb.view(torch.int16).numpy().view(np.uint16)
    a = ec.maxsim(q.astype(np.float32), tb, offsets)
    b = ec.maxsim(q.astype(np.float32), raw, offsets, dtype="bfloat16")
    assert np.array_equal(a, b)


def test_empty_inputs(rng):
    q = rng.standard_normal((3, 4, 8)).astype(np.float32)
    out = ec.maxsim(q, np.zeros((0, 8), np.float32), np.zeros(1, np.int64))
    assert out.shape == (3, 0)
    out = ec.maxsim(q, np.zeros((0, 8), np.float32), np.zeros(4, np.int64))
    assert np.array_equal(out, np.zeros((3, 3), np.float32))
    out = ec.maxsim(np.zeros((0, 4, 8), np.float32), np.ones((2, 8), np.float32), np.array([0, 2]))
    assert out.shape == (0, 1)
    out = ec.maxsim(q, np.ones((2, 8), np.float32), np.array([0, 2]), query_mask=np.zeros((3, 4), bool))
    assert np.array_equal(out, np.zeros((3, 1), np.float32))


def test_info_reports_paths():
    info = ec.info()
    assert {"paths", "isa", "compiled", "features", "variants"} <= set(info)
    assert "scalar" in info["paths"] and info["isa"] in info["paths"]
    assert set(info["variants"]) <= set(info["compiled"])


def _run_with_isa(value: str) -> subprocess.CompletedProcess:
    code = "import edgecolbert_native as e, numpy as np; print(e.info()['isa']); " \
           "print(e.maxsim(np.ones((1,1,4),np.float32), np.ones((1,4),np.float32), np.array([0,1]))[0,0])"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "EDGECOLBERT_ISA": value},
                          capture_output=True, text=True, timeout=60)


def test_env_var_forces_and_refuses_paths():
    r = _run_with_isa("scalar")
    assert r.returncode == 0 and r.stdout.split() == ["scalar", "4.0"], r.stderr
    impossible = "neon" if "avx2" in ec.info()["compiled"] else "avx512"
    r = _run_with_isa(impossible)
    assert r.returncode != 0
    assert "EDGECOLBERT_ISA" in r.stderr and "available" in r.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_nan_similarities_are_ignored(variant, rng):
    """Defined result for NaN input: the max skips NaN similarities (numpy.fmax semantics)."""
    tokens, offsets = random_docs(rng, 20, 15, 24, min_len=1)
    tokens = tokens.astype(np.float32)
    tokens[::7, 3] = np.nan
    q = rng.standard_normal((3, 5, 24)).astype(np.float32)
    sims = np.einsum("qld,td->qlt", q.astype(np.float64), tokens.astype(np.float64))
    ref = np.zeros((3, 20))
    for d in range(20):
        s = sims[:, :, offsets[d] : offsets[d + 1]]
        if s.shape[2] == 0:
            continue  # empty document: 0
        with np.errstate(invalid="ignore"):
            best = np.where(np.isnan(s), -np.inf, s).max(axis=2)
        ref[:, d] = best.sum(axis=1)
    out = ec.maxsim(q, tokens, offsets, _isa=variant)
    assert not np.isnan(out).any()
    finite = np.isfinite(ref)
    assert np.array_equal(np.isfinite(out), finite)
    assert rel_err(out[finite], ref[finite]) <= 1e-5
