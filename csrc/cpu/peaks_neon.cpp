// Peak probes for the neon variant (peaks.hpp): fmla .4s on 24 accumulators (Neoverse V1/V2 and Apple
// cores run 4 FMA pipes x 4 cycles = 16 chains; 32 registers hold 24 plus the operand), and 128-bit
// loads summed with add .4s.
#include <arm_neon.h>

#include "peaks_loops.hpp"

namespace edgecolbert {
namespace {

struct FmaF32Neon {
  using Acc = float32x4_t;
  using Operand = float32x4_t;
  static constexpr int kAccumulators = 24;
  static Acc zero() { return vdupq_n_f32(0.0f); }
  static Operand operand(int one) { return vdupq_n_f32(static_cast<float>(one)); }
  static Acc step(Acc acc, Operand x) { return vfmaq_f32(x, acc, x); }  // acc x one + one
  static double lanes_sum(Acc acc) {
    return static_cast<double>(vgetq_lane_f32(acc, 0)) + vgetq_lane_f32(acc, 1) + vgetq_lane_f32(acc, 2) +
           vgetq_lane_f32(acc, 3);
  }
};

struct ReadNeon {
  using Vec = int32x4_t;
  static constexpr int kLanes = 4;
  static Vec zero() { return vdupq_n_s32(0); }
  static void accumulate(Vec& acc, const int32_t* p) { acc = vaddq_s32(acc, vld1q_s32(p)); }
  static int64_t lanes_sum(Vec v) { return vaddlvq_s32(v); }
};

}  // namespace

double peak_fma_f32_neon(int64_t iters, int one) { return compute_probe_loop<FmaF32Neon>(iters, one); }
int64_t peak_read_neon(const int32_t* buf, int64_t n, int64_t passes) { return read_probe_loop<ReadNeon>(buf, n, passes); }

extern const ComputeProbe peak_probe_fma_f32_neon{"fma_f32_neon", "neon", "float32", "fmla .4s", "fmla",
                                                  FmaF32Neon::kAccumulators, 4 * 2, peak_fma_f32_neon};
extern const ReadProbe peak_probe_read_neon{"read_neon", "neon", "ldr q + add .4s",
                                            kReadAccumulators * ReadNeon::kLanes, peak_read_neon};

}  // namespace edgecolbert
