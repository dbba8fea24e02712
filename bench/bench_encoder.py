"""Encoder speed against PyLate, one process, same checkpoint, same texts, interleaved rounds.

    .venv/bin/python bench/bench_encoder.py                    # 17m and 32m shapes, the issue's table
    .venv/bin/python bench/bench_encoder.py --shapes 17m --docs 256 --rounds 2 --skip-long

Checkpoints: random weights with the mxbai-edge-colbert-v0 17m / 32m shapes, made by transformers +
PyLate (tests/encoder_helpers.py), with a byte-level BPE trained on the pydocs corpus (so passages have
realistic token counts). Both libraries load the same saved directory and produce the same outputs
(kept, normalised token vectors; the parity tests check the numbers).

Rounds alternate ours / PyLate so that both see the same machine state; the table reports the median
of each and the median of the per-round ratios. Threads: 2 for documents, 1 for single-query latency.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import encoder_helpers as H  # noqa: E402
from edgecolbert_native.encoder import Encoder  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "edgecolbert_native", "data",
                      "pydocs", "corpus.jsonl.gz")


def load_passages(path: str) -> list[str]:
    with gzip.open(path, "rt", encoding="utf8") as f:
        return [json.loads(line)["text"] for line in f]


def make_checkpoint(root: str, shape_name: str, passages: list[str]) -> str:
    path = os.path.join(root, shape_name, "colbert")
    if os.path.isdir(path):
        return path
    shape = H.SHAPE_17M if shape_name == "17m" else H.SHAPE_32M
    H.modernbert_colbert(os.path.join(root, shape_name), shape, training_text=[p.lower() for p in passages])
    return path


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(ours, theirs, rounds: int) -> tuple[list[float], list[float]]:
    a, b = [], []
    for _ in range(rounds):
        a.append(timed(ours))
        b.append(timed(theirs))
    return a, b


def scores(q, qmask, tokens, offsets) -> np.ndarray:
    """Exhaustive MaxSim [nq, n] in float64 (a small reference, not the kernels)."""
    q = q.double() * qmask[..., None]
    out = np.zeros((q.shape[0], len(offsets) - 1))
    for j in range(len(offsets) - 1):
        d = tokens[offsets[j]:offsets[j + 1]].double()
        if d.shape[0]:
            out[:, j] = (q @ d.T).amax(-1).sum(-1).numpy()
    return out


def bench_shape(args, shape_name: str, passages: list[str], rows: list[str], notes: list[str]) -> None:
    pm = H.import_pylate()
    path = make_checkpoint(args.cache, shape_name, passages)
    docs = passages[: args.docs]

    # Documents, pydocs passages, 2 threads.
    torch.set_num_threads(args.threads)
    enc = Encoder.from_pretrained(path)
    ref = pm.ColBERT(path, device="cpu")
    ntok = int(enc.encode_documents(docs[:64])[1][-1])  # warm-up
    ref.encode(docs[:64], is_query=False, batch_size=args.batch_size)
    ntok = int(enc.encode_documents(docs)[1][-1])
    lengths = np.diff(enc.token_ids(docs, is_query=False)[1])
    ours, theirs = interleaved(lambda: enc.encode_documents(docs, batch_size=args.batch_size),
                               lambda: ref.encode(docs, is_query=False, batch_size=args.batch_size), args.rounds)
    ratio = statistics.median(t / o for o, t in zip(ours, theirs))
    rows.append(f"| {shape_name} | documents: {len(docs)} pydocs passages (mean {lengths.mean():.0f}, max "
                f"{lengths.max()} tokens), {args.threads} threads | {ntok / statistics.median(ours):,.0f} tok/s | "
                f"{ntok / statistics.median(theirs):,.0f} tok/s | {ratio:.2f}x |")

    variants = []
    if args.int8:
        variants.append(("int8 dynamic quantisation (CPU)", dict(quantize="int8")))
    if args.bf16:
        variants.append(("bfloat16 (CPU)", dict(dtype=torch.bfloat16)))
    for label, kwargs in variants:
        q8 = Encoder.from_pretrained(path, **kwargs)
        q8.encode_documents(docs[:64])
        t8, tf = interleaved(lambda: q8.encode_documents(docs, batch_size=args.batch_size),
                             lambda: enc.encode_documents(docs, batch_size=args.batch_size), args.rounds)
        queries = [p[:80] for p in passages[-32:]]
        qf, mf = enc.encode_queries(queries)
        qq, mq = q8.encode_queries(queries)
        sub = docs[:256]
        sf = scores(qf, mf, *enc.encode_documents(sub))
        sq = scores(qq.float(), mq, *(x.float() if x.is_floating_point() else x for x in q8.encode_documents(sub)))
        top = 10
        overlap = np.mean([len(set(np.argsort(-sf[i])[:top]) & set(np.argsort(-sq[i])[:top])) / top
                           for i in range(len(queries))])
        rel = np.abs(sq - sf).max() / np.abs(sf).max()
        rows.append(f"| {shape_name} | documents, {label}, {args.threads} threads | "
                    f"{ntok / statistics.median(t8):,.0f} tok/s | ours float32: {ntok / statistics.median(tf):,.0f} "
                    f"tok/s | {statistics.median(f / e for e, f in zip(t8, tf)):.2f}x vs float32 |")
        notes.append(f"{shape_name} {label}: MaxSim scores of {len(queries)} queries x {len(sub)} passages: max abs "
                     f"difference {np.abs(sq - sf).max():.4f} ({rel:.2%} of the largest score), top-{top} overlap "
                     f"{overlap:.1%}")

    if args.compile:
        try:
            comp = Encoder.from_pretrained(path, compile=True)
            comp.encode_documents(docs[:64])
            comp.encode_documents(docs)
            tc, tf = interleaved(lambda: comp.encode_documents(docs, batch_size=args.batch_size),
                                 lambda: enc.encode_documents(docs, batch_size=args.batch_size), args.rounds)
            rows.append(f"| {shape_name} | documents, torch.compile, {args.threads} threads | "
                        f"{ntok / statistics.median(tc):,.0f} tok/s | ours eager: {ntok / statistics.median(tf):,.0f} "
                        f"tok/s | {statistics.median(f / c for c, f in zip(tc, tf)):.2f}x vs eager |")
        except Exception as e:  # noqa: BLE001 - compile needs a working C++ toolchain; report, go on
            notes.append(f"{shape_name} torch.compile failed: {type(e).__name__}: {str(e)[:200]}")

    # Long documents: passages joined up to the length, document_length set to it on both sides.
    if not args.skip_long:
        for length, count in ((4096, 2), (8192, 1)):
            enc_l = Encoder.from_pretrained(path, document_length=length)
            ref_l = pm.ColBERT(path, device="cpu", document_length=length)
            text, i = "", 0
            while True:
                text += " " + passages[i % len(passages)]
                i += 1
                if i % 16 == 0 and np.diff(enc_l.token_ids([text], is_query=False)[1])[0] >= length:
                    break
            long_docs = [text] * count
            ntok_l = int(enc_l.encode_documents(long_docs)[1][-1])
            ours, theirs = interleaved(lambda: enc_l.encode_documents(long_docs),
                                       lambda: ref_l.encode(long_docs, is_query=False, batch_size=1),
                                       max(1, args.rounds - 1))
            ratio = statistics.median(t / o for o, t in zip(ours, theirs))
            rows.append(f"| {shape_name} | long documents: {count} x {length} tokens, {args.threads} threads | "
                        f"{ntok_l / statistics.median(ours):,.0f} tok/s | {ntok_l / statistics.median(theirs):,.0f} "
                        f"tok/s | {ratio:.2f}x |")

    # Single-query latency, 1 thread.
    torch.set_num_threads(1)
    queries = [p[:120] for p in passages[-args.queries:]]
    lat_o, lat_t = [], []
    for q in queries[:8]:
        enc.encode_queries([q])
        ref.encode([q], is_query=True)
    for q in queries:
        lat_o.append(timed(lambda: enc.encode_queries([q])))
        lat_t.append(timed(lambda: ref.encode([q], is_query=True, show_progress_bar=False)))
    p50o, p50t = statistics.median(lat_o) * 1e3, statistics.median(lat_t) * 1e3
    rows.append(f"| {shape_name} | single query, p50 latency ({len(queries)} queries), 1 thread | {p50o:.2f} ms | "
                f"{p50t:.2f} ms | {p50t / p50o:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["17m", "32m"], choices=["17m", "32m"])
    ap.add_argument("--docs", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip-long", action="store_true")
    ap.add_argument("--int8", action="store_true", help="also int8 dynamic quantisation (speed, score effect)")
    ap.add_argument("--bf16", action="store_true", help="also bfloat16 on CPU (speed, score effect)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--corpus", default=CORPUS)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "edgecolbert-bench-encoder"))
    args = ap.parse_args()
    passages = load_passages(args.corpus)
    rows = ["| model | workload | edgecolbert-native | PyLate 1.6.0 | speed-up |", "| --- | --- | --- | --- | --- |"]
    notes: list[str] = []
    for shape in args.shapes:
        bench_shape(args, shape, passages, rows, notes)
        print("\n".join(rows[2:]), file=sys.stderr, flush=True)  # progress, in case a later shape is cut short
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, commit {commit}, "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print("\n".join(rows))
    for n in notes:
        print("- " + n)


if __name__ == "__main__":
    main()
