"""MaxSim against the core's own limits, 1 thread (issue 23's bars): float32 at dim 48 and 128 on every
x86 / ARM path this CPU runs, and bfloat16 documents with bfloat16 (and float32) queries.

Workload: `edgecolbert bench`'s W1 (edgecolbert_native.cli.bench.make_docs / make_queries): documents of
120..300 unit-norm tokens (`--lengths LO-HI` for others: short documents test the prefetch of the next
document's first tokens), Lq 32, 1 query; effective GFLOP/s counts 2 * Lq * dim per (query token,
document token) pair, as `edgecolbert bench` does. Every row gives the median over --repeat calls of
both the wall time and the calling thread's CPU time (num_threads=1 runs on the calling thread); on a
machine shared with other processes the CPU time is the one that measures the kernel, the wall time
also counts the time the thread waited for a core.

Fractions of the peak need the peak: `--fma-peak` / `--bf16-peak` (GFLOP/s per core, as measured by a
register-resident loop), or `--probe-peaks`: edgecolbert's own peak probes (edgecolbert_native.peaks), run in
the same process just before the rows, each row held to the fp32 FMA peak of its own path (`vfmadd231ps zmm`
for avx512, `ymm` for avx2, `fmla` for neon) and the bf16 rows to the bf16 dot peak; a probe's rate is its
operations over the fastest of 15 repeats of 10 ms of thread CPU time.

A/B: `--baseline SO` loads a second build of the extension module (a `_native*.so`, e.g. built from
main) and runs both in alternation, `--rounds` times, in separate processes, so that both see the same
machine state; every round is printed.

    .venv/bin/python bench/bench_maxsim_limits.py                          # this build
    .venv/bin/python bench/bench_maxsim_limits.py --fma-peak 116.6 --bf16-peak 233
    .venv/bin/python bench/bench_maxsim_limits.py --probe-peaks                    # peaks measured here
    .venv/bin/python bench/bench_maxsim_limits.py --baseline /tmp/main/_native.so --rounds 3
    .venv/bin/python bench/bench_maxsim_limits.py --probe-peaks --lengths 20-40 --docs 8000 --bf16-dims 48,128
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

LQ = 32
F32_PATHS = ("avx512", "avx2", "neon")


def load_native(so: str | None) -> Any:
    if so is None:
        from edgecolbert_native import _native  # type: ignore[attr-defined]

        return _native
    # Installed as the package's own _native before the package is imported: its types register once
    # (a second module defining the same pybind11 types would be refused).
    if "edgecolbert_native" in sys.modules:
        raise RuntimeError("load_native: edgecolbert_native was imported before the module under test")
    spec = importlib.util.spec_from_file_location("edgecolbert_native._native", so)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["edgecolbert_native._native"] = mod
    spec.loader.exec_module(mod)
    return mod


def to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), round to nearest even."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def timed(fn: Any, repeat: int) -> dict:
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu)}


def measure(so: str | None, ndocs: int, repeat: int, lengths: tuple[int, int] = (120, 300),
            dims: tuple[int, ...] = (48, 128), bf16_dims: tuple[int, ...] = (48,)) -> dict:
    nat = load_native(so)
    from edgecolbert_native.cli.bench import make_docs, make_queries

    info = nat.info()
    variants = info["variants"]
    rows = []
    for dim in sorted(set(dims) | set(bf16_dims)):
        tokens, offsets = make_docs(ndocs, dim, *lengths)
        q = make_queries(1, dim)
        flops = 2.0 * LQ * dim * len(tokens)
        for isa in [p for p in F32_PATHS if p in info["paths"]] + [""] if dim in dims else []:
            t = timed(lambda: nat.maxsim(q, tokens, offsets, num_threads=1, isa=isa), repeat)
            rows.append({"name": f"f32 dim{dim}", "isa": isa or f"default ({info['variant']})", "kind": "fma",
                         "gflops_cpu": flops / t["cpu_s"] / 1e9, "gflops_wall": flops / t["wall_s"] / 1e9})
        if dim in bf16_dims:
            tb = to_bf16(tokens)
            for qname, qq, qd in (("bf16 queries", to_bf16(q), "bfloat16"), ("f32 queries", q, "")):
                for isa in [v for v in ("avx512_bf16", "neon_bf16") if v in variants]:
                    t = timed(lambda: nat.maxsim(qq, tb, offsets, num_threads=1, queries_dtype=qd,
                                                 docs_dtype="bfloat16", isa=isa), repeat)
                    rows.append({"name": f"bf16 docs, {qname}, dim{dim}", "isa": isa,
                                 "kind": "bf16" if qd else "bf16_hilo",
                                 "gflops_cpu": flops / t["cpu_s"] / 1e9, "gflops_wall": flops / t["wall_s"] / 1e9})
    return {"variant": info["variant"], "rows": rows}


FMA_PROBES = {"avx512": "fma_f32_avx512", "avx2": "fma_f32_avx2", "neon": "fma_f32_neon"}
BF16_PROBES = ("dot_bf16_avx512_bf16", "dot_bf16_neon_bf16")


def probe_peaks() -> dict[str, float]:
    """GFLOP/s of each supported fp32 FMA and bf16 dot probe on one thread (fastest repeat, thread CPU time)."""
    from edgecolbert_native import _native

    supported = {p["name"] for p in _native.compute_probes() if p["supported"]}
    out = {}
    for name in [*FMA_PROBES.values(), *BF16_PROBES]:
        if name in supported:
            t = _native.time_compute_probe(name, 1, 0.01, 15)
            assert t["check"], f"{name}: the probe's count was wrong"
            out[name] = t["amount"] / min(t["cpu_s"]) / 1e9
    return out


def row_peaks(row: dict, peaks: dict[str, float], variant: str) -> tuple[float | None, float | None]:
    """(fp32 FMA peak, bf16 dot peak) that a row is held to: its own path's."""
    path = row["isa"] if not row["isa"].startswith("default") else variant
    family = "avx512" if path.startswith("avx512") else "avx2" if path.startswith("avx2") else \
        "neon" if path.startswith("neon") else ""
    bf16 = next((peaks[n] for n in BF16_PROBES if n in peaks), None)
    return peaks.get(FMA_PROBES.get(family, "")), bf16


def fraction(row: dict, fma: float | None, bf16: float | None) -> str:
    if row["kind"] == "fma" and fma:
        return f"{row['gflops_cpu'] / fma:6.1%} of FMA"
    if row["kind"] == "bf16" and bf16:
        return f"{row['gflops_cpu'] / bf16:6.1%} of bf16 dot"
    if row["kind"] == "bf16_hilo" and bf16:  # hi + lo: two dot products per product counted
        return f"{2 * row['gflops_cpu'] / bf16:6.1%} of bf16 dot (x2: hi + lo)"
    return ""


def cpu_model() -> str:
    from edgecolbert_native.cli.bench import cpu_model as model

    return model()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=2000, help="documents (edgecolbert bench --quick: 2000)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--fma-peak", type=float, help="fp32 FMA peak of one core, GFLOP/s")
    ap.add_argument("--bf16-peak", type=float, help="bf16 dot peak of one core, GFLOP/s (2 per bf16 product)")
    ap.add_argument("--probe-peaks", action="store_true",
                    help="measure the peaks with edgecolbert's probes first (instead of --fma-peak/--bf16-peak)")
    ap.add_argument("--native", help="the _native*.so to measure (default: the installed one)")
    ap.add_argument("--baseline", help="a second _native*.so, run in alternation with --native")
    ap.add_argument("--rounds", type=int, default=3, help="A/B rounds with --baseline")
    ap.add_argument("--json", action="store_true", help="one JSON object (used by the A/B rounds)")
    ap.add_argument("--lengths", default="120-300", help="document lengths LO-HI, uniform (default 120-300)")
    ap.add_argument("--dims", default="48,128", help="float32 rows' dims (default 48,128)")
    ap.add_argument("--bf16-dims", default="48", help="bf16 rows' dims (default 48)")
    args = ap.parse_args()
    lo, _, hi = args.lengths.partition("-")
    lengths = (int(lo), int(hi or lo))
    dims = tuple(int(d) for d in args.dims.split(",") if d)
    bf16_dims = tuple(int(d) for d in args.bf16_dims.split(",") if d)
    if not 1 <= lengths[0] <= lengths[1]:
        ap.error(f"--lengths: want 1 <= LO <= HI, got {args.lengths}")
    if args.baseline:
        me = [sys.executable, os.path.abspath(__file__), "--json", "--docs", str(args.docs), "--repeat", str(args.repeat),
              "--lengths", args.lengths, "--dims", args.dims, "--bf16-dims", args.bf16_dims]
        print(f"CPU: {cpu_model()}; {args.rounds} rounds, A = --native ({args.native or 'installed'}), "
              f"B = --baseline ({args.baseline}); GFLOP/s from thread CPU time (wall in brackets)")
        for r in range(args.rounds):
            for label, so in (("A", args.native), ("B", args.baseline)):
                cmd = me + (["--native", so] if so else [])
                res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                for row in res["rows"]:
                    print(f"round {r + 1} {label} {row['name']:<32} {row['isa']:<24} {row['gflops_cpu']:7.1f} "
                          f"({row['gflops_wall']:6.1f}) {fraction(row, args.fma_peak, args.bf16_peak)}")
        return 0
    peaks = probe_peaks() if args.probe_peaks else {}
    res = measure(args.native, args.docs, args.repeat, lengths, dims, bf16_dims)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"CPU: {cpu_model()}; default variant {res['variant']}; 1 thread; documents of {lengths[0]}-{lengths[1]} "
          f"tokens; GFLOP/s from thread CPU time (wall in brackets)")
    if peaks:
        print("peaks, 1 thread, GFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in peaks.items()))
    for row in res["rows"]:
        fma, bf16 = row_peaks(row, peaks, res["variant"]) if peaks else (args.fma_peak, args.bf16_peak)
        print(f"{row['name']:<32} {row['isa']:<24} {row['gflops_cpu']:7.1f} ({row['gflops_wall']:6.1f}) "
              f"{fraction(row, fma, bf16)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
