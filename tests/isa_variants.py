"""The kernel variants each architecture's build compiles (the paths of csrc/cpu/dispatch.cpp), and the one
dispatch must choose on each CPU model that `make test-arm-py` emulates. One list, read by the wheel smoke
test (every path is inside each wheel) and by the aarch64 checks (info() names the expected NEON path)."""

COMPILED = {
    "x86_64": ["scalar", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16"],
    "aarch64": ["scalar", "neon", "neon_dotprod", "neon_bf16", "neon_i8mm"],
}

# QEMU_CPU model -> (the variant dispatch picks, the NEON features info() reports for it).
# max: every extension qemu 7.2 emulates (fp16, dot product, bf16, i8mm); cortex-a72: Armv8.0-A, none of
# them, so the fallbacks run (make test-arm checks neoverse-n1's neon_dotprod on the C++ side).
CHOSEN_ON_QEMU = {
    "max": ("neon_i8mm", {"neon", "asimdhp", "asimddp", "bf16", "i8mm"}),
    "cortex-a72": ("neon", {"neon"}),
}
