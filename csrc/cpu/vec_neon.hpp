// Vector traits for AArch64 Advanced SIMD (simd.hpp lists what a traits struct gives): 4 float32 lanes
// in a q register; the broadcast operand is a scalar that FMLA takes by element (no DUP); float16 is
// widened by FCVTL (base AArch64), bfloat16 by a 16-bit shift. Included only by *_neon*.cpp files.
#pragma once
#include <arm_neon.h>

#include "edgecolbert/common.hpp"
#include "simd.hpp"

namespace edgecolbert {
namespace {

struct VecNeon {
  using F = float32x4_t;
  using B = float;
  static constexpr int kLanes = 4;
  static constexpr int kPrefetchTokens = 0;  // not measured on ARM: none
  static F zero() { return vdupq_n_f32(0.0f); }
  static F load(const float* p) { return vld1q_f32(p); }
  static F loadu(const float* p) { return vld1q_f32(p); }
  static void storeu(float* p, F v) { vst1q_f32(p, v); }
  static F set1(float x) { return vdupq_n_f32(x); }
  static F add(F a, F b) { return vaddq_f32(a, b); }
  static F fmadd(F a, F b, F c) { return vfmaq_f32(c, a, b); }
  static F mul(F a, F b) { return vmulq_f32(a, b); }
  static F div(F a, F b) { return vdivq_f32(a, b); }
  static float hsum(F v) { return vaddvq_f32(v); }
  // float16 (FCVTN), round to nearest even.
  static void store_f16(uint16_t* p, F v) { vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v))); }
  // FMAXNM returns the number when one operand is NaN: a NaN x is ignored.
  static F max_keep(F x, F run) { return vmaxnmq_f32(run, x); }
  static bool any_gt(F a, F t) { return vmaxvq_u32(vcgtq_f32(a, t)) != 0; }
  static B bcast(const float* p) { return *p; }
  static F fma(F acc, F q, B b) { return vfmaq_n_f32(acc, q, b); }

  static void widen(const uint16_t* src, DType dtype, int64_t n, float* dst) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      const uint16x4_t h = vld1_u16(src + i);
      const float32x4_t f = dtype == DType::f16 ? vcvt_f32_f16(vreinterpret_f16_u16(h))
                                                : vreinterpretq_f32_u32(vshll_n_u16(h, 16));
      vst1q_f32(dst + i, f);
    }
    for (; i < n; ++i) dst[i] = dtype == DType::f16 ? f16_to_f32(src[i]) : bf16_to_f32(src[i]);
  }
};

}  // namespace
}  // namespace edgecolbert
