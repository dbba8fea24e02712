// Peak probe for the neon_dotprod variant (peaks.hpp): sdot .4s on 24 accumulators; each instruction
// adds four s8 x s8 products to each of 4 int32 lanes (32 operations).
#include <arm_neon.h>

#include "peaks_loops.hpp"

namespace edgecolbert {
namespace {

struct DotI8Neon {
  using Acc = int32x4_t;
  using Operand = int8x16_t;
  static constexpr int kAccumulators = 24;
  static Acc zero() { return vdupq_n_s32(0); }
  static Operand operand(int one) { return vdupq_n_s8(static_cast<int8_t>(one)); }
  static Acc step(Acc acc, Operand x) { return vdotq_s32(acc, x, x); }
  static double lanes_sum(Acc acc) { return static_cast<double>(vaddlvq_s32(acc)); }
};

}  // namespace

double peak_dot_i8_neon_dotprod(int64_t iters, int one) { return compute_probe_loop<DotI8Neon>(iters, one); }

extern const ComputeProbe peak_probe_dot_i8_neon_dotprod{"dot_i8_neon_dotprod", "neon_dotprod", "int8", "sdot .4s",
                                                         "sdot", DotI8Neon::kAccumulators, 4 * 4 * 2,
                                                         peak_dot_i8_neon_dotprod};

}  // namespace edgecolbert
