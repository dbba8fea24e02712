"""What the peer scripts share: the data file, recall, sizes, CPU time, the timed single-query loop and the
arguments every script takes. Imported by run_edgecolbert.py, run_fastplaid.py, run_pylate_plaid.py,
search_floor.py and rerank_kernels.py from their own folder, so it depends on numpy alone (each peer venv has it)."""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time
from typing import Any, Callable, Sequence

import numpy as np


def load(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    z = np.load(path)
    return z["tokens"], z["offsets"], z["queries"], z["truth"]


def dir_bytes(d: str) -> int:
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def recall(found: Sequence[Any], truth: np.ndarray) -> float:
    return float(np.mean([len(set(np.asarray(f).tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def cpu_seconds() -> float:
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def commit() -> str | None:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.check_output(["git", "-C", here, "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:  # noqa: BLE001
        return None


def timed(search_one: Callable[[Any], Any], queries: Sequence[Any], warmup: int = 5) -> tuple[list, dict]:
    """One query per call after ``warmup`` untimed calls: the ids found and p50/p99 of wall and CPU ms."""
    for q in queries[:warmup]:
        search_one(q)
    found, ts, cs = [], [], []
    for q in queries:
        c = time.process_time()
        t = time.perf_counter()
        found.append(search_one(q))
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    wall, cpu = np.array(ts) * 1e3, np.array(cs) * 1e3
    return found, {"p50_ms": round(float(np.percentile(wall, 50)), 2), "p99_ms": round(float(np.percentile(wall, 99)), 2),
                   "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 2),
                   "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 2)}


def build_row(path: str, tokens_total: int, wall_s: float, cpu_s: float) -> dict:
    nbytes = dir_bytes(path)
    return {"tokens": tokens_total, "build_s": round(wall_s, 1), "build_cpu_s": round(cpu_s, 1), "index_bytes": nbytes,
            "bytes_per_token": round(nbytes / tokens_total, 2)}


def parser(system: str, index_default: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=f"{system} on the shared peer data (bench/peers/make_data.py)")
    ap.add_argument("mode", choices=["build", "sweep", "latency"])
    ap.add_argument("--data", default="build/peers/data-5000/data.npz")
    ap.add_argument("--index", default=index_default)
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def setting_parser(doc: str | None, queries: int) -> argparse.ArgumentParser:
    """The arguments of the scripts that study one PLAID setting of an edgecolbert index (search_floor.py,
    rerank_kernels.py)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a peers data.npz (queries [nq, Lq, dim])")
    ap.add_argument("--index", required=True, help="an edgecolbert index of the data's documents (one segment)")
    ap.add_argument("--nprobe", type=int, required=True)
    ap.add_argument("--ndocs", type=int, required=True)
    ap.add_argument("--rerank", type=int, required=True)
    ap.add_argument("--queries", type=int, default=queries)
    return ap
