// Peak probe for the avx2_vnni variant (peaks.hpp): the VEX-encoded vpdpbusd of AVX-VNNI (Alder Lake
// and later, Zen 5) on 12 ymm accumulators; each instruction adds four u8 x s8 products to each of 8
// int32 lanes (64 operations).
#include <immintrin.h>

#include "peaks_loops.hpp"

namespace edgecolbert {
namespace {

struct DotI8Avx2Vnni {
  using Acc = __m256i;
  using Operand = __m256i;
  static constexpr int kAccumulators = 12;
  static Acc zero() { return _mm256_setzero_si256(); }
  static Operand operand(int one) { return _mm256_set1_epi8(static_cast<char>(one)); }
  // The instruction itself ({vex} escaped: braces are dialect alternatives in GCC asm): through the
  // intrinsic GCC 12 copies accumulators between registers and stores 10 of them to the stack every
  // iteration (check_probe_code.py).
  static Acc step(Acc acc, Operand x) {
    asm("%{vex%} vpdpbusd %1, %1, %0" : "+x"(acc) : "x"(x));
    return acc;
  }
  static double lanes_sum(Acc acc) {  // lanes <= 4 x kProbeChunk: the int32 sum of 8 cannot overflow
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
  }
};

}  // namespace

double peak_dot_i8_avx2_vnni(int64_t iters, int one) { return compute_probe_loop<DotI8Avx2Vnni>(iters, one); }

extern const ComputeProbe peak_probe_dot_i8_avx2_vnni{"dot_i8_avx2_vnni", "avx2_vnni", "int8", "{vex} vpdpbusd ymm",
                                                      "vpdpbusd", DotI8Avx2Vnni::kAccumulators, 8 * 4 * 2,
                                                      peak_dot_i8_avx2_vnni};

}  // namespace edgecolbert
