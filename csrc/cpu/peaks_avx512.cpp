// Peak probes for the avx512 variant (peaks.hpp): vfmadd231ps on 16 zmm accumulators (Zen 4 needs
// 4 cycles x 1 512-bit FMA per cycle = 4 chains, Sapphire Rapids and Zen 5 4 x 2 = 8; 16 leaves room),
// and 512-bit loads summed with vpaddd.
#include <immintrin.h>

#include "peaks_loops.hpp"

namespace edgecolbert {
namespace {

struct FmaF32Avx512 {
  using Acc = __m512;
  using Operand = __m512;
  static constexpr int kAccumulators = 16;
  static Acc zero() { return _mm512_setzero_ps(); }
  static Operand operand(int one) { return _mm512_set1_ps(static_cast<float>(one)); }
  static Acc step(Acc acc, Operand x) { return _mm512_fmadd_ps(acc, x, x); }
  static double lanes_sum(Acc acc) {
    alignas(64) float v[16];
    _mm512_store_ps(v, acc);
    double s = 0;
    for (float f : v) s += f;
    return s;
  }
};

struct ReadAvx512 {
  using Vec = __m512i;
  static constexpr int kLanes = 16;
  static Vec zero() { return _mm512_setzero_si512(); }
  // The load folded into the add, in asm: through intrinsics GCC 12 moves all 8 accumulators to new
  // registers every iteration (8 extra instructions per 8 loads).
  static void accumulate(Vec& acc, const int32_t* p) {
    asm("vpaddd %1, %0, %0" : "+v"(acc) : "m"(*reinterpret_cast<const __m512i*>(p)));
  }
  static int64_t lanes_sum(Vec v) {
    alignas(64) int32_t x[16];
    _mm512_store_si512(x, v);
    int64_t s = 0;
    for (int32_t e : x) s += e;
    return s;
  }
};

}  // namespace

double peak_fma_f32_avx512(int64_t iters, int one) { return compute_probe_loop<FmaF32Avx512>(iters, one); }
int64_t peak_read_avx512(const int32_t* buf, int64_t n, int64_t passes) {
  return read_probe_loop<ReadAvx512>(buf, n, passes);
}

extern const ComputeProbe peak_probe_fma_f32_avx512{"fma_f32_avx512", "avx512", "float32", "vfmadd231ps zmm", "vfmadd",
                                                    FmaF32Avx512::kAccumulators, 16 * 2, peak_fma_f32_avx512};
extern const ReadProbe peak_probe_read_avx512{"read_avx512", "avx512", "vpaddd zmm, [mem]",
                                              kReadAccumulators * ReadAvx512::kLanes, peak_read_avx512};

}  // namespace edgecolbert
