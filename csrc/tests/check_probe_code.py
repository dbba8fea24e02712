"""Reads the peak probes' compiled loops back from the test binary (ctest `probe_code`).

test_peaks.cpp checks that each probe returns iters x accumulators x ops_per_instruction operations,
counted from its results. This ties that count to the machine code: in each probe's function
(edgecolbert::peak_<name>, where its loop is inlined) the innermost loop that holds the probe's
instruction must hold it exactly once per accumulator (the compiler neither unrolled the loop further
nor merged chains: GCC 12 once kept one chain of the 16 and multiplied its sum), must not touch
memory at all (no accumulator spilled and reloaded) and must not copy vector registers (a copy takes
a vector pipe's slot: AArch64's FMLA once needed two per instruction for acc x one + one). The table
comes from running `ec_tests peaks_table` (under the cross emulator when there is one).

usage: check_probe_code.py --objdump OBJDUMP --binary EC_TESTS [-- EMULATOR ARGS...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys


def probe_table(binary: str, emulator: list[str]) -> list[tuple[str, str, int, str]]:
    out = subprocess.run([*emulator, binary, "peaks_table"], capture_output=True, text=True, check=True).stdout
    rows = re.findall(r"probe (\S+) mnemonic (\S+) accumulators (\d+) function (\S+)", out)
    return [(name, mnemonic, int(acc), fn) for name, mnemonic, acc, fn in rows]


def function_bodies(objdump: str, binary: str) -> dict[str, list[tuple[int, str]]]:
    """Demangled function name (without its argument list) -> its (address, instruction) lines."""
    text = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", binary], capture_output=True, text=True,
                          check=True).stdout
    bodies: dict[str, list[tuple[int, str]]] = {}
    current: list[tuple[int, str]] | None = None
    for line in text.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if head:
            name = head.group(1).split("(")[0]
            current = bodies.setdefault(name, [])
        elif current is not None and re.match(r"^\s+[0-9a-f]+:\s", line):
            addr, ins = line.split(":", 1)
            current.append((int(addr, 16), ins.strip()))
    return bodies


# Register-to-register vector moves (x86 and AArch64 spellings).
VECTOR_MOVES = {"mov", "orr", "vmovaps", "vmovups", "vmovapd", "vmovdqa", "vmovdqu", "vmovdqa32", "vmovdqa64",
                "vmovdqu32", "vmovdqu64", "movaps", "movups", "movdqa"}


def mnemonic_of(ins: str) -> str:
    # An encoding prefix ({vex} vpdpbusd: AVX-VNNI) is not part of the mnemonic.
    return re.sub(r"^\{\w+\}\s*", "", ins).split()[0] if ins else ""


def innermost_loop(body: list[tuple[int, str]], at: int) -> list[str]:
    """The instructions of the shortest backward branch's range [target, branch] that contains `at`."""
    best: tuple[int, int] | None = None
    for addr, ins in body:
        m = re.match(r"^(b\.\w+|b|cbn?z|tbn?z|j\w+)\s+.*?([0-9a-f]+) <", ins)
        if not m:
            continue
        target = int(m.group(2), 16)
        if target <= at <= addr and (best is None or addr - target < best[1] - best[0]):
            best = (target, addr)
    if best is None:
        return []
    return [ins for addr, ins in body if best[0] <= addr <= best[1]]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objdump", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("emulator", nargs="*")
    args = ap.parse_args()
    table = probe_table(args.binary, args.emulator)
    if not table:
        print("no probes listed by `ec_tests peaks_table`")
        return 1
    bodies = function_bodies(args.objdump, args.binary)
    failures = 0
    for name, mnemonic, accumulators, fn in table:
        body = bodies.get(f"edgecolbert::{fn}")
        if body is None:
            print(f"FAIL {name}: no function edgecolbert::{fn} in the disassembly")
            failures += 1
            continue
        # An encoding prefix ({vex} vpdpbusd: AVX-VNNI) is not part of the mnemonic.
        first = next((addr for addr, ins in body if mnemonic_of(ins).startswith(mnemonic)), None)
        loop = innermost_loop(body, first) if first is not None else []
        hits = [ins for ins in loop if mnemonic_of(ins).startswith(mnemonic)]
        # AT&T memory operands have parentheses, AArch64 ones brackets.
        on_memory = [ins for ins in loop if "(" in ins.split("<")[0] or "[" in ins]
        copies = [ins for ins in loop if mnemonic_of(ins) in VECTOR_MOVES and ins not in on_memory
                  and re.search(r"%[xyz]mm\d|\bv\d+\.", ins)]
        ok = len(hits) == accumulators and not on_memory and not copies
        print(f"{'ok  ' if ok else 'FAIL'} {name}: loop of {len(loop)} instructions, {len(hits)} x {mnemonic} "
              f"(want {accumulators}), {len(on_memory)} touching memory, {len(copies)} register copies; "
              f"e.g. {hits[0] if hits else '-'}"
              + "".join(f"\n      memory: {ins}" for ins in on_memory[:4])
              + "".join(f"\n      copy: {ins}" for ins in copies[:4]))
        failures += not ok
    print(f"{len(table) - failures} probes ok, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
