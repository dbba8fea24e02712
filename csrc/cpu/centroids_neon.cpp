// Centroid scores, AArch64 Advanced SIMD (NEON), float32 arithmetic for every centroid dtype.
// The 32 rows of a block are packed transposed ([dim][32] floats). A tile is 8 rows (2 vectors) x
// NJ = 8 centroids = 16 accumulators of the 32 vector registers; the four row quarters of the block
// run one after the other over the same L1-resident centroid tile. Stores are centroid-major and
// compared with the per-row thresholds (see centroids_avx512.cpp). Half-precision centroids are
// widened (FCVTL for float16, a shift for bfloat16) one tile at a time into scratch.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "edgecolbert/dispatch.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 4;
constexpr int kNJ = 8;
constexpr int64_t kRows = kCentroidBlockRows;

std::size_t packed_bytes(int64_t dim) { return static_cast<std::size_t>(kRows * dim) * sizeof(float); }

void pack(const float* rows, int64_t nrows, int64_t dim, void* out) {
  float* p = static_cast<float*>(out);
  std::memset(p, 0, packed_bytes(dim));
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t k = 0; k < dim; ++k) p[k * kRows + r] = rows[r * dim + k];
}

template <int NJ>
inline void tile(const float* q, int h, int64_t dim, const float* c, const float* thr, float* out, uint8_t* flags) {
  float32x4_t acc[2][NJ];
  for (int j = 0; j < NJ; ++j) acc[0][j] = acc[1][j] = vdupq_n_f32(0.0f);
  for (int64_t k = 0; k < dim; ++k) {
    const float32x4_t q0 = vld1q_f32(q + k * kRows + h), q1 = vld1q_f32(q + k * kRows + h + kLanes);
    for (int j = 0; j < NJ; ++j) {
      const float32x4_t b = vdupq_n_f32(c[j * dim + k]);
      acc[0][j] = vfmaq_f32(acc[0][j], q0, b);
      acc[1][j] = vfmaq_f32(acc[1][j], q1, b);
    }
  }
  const float32x4_t t0 = vld1q_f32(thr + h), t1 = vld1q_f32(thr + h + kLanes);
  for (int j = 0; j < NJ; ++j) {
    vst1q_f32(out + j * kRows + h, acc[0][j]);
    vst1q_f32(out + j * kRows + h + kLanes, acc[1][j]);
    const uint32x4_t gt = vorrq_u32(vcgtq_f32(acc[0][j], t0), vcgtq_f32(acc[1][j], t1));
    flags[j] |= vmaxvq_u32(gt) != 0;
  }
}

void widen(const uint16_t* src, DType dtype, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const uint16x4_t h = vld1_u16(src + i);
    const float32x4_t f = dtype == DType::f16 ? vcvt_f32_f16(vreinterpret_f16_u16(h))
                                              : vreinterpretq_f32_u32(vshll_n_u16(h, 16));
    vst1q_f32(dst + i, f);
  }
  for (; i < n; ++i) dst[i] = dtype == DType::f16 ? f16_to_f32(src[i]) : bf16_to_f32(src[i]);
}

template <int NJ>
inline void all_quarters(const float* q, int64_t dim, const float* c, const float* thr, float* out, uint8_t* flags) {
  for (int j = 0; j < NJ; ++j) flags[j] = 0;
  for (int h = 0; h < kRows; h += 2 * kLanes) tile<NJ>(q, h, dim, c, thr, out, flags);
}

void block_scores(const void* packed, int64_t dim, const void* cents, DType ct, int64_t nc, const float* thr,
                  float* out, uint8_t* flags, float* scratch) {
  const float* q = static_cast<const float*>(packed);
  // No thresholds: every column stored, nothing flagged.
  float inf_thr[kRows];
  uint8_t unused_flags[kNJ];
  if (thr == nullptr) {
    for (auto& v : inf_thr) v = __builtin_inff();
    thr = inf_thr;
  }
  for (int64_t j0 = 0; j0 < nc; j0 += kNJ) {
    const int nj = static_cast<int>(std::min<int64_t>(kNJ, nc - j0));
    const float* c;
    if (ct == DType::f32) {
      c = static_cast<const float*>(cents) + j0 * dim;
    } else {
      widen(static_cast<const uint16_t*>(cents) + j0 * dim, ct, nj * dim, scratch);
      c = scratch;
    }
    float* o = out + j0 * kRows;
    uint8_t* f = flags != nullptr ? flags + j0 : unused_flags;
    switch (nj) {
      case 1: all_quarters<1>(q, dim, c, thr, o, f); break;
      case 2: all_quarters<2>(q, dim, c, thr, o, f); break;
      case 3: all_quarters<3>(q, dim, c, thr, o, f); break;
      case 4: all_quarters<4>(q, dim, c, thr, o, f); break;
      case 5: all_quarters<5>(q, dim, c, thr, o, f); break;
      case 6: all_quarters<6>(q, dim, c, thr, o, f); break;
      case 7: all_quarters<7>(q, dim, c, thr, o, f); break;
      default: all_quarters<8>(q, dim, c, thr, o, f); break;
    }
  }
}

std::size_t scratch_floats(int64_t dim) { return static_cast<std::size_t>(kNJ * dim); }

}  // namespace

const CentroidOps centroid_ops_neon{packed_bytes, pack, block_scores, scratch_floats};

}  // namespace edgecolbert
