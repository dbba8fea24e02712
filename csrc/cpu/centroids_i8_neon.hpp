// The float epilogue of the NEON int8 centroid kernels (centroids_neondotprod.cpp, centroids_neoni8mm.cpp):
// exact int32 dot products of 8 rows [h, h + 8) with one centroid j become
//   out[j * 32 + r] = float(dot) * (qscale[r] * cscale[j])
// with the same two float32 roundings, in the same order, as the scalar reference (SCVTF rounds to
// nearest like static_cast<float>; FMUL is IEEE; no add, so nothing can be contracted into an FMA), so
// the paths agree bit for bit. FCMGT is an ordered compare: a NaN score never flags. `static` keeps one
// private copy per file: each file is built with its own -march flags.
#pragma once
#include <arm_neon.h>

#include <cstdint>

#include "edgecolbert/dispatch.hpp"

namespace edgecolbert::centroids_i8_neon {

// acc0: rows h..h+3, acc1: rows h+4..h+7. thr == nullptr: no flag is touched.
static inline void store_octet(int32x4_t acc0, int32x4_t acc1, const float* qscale, float cscale, int h, float* out,
                               const float* thr, uint8_t* flag) {
  const float32x4_t s0 = vmulq_f32(vcvtq_f32_s32(acc0), vmulq_n_f32(vld1q_f32(qscale + h), cscale));
  const float32x4_t s1 = vmulq_f32(vcvtq_f32_s32(acc1), vmulq_n_f32(vld1q_f32(qscale + h + 4), cscale));
  vst1q_f32(out + h, s0);
  vst1q_f32(out + h + 4, s1);
  if (thr != nullptr) {
    const uint32x4_t gt = vorrq_u32(vcgtq_f32(s0, vld1q_f32(thr + h)), vcgtq_f32(s1, vld1q_f32(thr + h + 4)));
    *flag |= vmaxvq_u32(gt) != 0;
  }
}

}  // namespace edgecolbert::centroids_i8_neon
