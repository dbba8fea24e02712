// int8 centroid scores with a u8 x s8 dot product (vpdpbusd), the layout and exact formula of
// CentroidI8Ops (dispatch.hpp), over int8 vector traits: VnniZmm (AVX512_VNNI: the avx512_vnni variant,
// Cascade Lake and Ice Lake, and the avx512_bf16 one, every CPU with AVX512_BF16 having VNNI) and
// VnniYmm<Dot> (256-bit: AVX-VNNI's VEX encoding, centroids_avx2vnni.cpp, for Alder Lake and later and
// Zen 5 without AVX-512; and AVX512_VNNI's EVEX encoding of the same operation, built in
// centroids_avx512vnni.cpp only so that the C++ tests can run the ymm kernel on AVX-512 hosts, which
// lack AVX-VNNI; dispatch never picks it).
//
// vpdpbusd multiplies unsigned by signed bytes, four per 32-bit lane: the query bytes are offset by 128
// (q + 128 as u8, an xor of the sign bit, once per call) and the accumulators start from
// -csum[j] = -128 * sum_k c8[j, k], which gives the exact signed dot product (16% faster on Zen 4 than
// flipping per tile and subtracting after). A tile is 2 row vectors (R rows x 4 bytes each) x NJ
// centroids: zmm R = 16, NJ = 8, the whole 32-row block, 16 accumulators (12 made GCC 12 spill them);
// ymm R = 8, NJ = 6, 12 accumulators + 2 row vectors + 1 broadcast = 15 of the 16 ymm registers, the
// block's two halves of 16 rows one after the other over the same centroids (in L1). Per 4 dimensions:
// 2 loads, NJ broadcasts, 2 NJ vpdpbusd. The probe's threshold test is two ordered compares per centroid
// on scores still in registers (NaN never flags).
//
// A traits struct V gives: I (the int32 vector), F (the float32 one), kRows (rows per vector), kNJ,
// kMark (whether the tile carries the "centroids_i8_vnni" LLVM-MCA markers, mca_markers.hpp); loadu,
// set1 (an int32 to every lane), dpbusd(acc, u8, s8), to_float, loadu_ps, set1_ps, mul, storeu_ps and
// any_gt(a, t) (some lane has a > t, ordered). Included only by the *vnni.cpp files, each built with its
// own -m flags (internal linkage).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "edgecolbert/dispatch.hpp"
#include "simd.hpp"

namespace edgecolbert {
namespace {

template <class V>
struct CentroidScoresI8Vnni {
  using I = typename V::I;
  using F = typename V::F;
  static constexpr int R = V::kRows;
  static constexpr int NJ = V::kNJ;
  static constexpr int64_t kRows = kCentroidBlockRows;
  static_assert(kRows % (2 * R) == 0, "a block is a whole number of 2-vector row groups");

  // Rows h..h+2R-1 of the block (flipped: q + 128 as u8) against N <= NJ centroids; flags (thr given) |=.
  template <int N>
  EC_ALWAYS_INLINE static void tile(const int8_t* q, int h, const float* qscale, int64_t groups, int64_t dim4,
                                    const int8_t* c8, const float* cscale, const int32_t* csum, float* out,
                                    const float* thr, uint8_t* flags) {
    I acc[2][N];
    for (int j = 0; j < N; ++j) acc[0][j] = acc[1][j] = V::set1(-csum[j]);
    const int8_t* qh = q + h * 4;
    if constexpr (V::kMark && N == NJ) EC_MCA_BEGIN("centroids_i8_vnni");
    for (int64_t g = 0; g < groups; ++g) {
      const I q0 = V::loadu(qh + g * kRows * 4);
      const I q1 = V::loadu(qh + g * kRows * 4 + R * 4);
      for (int j = 0; j < N; ++j) {
        int32_t w;
        std::memcpy(&w, c8 + j * dim4 + 4 * g, sizeof w);
        const I b = V::set1(w);
        acc[0][j] = V::dpbusd(acc[0][j], q0, b);
        acc[1][j] = V::dpbusd(acc[1][j], q1, b);
      }
    }
    if constexpr (V::kMark && N == NJ) EC_MCA_END("centroids_i8_vnni");
    const F qs0 = V::loadu_ps(qscale + h), qs1 = V::loadu_ps(qscale + h + R);
    for (int j = 0; j < N; ++j) {
      const F cs = V::set1_ps(cscale[j]);
      const F s0 = V::mul(V::to_float(acc[0][j]), V::mul(qs0, cs));
      const F s1 = V::mul(V::to_float(acc[1][j]), V::mul(qs1, cs));
      V::storeu_ps(out + j * kRows + h, s0);
      V::storeu_ps(out + j * kRows + h + R, s1);
      if (thr != nullptr) flags[j] |= V::any_gt(s0, V::loadu_ps(thr + h)) | V::any_gt(s1, V::loadu_ps(thr + h + R));
    }
  }

  static void block_scores(const int8_t* packed, const float* qscale, int64_t dim4, const int8_t* c8,
                           const float* cscale, const int32_t* csum, int64_t nc, float* out, const float* thr,
                           uint8_t* flags) {
    // q + 128 as u8, on the stack up to dim 128 (PLAID's probe calls this once per 512 centroids).
    const std::size_t nq = static_cast<std::size_t>(dim4 * kRows);
    alignas(64) int8_t local[128 * kRows];
    std::vector<int8_t> heap(nq > sizeof local ? nq : 0);
    int8_t* flipped = nq > sizeof local ? heap.data() : local;
    for (std::size_t i = 0; i < nq; ++i) flipped[i] = static_cast<int8_t>(packed[i] ^ 0x80);
    const int64_t groups = dim4 / 4;
    for (int64_t j0 = 0; j0 < nc; j0 += NJ) {
      const int nj = static_cast<int>(std::min<int64_t>(NJ, nc - j0));
      uint8_t* f = thr != nullptr ? flags + j0 : nullptr;
      if (f != nullptr) std::fill_n(f, nj, uint8_t{0});
      simd::with_count<NJ>(nj, [&](auto n) EC_LAMBDA_INLINE {
        for (int h = 0; h < kRows; h += 2 * R)
          tile<decltype(n)::value>(flipped, h, qscale, groups, dim4, c8 + j0 * dim4, cscale + j0, csum + j0,
                                   out + j0 * kRows, thr, f);
      });
    }
  }
};

// 256-bit traits; Dot::dpbusd is the VEX (AVX-VNNI) or EVEX (AVX512_VNNI + VL) vpdpbusd ymm.
template <class Dot>
struct VnniYmm {
  using I = __m256i;
  using F = __m256;
  static constexpr int kRows = 8;
  static constexpr int kNJ = 6;
  static constexpr bool kMark = false;
  static I loadu(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static I set1(int32_t w) { return _mm256_set1_epi32(w); }
  static I dpbusd(I acc, I u8, I s8) { return Dot::dpbusd(acc, u8, s8); }
  static F to_float(I v) { return _mm256_cvtepi32_ps(v); }
  static F loadu_ps(const float* p) { return _mm256_loadu_ps(p); }
  static F set1_ps(float x) { return _mm256_set1_ps(x); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static void storeu_ps(float* p, F v) { _mm256_storeu_ps(p, v); }
  static bool any_gt(F a, F t) { return _mm256_movemask_ps(_mm256_cmp_ps(a, t, _CMP_GT_OQ)) != 0; }
};

}  // namespace
}  // namespace edgecolbert
