"""This machine's own limits, measured on it: the peak arithmetic rate of each ISA variant's
multiply-add instruction (float32 FMA, bfloat16 dot, int8 dot) on one thread and on all threads, and the
read bandwidth from L1, L2, L3 and memory (csrc/include/edgecolbert/peaks.hpp explains the probes).

`edgecolbert bench` divides each kernel's rate by the limit that bounds it (the roofline). A peak here is
the best of several short repeats: other work on the machine can only slow a repeat down, so the fastest
one is the closest to what the core can do. Every repeat's wall and thread-CPU time is kept, so a report
shows how busy the machine was (wall > CPU: the probe's threads were preempted).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _native

# Every float32/bfloat16 probe counts a multiply and an add per product (FLOP); int8 probes count the
# same for integer products (OP). Rates are in 1e9 per second.


def compute_probes() -> list[dict[str, Any]]:
    """Every compute probe compiled in: name, variant, dtype, instruction, accumulators,
    ops_per_instruction, supported (whether this CPU runs its variant)."""
    return list(_native.compute_probes())


def read_probes() -> list[dict[str, Any]]:
    """Every read-bandwidth probe compiled in: name, variant, instruction, block_elements, supported."""
    return list(_native.read_probes())


def cache_sizes() -> dict[str, Any]:
    """Data cache sizes in bytes as the OS reports them (l1d, l2, l3, l3_shared_by, source: sysfs,
    sysfs+sysconf where sysconf gave a level sysfs lacks, sysconf or none; 0 where unknown)."""
    return dict(_native.cache_sizes())


def run_compute_probe(name: str, iters: int, one: int = 1) -> float:
    """Runs a compute probe's loop for `iters` iterations with every operand equal to `one`; returns the
    operations it performed, counted from the values it computed (iters x accumulators x
    ops_per_instruction when one == 1)."""
    return float(_native.run_compute_probe(name, iters, one))


def run_read_probe(name: str, buffer: np.ndarray, passes: int = 1) -> int:
    """Sum of an int32 buffer (length a multiple of the probe's block_elements) read `passes` times."""
    return int(_native.run_read_probe(name, buffer, passes))


def buffer_sizes(caches: dict[str, Any], threads: int) -> dict[str, tuple[int | None, str]]:
    """Bytes per thread for each level's read probe at `threads` threads, with the reason where a
    level cannot be measured (size None). A level's buffer is half of that cache (per thread for the
    private L1 and L2; the L3 shared among the threads), larger than the level below; memory is 4x the
    L3 (at least 64 MiB, at most 1 GiB) split among the threads."""
    l1, l2, l3 = caches.get("l1d", 0), caches.get("l2", 0), caches.get("l3", 0)
    out: dict[str, tuple[int | None, str]] = {}
    out["L1"] = (l1 // 2, "half of L1d") if l1 else (None, "L1d size unknown")
    if l2 and l2 // 2 > l1:
        out["L2"] = (l2 // 2, "half of L2")
    else:
        out["L2"] = (None, "L2 size unknown" if not l2 else "L2 not larger than 2 x L1d")
    if l3:
        share = l3 // (2 * threads)
        out["L3"] = (share, f"half of L3 / {threads} threads") if share > 2 * l2 else (
            None, f"half of L3 / {threads} threads is not above 2 x L2")
    else:
        out["L3"] = (None, "L3 size unknown")
    total = min(max(4 * l3, 64 << 20), 1 << 30) if l3 else 256 << 20
    out["memory"] = (total // threads, f"{total >> 20} MiB / {threads} threads")
    return out


def _summary(t: dict[str, Any]) -> dict[str, Any]:
    wall, cpu = t["wall_s"], t["cpu_s"]
    rates = [t["amount"] / w / 1e9 for w in wall]
    cpu_rates = [t["amount"] / c / 1e9 for c in cpu if c > 0]
    return {
        "best": max(rates), "median": float(np.median(rates)), "runs": rates,
        "best_by_cpu_time": max(cpu_rates) if cpu_rates else None,
        # wall / CPU seconds of the repeat with the best rate: 1.0 on an idle machine
        "wall_over_cpu": wall[rates.index(max(rates))] / max(cpu[rates.index(max(rates))], 1e-12),
        "iters": t["iters"], "check": bool(t["check"]),
    }


def measure(threads: list[int] | None = None, seconds: float = 0.05, repeats: int = 5,
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Times every supported compute probe and the widest supported read probe at every level, on each
    thread count (default: 1 and all usable cores). Returns {"caches", "compute": [...], "bandwidth":
    [...]} with rates in 1e9 operations (compute) or bytes (bandwidth) per second; see docs/bench.md."""
    say = progress or (lambda s: None)
    if threads is None:
        threads = sorted({1, int(_native.info()["default_num_threads"])})
    caches = cache_sizes()
    compute: list[dict[str, Any]] = []
    for p in compute_probes():
        if not p["supported"]:
            continue
        for n in threads:
            say(f"peak {p['name']} on {n} thread(s)")
            t = _native.time_compute_probe(p["name"], n, seconds, repeats)
            compute.append({"probe": p["name"], "variant": p["variant"], "dtype": p["dtype"],
                            "instruction": p["instruction"], "threads": n, "unit": "GOP/s", **_summary(t)})
    bandwidth: list[dict[str, Any]] = []
    readers = [p for p in read_probes() if p["supported"]]
    if readers:
        reader = readers[-1]  # the widest loads this CPU has
        for n in threads:
            for level, (size, why) in buffer_sizes(caches, n).items():
                row: dict[str, Any] = {"level": level, "probe": reader["name"], "threads": n, "bytes_per_thread": size,
                                       "sized_as": why, "unit": "GB/s"}
                if size is None:
                    row["skipped"] = why
                else:
                    say(f"read bandwidth {level} ({size >> 10} KiB per thread) on {n} thread(s)")
                    row.update(_summary(_native.time_read_probe(reader["name"], size, n, seconds, repeats)))
                bandwidth.append(row)
    return {"caches": caches, "seconds_per_repeat": seconds, "repeats": repeats, "compute": compute,
            "bandwidth": bandwidth}
