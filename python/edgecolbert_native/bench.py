"""The hardware microbenchmark behind `edgecolbert bench`: MaxSim throughput on this machine next to
its own same-run ceiling (single-thread SGEMM) and, where installed, peer libraries.

Workloads (seeded, so every machine runs the same shapes):
  W1: 10,000 documents of 120..300 tokens, dim 48 and 128, Lq 32, 1 and 16 queries (--quick: 2,000).
  W2: 100 documents of 8,192 tokens (the on-device re-ranking case), dim 48, Lq 32, 1 query.
Effective GFLOP/s counts 2 * Lq * dim per (query token, document token) pair.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from . import kernels

LQ = 32


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextmanager
def blas_threads(n: int) -> Iterator[bool]:
    """Limits numpy's BLAS to n threads when threadpoolctl is installed; yields whether it could."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with threadpool_limits(n):
        yield True


def timed(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def sgemm_gflops(n: int = 2048, repeat: int = 5) -> dict:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    with blas_threads(1) as limited:
        t = timed(lambda: a @ b, repeat)
    return {"gflops": 2 * n**3 / t["median_s"] / 1e9, "single_thread": limited, **t}


def make_docs(n_docs: int, dim: int, lo: int = 120, hi: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm random token vectors in CSR form (lengths uniform in [lo, hi])."""
    rng = np.random.default_rng(seed)
    lens = rng.integers(lo, hi + 1, n_docs)
    offsets = np.zeros(n_docs + 1, np.int64)
    offsets[1:] = np.cumsum(lens)
    tokens = rng.standard_normal((int(offsets[-1]), dim), dtype=np.float32)
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    return tokens, offsets


def make_queries(nq: int, dim: int, seed: int = 1) -> np.ndarray:
    q = np.random.default_rng(seed).standard_normal((nq, LQ, dim), dtype=np.float32)
    return q / np.linalg.norm(q, axis=2, keepdims=True)


def max_rel_error(q: np.ndarray, tokens: np.ndarray, offsets: np.ndarray, out: np.ndarray, docs: int = 50) -> float:
    """Largest relative error against float64 over the first documents (error next to speed)."""
    worst = 0.0
    for d in range(min(docs, len(offsets) - 1)):
        t = tokens[offsets[d] : offsets[d + 1]].astype(np.float64)
        if len(t) == 0:
            continue
        ref = np.einsum("qld,td->qlt", q.astype(np.float64), t).max(axis=2).sum(axis=1)
        worst = max(worst, float(np.max(np.abs(out[:, d] - ref) / np.maximum(np.abs(ref), 1e-12))))
    return worst


def numpy_maxsim(q: np.ndarray, tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The plain numpy baseline: one GEMM per query, then a segmented max (documents must be non-empty)."""
    out = np.empty((q.shape[0], len(offsets) - 1), np.float32)
    for i in range(q.shape[0]):
        s = q[i] @ tokens.T
        out[i] = np.maximum.reduceat(s, offsets[:-1], axis=1).sum(axis=0)
    return out


def _row(name: str, work_flops: float, ndocs: int, t: dict, sgemm: float, **extra: Any) -> dict:
    gf = work_flops / t["median_s"] / 1e9
    return {
        "name": name, "gflops": gf, "docs_per_s": ndocs / t["median_s"], "vs_sgemm": gf / sgemm,
        "median_ms": t["median_s"] * 1e3, "min_ms": t["min_s"] * 1e3, "max_ms": t["max_s"] * 1e3, **extra,
    }


def run(quick: bool = False, peers: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    say = progress or (lambda s: None)
    info = kernels.info()
    all_threads = info["default_num_threads"]
    repeat = 3 if quick else 7
    n_w1 = 2000 if quick else 10000
    say("SGEMM ceiling")
    sgemm = sgemm_gflops(repeat=3 if quick else 5)
    ceiling = sgemm["gflops"]
    rows: list[dict] = []
    for dim in (48, 128):
        tokens, offsets = make_docs(n_w1, dim)
        T, n = len(tokens), len(offsets) - 1
        for nq in (1, 16):
            q = make_queries(nq, dim)
            flops = 2.0 * nq * LQ * dim * T
            for threads in sorted({1, all_threads}):
                say(f"W1 dim {dim} nq {nq} threads {threads}")
                t = timed(lambda: kernels.maxsim(q, tokens, offsets, num_threads=threads), repeat)
                out = kernels.maxsim(q, tokens, offsets, num_threads=threads)
                rows.append(_row(f"W1 f32 dim{dim} nq{nq}", flops, n * nq, t, ceiling, workload="W1", dim=dim, nq=nq,
                                 threads=threads, impl="edgecolbert", variant=info["variant"], dtype="float32",
                                 max_rel_err=max_rel_error(q, tokens, offsets, out)))
        if dim == 48:
            q = make_queries(1, dim)
            flops = 2.0 * LQ * dim * T
            import_ok = True
            try:
                import torch
            except ImportError:
                import_ok = False
            if import_ok:
                tb = torch.from_numpy(tokens).to(torch.bfloat16)
                qb = torch.from_numpy(q).to(torch.bfloat16)
                for qname, qq in (("bf16 queries", qb), ("f32 queries", q)):
                    say(f"W1 bf16 documents, {qname}")
                    t = timed(lambda: kernels.maxsim(qq, tb, offsets, num_threads=1), repeat)
                    rows.append(_row(f"W1 bf16 docs ({qname}) dim48 nq1", flops, n, t, ceiling, workload="W1", dim=dim,
                                     nq=1, threads=1, impl="edgecolbert", variant=info["variant"], dtype="bfloat16"))
            t16 = tokens.astype(np.float16)
            say("W1 f16 documents")
            t = timed(lambda: kernels.maxsim(q, t16, offsets, num_threads=1), repeat)
            rows.append(_row("W1 f16 docs dim48 nq1", flops, n, t, ceiling, workload="W1", dim=dim, nq=1, threads=1,
                             impl="edgecolbert", variant=info["variant"], dtype="float16"))
            say("numpy baseline")
            with blas_threads(1):
                t = timed(lambda: numpy_maxsim(q, tokens, offsets), repeat)
            rows.append(_row("W1 numpy Q@D.T + maximum.reduceat", flops, n, t, ceiling, workload="W1", dim=dim, nq=1,
                             threads=1, impl="numpy", dtype="float32"))
            for variant in info["variants"]:
                if variant == info["variant"] or variant == "scalar":
                    continue
                say(f"W1 variant {variant}")
                t = timed(lambda: kernels.maxsim(q, tokens, offsets, num_threads=1, _isa=variant), repeat)
                rows.append(_row(f"W1 f32 dim48 nq1 [{variant}]", flops, n, t, ceiling, workload="W1", dim=dim, nq=1,
                                 threads=1, impl="edgecolbert", variant=variant, dtype="float32"))
            if peers:
                rows.extend(_peer_rows(q, tokens, offsets, flops, ceiling, repeat, say))
    say("W2 long documents")
    tokens, offsets = make_docs(20 if quick else 100, 48, 8192, 8192, seed=2)
    q = make_queries(1, 48)
    flops = 2.0 * LQ * 48 * len(tokens)
    for threads in sorted({1, all_threads}):
        t = timed(lambda: kernels.maxsim(q, tokens, offsets, num_threads=threads), repeat)
        rows.append(_row("W2 f32 dim48 8192-token docs", flops, len(offsets) - 1, t, ceiling, workload="W2", dim=48,
                         nq=1, threads=threads, impl="edgecolbert", variant=info["variant"], dtype="float32"))
    return {
        "schema": "edgecolbert-bench/1",
        "machine": {"cpu": cpu_model(), "arch": platform.machine(), "cores": all_threads},
        "isa": {k: info[k] for k in ("features", "compiled", "paths", "variants", "isa", "variant")},
        "commit": _commit(),
        "quick": quick,
        "sgemm": sgemm,
        "results": rows,
    }


def _peer_rows(q, tokens, offsets, flops, ceiling, repeat, say) -> list[dict]:
    rows = []
    n = len(offsets) - 1
    docs = [tokens[offsets[i] : offsets[i + 1]] for i in range(n)]
    try:
        import numkong

        say("peer: numkong maxsim_packed")
        qp = numkong.maxsim_pack(q[0])
        packed = [numkong.maxsim_pack(d) for d in docs]
        t = timed(lambda: [numkong.maxsim_packed(qp, d) for d in packed], repeat)
        rows.append(_row("W1 NumKong maxsim_packed (pre-packed)", flops, n, t, ceiling, workload="W1", dim=q.shape[2],
                         nq=1, threads=1, impl="numkong", dtype="float32"))
    except ImportError:
        pass
    try:
        if os.environ.get("RAYON_NUM_THREADS") == "1":
            import maxsim_cpu

            say("peer: maxsim-cpu maxsim_scores_variable")
            t = timed(lambda: maxsim_cpu.maxsim_scores_variable(q[0], docs), repeat)
            rows.append(_row("W1 maxsim-cpu maxsim_scores_variable", flops, n, t, ceiling, workload="W1",
                             dim=q.shape[2], nq=1, threads=1, impl="maxsim-cpu", dtype="float32"))
    except ImportError:
        pass
    return rows


def _commit() -> str | None:
    import subprocess

    try:
        here = os.path.dirname(os.path.abspath(__file__))
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=here, timeout=5)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def format_table(report: dict) -> str:
    m, isa, s = report["machine"], report["isa"], report["sgemm"]
    lines = [
        f"CPU: {m['cpu']} ({m['arch']}, {m['cores']} usable cores)",
        f"features: {' '.join(isa['features']) or '-'}",
        f"compiled: {', '.join(isa['compiled'])}; available: {', '.join(isa['variants'])}; "
        f"chosen: {isa['isa']} ({isa['variant']})",
        f"SGEMM ceiling (numpy 2048x2048 float32, {'1 thread' if s['single_thread'] else 'BLAS default threads'}): "
        f"{s['gflops']:.1f} GFLOP/s",
        "",
        f"{'workload':<46} {'thr':>3} {'GFLOP/s':>9} {'xSGEMM':>7} {'docs/s':>11} {'median ms':>10} {'spread ms':>15} {'max rel err':>11}",
    ]
    for r in report["results"]:
        err = f"{r['max_rel_err']:.1e}" if "max_rel_err" in r else "-"
        lines.append(
            f"{r['name']:<46} {r['threads']:>3} {r['gflops']:>9.1f} {r['vs_sgemm']:>7.2f} {r['docs_per_s']:>11.0f} "
            f"{r['median_ms']:>10.2f} {r['min_ms']:>7.2f}-{r['max_ms']:<7.2f} {err:>11}"
        )
    return "\n".join(lines)


def main(quick: bool, as_json: bool, peers: bool = True) -> None:
    import sys

    if peers:
        os.environ.setdefault("RAYON_NUM_THREADS", "1")  # maxsim-cpu's pool, read on first use
    report = run(quick=quick, peers=peers, progress=lambda s: print(f"  running: {s}", file=sys.stderr, flush=True))
    print(json.dumps(report, indent=1) if as_json else format_table(report))
