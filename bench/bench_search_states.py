"""Single-query latency and recall of Index.search in four index states (issue 21): one segment unfiltered,
a 10% random ``subset``, 10% of the documents deleted, and an index built in 4 segments (``build`` on a
quarter, ``add`` three quarters). Every state is one native call per query since issue 21; the bar is each
p50 within 1.3x of the one-segment unfiltered p50 of the same run, with filtered recall@10 (against
exhaustive MaxSim of the float32 tokens over the allowed documents) at least the unfiltered recall.

Two comparisons: every state at the same parameters (the pool rule: a subset of more than one document per
centroid widens the probe until ndocs of its documents are candidates, a sparser one fills the pool with its
documents; deletions never widen it), and each filtered state at the smallest ndocs of --grid whose
recall@10 reaches the unfiltered one (the same recall).

    .venv/bin/python bench/peers/make_data.py --docs 20000 --out /tmp/peers20k
    .venv/bin/python bench/bench_search_states.py --data /tmp/peers20k/data.npz --work /tmp/search-states

The indexes are built once under --work (nbits 2) and reused. Timing: one query per ``search`` call at
1 thread, the rows interleaved in blocks of BLOCK queries (queries 0-19 in every row, then 20-39, ...);
--runs repeats the whole pass, each run reported. Both the wall time and the calling thread's CPU time
(``time.thread_time``: the search runs on it at 1 thread) of each query are taken; on a host shared with other
jobs a query longer than a few ms is often descheduled for a whole time slice (~8 ms seen), which the CPU time
leaves out, so the bars are read on CPU p50. Prints one JSON line per row and run, then a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import edgecolbert_native as ec  # noqa: E402
from edgecolbert_native import Index  # noqa: E402


FILTERED = ("10% subset", "10% deleted")  # the rows whose recall must reach the unfiltered recall
# Queries timed per row in turn: short enough that a change in the machine's load hits every row alike, long
# enough that a row runs with its own index in cache (per query, the row timed first paid for the others').
BLOCK = 20


def cpu_model() -> str:
    try:
        out = subprocess.check_output(["lscpu"], text=True)
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.CalledProcessError):
        return "unknown"


def commit() -> str | None:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.check_output(["git", "-C", here, "rev-parse", "--short", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def build_states(tokens: np.ndarray, offsets: np.ndarray, work: str, nbits: int, seed: int) -> dict:
    """{name: (Index, subset or None, allowed mask over the documents)}; indexes built once under work."""
    n = len(offsets) - 1
    rng = np.random.default_rng(seed)
    one_path, seg_path, del_path = (os.path.join(work, x) for x in ("one", "segments4", "deleted10"))
    if not os.path.exists(os.path.join(one_path, "manifest.json")):
        Index.build(one_path, tokens, offsets, nbits=nbits, overwrite=True, progress=False)
    if not os.path.exists(os.path.join(seg_path, "manifest.json")):
        edges = np.linspace(0, n, 5).round().astype(np.int64)
        a, b = int(edges[0]), int(edges[1])
        idx = Index.build(seg_path, tokens[offsets[a]:offsets[b]], offsets[a:b + 1] - offsets[a], nbits=nbits,
                          overwrite=True, progress=False)
        for a, b in zip(edges[1:-1], edges[2:]):
            idx.add(tokens[offsets[a]:offsets[b]], offsets[a:b + 1] - offsets[a], doc_ids=np.arange(a, b))
    gone = np.sort(rng.choice(n, size=n // 10, replace=False))
    if not os.path.exists(os.path.join(del_path, "manifest.json")):
        shutil.rmtree(del_path, ignore_errors=True)
        shutil.copytree(one_path, del_path)
        Index.open(del_path).delete(gone)
    subset = np.sort(rng.choice(n, size=n // 10, replace=False))
    everything = np.ones(n, bool)
    in_subset = np.zeros(n, bool)
    in_subset[subset] = True
    live = np.ones(n, bool)
    live[gone] = False
    one = Index.open(one_path)
    segs = Index.open(seg_path)
    assert len(segs.segments) == 4
    return {"one segment": (one, None, everything), "10% subset": (one, subset, in_subset),
            "10% deleted": (Index.open(del_path), None, live), "4 segments": (segs, None, everything)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/peers20k/data.npz")
    ap.add_argument("--work", default="/tmp/search-states")
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--nprobe", type=int, default=1)
    ap.add_argument("--ndocs", type=int, default=160)
    ap.add_argument("--rerank", type=int, default=24)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--grid", type=int, nargs="+", default=[16, 32, 64, 96, 128],
                    help="ndocs tried for the same-recall rows of the filtered states (smallest that reaches it)")
    a = ap.parse_args()
    z = np.load(a.data)
    tokens, offsets, queries = z["tokens"], z["offsets"], z["queries"]
    os.makedirs(a.work, exist_ok=True)
    states = build_states(tokens, offsets, a.work, a.nbits, a.seed)
    # Exhaustive MaxSim of the float32 tokens, every query against every document (cached: minutes).
    full_path = os.path.join(a.work, f"maxsim-{len(queries)}.npy")
    if os.path.exists(full_path):
        full = np.load(full_path)
    else:
        full = ec.maxsim(queries, tokens, offsets)
        np.save(full_path, full)
    kw = dict(nprobe=a.nprobe, ndocs=a.ndocs, rerank=a.rerank, num_threads=1, exhaustive=False)
    info = {"cpu": cpu_model(), "commit": commit(), "variant": ec.info()["variant"], "nbits": a.nbits,
            "docs": len(offsets) - 1, "tokens": int(offsets[-1]), "queries": len(queries), **kw}
    print(json.dumps(info), flush=True)
    truth = {}
    for name, (idx, subset, allowed) in states.items():
        s = np.where(allowed[None, :], full, -np.inf)
        truth[name] = np.argsort(-s, axis=1, kind="stable")[:, :10]

    def recall_of(name: str, ndocs: int) -> float:
        idx, subset, _ = states[name]
        return recall(idx.search(queries, 10, subset=subset, **{**kw, "ndocs": ndocs})[1], truth[name])

    # Rows: every state at the same parameters; each filtered state also at the smallest ndocs of the grid
    # whose recall@10 reaches the unfiltered recall ("same recall").
    unfiltered = recall_of("one segment", a.ndocs)
    rows = [(name, a.ndocs, "same parameters") for name in states]
    for name in FILTERED:
        for nd in sorted(set(a.grid) | {a.ndocs}):
            if recall_of(name, nd) >= unfiltered:
                rows.append((name, nd, "same recall"))
                break
    found = {r: recall_of(r[0], r[1]) for r in rows}
    for name, nd, _ in rows:  # warm
        idx, subset, _ = states[name]
        idx.search(queries[:5], 10, subset=subset, **{**kw, "ndocs": nd})
    results = []
    for run in range(a.runs):
        wall: dict = {r: [] for r in rows}
        cpu: dict = {r: [] for r in rows}
        for b0 in range(0, len(queries), BLOCK):
            for r in rows:
                idx, subset, _ = states[r[0]]
                for i in range(b0, min(b0 + BLOCK, len(queries))):
                    c, t = time.thread_time(), time.perf_counter()
                    idx.search(queries[i:i + 1], 10, subset=subset, **{**kw, "ndocs": r[1]})
                    wall[r].append(time.perf_counter() - t)
                    cpu[r].append(time.thread_time() - c)
        base = float(np.percentile(cpu[rows[0]], 50)) * 1e3
        base_wall = float(np.percentile(wall[rows[0]], 50)) * 1e3
        for r in rows:
            p50 = float(np.percentile(cpu[r], 50)) * 1e3
            w50 = float(np.percentile(wall[r], 50)) * 1e3
            row = {"run": run + 1, "state": r[0], "ndocs": r[1], "compared at": r[2], "cpu_p50_ms": round(p50, 3),
                   "cpu_vs_one_segment": round(p50 / base, 3), "wall_p50_ms": round(w50, 3),
                   "wall_vs_one_segment": round(w50 / base_wall, 3),
                   "wall_p99_ms": round(float(np.percentile(wall[r], 99)) * 1e3, 3), "recall@10": round(found[r], 4)}
            results.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nCPU: {info['cpu']}; commit {info['commit']}; {info['docs']:,} documents, {info['tokens']:,} tokens, "
          f"nbits {a.nbits}; nprobe {a.nprobe}, rerank {a.rerank}, 1 thread; {len(queries)} queries; unfiltered "
          f"recall@10 {unfiltered:.4f}\n")
    print("| run | state | ndocs | compared at | CPU p50 ms | / one segment | wall p50 ms | / one segment | wall p99 ms "
          "| recall@10 | bars (CPU) |")
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        ok = r["cpu_vs_one_segment"] <= 1.3 and (r["state"] not in FILTERED or r["recall@10"] >= unfiltered)
        print(f"| {r['run']} | {r['state']} | {r['ndocs']} | {r['compared at']} | {r['cpu_p50_ms']:.3f} | "
              f"{r['cpu_vs_one_segment']:.2f} | {r['wall_p50_ms']:.3f} | {r['wall_vs_one_segment']:.2f} | "
              f"{r['wall_p99_ms']:.3f} | {r['recall@10']:.4f} | {'met' if ok else 'missed'} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
