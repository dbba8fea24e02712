// Peak probe for the avx512_vnni variant (peaks.hpp): vpdpbusd on 16 zmm accumulators; each
// instruction adds four u8 x s8 products to each of 16 int32 lanes (128 operations).
#include <immintrin.h>

#include "peaks_loops.hpp"

namespace edgecolbert {
namespace {

struct DotI8Avx512 {
  using Acc = __m512i;
  using Operand = __m512i;
  static constexpr int kAccumulators = 16;
  static Acc zero() { return _mm512_setzero_si512(); }
  static Operand operand(int one) { return _mm512_set1_epi8(static_cast<char>(one)); }
  // The instruction itself: through the intrinsic GCC 12 copies every accumulator to a fresh register
  // and back each iteration (2 moves per vpdpbusd) and spills one (check_probe_code.py).
  static Acc step(Acc acc, Operand x) {
    asm("vpdpbusd %1, %1, %0" : "+v"(acc) : "v"(x));
    return acc;
  }
  static double lanes_sum(Acc acc) { return static_cast<double>(_mm512_reduce_add_epi32(acc)); }
};

}  // namespace

double peak_dot_i8_avx512_vnni(int64_t iters, int one) { return compute_probe_loop<DotI8Avx512>(iters, one); }

extern const ComputeProbe peak_probe_dot_i8_avx512_vnni{"dot_i8_avx512_vnni", "avx512_vnni", "int8", "vpdpbusd zmm",
                                                        "vpdpbusd", DotI8Avx512::kAccumulators, 16 * 4 * 2,
                                                        peak_dot_i8_avx512_vnni};

}  // namespace edgecolbert
