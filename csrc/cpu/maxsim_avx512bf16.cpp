// MaxSim, AVX-512 with AVX512_BF16 (vdpbf16ps) for bfloat16 documents; other document dtypes use the
// float32 AVX-512 kernel (maxsim_kernels.hpp). Packing, hi/lo split and driver: maxsim_bf16_kernels.hpp.
// Tile: 2 row blocks of 16 query rows x 12 tokens, 24 accumulators; per pair of dimensions 2 (hi) or 4
// (hi + lo) query loads and 24 or 48 vdpbf16ps, each taking its token pair as a {1to16} broadcast
// memory operand: a separate vpbroadcastd per token would take a vector-pipe slot beside the dot
// products on Zen 4 (vec_avx512.hpp). vdpbf16ps treats subnormal inputs as zero (DAZ).
#include <immintrin.h>

#include "maxsim_bf16_kernels.hpp"
#include "mca_markers.hpp"
#include "vec_avx512.hpp"

namespace edgecolbert {
namespace {

using PairBits = uint32_t __attribute__((may_alias));

// acc + the pairwise products of q's bf16 pairs with the pair at p in every lane (vdpbf16ps m32{1to16}).
EC_ALWAYS_INLINE __m512 dot_pair_bcast(__m512 acc, __m512i q, const uint16_t* p) {
  asm("vdpbf16ps %1%{1to16%}, %2, %0" : "+v"(acc) : "m"(*reinterpret_cast<const PairBits*>(p)), "v"(q));
  return acc;
}

struct TileAvx512Bf16 : VecAvx512 {
  static constexpr int kNJ = 12;
  static const MaxSimOps& f32() { return maxsim_ops_avx512; }

  template <int MR, int NJ, bool LO>
  EC_ALWAYS_INLINE static void tile(const uint16_t* hi, const uint16_t* lo, int64_t npairs, const uint16_t* d,
                                    int64_t stride, __m512 (&runmax)[2], simd::LineStream pf) {
    __m512 acc[MR][NJ];
    for (int m = 0; m < MR; ++m)
      for (int j = 0; j < NJ; ++j) acc[m][j] = _mm512_setzero_ps();
    if constexpr (MR == 2 && NJ == kNJ && !LO) EC_MCA_BEGIN("maxsim_bf16");
    for (int64_t p = 0; p < npairs; ++p) {
      pf.at(p);
      __m512i qh[MR], ql[MR];
      for (int m = 0; m < MR; ++m) {
        qh[m] = _mm512_load_si512(hi + (m * npairs + p) * kLanes * 2);
        if (LO) ql[m] = _mm512_load_si512(lo + (m * npairs + p) * kLanes * 2);
      }
      for (int j = 0; j < NJ; ++j) {
        const uint16_t* pair = d + j * stride + 2 * p;
        for (int m = 0; m < MR; ++m) {
          acc[m][j] = dot_pair_bcast(acc[m][j], qh[m], pair);
          if (LO) acc[m][j] = dot_pair_bcast(acc[m][j], ql[m], pair);
        }
      }
    }
    if constexpr (MR == 2 && NJ == kNJ && !LO) EC_MCA_END("maxsim_bf16");
    for (int m = 0; m < MR; ++m)
      for (int j = 0; j < NJ; ++j) runmax[m] = max_keep(acc[m][j], runmax[m]);
  }
};

using MaxSimAvx512Bf16 = MaxSimBf16<TileAvx512Bf16>;

}  // namespace

const MaxSimOps maxsim_ops_avx512_bf16{MaxSimAvx512Bf16::packed_bytes, MaxSimAvx512Bf16::pack, MaxSimAvx512Bf16::score,
                                       MaxSimAvx512Bf16::scratch_floats};

}  // namespace edgecolbert
