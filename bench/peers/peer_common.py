"""What the peer scripts share: the data file, recall, sizes, CPU time, the timed single-query loop and the
arguments every script takes. Imported by run_edgecolbert.py, run_fastplaid.py and run_pylate_plaid.py from
their own folder, so it depends on numpy alone (each peer venv has it)."""

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
