// Peak probe for the neon_bf16 variant (peaks.hpp): bfdot .4s on 24 accumulators; each instruction
// adds two bf16 products to each of 4 float32 lanes (16 operations).
#include <arm_neon.h>

#include "peaks_loops.hpp"

namespace edgecolbert {
namespace {

struct DotBf16Neon {
  using Acc = float32x4_t;
  using Operand = bfloat16x8_t;
  static constexpr int kAccumulators = 24;
  static Acc zero() { return vdupq_n_f32(0.0f); }
  // one as bfloat16: the top half of its float32 bits (exact for small integers).
  static Operand operand(int one) {
    const float f = static_cast<float>(one);
    uint32_t u;
    __builtin_memcpy(&u, &f, sizeof u);
    return vreinterpretq_bf16_u16(vdupq_n_u16(static_cast<uint16_t>(u >> 16)));
  }
  static Acc step(Acc acc, Operand x) { return vbfdotq_f32(acc, x, x); }
  static double lanes_sum(Acc acc) {
    return static_cast<double>(vgetq_lane_f32(acc, 0)) + vgetq_lane_f32(acc, 1) + vgetq_lane_f32(acc, 2) +
           vgetq_lane_f32(acc, 3);
  }
};

}  // namespace

double peak_dot_bf16_neon_bf16(int64_t iters, int one) { return compute_probe_loop<DotBf16Neon>(iters, one); }

extern const ComputeProbe peak_probe_dot_bf16_neon_bf16{"dot_bf16_neon_bf16", "neon_bf16", "bfloat16", "bfdot .4s",
                                                        "bfdot", DotBf16Neon::kAccumulators, 4 * 2 * 2,
                                                        peak_dot_bf16_neon_bf16};

}  // namespace edgecolbert
