// Peak probe for the avx512_bf16 variant (peaks.hpp): vdpbf16ps on 16 zmm accumulators; each
// instruction adds two bf16 products to each of 16 float32 lanes (64 operations).
#include <immintrin.h>

#include "peaks_loops.hpp"

namespace edgecolbert {

static void vdpbf16ps(__m512& acc, __m512bh x) { acc = _mm512_dpbf16_ps(acc, x, x); }

EC_COMPUTE_PROBE(dot_bf16_avx512_bf16, "avx512_bf16", "bfloat16", "vdpbf16ps zmm", "vdpbf16ps", 16 * 2 * 2,
                 InstructionProbe<vdpbf16ps, 16, float, Bf16>);

}  // namespace edgecolbert
