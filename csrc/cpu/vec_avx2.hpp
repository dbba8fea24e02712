// Vector traits for AVX2 + FMA + F16C (simd.hpp lists what a traits struct gives): 8 float32 lanes in
// a ymm register, broadcasts by vbroadcastss from memory (a load, no vector-pipe slot), half-precision
// widened by vcvtph2ps (float16) or a 16-bit shift (bfloat16). Included only by *_avx2.cpp files.
#pragma once
#include <immintrin.h>

#include "edgecolbert/common.hpp"
#include "simd.hpp"

namespace edgecolbert {
namespace {

struct VecAvx2 {
  using F = __m256;
  using B = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kPrefetchTokens = 12;
  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_load_ps(p); }
  static F loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  // (lanes 0-3 + 4-7), then pairs, then the last two: the order every AVX2 norm uses.
  static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // float16, round to nearest even.
  static void store_f16(uint16_t* p, F v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  // max_ps returns its second operand when either is NaN: with the running max second, a NaN x is ignored.
  static F max_keep(F x, F run) { return _mm256_max_ps(x, run); }
  static bool any_gt(F a, F t) { return _mm256_movemask_ps(_mm256_cmp_ps(a, t, _CMP_GT_OQ)) != 0; }
  static B bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static F fma(F acc, F q, B b) { return _mm256_fmadd_ps(q, b, acc); }

  static void widen(const uint16_t* src, DType dtype, int64_t n, float* dst) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      const __m256 f = dtype == DType::f16 ? _mm256_cvtph_ps(h)
                                           : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      _mm256_storeu_ps(dst + i, f);
    }
    for (; i < n; ++i) dst[i] = dtype == DType::f16 ? f16_to_f32(src[i]) : bf16_to_f32(src[i]);
  }
};

}  // namespace
}  // namespace edgecolbert
