// Peak probe for the neon_bf16 variant (peaks.hpp): bfdot .4s on 24 accumulators; each instruction
// adds two bf16 products to each of 4 float32 lanes (16 operations).
#include <arm_neon.h>

#include "peaks_loops.hpp"

namespace edgecolbert {

static void bfdot(float32x4_t& acc, bfloat16x8_t x) { acc = vbfdotq_f32(acc, x, x); }

EC_COMPUTE_PROBE(dot_bf16_neon_bf16, "neon_bf16", "bfloat16", "bfdot .4s", "bfdot", 4 * 2 * 2,
                 InstructionProbe<bfdot, 24, float, Bf16>);

}  // namespace edgecolbert
