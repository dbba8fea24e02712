// MaxSim, AArch64 Advanced SIMD (NEON), float32 arithmetic for every input dtype.
// Queries packed transposed in blocks of 4 rows ([dim][4] floats); a tile of MR = 2 row blocks x
// NJ = 8 document tokens keeps 16 accumulators of the 32 vector registers; completed tiles fold into
// the running row maxima. float16 tokens are widened with FCVTL (base AArch64), bfloat16 by a shift,
// one tile at a time into L1-resident scratch.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "edgecolbert/dispatch.hpp"
#include "edgecolbert/mca_markers.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 4;
constexpr int kNJ = 8;

std::size_t packed_bytes(int64_t rows, int64_t dim, DType) {
  const int64_t blocks = (rows + kLanes - 1) / kLanes;
  return static_cast<std::size_t>(blocks * dim * kLanes) * sizeof(float);
}

void pack(const float* q, int64_t rows, int64_t dim, DType, void* out) {
  float* p = static_cast<float*>(out);
  const int64_t blocks = (rows + kLanes - 1) / kLanes;
  std::memset(p, 0, static_cast<std::size_t>(blocks * dim * kLanes) * sizeof(float));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < dim; ++k) p[((r / kLanes) * dim + k) * kLanes + r % kLanes] = q[r * dim + k];
}

template <int MR, int NJ>
inline void tile(const float* qb, int64_t dim, const float* d, float32x4_t (&runmax)[2]) {
  float32x4_t acc[MR][NJ];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) acc[m][j] = vdupq_n_f32(0.0f);
  if constexpr (MR == 2 && NJ == kNJ) EC_MCA_BEGIN("maxsim_f32_neon");
  for (int64_t k = 0; k < dim; ++k) {
    float32x4_t qv[MR];
    for (int m = 0; m < MR; ++m) qv[m] = vld1q_f32(qb + (m * dim + k) * kLanes);
    for (int j = 0; j < NJ; ++j) {
      const float b = d[j * dim + k];
      for (int m = 0; m < MR; ++m) acc[m][j] = vfmaq_n_f32(acc[m][j], qv[m], b);
    }
  }
  if constexpr (MR == 2 && NJ == kNJ) EC_MCA_END("maxsim_f32_neon");
  // FMAXNM returns the number when one operand is NaN: NaN similarities are ignored, as in the
  // scalar reference.
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) runmax[m] = vmaxnmq_f32(runmax[m], acc[m][j]);
}

template <int MR>
void tile_n(int nj, const float* qb, int64_t dim, const float* d, float32x4_t (&runmax)[2]) {
  switch (nj) {
    case 1: tile<MR, 1>(qb, dim, d, runmax); break;
    case 2: tile<MR, 2>(qb, dim, d, runmax); break;
    case 3: tile<MR, 3>(qb, dim, d, runmax); break;
    case 4: tile<MR, 4>(qb, dim, d, runmax); break;
    case 5: tile<MR, 5>(qb, dim, d, runmax); break;
    case 6: tile<MR, 6>(qb, dim, d, runmax); break;
    case 7: tile<MR, 7>(qb, dim, d, runmax); break;
    default: tile<MR, 8>(qb, dim, d, runmax); break;
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

float score(const void* packed, int64_t rows, int64_t dim, const void* doc, DType dtype, int64_t ntok, float floor,
            float* scratch) {
  const float* q = static_cast<const float*>(packed);
  const int64_t blocks = (rows + kLanes - 1) / kLanes;
  double total = 0.0;
  float rowmax[2 * kLanes];
  for (int64_t b = 0; b < blocks; b += 2) {
    const int mr = blocks - b >= 2 ? 2 : 1;
    const float* qb = q + b * dim * kLanes;
    float32x4_t runmax[2] = {vdupq_n_f32(floor), vdupq_n_f32(floor)};
    for (int64_t j0 = 0; j0 < ntok; j0 += kNJ) {
      const int nj = static_cast<int>(std::min<int64_t>(kNJ, ntok - j0));
      const float* d;
      if (dtype == DType::f32) {
        d = static_cast<const float*>(doc) + j0 * dim;
      } else {
        widen(static_cast<const uint16_t*>(doc) + j0 * dim, dtype, nj * dim, scratch);
        d = scratch;
      }
      if (mr == 2)
        tile_n<2>(nj, qb, dim, d, runmax);
      else
        tile_n<1>(nj, qb, dim, d, runmax);
    }
    vst1q_f32(rowmax, runmax[0]);
    vst1q_f32(rowmax + kLanes, runmax[1]);
    const int64_t valid = std::min<int64_t>(rows - b * kLanes, mr * kLanes);
    for (int64_t r = 0; r < valid; ++r) total += rowmax[r];
  }
  return static_cast<float>(total);
}

std::size_t scratch_floats(int64_t dim) { return static_cast<std::size_t>(kNJ * dim); }

}  // namespace

const MaxSimOps maxsim_ops_neon{packed_bytes, pack, score, scratch_floats};

}  // namespace edgecolbert
