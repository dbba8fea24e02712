// Peak probes for the neon variant (peaks.hpp): fmla .4s on 24 accumulators (Neoverse V1/V2 and Apple
// cores run 4 FMA pipes x 4 cycles = 16 chains; 32 registers hold 24 plus the operand), and 128-bit
// loads summed with add .4s.
#include "peaks_loops.hpp"
#include "vec_neon.hpp"

namespace edgecolbert {

static void add_loaded(int32x4_t& acc, const int32_t* p) { acc = vaddq_s32(acc, vld1q_s32(p)); }

EC_COMPUTE_PROBE(fma_f32_neon, "neon", "float32", "fmla .4s", "fmla", 4 * 2, FmaProbe<VecNeon, 24>);
EC_READ_PROBE(read_neon, "neon", "ldr q + add .4s", LoadSums<add_loaded>);

}  // namespace edgecolbert
