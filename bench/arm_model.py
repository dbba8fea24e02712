"""A MODEL of the NEON kernels' speed on ARM cores that this project has never run on (`make arm-model`).

No ARM machine is available (DESIGN.md, "Measuring"), so the inner loop of each NEON kernel is compiled
with the project's cross compiler to assembly and fed to llvm-mca (LLVM 19), which simulates it on
LLVM's scheduling model of a core. The x86 AVX-512 and AVX2 MaxSim tiles and the VNNI int8 tile go
through the same steps for Zen 4, the host whose measured numbers (`edgecolbert bench`) check the method.

How a row is made:
 1. the kernel's file is compiled with its production flags plus -DEDGECOLBERT_MCA_MARKERS, which puts
    LLVM-MCA-BEGIN/END comments around the loop (csrc/cpu/mca_markers.hpp); the
    innermost loop between the markers is the analysed block (its body, up to and including the
    backward branch), and it is checked against the same file built without markers: the production
    build must contain an innermost loop with the same instruction counts (`same`: yes/no);
 2. llvm-mca -mcpu=CPU -iterations=N gives cycles per loop iteration (Total Cycles / Iterations: the
    steady state, loop-carried accumulator dependencies included);
 3. work per iteration = count of the kernel's multiply instruction (FMLA, BFDOT, SDOT, SMMLA,
    VFMADD231PS, VPDPBUSD) in the loop x the multiply-adds each does, so unrolling does not matter;
    a tile is the kernel's register tile over 64 dimensions, and cycles per tile = cycles per
    iteration x tile work / iteration work;
 4. the peak is also llvm-mca's: a block of 24 independent copies of the instruction on the same
    core model; its throughput (instructions per cycle) is the number of FP/ASIMD pipes the model
    lets execute it. fraction of peak = the loop's MACs per cycle / (peak instructions per cycle x
    MACs per instruction). The int8 rows are also given against the SDOT peak, so SDOT and SMMLA
    compare on one scale.
A core whose LLVM definition lacks the feature a kernel needs (llvm-mca refuses the instruction) gets
an n/a row. Decoding is loads and stores, not multiplies: its rows give cycles per 64-dim token and
the most used resource instead of a fraction.

Usage: python3 bench/arm_model.py [--markdown] [--cpus neoverse-n1,...]. Exits non-zero when a
kernel's loop is missing, when llvm-mca fails on a CPU that has the feature, or when a row is missing.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MCA = os.environ.get("LLVM_MCA", "llvm-mca-19")
CROSS = os.environ.get("AARCH64_CXX", "aarch64-linux-gnu-g++")
HOST = os.environ.get("CXX_X86", "g++")
ARM_CPUS = ["neoverse-n1", "neoverse-n2", "neoverse-v2", "apple-m1", "cortex-a76"]
X86_CPUS = ["znver4"]
ITERATIONS = 300
DIMS = 64  # a tile's depth

# Production flags of each object library (CMakeLists.txt, ec_isa): -O3 is CMake's Release.
COMMON = ["-O3", "-std=c++17", "-DNDEBUG", "-fPIC", "-Icsrc/include", "-Icsrc/cpu"]
AVX2 = ["-mavx2", "-mfma", "-mf16c"]
AVX512 = AVX2 + ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"]


@dataclass
class Kernel:
    region: str  # the row's kernel name, and the marker name unless `marker` is given
    source: str
    flags: list[str]
    arch: str  # aarch64 | x86
    op: str  # mnemonic of the multiply instruction
    macs: int  # useful multiply-adds per op instruction
    tile: tuple[int, int]  # rows x columns of the register tile (x DIMS)
    peak: list[str]  # independent-instruction templates for the peak ({i} = accumulator register): the best counts
    peak_macs: int  # multiply-adds per peak instruction
    note: str
    sdot_ref: bool = False  # also give the fraction of the SDOT peak
    steps_per_tile: float = 0.0  # loops without multiplies: loop steps (one store each) per tile
    marker: str = ""  # the region's name in the source when it is not `region` (a template shared by ISAs)


PEAK_FMLA = ["fmla v{i}.4s, v30.4s, v31.4s", "fmla v{i}.4s, v30.4s, v31.s[0]"]
PEAK_SDOT = ["sdot v{i}.4s, v30.16b, v31.16b", "sdot v{i}.4s, v30.16b, v31.4b[0]"]
PEAK_BFDOT = ["bfdot v{i}.4s, v30.8h, v31.8h", "bfdot v{i}.4s, v30.8h, v31.2h[0]"]
KERNELS = [
    Kernel("maxsim_f32_neon", "csrc/cpu/maxsim_neon.cpp", ["-march=armv8-a"], "aarch64", "fmla", 4, (8, 8),
           PEAK_FMLA, 4, "MaxSim fp32: 8 query rows x 8 tokens, FMLA by element", marker="dot_tile"),
    Kernel("maxsim_bf16_neon", "csrc/cpu/maxsim_neonbf16.cpp", ["-march=armv8.2-a+bf16"], "aarch64", "bfdot", 8,
           (8, 8), PEAK_BFDOT, 8, "MaxSim bf16 docs x bf16 queries: BFDOT"),
    Kernel("maxsim_bf16_hilo_neon", "csrc/cpu/maxsim_neonbf16.cpp", ["-march=armv8.2-a+bf16"], "aarch64", "bfdot",
           4, (8, 8), PEAK_BFDOT, 8,
           "MaxSim bf16 docs x fp32 queries (hi + lo: 2 BFDOT per product)"),
    Kernel("codec_expand_nbits2", "csrc/cpu/codec_neon.cpp", ["-march=armv8-a"], "aarch64", "", 0, (1, 1), [], 0,
           "decode, per 64-dim token: residual bytes through the byte table (nbits 2: a 16-byte row per byte)",
           steps_per_tile=DIMS / 4),
    Kernel("codec_add_centroid_neon", "csrc/cpu/codec_neon.cpp", ["-march=armv8-a"], "aarch64", "", 0, (1, 1), [], 0,
           "decode, per 64-dim token: + centroid, sum of squares for the norm (4 dims a step)",
           steps_per_tile=DIMS / 4, marker="codec_add_centroid"),
    Kernel("centroids_i8_sdot", "csrc/cpu/centroids_neondotprod.cpp", ["-march=armv8.2-a+dotprod"], "aarch64", "sdot",
           16, (8, 8), PEAK_SDOT, 16, "int8 centroid scores: 8 rows x 8 centroids, SDOT by element", True),
    Kernel("centroids_i8_smmla", "csrc/cpu/centroids_neoni8mm.cpp", ["-march=armv8.2-a+dotprod+i8mm"], "aarch64",
           "smmla", 32, (8, 8), ["smmla v{i}.4s, v30.16b, v31.16b"], 32,
           "int8 centroid scores: 8 rows x 8 centroids, SMMLA", True),
    Kernel("centroids_i8_smmla_repack", "csrc/cpu/centroids_neoni8mm.cpp", ["-march=armv8.2-a+dotprod+i8mm"],
           "aarch64", "", 0, (8, 8), [], 0,
           "SMMLA kernel's centroid pairing, its share of an 8x8x64 tile (4 pairs x 8 stores / 4 row octets)",
           steps_per_tile=4 * DIMS / 8 / 4),
    Kernel("maxsim_f32_avx512", "csrc/cpu/maxsim_avx512.cpp", AVX512, "x86", "vfmadd231ps", 16, (32, 12),
           ["vfmadd231ps %zmm30, %zmm31, %zmm{i}"], 16, "MaxSim fp32 AVX-512: 32 rows x 12 tokens",
           marker="dot_tile"),
    Kernel("maxsim_f32_avx2", "csrc/cpu/maxsim_avx2.cpp", AVX2, "x86", "vfmadd231ps", 8, (16, 6),
           ["vfmadd231ps %ymm14, %ymm15, %ymm{i}"], 8, "MaxSim fp32 AVX2: 16 rows x 6 tokens", marker="dot_tile"),
    Kernel("centroids_i8_vnni", "csrc/cpu/centroids_avx512vnni.cpp", AVX512 + ["-mavx512vnni"], "x86",
           "vpdpbusd", 64, (32, 8), ["vpdpbusd %zmm30, %zmm31, %zmm{i}"], 64, "int8 centroid scores VNNI: 32 x 8"),
]

INSTR = re.compile(r"^\s+([a-z][\w.]*)\b(.*)$")
LABEL = re.compile(r"^(\.L\w+):")
BRANCH = re.compile(r"^\s+(b\.?[a-z]{0,2}|cbnz|cbz|tbnz|tbz|j[a-z]+)\s+(?:[%\w]+,\s*)*(\.L\w+)\s*$")


def compile_asm(k: Kernel, markers: bool, out: str) -> str:
    cxx = CROSS if k.arch == "aarch64" else HOST
    cmd = [cxx, *COMMON, *k.flags, "-S", k.source, "-o", out] + (["-DEDGECOLBERT_MCA_MARKERS"] if markers else [])
    subprocess.run(cmd, cwd=ROOT, check=True)
    with open(out) as f:
        return f.read()


def innermost_loops(lines: list[str]) -> list[list[str]]:
    """Bodies (instruction lines) of loops closed by a backward branch that enclose no other loop."""
    labels, loops = {}, []
    for i, line in enumerate(lines):
        m = LABEL.match(line)
        if m:
            labels[m.group(1)] = i
        m = BRANCH.match(line)
        if m and m.group(2) in labels and labels[m.group(2)] < i:
            loops.append((labels[m.group(2)], i))
    inner = [(s, e) for s, e in loops if not any(s <= s2 and e2 <= e and (s2, e2) != (s, e) for s2, e2 in loops)]
    return [[ln for ln in lines[s:e + 1] if INSTR.match(ln) and not ln.strip().startswith(".")] for s, e in inner]


def mnemonics(body: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ln in body:
        m = INSTR.match(ln)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def loop_shape(body: list[str]) -> dict[str, int]:
    """Instruction counts with the closing branch's condition dropped (the compiler may invert a loop)."""
    counts = mnemonics(body[:-1])
    counts["<branch>"] = 1
    return counts


def region_loop(asm: str, k: Kernel) -> list[str]:
    """The innermost loop between the region's markers with the most multiply (or any) instructions."""
    lines = asm.split("\n")
    name = k.marker or k.region
    begin = [i for i, ln in enumerate(lines) if re.search(rf"LLVM-MCA-BEGIN {name}\s*$", ln)]
    end = [i for i, ln in enumerate(lines) if re.search(rf"LLVM-MCA-END {name}\s*$", ln)]
    # The compiler may copy a marker onto a path that skips the loop: pair each BEGIN with the first END
    # after it and keep the regions that have one.
    spans = [(b, min(e for e in end if e > b)) for b in begin if any(e > b for e in end)]
    if not spans:
        raise SystemExit(f"{k.region}: markers not found in the compiled {k.source}")
    best: list[str] = []
    for b, e in spans:
        for body in innermost_loops(lines[b:e + 1]):
            key = mnemonics(body).get(k.op, 0) if k.op else len(body)
            if key > (mnemonics(best).get(k.op, 0) if k.op else len(best)):
                best = body
    if not best:
        raise SystemExit(f"{k.region}: no loop between the markers in {k.source}")
    return best


def run_mca(body: list[str], arch: str, cpu: str) -> str | None:
    """llvm-mca's report, or None when the CPU's LLVM definition lacks an instruction's feature."""
    with tempfile.NamedTemporaryFile("w", suffix=".s", delete=False) as f:
        f.write("\n".join(body) + "\n")
        path = f.name
    try:
        triple = "aarch64" if arch == "aarch64" else "x86_64"
        r = subprocess.run([MCA, f"-mtriple={triple}", f"-mcpu={cpu}", f"-iterations={ITERATIONS}",
                            "-resource-pressure", "-instruction-info=false", path],
                           capture_output=True, text=True)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        if "instruction requires" in r.stderr:
            return None
        raise SystemExit(f"llvm-mca failed on {cpu}: {r.stderr[:500]}")
    return r.stdout


def cycles_per_iteration(report: str) -> float:
    it = int(re.search(r"Iterations:\s+(\d+)", report).group(1))
    cyc = int(re.search(r"Total Cycles:\s+(\d+)", report).group(1))
    return cyc / it


def busiest_resource(report: str) -> str:
    """The resource with the highest pressure per iteration (llvm-mca's resource pressure table)."""
    sec = report.split("Resource pressure per iteration:")[1].split("\n\n")[0].strip().split("\n")
    names = re.findall(r"\[([\w.]+)\]", sec[0])
    vals = [float(v) if v != "-" else 0.0 for v in sec[1].split()]
    legend = dict(re.findall(r"\[([\w.]+)\]\s+-\s+(\S+)", report.split("Resource pressure per iteration:")[0]))
    i = max(range(len(vals)), key=lambda j: vals[j])
    return f"{legend.get(names[i], names[i])} {vals[i]:.2f}/it"


def peak_ipc(k: Kernel, cpu: str) -> float | None:
    best = None
    for form in k.peak:
        rep = run_mca([form.format(i=i) for i in range(24)], k.arch, cpu)
        if rep is not None:
            best = max(best or 0.0, 24 / cycles_per_iteration(rep))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown (docs/arm.md)")
    ap.add_argument("--cpus", default=",".join(ARM_CPUS), help="comma-separated llvm-mca -mcpu names (ARM)")
    args = ap.parse_args()
    arm_cpus = [c for c in args.cpus.split(",") if c]
    rows, expected = [], 0
    sdot = next(k for k in KERNELS if k.region == "centroids_i8_sdot")
    with tempfile.TemporaryDirectory() as tmp:
        for k in KERNELS:
            marked = compile_asm(k, True, os.path.join(tmp, "marked.s"))
            prod = compile_asm(k, False, os.path.join(tmp, "prod.s"))
            body = region_loop(marked, k)
            counts = mnemonics(body)
            same = any(loop_shape(b) == loop_shape(body) for b in innermost_loops(prod.split("\n")))
            ops = counts.get(k.op, 0) if k.op else 0
            for cpu in (arm_cpus if k.arch == "aarch64" else X86_CPUS):
                expected += 1
                rep = run_mca(body, k.arch, cpu)
                row = {"kernel": k.region, "cpu": cpu, "instr": len(body), "ops": ops, "same": same, "note": k.note}
                if rep is None:
                    row["na"] = "core lacks the feature"
                    rows.append(row)
                    continue
                cpi = cycles_per_iteration(rep)
                row["cyc_it"] = cpi
                row["busiest"] = busiest_resource(rep)
                if k.op:
                    it_macs = ops * k.macs
                    tile_macs = k.tile[0] * k.tile[1] * DIMS
                    row["tile"] = f"{k.tile[0]}x{k.tile[1]}x{DIMS}"
                    row["instr_tile"] = len(body) * tile_macs / it_macs
                    row["cyc_tile"] = cpi * tile_macs / it_macs
                    row["macs_cyc"] = it_macs / cpi
                    pk = peak_ipc(k, cpu)
                    row["peak_ipc"] = pk
                    row["frac"] = row["macs_cyc"] / (pk * k.peak_macs)
                    if k.sdot_ref:
                        spk = peak_ipc(sdot, cpu)
                        row["frac_sdot"] = row["macs_cyc"] / (spk * 16) if spk else None
                else:  # one store per step: the loop's stores say how many steps an iteration does
                    per_it = max(1, counts.get("str", 0) + counts.get("stp", 0) * 2 + counts.get("st1", 0))
                    row["tile"] = f"{k.tile[0]}x{k.tile[1]}x{DIMS}" if k.tile != (1, 1) else f"token x {DIMS}"
                    row["cyc_tile"] = cpi * k.steps_per_tile / per_it
                    row["instr_tile"] = len(body) * k.steps_per_tile / per_it
                rows.append(row)
    print_table(rows, args.markdown)
    missing = expected - len(rows)
    if missing:
        print(f"{missing} kernel x CPU rows missing", file=sys.stderr)
        return 1
    print(f"{len(rows)} kernel x CPU rows (MODEL: llvm-mca {MCA}, never measured on ARM hardware)")
    return 0


def print_table(rows: list[dict], markdown: bool) -> None:
    head = ["kernel", "cpu", "tile", "instr/it", "mul/it", "cyc/it", "instr/tile", "cyc/tile", "MAC/cyc",
            "peak ins/cyc", "of peak", "of SDOT peak", "busiest resource", "same as prod"]
    out = []
    for r in rows:
        def f(key: str, fmt: str) -> str:
            v = r.get(key)
            return "-" if v is None else format(v, fmt)
        if "na" in r:
            out.append([r["kernel"], r["cpu"], "n/a", str(r["instr"]), str(r["ops"]), "-", "-", "-", "-", "-", "-", "-",
                        r["na"], "yes" if r["same"] else "NO"])
            continue
        out.append([r["kernel"], r["cpu"], r.get("tile", "-"), str(r["instr"]), str(r["ops"]), f("cyc_it", ".2f"),
                    f("instr_tile", ".0f"), f("cyc_tile", ".1f"), f("macs_cyc", ".1f"), f("peak_ipc", ".2f"),
                    f("frac", ".0%"), f("frac_sdot", ".0%"), r["busiest"], "yes" if r["same"] else "NO"])
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for o in out:
            print("| " + " | ".join(o) + " |")
        return
    widths = [max(len(h), *(len(o[i]) for o in out)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for o in out:
        print("  ".join(c.ljust(w) for c, w in zip(o, widths)))


if __name__ == "__main__":
    sys.exit(main())
