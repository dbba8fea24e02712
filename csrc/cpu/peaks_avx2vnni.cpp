// Peak probe for the avx2_vnni variant (peaks.hpp): the VEX-encoded vpdpbusd of AVX-VNNI (Alder Lake
// and later, Zen 5) on 12 ymm accumulators; each instruction adds four u8 x s8 products to each of 8
// int32 lanes (64 operations).
#include <immintrin.h>

#include "peaks_loops.hpp"

namespace edgecolbert {

// The instruction itself ({vex} escaped: braces are dialect alternatives in GCC asm): through the
// intrinsic GCC 12 copies accumulators between registers and stores 10 of them to the stack every
// iteration (check_probe_code.py).
static void vpdpbusd_ymm(__m256i& acc, __m256i x) { asm("%{vex%} vpdpbusd %1, %1, %0" : "+x"(acc) : "x"(x)); }

EC_COMPUTE_PROBE(dot_i8_avx2_vnni, "avx2_vnni", "int8", "{vex} vpdpbusd ymm", "vpdpbusd", 8 * 4 * 2,
                 InstructionProbe<vpdpbusd_ymm, 12, int32_t, uint8_t>);

}  // namespace edgecolbert
