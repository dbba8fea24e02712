"""What `edgecolbert bench` does with its measurements (docs/bench.md): the roofline arithmetic that turns a
kernel's operations, bytes and time into a fraction of this machine's limit, the report's JSON schema
(version 2) and its validator, `--compare` verdicts, the text tables and the `--plot` figure.

Nothing here measures anything: every function takes numbers (a `peaks.measure()` result, a row's counts and
times), so the tests check the arithmetic on hand-made peaks.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Literal

SCHEMA = "edgecolbert-bench/2"
SCHEMA_VERSION = 2

# The ISA variants in the order the dispatch ranks them within a family (docs/arm.md, docs/search-path.md):
# a row's peak comes from its own variant or the nearest one below it that has a probe of the dtype.
VARIANT_ORDER = ("scalar", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16",
                 "neon", "neon_dotprod", "neon_bf16", "neon_i8mm")
LEVELS = ("L1", "L2", "L3", "memory")
BOUNDS = ("compute", "bandwidth", "compute (composite: each part at its peak)", "unknown")
COMPOSITE = BOUNDS[2]


def variant_family(variant: str) -> str:
    """avx2_vnni -> avx2, avx512_bf16 -> avx512, neon_i8mm -> neon, scalar -> scalar."""
    return variant.split("_", 1)[0]


def best_variant(variants: list[str]) -> str | None:
    """The highest-ranked of `variants` (the runnable ones): what an external library (numpy's BLAS, the
    peers), which picks its own SIMD whatever EDGECOLBERT_ISA pins, can use."""
    known = [v for v in variants if v in VARIANT_ORDER]
    return max(known, key=VARIANT_ORDER.index) if known else None


def compute_peak(peaks: dict, variant: str, dtype: str, threads: int) -> dict | None:
    """The compute probe that bounds a row of `dtype` ("float32", "bfloat16", "int8") run by `variant` on
    `threads` threads: the probe of that dtype from the row's variant or the nearest variant below it in its
    family (avx512_bf16 -> avx512_vnni's vpdpbusd for int8, avx512's FMA for float32); None when there is
    none (an int8 row on a core without an int8 dot instruction)."""
    if variant not in VARIANT_ORDER:
        return None
    rank = VARIANT_ORDER.index(variant)
    best: dict | None = None
    for p in peaks.get("compute", []):
        v = p.get("variant")
        if (p.get("dtype") != dtype or p.get("threads") != threads or v not in VARIANT_ORDER
                or variant_family(v) != variant_family(variant) or VARIANT_ORDER.index(v) > rank):
            continue
        if best is None or VARIANT_ORDER.index(v) > VARIANT_ORDER.index(best["variant"]):
            best = p
    return best


def level_of(nbytes: float, threads: int, caches: dict) -> str:
    """The smallest level that holds a working set of `nbytes` read by `threads` threads: L1 and L2 are
    private (each thread holds its share), the L3 is shared (it holds the whole set); 0 = size unknown."""
    share = nbytes / max(threads, 1)
    l1, l2, l3 = caches.get("l1d", 0), caches.get("l2", 0), caches.get("l3", 0)
    if l1 and share <= l1:
        return "L1"
    if l2 and share <= l2:
        return "L2"
    if l3 and nbytes <= l3:
        return "L3"
    return "memory"


def bandwidth_peak(peaks: dict, level: str, threads: int) -> dict | None:
    """The read-bandwidth measurement of `level` on `threads` threads, or of the next larger level that was
    measured when that one was skipped (its buffer would not fit: a slower level, a conservative roof)."""
    for lv in LEVELS[LEVELS.index(level):]:
        for b in peaks.get("bandwidth", []):
            if b.get("level") == lv and b.get("threads") == threads and "skipped" not in b:
                return b
    return None


def roofline(ops: float, nbytes: float, median_s: float, compute: float | None, bandwidth: float | None) -> dict:
    """The roofline fields of a row: rate (1e9 operations/s, from the median time), intensity (operations
    per byte), attainable = min(compute peak, intensity x bandwidth) in 1e9/s, which side bounds it, and
    fraction = rate / attainable. A missing compute peak leaves bound "unknown" and no fraction: the
    bandwidth roof alone would overstate what the core can do."""
    rate = ops / median_s / 1e9
    intensity = ops / nbytes if nbytes > 0 else math.inf
    out: dict[str, Any] = {"rate": rate, "intensity": intensity, "attainable": None, "bound": "unknown",
                           "fraction": None}
    if compute is None:
        return out
    roof = intensity * bandwidth if bandwidth is not None else math.inf
    if compute <= roof:
        out.update(attainable=compute, bound="compute")
    else:
        out.update(attainable=roof, bound="bandwidth")
    out["fraction"] = rate / out["attainable"]
    return out


def composite(parts: list[dict], median_s: float) -> dict:
    """A row made of stages each bounded by its own peak (the PLAID search): parts [{"what", "ops", "peak",
    "peak_value" (1e9/s)}]. The attainable time is the sum of the parts' times at their peaks; fraction =
    attainable time / measured time. None when a part has no peak."""
    if any(p.get("peak_value") is None for p in parts):
        return {"attainable_s": None, "fraction": None, "attainable": None}
    attainable_s = sum(p["ops"] / (p["peak_value"] * 1e9) for p in parts)
    ops = sum(p["ops"] for p in parts)
    return {"attainable_s": attainable_s, "fraction": attainable_s / median_s,
            "attainable": ops / attainable_s / 1e9}


def timing_fields(times_s: list[float], cpu_s: list[float]) -> dict:
    median = statistics.median(times_s)
    return {"times_s": list(times_s), "cpu_s": list(cpu_s), "median_s": median, "min_s": min(times_s),
            "max_s": max(times_s), "spread": (max(times_s) - min(times_s)) / median}


def make_row(*, id: str, name: str, kernel: str, threads: int, variant: str, dtype: str, ops: float,
             nbytes: float, times_s: list[float], cpu_s: list[float], peaks: dict, peak_dtype: str | None = None,
             rate_unit: str = "GFLOP/s", counts: dict[str, float] | None = None, parts: list[dict] | None = None,
             **extra: Any) -> dict:
    """One result row (schema v2, docs/bench.md): timings, counts, the roofline against `peaks` (a
    `peaks.measure()` result). `peak_dtype`: the compute probe's operand type when it differs from the
    data's (float16 documents are widened to float32: the FMA peak bounds them). `counts`: per-call
    amounts turned into rates ({"docs": n} -> "docs_per_s"). `parts`: a composite row's stages, each
    {"what", "ops", "dtype"} (the peak of that dtype for the row's variant and threads bounds it)."""
    t = timing_fields(times_s, cpu_s)
    level = level_of(nbytes, threads, peaks.get("caches", {}))
    row: dict[str, Any] = {"id": id, "name": name, "kernel": kernel, "threads": threads, "variant": variant,
                           "dtype": dtype, "ops": float(ops), "bytes": float(nbytes), **t, "rate_unit": rate_unit,
                           "bytes_per_s": nbytes / t["median_s"] / 1e9, "level": level}
    for what, n in (counts or {}).items():
        row[f"{what}_per_s"] = n / t["median_s"]
    if parts is not None:
        resolved = []
        for p in parts:
            probe = compute_peak(peaks, variant, p["dtype"], threads)
            resolved.append({"what": p["what"], "ops": float(p["ops"]), "peak": probe["probe"] if probe else None,
                             "peak_value": probe["best"] if probe else None})
        row.update(roofline(ops, nbytes, t["median_s"], None, None))
        row.update(bound=COMPOSITE, peak=" + ".join(str(p["peak"]) for p in resolved), parts=resolved,
                   peak_value=None, **composite(resolved, t["median_s"]))
        if row["fraction"] is None:
            row["bound"] = "unknown"
            extra.setdefault("note", "a part has no peak of its dtype on this variant: no fraction")
    else:
        dt = peak_dtype or dtype
        probe = compute_peak(peaks, variant, dt, threads)
        if probe is None and dt == "bfloat16":  # no bf16 dot on this core: the kernel widens to float32
            dt, probe = "float32", compute_peak(peaks, variant, "float32", threads)
            extra.setdefault("note", "no bf16 dot instruction on this variant: held to the float32 FMA peak")
        bw = bandwidth_peak(peaks, level, threads)
        row.update(roofline(ops, nbytes, t["median_s"], probe["best"] if probe else None, bw["best"] if bw else None))
        if probe is None:
            extra.setdefault("note", f"no {dt} probe for variant {variant}: no fraction")
        if row["bound"] == "bandwidth":
            row.update(peak=f"read {bw['level']}" if bw else None, peak_value=bw["best"] if bw else None)
        else:
            row.update(peak=probe["probe"] if probe else None, peak_value=probe["best"] if probe else None)
    row.update(extra)
    return row


# ------------------------------------------------------------------------------------------ schema v2

_TOP = {"schema": str, "schema_version": int, "mode": str, "quick": bool, "created": str, "machine": dict,
        "isa": dict, "peaks": dict, "references": dict, "results": list}
_MACHINE = {"cpu": str, "arch": str, "cores": int}
_ISA = ("features", "compiled", "paths", "variants", "isa", "variant", "fast_int8_centroid_scores")
_MEASURED = {"best": float, "median": float, "runs": list, "wall_over_cpu": float, "iters": int, "check": bool}
_COMPUTE = {"probe": str, "variant": str, "dtype": str, "instruction": str, "threads": int, "unit": str, **_MEASURED}
_BANDWIDTH = {"level": str, "probe": str, "threads": int, "sized_as": str, "unit": str}
_ROW = {"id": str, "name": str, "kernel": str, "threads": int, "variant": str, "dtype": str, "ops": float,
        "bytes": float, "intensity": float, "times_s": list, "cpu_s": list, "median_s": float, "min_s": float,
        "max_s": float, "spread": float, "rate": float, "rate_unit": str, "bytes_per_s": float, "level": str,
        "bound": str}
_RATE_KEYS = ("docs_per_s", "tokens_per_s", "centroids_per_s", "queries_per_s")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_optional(obj: dict, spec: dict, where: str, errors: list[str]) -> bool:
    """Fields that may be absent (or null where the spec's type is a tuple with type(None)): typed when there,
    so nothing downstream (the arithmetic here, the tables, --compare) meets a string where it adds."""
    ok = True
    for key, typ in spec.items():
        if key not in obj:
            continue
        v = obj[key]
        types = typ if isinstance(typ, tuple) else (typ,)
        good = any((v is None) if t is type(None) else _is_num(v) if t is float else
                   (isinstance(v, t) and not (t in (int, float) and isinstance(v, bool))) for t in types)
        if not good:
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            errors.append(f"{where}: {key!r} should be {names}, got {type(v).__name__}")
            ok = False
    return ok


def _num_list(v: list, key: str, where: str, errors: list[str]) -> bool:
    if not all(_is_num(x) for x in v):
        errors.append(f"{where}: {key!r} should hold numbers only")
        return False
    return True


def _check_fields(obj: Any, spec: dict, where: str, errors: list[str]) -> bool:
    if not isinstance(obj, dict):
        errors.append(f"{where}: not an object")
        return False
    ok = True
    for key, typ in spec.items():
        if key not in obj:
            errors.append(f"{where}: missing {key!r}")
            ok = False
            continue
        v = obj[key]
        good = (isinstance(v, (int, float)) and not isinstance(v, bool)) if typ is float else (
            isinstance(v, typ) and not (typ is int and isinstance(v, bool)))
        if not good:
            errors.append(f"{where}: {key!r} should be {typ.__name__}, got {type(v).__name__}")
            ok = False
    return ok


_ROW_OPTIONAL: dict[str, Any] = {
    "peak": (str, type(None)), "peak_value": (float, type(None)), "attainable": (float, type(None)),
    "fraction": (float, type(None)), "attainable_s": (float, type(None)), "parts": list, "note": str,
    "max_rel_err": float, "recall_at_10": float, "impl": str, "settings": dict, "centroids": int, "documents": int,
    "build_s": float, "int8_dot": bool, "linear_weights": int, "reranked_docs": float,
    **{k: float for k in _RATE_KEYS}}
_PART = {"what": str, "ops": float}

# Rows whose ops are *effective* (the work of scoring decoded vectors, docs/bench.md): their kernels skip some
# of it (the compressed kernel's tables; the PLAID re-rank runs the same kernel), so they may exceed a peak.
EFFECTIVE_KERNELS = ("maxsim_compressed", "plaid search")
# Above this fraction of a measured peak a row that counts the work it did is wrong, not fast (timing noise
# moves a median by a few percent; a peak whose best repeat ran at wall/cpu w may be under-measured by up to
# w, so the limit is MAX_FRACTION x w).
MAX_FRACTION = 1.05


def _validate_row(r: Any, where: str, errors: list[str], peak_woc: dict[tuple[str, int], float]) -> None:
    if not _check_fields(r, _ROW, where, errors):
        return
    n_errors = len(errors)
    _check_optional(r, _ROW_OPTIONAL, where, errors)
    times, cpu = r["times_s"], r["cpu_s"]
    if len(times) < 2 or not all(_is_num(t) and t > 0 for t in times):
        errors.append(f"{where}: times_s needs >= 2 positive repeats")
    elif _num_list(cpu, "cpu_s", where, errors) and len(cpu) != len(times):
        errors.append(f"{where}: cpu_s has {len(cpu)} entries for {len(times)} repeats")
    for key in ("peak", "peak_value", "attainable", "fraction"):
        if key not in r:
            errors.append(f"{where}: missing {key!r}")
    parts = r.get("parts")
    if isinstance(parts, list):
        for j, p in enumerate(parts):
            if _check_fields(p, _PART, f"{where} parts[{j}]", errors):
                _check_optional(p, {"peak": (str, type(None)), "peak_value": (float, type(None))},
                                f"{where} parts[{j}]", errors)
    if len(errors) > n_errors:
        return
    if not (_close(r["median_s"], statistics.median(times)) and _close(r["min_s"], min(times))
            and _close(r["max_s"], max(times))):
        errors.append(f"{where}: median_s/min_s/max_s do not match times_s")
        return  # the arithmetic below divides by median_s
    if not _close(r["spread"], (max(times) - min(times)) / statistics.median(times)):
        errors.append(f"{where}: spread is not (max - min) / median")
    if r["ops"] > 0 and not _close(r["rate"], r["ops"] / r["median_s"] / 1e9):
        errors.append(f"{where}: rate is not ops / median_s / 1e9")
    if r["bytes"] > 0 and not _close(r["intensity"], r["ops"] / r["bytes"]):
        errors.append(f"{where}: intensity is not ops / bytes")
    if r["level"] not in LEVELS:
        errors.append(f"{where}: level {r['level']!r} not in {LEVELS}")
    if r["bound"] not in BOUNDS:
        errors.append(f"{where}: bound {r['bound']!r} not in {BOUNDS}")
    if r["rate_unit"] not in ("GFLOP/s", "GOP/s"):
        errors.append(f"{where}: rate_unit {r['rate_unit']!r}")
    if not any(k in r for k in _RATE_KEYS):
        errors.append(f"{where}: none of {_RATE_KEYS}")
    if len(errors) > n_errors:
        return
    if r["bound"] == "unknown":
        if r["fraction"] is not None or "note" not in r:
            errors.append(f"{where}: bound unknown needs fraction null and a note saying why")
        return
    if r["fraction"] is None:
        errors.append(f"{where}: 'fraction' is null with bound {r['bound']!r} (only bound unknown has none)")
        return
    if r["bound"] == COMPOSITE:
        if not isinstance(parts, list) or not parts or not _is_num(r.get("attainable_s")):
            errors.append(f"{where}: a composite row needs parts and attainable_s")
            return
        if any(not _is_num(p.get("peak_value")) or p["peak_value"] <= 0 for p in parts):
            errors.append(f"{where}: every part needs ops and a positive peak_value")
            return
        attainable_s = sum(p["ops"] / (p["peak_value"] * 1e9) for p in parts)
        if not _close(r["attainable_s"], attainable_s) or not _close(r["fraction"], attainable_s / r["median_s"]):
            errors.append(f"{where}: attainable_s / fraction are not the parts' times at their peaks")
        held = [str(p.get("peak")) for p in parts]
    else:
        if not _is_num(r["peak_value"]) or not _is_num(r["attainable"]) or r["attainable"] <= 0:
            errors.append(f"{where}: peak_value and attainable must be numbers (attainable > 0)")
            return
        if r["attainable"] > r["peak_value"] * (1 + 1e-9) and r["bound"] == "compute":
            errors.append(f"{where}: attainable above the compute peak")
        if not _close(r["fraction"], r["rate"] / r["attainable"]):
            errors.append(f"{where}: fraction is not rate / attainable")
        held = [str(r["peak"])]
    # A row that counts only the work it did cannot beat a peak measured on this core (finding: the PLAID
    # row once counted `rerank` documents per query where the search re-ranked half as many: 109%).
    limit = MAX_FRACTION * max([1.0] + [peak_woc.get((h, r["threads"]), 1.0) for h in held])
    if r["kernel"] not in EFFECTIVE_KERNELS and r["fraction"] > limit:
        errors.append(f"{where}: 'fraction' {r['fraction']:.3f} is above {limit:.3f} of the measured peak "
                      f"({' + '.join(held)}): the row counts more work than it did")


def validate(report: Any) -> list[str]:
    """A report's departures from schema v2 (docs/bench.md): an empty list when it conforms, never an
    exception. Checks the fields and their types (before any arithmetic on them), that the derived numbers
    (median, spread, rate, intensity, fraction) agree with the ones they derive from, and that no row that
    counts the work it did runs above MAX_FRACTION of its peak."""
    errors: list[str] = []
    if not _check_fields(report, _TOP, "report", errors):
        return errors
    if report["schema"] != SCHEMA or report["schema_version"] != SCHEMA_VERSION:
        errors.append(f"report: schema {report['schema']!r} version {report['schema_version']}, expected "
                      f"{SCHEMA!r} version {SCHEMA_VERSION}")
    if report["mode"] not in ("full", "quick", "tiny") or report["quick"] != (report["mode"] != "full"):
        errors.append(f"report: mode {report['mode']!r} / quick {report['quick']!r}")
    _check_optional(report, {"commit": (str, type(None)), "skipped": list}, "report", errors)
    if isinstance(report.get("skipped"), list) and not all(isinstance(x, str) for x in report["skipped"]):
        errors.append("report: 'skipped' should hold strings only")
    if _check_fields(report["machine"], _MACHINE, "machine", errors):
        load = report["machine"].get("load_average")
        if load is not None and not (isinstance(load, list) and all(_is_num(x) for x in load)):
            errors.append("machine: 'load_average' should be a list of numbers or null")
    for key in _ISA:
        if key not in report["isa"]:
            errors.append(f"isa: missing {key!r}")
        elif key in ("compiled", "variants", "features", "paths") and not (
                isinstance(report["isa"][key], list) and all(isinstance(x, str) for x in report["isa"][key])):
            errors.append(f"isa: {key!r} should be a list of strings")
    if "variant" in report["isa"] and not isinstance(report["isa"]["variant"], str):
        errors.append("isa: 'variant' should be str")
    sgemm = report["references"].get("sgemm")
    if sgemm is not None:
        _check_fields(sgemm, {"gflops": float, "n": int, "single_thread": bool}, "references.sgemm", errors)
    peak_woc: dict[tuple[str, int], float] = {}
    peaks = report["peaks"]
    if _check_fields(peaks, {"caches": dict, "compute": list, "bandwidth": list, "repeats": int,
                             "seconds_per_repeat": float}, "peaks", errors):
        _check_fields(peaks["caches"], {"l1d": int, "l2": int, "l3": int}, "peaks.caches", errors)
        _check_optional(peaks["caches"], {"source": str, "l3_shared_by": int}, "peaks.caches", errors)
        for i, c in enumerate(peaks["compute"]):
            if _check_fields(c, _COMPUTE, f"peaks.compute[{i}]", errors):
                if c["dtype"] not in ("float32", "bfloat16", "int8"):
                    errors.append(f"peaks.compute[{i}]: dtype {c['dtype']!r}")
                if not c["check"]:
                    errors.append(f"peaks.compute[{i}]: the probe's count was not exact")
                if _num_list(c["runs"], "runs", f"peaks.compute[{i}]", errors) and c["best"] < max(c["runs"], default=0):
                    errors.append(f"peaks.compute[{i}]: best is below a run")
                peak_woc[(c["probe"], c["threads"])] = c["wall_over_cpu"]
        for i, b in enumerate(peaks["bandwidth"]):
            where = f"peaks.bandwidth[{i}]"
            if not _check_fields(b, _BANDWIDTH, where, errors):
                continue
            if b["level"] not in LEVELS:
                errors.append(f"{where}: level {b['level']!r}")
            if "skipped" in b:
                if b.get("bytes_per_thread") is not None:
                    errors.append(f"{where}: a skipped level has bytes_per_thread null")
            elif _check_fields(b, {"bytes_per_thread": int, **_MEASURED}, where, errors):
                _num_list(b["runs"], "runs", where, errors)
                peak_woc[(f"read {b['level']}", b["threads"])] = b["wall_over_cpu"]
        if not peaks["compute"]:
            errors.append("peaks: no compute probe measured")
    ids = [r.get("id") for r in report["results"] if isinstance(r, dict)]
    dup = sorted({i for i in ids if isinstance(i, str) and ids.count(i) > 1})
    if dup:
        errors.append(f"results: duplicate ids {dup}")
    for i, r in enumerate(report["results"]):
        _validate_row(r, f"results[{i}] ({r.get('id') if isinstance(r, dict) else '?'})", errors, peak_woc)
    return errors


# ------------------------------------------------------------------------------------------ --compare

# A verdict needs both: the two runs' ranges of repeats do not overlap (beyond both runs' spread) *and* the
# median speed changed by at least MIN_CHANGE. The ranges alone are a weak test with few repeats: with 3 a
# side, the 3 new ones all land above the 3 old ones 1 time in C(6,3) = 20 per row on an unchanged build
# (a -0.7% "regression"); and a host shared with other work shifts whole runs by a few percent.
MIN_CHANGE = 0.05


def mode_mismatch(old: dict, new_mode: str) -> str | None:
    """Why the old report cannot be compared with a run of `new_mode`, or None. Row ids do not encode the
    workload's size: maxsim/f32/dim48/nq1/t1 is 40 documents in tiny, 2,000 in quick and 10,000 in full."""
    if old.get("mode") == new_mode:
        return None
    return (f"the old report is a {old.get('mode')!r} run and the new one a {new_mode!r} run: a row id measures "
            "a different workload in each mode (docs/bench.md), so compare runs of one mode")


def machine_differences(old: dict, new: dict) -> list[str]:
    """What differs between the machines (and ISA variants) of two reports: its times are not this one's."""
    out = []
    for what, get in (("cpu", lambda r: r.get("machine", {}).get("cpu")),
                      ("arch", lambda r: r.get("machine", {}).get("arch")),
                      ("cores", lambda r: r.get("machine", {}).get("cores")),
                      ("variant", lambda r: r.get("isa", {}).get("variant"))):
        a, b = get(old), get(new)
        if a != b:
            out.append(f"{what} {a!r} -> {b!r}")
    return out


def compare(old: dict, new: dict) -> list[dict]:
    """Rows matched by id: old and new median, speed change (old / new median - 1: +0.10 is 10% faster)
    and a verdict. A regression is a new run whose fastest repeat is slower than the old run's slowest
    (the two ranges do not overlap: beyond both runs' own spread) and whose median is at least MIN_CHANGE
    slower; an improvement the opposite. Reports of different modes are refused (ValueError)."""
    for name, rep in (("old", old), ("new", new)):
        if rep.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"--compare: the {name} report has schema {rep.get('schema')!r} (version "
                             f"{rep.get('schema_version')}); this bench reads version {SCHEMA_VERSION} only")
    why = mode_mismatch(old, str(new.get("mode")))
    if why:
        raise ValueError(f"--compare: {why}")
    old_rows = {r["id"]: r for r in old["results"]}
    new_ids = {r["id"] for r in new["results"]}
    out = []
    for r in new["results"]:
        o = old_rows.get(r["id"])
        if o is None:
            out.append({"id": r["id"], "verdict": "new", "new_median_s": r["median_s"]})
            continue
        change = o["median_s"] / r["median_s"] - 1
        if r["min_s"] > o["max_s"] and change <= -MIN_CHANGE:
            verdict = "regression"
        elif r["max_s"] < o["min_s"] and change >= MIN_CHANGE:
            verdict = "improvement"
        else:
            verdict = "within spread"
        out.append({"id": r["id"], "verdict": verdict, "old_median_s": o["median_s"], "new_median_s": r["median_s"],
                    "speed_change": change})
    out += [{"id": i, "verdict": "gone", "old_median_s": o["median_s"]} for i, o in old_rows.items() if i not in new_ids]
    return out


def format_compare(verdicts: list[dict], old: dict, new: dict) -> str:
    lines = [f"compare: old {old.get('created')} ({old.get('machine', {}).get('cpu')}, commit {old.get('commit')}) "
             f"-> new {new.get('created')} (commit {new.get('commit')})",
             f"{'row':<44} {'old ms':>10} {'new ms':>10} {'speed':>8}  verdict"]
    for v in verdicts:
        old_ms = f"{v['old_median_s'] * 1e3:10.3f}" if "old_median_s" in v else f"{'-':>10}"
        new_ms = f"{v['new_median_s'] * 1e3:10.3f}" if "new_median_s" in v else f"{'-':>10}"
        change = f"{v['speed_change']:+8.1%}" if "speed_change" in v else f"{'':>8}"
        flag = "REGRESSION" if v["verdict"] == "regression" else v["verdict"]
        lines.append(f"{v['id']:<44} {old_ms} {new_ms} {change}  {flag}")
    n = sum(v["verdict"] == "regression" for v in verdicts)
    rule = f"beyond both runs' spread and {MIN_CHANGE:.0%} slower"
    lines.append(f"{n} regression(s) {rule}" if n else f"no regression {rule}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ text


def _g(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:.1f}{unit}"


def format_limits(report: dict) -> str:
    p, m, isa = report["peaks"], report["machine"], report["isa"]
    c = p["caches"]
    load = m.get("load_average")
    lines = [
        f"CPU: {m['cpu']} ({m['arch']}, {m['cores']} usable cores); load average "
        f"{' '.join(f'{x:.2f}' for x in load) if load else 'unknown'}",
        f"ISA: compiled {', '.join(isa['compiled'])}; runnable {', '.join(isa['variants'])}; chosen {isa['variant']}",
        f"caches ({c.get('source')}): L1d {c.get('l1d', 0) >> 10} KiB, L2 {c.get('l2', 0) >> 10} KiB, "
        f"L3 {c.get('l3', 0) >> 10} KiB",
        "",
        "compute peaks (GOP/s: an FMA lane is 2 operations; best of "
        f"{p['repeats']} x {p['seconds_per_repeat'] * 1e3:.0f} ms; wall/cpu of the best: 1.0 when undisturbed)",
    ]
    threads = sorted({x["threads"] for x in p["compute"]})
    head = f"{'probe':<22} {'instruction':<22} {'dtype':<9}" + "".join(f" {f'{t} thr':>10} {'wall/cpu':>8}" for t in threads)
    lines.append(head)
    for probe in dict.fromkeys(x["probe"] for x in p["compute"]):
        rows = {x["threads"]: x for x in p["compute"] if x["probe"] == probe}
        first = next(iter(rows.values()))
        line = f"{probe:<22} {first['instruction']:<22} {first['dtype']:<9}"
        for t in threads:
            x = rows.get(t)
            woc = f"{x['wall_over_cpu']:.2f}" if x else "-"
            line += f" {_g(x['best'] if x else None):>10} {woc:>8}"
        lines.append(line)
    lines += ["", "read bandwidth (GB/s)"]
    bw_threads = sorted({x["threads"] for x in p["bandwidth"]})
    lines.append(f"{'level':<8}" + "".join(f" {f'{t} thr':>10} {'KiB/thread':>11}" for t in bw_threads))
    for level in LEVELS:
        line = f"{level:<8}"
        for t in bw_threads:
            x = next((b for b in p["bandwidth"] if b["level"] == level and b["threads"] == t), None)
            if x is None or "skipped" in x:
                line += f" {'skipped':>10} {'-':>11}"
            else:
                line += f" {x['best']:>10.1f} {x['bytes_per_thread'] >> 10:>11}"
        lines.append(line)
    skipped = [f"{b['level']} at {b['threads']} threads: {b['skipped']}" for b in p["bandwidth"] if "skipped" in b]
    if skipped:
        lines.append("skipped: " + "; ".join(skipped))
    busy = busy_peaks(p)
    if busy:
        lines.append(f"BUSY MACHINE: {len(busy)} peak(s) ran at wall/cpu above {BUSY_WALL_OVER_CPU} even in their best "
                     f"repeat ({', '.join(busy[:4])}{', ...' if len(busy) > 4 else ''}): those peaks are under-measured, "
                     "and a fraction above 100% against them says so, not that a kernel beat the core")
    return "\n".join(lines)


# A best repeat whose wall time exceeds its threads' CPU time by more than this was preempted.
BUSY_WALL_OVER_CPU = 1.1


def busy_peaks(peaks: dict) -> list[str]:
    """The measured peaks whose best repeat was preempted (wall/cpu above BUSY_WALL_OVER_CPU)."""
    out = [f"{c['probe']} {c['threads']} thr" for c in peaks["compute"] if c["wall_over_cpu"] > BUSY_WALL_OVER_CPU]
    return out + [f"read {b['level']} {b['threads']} thr" for b in peaks["bandwidth"]
                  if "skipped" not in b and b["wall_over_cpu"] > BUSY_WALL_OVER_CPU]


def _extra(r: dict) -> str:
    bits = []
    for key, unit in (("docs_per_s", "docs/s"), ("tokens_per_s", "tokens/s"), ("centroids_per_s", "centroids/s"),
                      ("queries_per_s", "queries/s")):
        if key in r:
            bits.append(f"{r[key]:.0f} {unit}")
    if "recall_at_10" in r:
        bits.append(f"recall@10 {r['recall_at_10']:.3f}")
    if "max_rel_err" in r:
        bits.append(f"err {r['max_rel_err']:.1e}")
    if "note" in r:
        bits.append(r["note"])
    return "; ".join(bits)


def format_rows(report: dict) -> str:
    lines = [f"{'row':<44} {'thr':>3} {'rate':>8} {'unit':<7} {'op/B':>6} {'level':<6} {'bound':<9} "
             f"{'peak':<22} {'roof':>7} {'frac':>6} {'median ms':>10} {'spread':>6}  notes"]
    for r in report["results"]:
        bound = "composite" if r["bound"] == COMPOSITE else r["bound"]
        peak = "parts" if r["bound"] == COMPOSITE else (r.get("peak") or "-")
        frac = "-" if r.get("fraction") is None else f"{r['fraction']:.0%}"
        lines.append(f"{r['id']:<44} {r['threads']:>3} {r['rate']:>8.1f} {r['rate_unit']:<7} {r['intensity']:>6.1f} "
                     f"{r['level']:<6} {bound:<9} {peak:<22} {_g(r.get('attainable')):>7} {frac:>6} "
                     f"{r['median_s'] * 1e3:>10.3f} {r['spread']:>6.0%}  {_extra(r)}")
    ref = report["references"].get("sgemm")
    if ref:
        lines.append(f"reference (not a ceiling): numpy SGEMM {ref['n']}x{ref['n']} float32, "
                     f"{'1 thread' if ref['single_thread'] else 'BLAS default threads'}: {ref['gflops']:.1f} GFLOP/s")
    for s in report.get("skipped", []):
        lines.append(f"skipped: {s}")
    return "\n".join(lines)


def format_report(report: dict) -> str:
    return format_limits(report) + "\n\n" + format_rows(report)


# ------------------------------------------------------------------------------------------ --plot

def plot_target(path: str) -> str:
    """The file `--plot PATH` will write, checked before minutes of measuring: PATH, or PATH.png when it has no
    extension (what matplotlib writes then), whose directory exists and is writable, in a format matplotlib
    writes without LaTeX. A ValueError in one line otherwise."""
    import os

    import matplotlib  # noqa: F401  (ModuleNotFoundError names it: the command line says which extra)
    from matplotlib.backend_bases import FigureCanvasBase

    if os.path.isdir(path):
        raise ValueError(f"--plot: {path} is a directory")
    ext = os.path.splitext(path)[1]
    if not ext:
        path, ext = path + ".png", ".png"
    formats = sorted(set(FigureCanvasBase.get_supported_filetypes()) - {"pgf"})  # pgf needs a TeX install
    if ext[1:].lower() not in formats:
        raise ValueError(f"--plot: {path}: matplotlib does not write {ext!r} files (it writes {', '.join(formats)})")
    if os.path.isdir(path):
        raise ValueError(f"--plot: {path} is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"--plot: {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError(f"--plot: {path}: not writable")
    return path


def plot(report: dict, path: str) -> None:
    """The roofline as a PNG: compute peaks of the chosen variant as horizontal lines (solid: 1 thread,
    dashed: all), each level's read bandwidth as a diagonal, each row as a point at (intensity, rate)
    (filled: 1 thread, hollow: all threads). Needs matplotlib (the `bench` or `test` extra)."""
    import matplotlib  # ModuleNotFoundError names it: the command line says which extra to install

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peaks, variant = report["peaks"], report["isa"]["variant"]
    rows = [r for r in report["results"] if r["intensity"] > 0 and math.isfinite(r["intensity"])]
    xs = [r["intensity"] for r in rows] or [1.0]
    x_lo, x_hi = min(min(xs) / 4, 0.05), max(max(xs) * 4, 64.0)
    fig, ax = plt.subplots(figsize=(12, 6))
    threads = sorted({p["threads"] for p in peaks["compute"]})
    styles: dict[int, Literal["-", "--"]] = {t: ("-" if t == 1 else "--") for t in threads}
    colours = {"float32": "tab:blue", "bfloat16": "tab:orange", "int8": "tab:green"}
    for dtype, colour in colours.items():
        for t in threads:
            p = compute_peak(peaks, variant, dtype, t)
            if p is not None:
                ax.hlines(p["best"], x_lo, x_hi, colors=colour, linestyles=styles[t], linewidth=1.2,
                          label=f"{p['probe']} ({t} thr) {p['best']:.0f} GOP/s")
    grey = {"L1": "0.15", "L2": "0.35", "L3": "0.55", "memory": "0.7"}
    for b in peaks["bandwidth"]:
        if "skipped" in b:
            continue
        ax.plot([x_lo, x_hi], [b["best"] * x_lo, b["best"] * x_hi], color=grey[b["level"]],
                linestyle=styles.get(b["threads"], ":"), linewidth=0.9,
                label=f"read {b['level']} ({b['threads']} thr) {b['best']:.0f} GB/s")
    markers = "osD^v<>ph*XP"
    kernels = list(dict.fromkeys(r["kernel"] for r in rows))
    for r in rows:
        m = markers[kernels.index(r["kernel"]) % len(markers)]
        ax.scatter([r["intensity"]], [r["rate"]], marker=m, s=36, edgecolors="k",
                   facecolors="k" if r["threads"] == 1 else "none", zorder=3)
    for k in kernels:
        ax.scatter([], [], marker=markers[kernels.index(k) % len(markers)], color="k", label=k)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    # The roof ends at the highest compute peak: the diagonals above it are not attainable.
    top = max((p["best"] for p in peaks["compute"]), default=1.0)
    low = min([r["rate"] for r in rows] + [b["best"] * x_lo for b in peaks["bandwidth"] if "skipped" not in b] + [top])
    ax.set_ylim(low / 2, top * 2)
    ax.set_xlabel("arithmetic intensity (operations / byte)")
    ax.set_ylabel("1e9 operations / s (GFLOP/s, GOP/s)")
    ax.set_title(f"roofline: {report['machine']['cpu']} [{variant}] (filled: 1 thread, hollow: all)", fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
