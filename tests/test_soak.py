"""Soak: many concurrent searches from threads in one process for a bounded time; resident memory stays
flat and every answer equals the single-threaded one (thread safety of the shared pool). The CI run lasts
EDGECOLBERT_SOAK_SECONDS (default 20 s; `make soak` runs 120 s)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import edgecolbert_native as ec
import index_helpers as H

SECONDS = float(os.environ.get("EDGECOLBERT_SOAK_SECONDS", "20"))
RSS_BOUND_MB = 48.0  # allowed growth of resident memory between warm-up and the end


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
def test_concurrent_search_soak(tmp_path):
    x, off, _ = H.clustered(3000, seed=9)
    q = H.queries_from(x, off, 64, seed=2)
    idx = ec.Index.build(tmp_path / "soak", x, off, nbits=2)
    want = [idx.search(q[i : i + 1], 10, num_threads=1) for i in range(len(q))]
    want_maxsim = ec.maxsim(q[:8], x, off, num_threads=1)
    for i in range(len(q)):  # warm-up: caches, pools and allocator arenas settle
        idx.search(q[i : i + 1], 10, num_threads=2)
    rss0 = _rss_mb()
    stop = time.monotonic() + SECONDS
    served = [0] * 6
    errors: list[str] = []

    def worker(t: int) -> None:
        rng = np.random.default_rng(t)
        while time.monotonic() < stop and not errors:
            i = int(rng.integers(0, len(q)))
            if t % 3 == 2:  # some threads hammer the raw kernel on the shared pool
                got = ec.maxsim(q[:8], x, off, num_threads=2)
                if not np.array_equal(got, want_maxsim):
                    errors.append(f"thread {t}: maxsim differs")
            else:
                s, ids = idx.search(q[i : i + 1], 10, num_threads=2)
                if not (np.array_equal(ids, want[i][1]) and np.array_equal(s, want[i][0])):
                    errors.append(f"thread {t}: query {i} differs")
            served[t] += 1

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    growth = _rss_mb() - rss0
    print(f"soak: {sum(served)} searches from 6 threads in {SECONDS:.0f} s, RSS growth {growth:.1f} MB")
    assert not errors, errors[:3]
    assert sum(served) > 0
    assert growth < RSS_BOUND_MB, f"resident memory grew by {growth:.1f} MB"
