"""`edgecolbert search` on a CLI index of 10^6 documents, timed end to end (issue 21: the document store is
read by key, never parsed whole; issue 22: filters and hybrid search at that size).

    .venv/bin/python bench/bench_cli_scale.py --dir /tmp/cli-1m --docs 1000000 --runs 5

Building the index cheaply: the query encoder is a tiny random-weight BERT ColBERT checkpoint made here
(tests/encoder_helpers.bert_colbert: 3 layers, hidden 64, dim 24); the documents are not encoded but given
random unit vectors of that dim (4..12 tokens each), a short random text and metadata
(`lang`, `year`, `grp`), through `Index.build` with texts and metadata, plus the CLI's `meta.json`, so
the directory is what `edgecolbert index` writes. Then each timed run is a fresh process
(`edgecolbert search DIR "query" -k 10`, plain, `--where`, `--hybrid`, `--json`), from process start to
its exit, measured by the parent with `time.perf_counter()` around `subprocess.run`; every run is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
WORDS = ("python file socket thread queue string bytes list dict tuple open read write close path "
         "module class function method import error value type number float integer").split()


def build(out: str, n: int, dim: int, seed: int, num_centroids: int) -> None:
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from encoder_helpers import bert_colbert
    from edgecolbert_native.index import Index

    os.makedirs(out, exist_ok=True)
    model = bert_colbert(os.path.join(out, "model"), dim=dim)
    rng = np.random.default_rng(seed)
    lens = rng.integers(4, 13, n)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    t0 = time.perf_counter()

    def batches(step: int = 100_000):
        for a in range(0, n, step):
            b = min(n, a + step)
            x = rng.standard_normal((int(offsets[b] - offsets[a]), dim)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            yield x, offsets[a:b + 1] - offsets[a]

    words = np.array(WORDS)

    def texts():
        r = np.random.default_rng(seed + 1)
        for i in range(n):
            yield f"document {i} " + " ".join(words[r.integers(0, len(words), 8)])

    def metadata():
        for i in range(n):
            yield {"lang": ("en", "fr", "de", "es")[i % 4], "year": 1990 + i % 35, "grp": i % 1000}

    Index.build(os.path.join(out, "index"), batches(), doc_ids=[f"d{i}" for i in range(n)], nbits=2,
                num_centroids=num_centroids, texts=texts(), metadata=metadata(), overwrite=True)
    meta = {"model": model, "field": "text", "nbits": 2, "num_docs": n, "dim": dim, "corpus": None,
            "fingerprint": "bench_cli_scale"}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"built {n:,} documents, {int(offsets[-1]):,} tokens in {time.perf_counter() - t0:.1f} s", flush=True)


def time_search(out: str, runs: int) -> None:
    exe = os.path.join(os.path.dirname(sys.executable), "edgecolbert")
    cases = {
        "plain": [out, "open a file in python", "-k", "10"],
        "--json": [out, "open a file in python", "-k", "10", "--json"],
        "--where": [out, "open a file in python", "-k", "10", "--where", "lang = ? AND year >= ?",
                    "--param", "en", "--param", "2015"],
        "--hybrid": [out, "open a file in python", "-k", "10", "--hybrid"],
    }
    for name, args in cases.items():
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            r = subprocess.run([exe, "search", *args], capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise SystemExit(f"{name}: {r.stderr}")
        print(f"{name:<9} runs (s): {', '.join(f'{t:.3f}' for t in times)}   median {np.median(times):.3f}")
    print("last output:\n" + r.stdout[:600])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=24)
    ap.add_argument("--centroids", type=int, default=8192)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.dir, "meta.json")):
        build(args.dir, args.docs, args.dim, args.seed, args.centroids)
    time_search(args.dir, args.runs)


if __name__ == "__main__":
    main()
