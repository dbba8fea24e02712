// int8 centroid scores on 256-bit registers with a u8 x s8 dot product (vpdpbusd ymm), the layout and
// exact formula of CentroidI8Ops (dispatch.hpp). The instruction comes in as Dot::dpbusd, so that one
// source serves AVX-VNNI's VEX encoding (centroids_avx2vnni.cpp: Alder Lake and later, Zen 5, the
// CPUs without AVX-512 where the avx2 variant runs) and AVX512_VNNI's EVEX encoding of the same
// operation (centroids_avx512vnni.cpp builds that twin only so that the C++ tests can run this
// source on AVX-512 hosts, which lack AVX-VNNI; dispatch never picks it).
// As in the AVX-512 kernel, the query bytes are offset by 128 (u8 = q ^ 0x80, once per call) and the
// accumulators start from -csum[j] = -128 * sum_k c8[j, k]: the exact signed dot product. A tile is
// 16 rows (2 ymm of 8 rows x 4 bytes) x NJ = 6 centroids = 12 accumulators, with the 2 row vectors and
// one broadcast that is 15 of the 16 ymm registers; per 4 dimensions: 2 loads, 6 broadcasts, 12
// vpdpbusd. The block's two halves of 16 rows run one after the other over the same centroids (in L1).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "edgecolbert/dispatch.hpp"

namespace edgecolbert::centroids_i8_ymm {

constexpr int kNJ = 6;
constexpr int64_t kRows = kCentroidBlockRows;

// Rows h..h+15 (h = 0 or 16) of the block against NJ centroids.
template <class Dot, int NJ>
static inline void tile(const int8_t* q, int h, const float* qscale, int64_t groups, int64_t dim4, const int8_t* c8,
                        const float* cscale, const int32_t* csum, float* out, const float* thr, uint8_t* flags) {
  __m256i acc[2][NJ];
  for (int j = 0; j < NJ; ++j) acc[0][j] = acc[1][j] = _mm256_set1_epi32(-csum[j]);
  const int8_t* qh = q + h * 4;
  for (int64_t g = 0; g < groups; ++g) {
    const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + g * kRows * 4));
    const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + g * kRows * 4 + 32));
    for (int j = 0; j < NJ; ++j) {
      int32_t w;
      std::memcpy(&w, c8 + j * dim4 + 4 * g, sizeof w);
      const __m256i b = _mm256_set1_epi32(w);
      acc[0][j] = Dot::dpbusd(acc[0][j], q0, b);
      acc[1][j] = Dot::dpbusd(acc[1][j], q1, b);
    }
  }
  const __m256 qs0 = _mm256_loadu_ps(qscale + h), qs1 = _mm256_loadu_ps(qscale + h + 8);
  for (int j = 0; j < NJ; ++j) {
    const __m256 cs = _mm256_set1_ps(cscale[j]);
    const __m256 s0 = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[0][j]), _mm256_mul_ps(qs0, cs));
    const __m256 s1 = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[1][j]), _mm256_mul_ps(qs1, cs));
    _mm256_storeu_ps(out + j * kRows + h, s0);
    _mm256_storeu_ps(out + j * kRows + h + 8, s1);
    if (thr != nullptr) {  // ordered compare: NaN never flags
      const __m256 gt = _mm256_or_ps(_mm256_cmp_ps(s0, _mm256_loadu_ps(thr + h), _CMP_GT_OQ),
                                     _mm256_cmp_ps(s1, _mm256_loadu_ps(thr + h + 8), _CMP_GT_OQ));
      flags[j] |= _mm256_movemask_ps(gt) != 0;
    }
  }
}

template <class Dot, int NJ>
static inline void both_halves(const int8_t* q, const float* qscale, int64_t groups, int64_t dim4, const int8_t* c8,
                               const float* cscale, const int32_t* csum, float* out, const float* thr,
                               uint8_t* flags) {
  if (thr != nullptr)
    for (int j = 0; j < NJ; ++j) flags[j] = 0;
  tile<Dot, NJ>(q, 0, qscale, groups, dim4, c8, cscale, csum, out, thr, flags);
  tile<Dot, NJ>(q, 16, qscale, groups, dim4, c8, cscale, csum, out, thr, flags);
}

template <class Dot>
static void block_scores(const int8_t* packed, const float* qscale, int64_t dim4, const int8_t* c8,
                         const float* cscale, const int32_t* csum, int64_t nc, float* out, const float* thr,
                         uint8_t* flags) {
  // q + 128 as u8, on the stack up to dim 128 (PLAID's probe calls this once per 512 centroids).
  const std::size_t nq = static_cast<std::size_t>(dim4 * kRows);
  alignas(32) int8_t local[128 * kRows];
  std::vector<int8_t> heap(nq > sizeof local ? nq : 0);
  int8_t* flipped = nq > sizeof local ? heap.data() : local;
  for (std::size_t i = 0; i < nq; ++i) flipped[i] = static_cast<int8_t>(packed[i] ^ 0x80);
  const int64_t groups = dim4 / 4;
  for (int64_t j0 = 0; j0 < nc; j0 += kNJ) {
    const int nj = static_cast<int>(std::min<int64_t>(kNJ, nc - j0));
    const int8_t* c = c8 + j0 * dim4;
    const float* s = cscale + j0;
    const int32_t* o = csum + j0;
    float* d = out + j0 * kRows;
    uint8_t* f = thr != nullptr ? flags + j0 : nullptr;
    switch (nj) {
      case 1: both_halves<Dot, 1>(flipped, qscale, groups, dim4, c, s, o, d, thr, f); break;
      case 2: both_halves<Dot, 2>(flipped, qscale, groups, dim4, c, s, o, d, thr, f); break;
      case 3: both_halves<Dot, 3>(flipped, qscale, groups, dim4, c, s, o, d, thr, f); break;
      case 4: both_halves<Dot, 4>(flipped, qscale, groups, dim4, c, s, o, d, thr, f); break;
      case 5: both_halves<Dot, 5>(flipped, qscale, groups, dim4, c, s, o, d, thr, f); break;
      default: both_halves<Dot, 6>(flipped, qscale, groups, dim4, c, s, o, d, thr, f); break;
    }
  }
}

}  // namespace edgecolbert::centroids_i8_ymm
