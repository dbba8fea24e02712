// Peak probes for the avx2 variant (peaks.hpp): vfmadd231ps on 12 ymm accumulators (2 FMA pipes x 4
// cycles = 8 chains on Zen 3/4 and Alder Lake; 16 ymm registers hold 12 plus the operand), and 256-bit
// loads summed with vpaddd.
#include <immintrin.h>

#include "peaks_loops.hpp"

namespace edgecolbert {
namespace {

struct FmaF32Avx2 {
  using Acc = __m256;
  using Operand = __m256;
  static constexpr int kAccumulators = 12;
  static Acc zero() { return _mm256_setzero_ps(); }
  static Operand operand(int one) { return _mm256_set1_ps(static_cast<float>(one)); }
  static Acc step(Acc acc, Operand x) { return _mm256_fmadd_ps(acc, x, x); }
  static double lanes_sum(Acc acc) {
    alignas(32) float v[8];
    _mm256_store_ps(v, acc);
    double s = 0;
    for (float f : v) s += f;
    return s;
  }
};

struct ReadAvx2 {
  using Vec = __m256i;
  static constexpr int kLanes = 8;
  static Vec zero() { return _mm256_setzero_si256(); }
  // The load folded into the add, in asm (as in peaks_avx512.cpp: no register copies).
  static void accumulate(Vec& acc, const int32_t* p) {
    asm("vpaddd %1, %0, %0" : "+x"(acc) : "m"(*reinterpret_cast<const __m256i*>(p)));
  }
  static int64_t lanes_sum(Vec v) {
    alignas(32) int32_t x[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(x), v);
    int64_t s = 0;
    for (int32_t e : x) s += e;
    return s;
  }
};

}  // namespace

double peak_fma_f32_avx2(int64_t iters, int one) { return compute_probe_loop<FmaF32Avx2>(iters, one); }
int64_t peak_read_avx2(const int32_t* buf, int64_t n, int64_t passes) { return read_probe_loop<ReadAvx2>(buf, n, passes); }

extern const ComputeProbe peak_probe_fma_f32_avx2{"fma_f32_avx2", "avx2", "float32", "vfmadd231ps ymm", "vfmadd",
                                                  FmaF32Avx2::kAccumulators, 8 * 2, peak_fma_f32_avx2};
extern const ReadProbe peak_probe_read_avx2{"read_avx2", "avx2", "vpaddd ymm, [mem]",
                                            kReadAccumulators * ReadAvx2::kLanes, peak_read_avx2};

}  // namespace edgecolbert
