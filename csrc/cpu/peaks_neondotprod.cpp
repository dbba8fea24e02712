// Peak probe for the neon_dotprod variant (peaks.hpp): sdot .4s on 24 accumulators; each instruction
// adds four s8 x s8 products to each of 4 int32 lanes (32 operations).
#include <arm_neon.h>

#include "peaks_loops.hpp"

namespace edgecolbert {

static void sdot(int32x4_t& acc, int8x16_t x) { acc = vdotq_s32(acc, x, x); }

EC_COMPUTE_PROBE(dot_i8_neon_dotprod, "neon_dotprod", "int8", "sdot .4s", "sdot", 4 * 4 * 2,
                 InstructionProbe<sdot, 24, int32_t, int8_t>);

}  // namespace edgecolbert
