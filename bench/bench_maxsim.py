"""pytest-benchmark suite for MaxSim (W1, W2 of the issue) with the numpy baseline and peers.

    .venv/bin/python -m pytest bench/bench_maxsim.py --benchmark-only -o python_files='bench_*.py'
Effective GFLOP/s = 2 * Lq * dim * (query tokens x document tokens) / median time, printed in
extra_info so the ratio to the same-run SGEMM (bench_sgemm) can be read off one report.
"""

from __future__ import annotations

import numpy as np
import pytest

import edgecolbert_native as ec
from edgecolbert_native.cli.bench import LQ, blas_threads, make_docs, make_queries, numpy_maxsim

W1 = {dim: make_docs(10000, dim) for dim in (48, 128)}
W2 = make_docs(100, 48, 8192, 8192, seed=2)


def _gflops(benchmark, flops):
    benchmark.extra_info["gflops"] = flops / benchmark.stats.stats.median / 1e9


def test_sgemm_ceiling(benchmark):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    with blas_threads(1):
        benchmark(lambda: a @ a)
    _gflops(benchmark, 2 * 2048**3)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("nq", [1, 16])
@pytest.mark.parametrize("dim", [48, 128])
def test_w1_f32(benchmark, dim, nq, threads):
    tokens, offsets = W1[dim]
    q = make_queries(nq, dim)
    benchmark(ec.maxsim, q, tokens, offsets, num_threads=threads)
    _gflops(benchmark, 2.0 * nq * LQ * dim * len(tokens))


@pytest.mark.parametrize("variant", ec.info()["variants"][1:])
def test_w1_dim48_variants(benchmark, variant):
    tokens, offsets = W1[48]
    q = make_queries(1, 48)
    benchmark(ec.maxsim, q, tokens, offsets, num_threads=1, _isa=variant)
    _gflops(benchmark, 2.0 * LQ * 48 * len(tokens))


@pytest.mark.parametrize("query_dtype", ["bfloat16", "float32"])
def test_w1_bf16_documents(benchmark, query_dtype):
    torch = pytest.importorskip("torch")
    tokens, offsets = W1[48]
    q = torch.from_numpy(make_queries(1, 48))
    if query_dtype == "bfloat16":
        q = q.to(torch.bfloat16)
    tb = torch.from_numpy(tokens).to(torch.bfloat16)
    benchmark(ec.maxsim, q, tb, offsets, num_threads=1)
    _gflops(benchmark, 2.0 * LQ * 48 * len(tokens))


def test_w1_numpy_baseline(benchmark):
    tokens, offsets = W1[48]
    q = make_queries(1, 48)
    with blas_threads(1):
        benchmark(numpy_maxsim, q, tokens, offsets)
    _gflops(benchmark, 2.0 * LQ * 48 * len(tokens))


def test_w1_numkong(benchmark):
    numkong = pytest.importorskip("numkong")
    tokens, offsets = W1[48]
    q = numkong.maxsim_pack(make_queries(1, 48)[0])
    docs = [numkong.maxsim_pack(tokens[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)]
    benchmark(lambda: [numkong.maxsim_packed(q, d) for d in docs])
    _gflops(benchmark, 2.0 * LQ * 48 * len(tokens))


def test_w1_maxsim_cpu(benchmark):
    maxsim_cpu = pytest.importorskip("maxsim_cpu")
    tokens, offsets = W1[48]
    docs = [tokens[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    q = make_queries(1, 48)[0]
    benchmark(maxsim_cpu.maxsim_scores_variable, q, docs)
    _gflops(benchmark, 2.0 * LQ * 48 * len(tokens))


@pytest.mark.parametrize("threads", [1, 2])
def test_w2_long_documents(benchmark, threads):
    tokens, offsets = W2
    q = make_queries(1, 48)
    benchmark(ec.maxsim, q, tokens, offsets, num_threads=threads)
    _gflops(benchmark, 2.0 * LQ * 48 * len(tokens))


def test_w1_topk(benchmark):
    tokens, offsets = W1[48]
    q = make_queries(16, 48)
    benchmark(ec.maxsim_topk, q, tokens, offsets, 10, num_threads=1)
    _gflops(benchmark, 2.0 * 16 * LQ * 48 * len(tokens))
