// Peak probe for the neon_i8mm variant (peaks.hpp): smmla on 24 accumulators; each instruction
// multiplies a 2 x 8 by an 8 x 2 int8 matrix into 2 x 2 int32 lanes: 32 products (64 operations),
// twice sdot's per instruction.
#include <arm_neon.h>

#include "peaks_loops.hpp"

namespace edgecolbert {

static void smmla(int32x4_t& acc, int8x16_t x) { acc = vmmlaq_s32(acc, x, x); }

EC_COMPUTE_PROBE(mmla_i8_neon_i8mm, "neon_i8mm", "int8", "smmla", "smmla", 4 * 8 * 2,
                 InstructionProbe<smmla, 24, int32_t, int8_t>);

}  // namespace edgecolbert
