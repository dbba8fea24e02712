// int8 centroid scores with AVX512_VNNI (centroids_i8_vnni.hpp): the avx512_vnni variant (Cascade Lake,
// Ice Lake) and the avx512_bf16 one (every CPU with AVX512_BF16 has VNNI). A tile is 2 zmm of 16 rows x
// 4 bytes (the whole 32-row block) x 8 centroids = 16 accumulators; per 4 dimensions 2 loads, 8
// broadcasts, 16 vpdpbusd (64 MACs each, 4x the float32 kernel's work per instruction).
#include "centroids_i8_vnni.hpp"

namespace edgecolbert {
namespace {

struct VnniZmm {
  using I = __m512i;
  using F = __m512;
  static constexpr int kRows = 16;
  static constexpr int kNJ = 8;
  static constexpr bool kMark = true;  // the x86 row of `make arm-model`
  static I loadu(const int8_t* p) { return _mm512_loadu_si512(p); }
  static I set1(int32_t w) { return _mm512_set1_epi32(w); }
  static I dpbusd(I acc, I u8, I s8) { return _mm512_dpbusd_epi32(acc, u8, s8); }
  static F to_float(I v) { return _mm512_cvtepi32_ps(v); }
  static F loadu_ps(const float* p) { return _mm512_loadu_ps(p); }
  static F set1_ps(float x) { return _mm512_set1_ps(x); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static void storeu_ps(float* p, F v) { _mm512_storeu_ps(p, v); }
  static bool any_gt(F a, F t) { return _mm512_cmp_ps_mask(a, t, _CMP_GT_OQ) != 0; }
};

// The EVEX encoding of vpdpbusd ymm, for the tests only (centroids_i8_vnni.hpp).
struct DpbusdEvex256 {
  static __m256i dpbusd(__m256i acc, __m256i u8, __m256i s8) { return _mm256_dpbusd_epi32(acc, u8, s8); }
};

}  // namespace

const CentroidI8Ops centroid_i8_ops_avx512_vnni{true, CentroidScoresI8Vnni<VnniZmm>::block_scores};
// The avx2_vnni kernel's source with the EVEX encoding of vpdpbusd ymm: AVX-512 hosts have no AVX-VNNI
// to run the VEX build on.
const CentroidI8Ops centroid_i8_ops_ymm_evex_for_tests{true,
                                                      CentroidScoresI8Vnni<VnniYmm<DpbusdEvex256>>::block_scores};

}  // namespace edgecolbert
