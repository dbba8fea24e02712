// Peak probe for the avx512_bf16 variant (peaks.hpp): vdpbf16ps on 16 zmm accumulators; each
// instruction adds two bf16 products to each of 16 float32 lanes (64 operations).
#include <immintrin.h>

#include "peaks_loops.hpp"

namespace edgecolbert {
namespace {

struct DotBf16Avx512 {
  using Acc = __m512;
  using Operand = __m512bh;
  static constexpr int kAccumulators = 16;
  static Acc zero() { return _mm512_setzero_ps(); }
  static Operand operand(int one) {
    const __m512 f = _mm512_set1_ps(static_cast<float>(one));
    return _mm512_cvtne2ps_pbh(f, f);
  }
  static Acc step(Acc acc, Operand x) { return _mm512_dpbf16_ps(acc, x, x); }
  static double lanes_sum(Acc acc) {
    alignas(64) float v[16];
    _mm512_store_ps(v, acc);
    double s = 0;
    for (float f : v) s += f;
    return s;
  }
};

}  // namespace

double peak_dot_bf16_avx512_bf16(int64_t iters, int one) { return compute_probe_loop<DotBf16Avx512>(iters, one); }

extern const ComputeProbe peak_probe_dot_bf16_avx512_bf16{"dot_bf16_avx512_bf16", "avx512_bf16", "bfloat16",
                                                          "vdpbf16ps zmm",  "vdpbf16ps",
                                                          DotBf16Avx512::kAccumulators, 16 * 2 * 2,
                                                          peak_dot_bf16_avx512_bf16};

}  // namespace edgecolbert
