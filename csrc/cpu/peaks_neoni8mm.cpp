// Peak probe for the neon_i8mm variant (peaks.hpp): smmla on 24 accumulators; each instruction
// multiplies a 2 x 8 by an 8 x 2 int8 matrix into 2 x 2 int32 lanes: 32 products (64 operations),
// twice sdot's per instruction.
#include <arm_neon.h>

#include "peaks_loops.hpp"

namespace edgecolbert {
namespace {

struct MmlaI8Neon {
  using Acc = int32x4_t;
  using Operand = int8x16_t;
  static constexpr int kAccumulators = 24;
  static Acc zero() { return vdupq_n_s32(0); }
  static Operand operand(int one) { return vdupq_n_s8(static_cast<int8_t>(one)); }
  static Acc step(Acc acc, Operand x) { return vmmlaq_s32(acc, x, x); }
  static double lanes_sum(Acc acc) { return static_cast<double>(vaddlvq_s32(acc)); }
};

}  // namespace

double peak_mmla_i8_neon_i8mm(int64_t iters, int one) { return compute_probe_loop<MmlaI8Neon>(iters, one); }

extern const ComputeProbe peak_probe_mmla_i8_neon_i8mm{"mmla_i8_neon_i8mm", "neon_i8mm", "int8", "smmla",
                                                       "smmla", MmlaI8Neon::kAccumulators, 4 * 8 * 2,
                                                       peak_mmla_i8_neon_i8mm};

}  // namespace edgecolbert
