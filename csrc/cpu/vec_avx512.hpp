// Vector traits for AVX-512 F/BW/VL/DQ (simd.hpp lists what a traits struct gives): 16 float32 lanes
// in a zmm register. Two broadcast forms:
//  VecAvx512        broadcasts into a register (vbroadcastss zmm), shared by the row vectors of a column;
//  VecAvx512Folded  folds the broadcast into each FMA's memory operand (vfmadd231ps m32{1to16}).
// On Zen 4 a vbroadcastss zmm takes a vector-pipe slot beside the FMAs (llvm-mca's znver4 model: a
// 2 x 12 MaxSim tile with 12 broadcasts per 24 FMAs runs at 67% of the FMA peak); folded, the load unit
// broadcasts and the FMAs have the pipes to themselves (centroid_search's tile: 12-25% faster,
// interleaved runs). The arithmetic is the same FMAs. The folded form loads the scalar once per FMA,
// and where the tokens were written just before (a tile decoded or widened into scratch) those loads
// wait on store forwarding: compressed MaxSim's decoded tile ran 2x slower folded, so it broadcasts
// into a register. Included only by *_avx512*.cpp files.
#pragma once
#include <immintrin.h>

#include "edgecolbert/common.hpp"
#include "simd.hpp"

namespace edgecolbert {
namespace {

struct VecAvx512 {
  using F = __m512;
  using B = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kPrefetchTokens = 12;
  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_load_ps(p); }
  static F loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, F v) { _mm512_storeu_ps(p, v); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  // max_ps returns its second operand when either is NaN: with the running max second, a NaN x is ignored.
  static F max_keep(F x, F run) { return _mm512_max_ps(x, run); }
  static bool any_gt(F a, F t) { return _mm512_cmp_ps_mask(a, t, _CMP_GT_OQ) != 0; }
  static B bcast(const float* p) { return _mm512_set1_ps(*p); }
  static F fma(F acc, F q, B b) { return _mm512_fmadd_ps(q, b, acc); }

  // Exact; the tail is a masked load and store, so nothing past src[n) or dst[n) is touched.
  static void widen(const uint16_t* src, DType dtype, int64_t n, float* dst) {
    auto cvt = [dtype](__m256i h) {
      return dtype == DType::f16 ? _mm512_cvtph_ps(h)
                                 : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    };
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
      _mm512_storeu_ps(dst + i, cvt(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
    if (i < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
      _mm512_mask_storeu_ps(dst + i, m, cvt(_mm256_maskz_loadu_epi16(m, src + i)));
    }
  }
};

struct VecAvx512Folded : VecAvx512 {
  using B = const float*;
  static B bcast(const float* p) { return p; }
  // acc + q * (*p in every lane): vfmadd231ps with a {1to16} memory operand (compilers load a shared
  // broadcast once into a register instead; an asm statement keeps the fold).
  static F fma(F acc, F q, B p) {
    asm("vfmadd231ps %1%{1to16%}, %2, %0" : "+v"(acc) : "m"(*p), "v"(q));
    return acc;
  }
};

}  // namespace
}  // namespace edgecolbert
