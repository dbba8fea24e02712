// Peak probe for the avx512_vnni variant (peaks.hpp): vpdpbusd on 16 zmm accumulators; each
// instruction adds four u8 x s8 products to each of 16 int32 lanes (128 operations).
#include <immintrin.h>

#include "peaks_loops.hpp"

namespace edgecolbert {

// The instruction itself: through the intrinsic GCC 12 copies every accumulator to a fresh register
// and back each iteration (2 moves per vpdpbusd) and spills one (check_probe_code.py).
static void vpdpbusd_zmm(__m512i& acc, __m512i x) { asm("vpdpbusd %1, %1, %0" : "+v"(acc) : "v"(x)); }

EC_COMPUTE_PROBE(dot_i8_avx512_vnni, "avx512_vnni", "int8", "vpdpbusd zmm", "vpdpbusd", 16 * 4 * 2,
                 InstructionProbe<vpdpbusd_zmm, 16, int32_t, uint8_t>);

}  // namespace edgecolbert
