"""The machine's limits (edgecolbert_native.peaks, csrc/cpu/peaks*.cpp): the probes' arithmetic, not their
speed. A probe's result is counted from the values its loop computed, so it proves the loop ran the
operations it claims; the operations per instruction must be what the instruction does (lanes x products
per lane x 2), so that a rate in operations per second is the instruction's. ctest's probe_code ties the
count to the compiled loop (one instruction per accumulator, no memory access).
"""

from __future__ import annotations

import numpy as np
import pytest

import edgecolbert_native as ec
from edgecolbert_native import peaks

# What each instruction does, from the ISA manuals: 32-bit lanes x products added per lane, 2 operations
# (a multiply and an add) per product. Written out here, independently of the C++ table.
ISA_OPS = {
    "mulss + addss": 1 * 1 * 2,
    "fmul s + fadd s": 1 * 1 * 2,
    "vfmadd231ps ymm": 8 * 1 * 2,
    "vfmadd231ps zmm": 16 * 1 * 2,
    "vdpbf16ps zmm": 16 * 2 * 2,
    "vpdpbusd zmm": 16 * 4 * 2,
    "{vex} vpdpbusd ymm": 8 * 4 * 2,
    "fmla .4s": 4 * 1 * 2,
    "bfdot .4s": 4 * 2 * 2,
    "sdot .4s": 4 * 4 * 2,
    "smmla": 4 * 8 * 2,  # 2x8 by 8x2 into 2x2: 8 products into each of 4 lanes
}

COMPUTE = peaks.compute_probes()
SUPPORTED = [p for p in COMPUTE if p["supported"]]
READERS = [p for p in peaks.read_probes() if p["supported"]]


def test_every_variant_this_cpu_runs_has_its_probes():
    variants = set(ec.info()["variants"])
    assert {p["variant"] for p in SUPPORTED} <= variants
    assert "fma_f32_scalar" in {p["name"] for p in SUPPORTED}
    info = ec.info()
    if info["fast_int8_centroid_scores"]:  # a path with an int8 dot product has a probe of it
        assert any(p["dtype"] == "int8" for p in SUPPORTED)
    for p in COMPUTE:
        assert p["supported"] == (p["variant"] in variants)


@pytest.mark.parametrize("probe", COMPUTE, ids=lambda p: p["name"])
def test_ops_per_instruction_is_what_the_instruction_does(probe):
    assert probe["instruction"] in ISA_OPS, f"{probe['instruction']}: add it to ISA_OPS from the manual"
    assert probe["ops_per_instruction"] == ISA_OPS[probe["instruction"]]
    assert probe["accumulators"] >= 8  # latency x pipes on current cores needs 4..16 chains


@pytest.mark.parametrize("probe", SUPPORTED, ids=lambda p: p["name"])
def test_compute_probe_counts_the_operations_it_ran(probe):
    per_iter = probe["accumulators"] * probe["ops_per_instruction"]
    for iters in (1, 2, 7, 1000, 12345):
        assert peaks.run_compute_probe(probe["name"], iters) == iters * per_iter
    assert peaks.run_compute_probe(probe["name"], 0) == 0
    # The count comes from the values: products of zeros add nothing.
    assert peaks.run_compute_probe(probe["name"], 1000, one=0) == 0


@pytest.mark.parametrize("probe", READERS, ids=lambda p: p["name"])
def test_read_probe_sums_what_it_read(probe):
    rng = np.random.default_rng(5)
    for blocks in (1, 3, 257):
        buf = rng.integers(-1000, 1000, blocks * probe["block_elements"], dtype=np.int32)
        for passes in (1, 3):
            assert peaks.run_read_probe(probe["name"], buf, passes) == int(buf.sum(dtype=np.int64)) * passes
    with pytest.raises(ValueError, match="multiple of"):
        peaks.run_read_probe(probe["name"], np.ones(probe["block_elements"] + 1, np.int32))
    with pytest.raises(ValueError, match="int32"):
        peaks.run_read_probe(probe["name"], np.ones((2, probe["block_elements"]), np.int32))


def test_bad_probe_arguments_are_refused():
    with pytest.raises(ValueError, match="no compute probe named"):
        peaks.run_compute_probe("fma_f32_nothing", 1)
    with pytest.raises(ValueError, match="iters"):
        peaks.run_compute_probe("fma_f32_scalar", -1)
    for p in COMPUTE:
        if not p["supported"]:
            with pytest.raises(ValueError, match="cannot run"):
                peaks.run_compute_probe(p["name"], 1)
    from edgecolbert_native import _native

    with pytest.raises(ValueError, match="threads"):
        _native.time_compute_probe("fma_f32_scalar", 0, 0.001, 1)
    with pytest.raises(ValueError, match="bytes_per_thread"):
        _native.time_read_probe(READERS[0]["name"], 0, 1, 0.001, 1)


def test_timing_runs_every_thread_and_checks_its_results():
    from edgecolbert_native import _native

    p = SUPPORTED[-1]
    for threads in (1, 2):
        t = _native.time_compute_probe(p["name"], threads, 0.002, 2)
        assert t["check"] and t["threads"] == threads and len(t["wall_s"]) == len(t["cpu_s"]) == 2
        assert t["amount"] == t["iters"] * p["accumulators"] * p["ops_per_instruction"] * threads
    t = _native.time_read_probe(READERS[-1]["name"], 1 << 14, 2, 0.002, 2)
    assert t["check"] and t["amount"] == (1 << 14) * t["iters"] * 2


def test_buffer_sizes_follow_the_caches():
    caches = {"l1d": 32 << 10, "l2": 1 << 20, "l3": 32 << 20}
    one = peaks.buffer_sizes(caches, 1)
    assert one["L1"][0] == 16 << 10 and one["L2"][0] == 512 << 10 and one["L3"][0] == 16 << 20
    assert one["memory"][0] == 128 << 20  # 4 x L3
    two = peaks.buffer_sizes(caches, 2)
    assert two["L1"][0] == 16 << 10 and two["L3"][0] == 8 << 20 and two["memory"][0] == 64 << 20
    # 64 threads sharing that L3: each share would fit its own L2, so the L3 level is not measurable
    many = peaks.buffer_sizes(caches, 64)
    assert many["L3"][0] is None and "not above 2 x L2" in many["L3"][1]
    unknown = peaks.buffer_sizes({"l1d": 0, "l2": 0, "l3": 0}, 1)
    assert unknown["L1"][0] is None and unknown["L2"][0] is None and unknown["L3"][0] is None
    assert unknown["memory"][0] == 256 << 20


def test_cache_sizes_come_from_the_os():
    c = peaks.cache_sizes()
    assert c["source"] in ("sysfs", "sysfs+sysconf", "sysconf", "none")
    if c["source"] != "none":
        assert c["l1d"] > 0


def test_measure_reports_every_supported_probe_and_level():
    r = peaks.measure(threads=[1], seconds=0.002, repeats=1)
    assert {c["probe"] for c in r["compute"]} == {p["name"] for p in SUPPORTED}
    for c in r["compute"]:
        assert c["check"] and c["best"] > 0 and c["unit"] == "GOP/s" and c["threads"] == 1
    levels = {b["level"]: b for b in r["bandwidth"]}
    assert set(levels) == {"L1", "L2", "L3", "memory"}
    for b in levels.values():
        assert ("skipped" in b) or (b["best"] > 0 and b["check"] and b["unit"] == "GB/s")
