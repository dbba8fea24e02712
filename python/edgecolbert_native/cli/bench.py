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

from .. import kernels

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


def copy_bandwidth(mbytes: int = 256, repeat: int = 5) -> dict:
    """Single-thread memory copy bandwidth (numpy.copyto of a buffer larger than the caches), counting
    the bytes read plus the bytes written."""
    n = mbytes * (1 << 20) // 4
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    t = timed(lambda: np.copyto(dst, src), repeat)
    return {"gb_per_s": 2 * src.nbytes / t["median_s"] / 1e9, "mbytes": mbytes, **t}


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
    say("memory copy bandwidth")
    bandwidth = copy_bandwidth(128 if quick else 256)
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
    rows.extend(kernel_rows(quick, ceiling, bandwidth["gb_per_s"], repeat, say))
    enc = encoder_row(quick, say)
    if enc:
        rows.append(enc)
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
        "copy_bandwidth": bandwidth,
        "results": rows,
    }


def kernel_rows(quick: bool, ceiling: float, bandwidth: float, repeat: int, say: Callable[[str], None]) -> list[dict]:
    """The codec and centroid kernels at the issue's shapes: dim 48, nbits 2, 1 thread."""
    from .. import centroids, codec

    rows: list[dict] = []
    rng = np.random.default_rng(3)
    dim, nbits = 48, 2
    K = 4096 if quick else 65536
    cents = rng.standard_normal((K, dim), dtype=np.float32)
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    q = make_queries(1, dim)[0]
    say(f"centroid_search K={K}")
    t = timed(lambda: centroids.centroid_search(q, cents, 8, num_threads=1), repeat)
    rows.append(_row(f"centroid_search K{K} dim48 32 tokens nprobe8", 2.0 * LQ * dim * K, K, t, ceiling,
                     workload="centroids", dim=dim, nq=1, threads=1, impl="edgecolbert"))
    tokens, offsets = make_docs(200 if quick else 1000, dim, 150, 210, seed=4)
    say("codec train")
    cdc = codec.ResidualCodec.train(tokens[: min(len(tokens), 50_000)], 1024, nbits, seed=0, num_threads=1)
    codes, residuals = cdc.compress(tokens, num_threads=1)
    T = len(tokens)
    say("decompress")
    t = timed(lambda: cdc.decompress(codes, residuals, num_threads=1), repeat)
    r = _row("decompress dim48 nbits2 (docs/s = tokens/s)", 0.0, T, t, ceiling, workload="codec", dim=dim, nq=1,
             threads=1, impl="edgecolbert")
    r["gb_per_s"] = T * (dim * 4 + residuals.shape[1] + 4) / t["median_s"] / 1e9
    r["vs_copy_bandwidth"] = r["gb_per_s"] / bandwidth
    rows.append(r)
    qq = make_queries(1, dim)
    flops = 2.0 * LQ * dim * T
    say("maxsim_compressed")
    t = timed(lambda: codec.maxsim_compressed(qq, codes, residuals, offsets, cdc, num_threads=1), repeat)
    rows.append(_row("maxsim_compressed dim48 nbits2", flops, len(offsets) - 1, t, ceiling, workload="codec",
                     dim=dim, nq=1, threads=1, impl="edgecolbert"))

    def decompress_then_maxsim() -> None:
        kernels.maxsim(qq, cdc.decompress(codes, residuals, num_threads=1), offsets, num_threads=1)

    t = timed(decompress_then_maxsim, repeat)
    rows.append(_row("decompress + maxsim dim48 nbits2", flops, len(offsets) - 1, t, ceiling, workload="codec",
                     dim=dim, nq=1, threads=1, impl="edgecolbert"))
    return rows


def encoder_row(quick: bool, say: Callable[[str], None]) -> dict | None:
    """Document encoding tokens/s of the offline MiniLM model (all threads), when it is installed."""
    try:
        from .corpus import pydocs_paths, read_documents
        from ..encoder import Encoder, offline_model_path
    except ImportError:
        return None
    path = offline_model_path()
    if path is None:
        return None
    try:
        enc = Encoder.from_pretrained(path)
    except Exception:  # noqa: BLE001 - torch or tokenizers missing: no encoder row
        return None
    texts = [d.text for _, d in zip(range(32 if quick else 128), read_documents(pydocs_paths()[0]))]
    say("encoder (all-MiniLM-L6-v2, pydocs passages)")
    enc.encode_documents(texts[:8])
    t0 = time.perf_counter()
    tokens, _ = enc.encode_documents(texts)
    dt = time.perf_counter() - t0
    return {"name": "encoder all-MiniLM-L6-v2 pydocs passages", "workload": "encoder", "impl": "edgecolbert",
            "threads": kernels.info()["default_num_threads"], "tokens_per_s": len(tokens) / dt,
            "docs_per_s": len(texts) / dt, "median_ms": dt * 1e3, "min_ms": dt * 1e3, "max_ms": dt * 1e3,
            "gflops": 0.0, "vs_sgemm": 0.0}


def plot(path: str, quick: bool = True) -> None:
    """PNG: MaxSim GFLOP/s (1 thread) against document length for dims 32..128."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = [16, 32, 64, 128, 256, 512, 1024, 2048, 8192]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for dim in (32, 48, 64, 96, 128):
        q = make_queries(1, dim)
        rates = []
        for L in lengths:
            n = max(4, (1 << (18 if quick else 20)) // L)
            tokens, offsets = make_docs(n, dim, L, L, seed=5)
            t = timed(lambda: kernels.maxsim(q, tokens, offsets, num_threads=1), 3)
            rates.append(2.0 * LQ * dim * len(tokens) / t["median_s"] / 1e9)
        ax.plot(lengths, rates, marker="o", label=f"dim {dim}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("document length (tokens)")
    ax.set_ylabel("effective GFLOP/s, 1 thread")
    info = kernels.info()
    ax.set_title(f"MaxSim, Lq 32, {cpu_model()} [{info['variant']}]", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


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
        f"{s['gflops']:.1f} GFLOP/s; memory copy bandwidth (1 thread): {report['copy_bandwidth']['gb_per_s']:.1f} GB/s",
        "",
        f"{'workload':<46} {'thr':>3} {'GFLOP/s':>9} {'xSGEMM':>7} {'docs/s':>11} {'median ms':>10} {'spread ms':>15} {'max rel err':>11}",
    ]
    for r in report["results"]:
        if r.get("workload") == "encoder":
            lines.append(f"{r['name']:<46} {r['threads']:>3} {'':>9} {'':>7} {r['docs_per_s']:>11.1f}  "
                         f"({r['tokens_per_s']:.0f} tokens/s)")
            continue
        if "gb_per_s" in r:
            lines.append(f"{r['name']:<46} {r['threads']:>3} {r['gb_per_s']:>7.1f}GB/s {r['vs_copy_bandwidth']:>5.2f}xcopy "
                         f"{r['docs_per_s']:>11.0f} {r['median_ms']:>10.2f}")
            continue
        err = f"{r['max_rel_err']:.1e}" if "max_rel_err" in r else "-"
        lines.append(
            f"{r['name']:<46} {r['threads']:>3} {r['gflops']:>9.1f} {r['vs_sgemm']:>7.2f} {r['docs_per_s']:>11.0f} "
            f"{r['median_ms']:>10.2f} {r['min_ms']:>7.2f}-{r['max_ms']:<7.2f} {err:>11}"
        )
    return "\n".join(lines)


def main(quick: bool, as_json: bool, peers: bool = True, plot_path: str | None = None) -> None:
    import sys

    if peers:
        os.environ.setdefault("RAYON_NUM_THREADS", "1")  # maxsim-cpu's pool, read on first use
    report = run(quick=quick, peers=peers, progress=lambda s: print(f"  running: {s}", file=sys.stderr, flush=True))
    print(json.dumps(report, indent=1) if as_json else format_table(report))
    if plot_path:
        plot(plot_path, quick=quick)
        print(f"plot written to {plot_path}", file=sys.stderr)
