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
    """Each case in a fresh process, interleaved run by run; beside them the same interpreter doing nothing
    and importing torch (what any process that encodes a query pays, whatever the index)."""
    exe = os.path.join(os.path.dirname(sys.executable), "edgecolbert")
    q = "open a file in python"
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "search": [exe, "search", out, q, "-k", "10"],
        "search --json": [exe, "search", out, q, "-k", "10", "--json"],
        "search --where": [exe, "search", out, q, "-k", "10", "--where", "lang = ? AND year >= ?",
                           "--param", "en", "--param", "2015"],
        "search --hybrid": [exe, "search", out, q, "-k", "10", "--hybrid"],
        "search --verify": [exe, "search", out, q, "-k", "10", "--verify"],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, cmd in cases.items():
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            times[name].append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise SystemExit(f"{name}: {r.stderr}")
            if name == "search --where":
                shown = r.stdout
    for name, ts in times.items():
        print(f"{name:<26} runs (s): {', '.join(f'{t:.2f}' for t in ts)}   median {np.median(ts):.2f}")
    print("--where output:\n" + shown[:400])


def legacy_parse(out: str, n: int) -> None:
    """What `search` did before (issue 21): parse every document of docs.jsonl.gz, once per process."""
    import gzip

    from edgecolbert_native.cli.corpus import read_documents

    path = os.path.join(out, "legacy-docs.jsonl.gz")
    if not os.path.exists(path):
        from edgecolbert_native.index import Index

        idx = Index.open(os.path.join(out, "index"), verify=False)
        with gzip.open(path, "wt", compresslevel=6) as f:
            for a in range(0, n, 50_000):
                for d in idx.get(list(idx.ids[a:a + 50_000])):
                    f.write(json.dumps({"id": d["id"], "title": "", "text": d["text"]}) + "\n")
    t0 = time.perf_counter()
    docs = {d.id: d for d in read_documents(path)}
    print(f"before: reading docs.jsonl.gz whole ({os.path.getsize(path) / 1e6:.0f} MB, {len(docs):,} documents): "
          f"{time.perf_counter() - t0:.2f} s")


def breakdown(out: str, runs: int) -> None:
    """Where a search's time goes, in this process (after the imports): opening the index (with and without
    the CRC-32 of every file), the filter alone, a search, the same search filtered, and reading 10 documents."""
    from edgecolbert_native.index import Index

    rng = np.random.default_rng(7)
    rows: dict[str, list[float]] = {}

    def t(name, f):
        t0 = time.perf_counter()
        r = f()
        rows.setdefault(name, []).append(time.perf_counter() - t0)
        return r

    for _ in range(runs):
        t("open (verify=False)", lambda: Index.open(os.path.join(out, "index"), verify=False))
        idx = t("open (verify=True, CRC-32 of every file)", lambda: Index.open(os.path.join(out, "index")))
        q = rng.standard_normal((1, 20, idx.dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=2, keepdims=True)
        hits = t("filter alone: lang = ? AND year >= ? (~1/4 x 10/35 of the documents)",
                 lambda: idx.docstore.filter("lang = ? AND year >= ?", ("en", 2015), "bench"))
        t("search k 10, 1 thread", lambda: idx.search(q, 10, num_threads=1))
        _, ids = t("search k 10, 1 thread, --where as above", lambda: idx.search(
            q, 10, num_threads=1, where="lang = ? AND year >= ?", params=("en", 2015)))
        t("search k 10, 1 thread, hybrid", lambda: idx.search(q, 10, num_threads=1, hybrid=True,
                                                              query_texts=["open a file in python"]))
        t("get 10 documents", lambda: idx.get(list(ids[0])))
    print(f"filter matches {len(hits):,} documents")
    for name, ts in rows.items():
        print(f"{name:<72} (ms): {', '.join(f'{1e3 * x:.1f}' for x in ts)}")


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
    breakdown(args.dir, args.runs)
    legacy_parse(args.dir, args.docs)


if __name__ == "__main__":
    main()
