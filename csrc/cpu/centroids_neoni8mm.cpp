// int8 centroid scores with the int8 matrix multiply (FEAT_I8MM: SMMLA), built with
// -march=armv8.2-a+dotprod+i8mm and chosen where HWCAP2_I8MM is set (Armv8.6 cores: Neoverse V1/N2/V2,
// Cortex-A710 and later, Apple M2 and later). SMMLA multiplies a 2x8 by an 8x2 int8 matrix into a 2x2
// int32 one: 32 MACs per instruction against SDOT's 16. Its operands are pairs of 8-byte rows, so
//  - the block's rows are repacked once per call from [dim4 / 4][32][4] to [dim8 / 8][16 row pairs][2][8]
//    (a ZIP1 and a ZIP2 per 4 rows x 8 dims; dim8 = dim4 rounded up to 8, zero-padded), and
//  - each tile of 8 centroids once to [dim8 / 8][4 pairs][2][8] (zero-padded; a ZIP1 and a ZIP2 of
//    two centroids' 16-byte loads per pair and 16 dims), shared by the four row octets of the block, so the inner loop is loads and SMMLA only: per 8 dims, 4 centroid-pair loads,
//    4 row-pair loads and 16 SMMLA (an accumulator holds [c0.r0, c0.r1, c1.r0, c1.r1]; the epilogue's
//    64-bit zips give back centroid-major row vectors).
// A tile is 8 rows (4 row pairs) x 8 centroids (4 pairs) = 16 accumulators. Building the centroid
// pairs inside the loop instead (two loads and a ZIP1/ZIP2 per pair and 16 dims) made GCC 12 copy
// accumulators (register pressure) and cost 64 instructions per 16 dims against 48 + loop control
// here; docs/arm.md has the counts. The integer sums are exact and the float epilogue
// (centroids_i8_neon.hpp) is the reference's, so every path agrees bit for bit.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "centroids_i8_neon.hpp"
#include "edgecolbert/dispatch.hpp"
#include "mca_markers.hpp"

namespace edgecolbert {
namespace {

constexpr int kNP = 4;  // centroid pairs per tile
constexpr int64_t kRows = kCentroidBlockRows;
constexpr int64_t kGroupBytes = kRows * 4;  // packed: one group of 4 dims of the 32 rows
constexpr int64_t kStepBytes = kRows * 8;   // repacked: one step of 8 dims of the 32 rows

// [dim4 / 4][32][4] -> [steps][16][2][8]: row r's dims 8s..8s+7 at (s * 16 + r / 2) * 16 + (r % 2) * 8.
void repack_rows(const int8_t* packed, int64_t groups, int8_t* out) {
  for (int64_t s = 0; 2 * s < groups; ++s) {
    const int8_t* g0 = packed + 2 * s * kGroupBytes;
    const bool second = 2 * s + 1 < groups;
    int8_t* o = out + s * kStepBytes;
    for (int rq = 0; rq < 8; ++rq) {  // rows 4rq..4rq+3: [x0 y0 x1 y1] is the pair (4rq, 4rq+1)
      const int32x4_t x = vreinterpretq_s32_s8(vld1q_s8(g0 + rq * 16));
      const int32x4_t y = second ? vreinterpretq_s32_s8(vld1q_s8(g0 + kGroupBytes + rq * 16)) : vdupq_n_s32(0);
      vst1q_s8(o + rq * 32, vreinterpretq_s8_s32(vzip1q_s32(x, y)));
      vst1q_s8(o + rq * 32 + 16, vreinterpretq_s8_s32(vzip2q_s32(x, y)));
    }
  }
}

// 8 bytes, or 4 zero-extended (the last group of a row): never past the row's end.
inline uint64_t load8(const int8_t* p, bool full) {
  if (full) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    return x;
  }
  uint32_t x;
  std::memcpy(&x, p, 4);
  return x;
}

// nj <= 8 centroids [nj, dim4] -> SMMLA left operands [steps][4 pairs][2 centroids][8 bytes], zero past
// dim4; a short tile's missing odd centroid repeats its partner and missing pairs are zero (their
// scores are not stored). Done once per tile for the four row octets: per pair and 16 dims, two
// loads, a ZIP1 and a ZIP2 of the 64-bit halves, two stores.
void repack_centroids(const int8_t* c, int nj, int64_t dim4, int64_t steps, int8_t* out) {
  for (int p = 0; p < kNP; ++p) {
    int8_t* o = out + p * 16;
    if (2 * p >= nj) {
      for (int64_t s = 0; s < steps; ++s) vst1q_s8(o + s * 64, vdupq_n_s8(0));
      continue;
    }
    const int8_t* x = c + 2 * p * dim4;
    const int8_t* y = 2 * p + 1 < nj ? x + dim4 : x;
    int64_t k = 0;
    EC_MCA_BEGIN("centroids_i8_smmla_repack");
    for (; k + 16 <= dim4; k += 16) {
      const int64x2_t a = vreinterpretq_s64_s8(vld1q_s8(x + k)), b = vreinterpretq_s64_s8(vld1q_s8(y + k));
      vst1q_s8(o + (k / 8) * 64, vreinterpretq_s8_s64(vzip1q_s64(a, b)));
      vst1q_s8(o + (k / 8 + 1) * 64, vreinterpretq_s8_s64(vzip2q_s64(a, b)));
    }
    EC_MCA_END("centroids_i8_smmla_repack");
    for (; k < dim4; k += 8) {  // 4, 8 or 12 dims left (dim4 % 4 == 0)
      const bool full = dim4 - k >= 8;
      const uint64x2_t v = vcombine_u64(vcreate_u64(load8(x + k, full)), vcreate_u64(load8(y + k, full)));
      vst1q_s8(o + (k / 8) * 64, vreinterpretq_s8_u64(v));
    }
  }
}

// Rows h..h+7 (row pairs of the octet at qh, step stride kStepBytes) x the 8 repacked centroids ct:
// acc[m][p] = [c0.r0, c0.r1, c1.r0, c1.r1] for row pair m and centroid pair p.
inline void tile(const int8_t* qh, const int8_t* ct, int64_t steps, int32x4_t (&acc)[4][kNP]) {
  for (int m = 0; m < 4; ++m)
    for (int p = 0; p < kNP; ++p) acc[m][p] = vdupq_n_s32(0);
  EC_MCA_BEGIN("centroids_i8_smmla");
  for (int64_t s = 0; s < steps; ++s) {
    int8x16_t a[kNP], b[4];
    for (int p = 0; p < kNP; ++p) a[p] = vld1q_s8(ct + (s * kNP + p) * 16);
    for (int m = 0; m < 4; ++m) b[m] = vld1q_s8(qh + s * kStepBytes + m * 16);
    for (int m = 0; m < 4; ++m)
      for (int p = 0; p < kNP; ++p) acc[m][p] = vmmlaq_s32(acc[m][p], a[p], b[m]);
  }
  EC_MCA_END("centroids_i8_smmla");
}

void block_scores_i8(const int8_t* packed, const float* qscale, int64_t dim4, const int8_t* c8, const float* cscale,
                     const int32_t*, int64_t nc, float* out, const float* thr, uint8_t* flags) {
  // The repacked rows and one tile of centroids, on the stack up to dim 256 (PLAID's probe calls
  // this once per 512 centroids).
  const int64_t groups = dim4 / 4, steps = (groups + 1) / 2;
  const std::size_t row_bytes = static_cast<std::size_t>(steps * kStepBytes);
  const std::size_t cent_bytes = static_cast<std::size_t>(steps * kNP * 16);
  alignas(16) int8_t local[256 * kRows + 256 * 2 * kNP];
  std::vector<int8_t> heap(row_bytes + cent_bytes > sizeof local ? row_bytes + cent_bytes : 0);
  int8_t* qp = heap.empty() ? local : heap.data();
  int8_t* ct = qp + row_bytes;
  repack_rows(packed, groups, qp);
  constexpr int kNJ = 2 * kNP;
  for (int64_t j0 = 0; j0 < nc; j0 += kNJ) {
    const int nj = static_cast<int>(std::min<int64_t>(kNJ, nc - j0));
    repack_centroids(c8 + j0 * dim4, nj, dim4, steps, ct);
    float* o = out + j0 * kRows;
    uint8_t* f = thr != nullptr ? flags + j0 : nullptr;
    if (f != nullptr) std::fill_n(f, nj, uint8_t{0});
    for (int h = 0; h < kRows; h += 8) {
      int32x4_t acc[4][kNP];
      tile(qp + (h / 2) * 16, ct, steps, acc);
      // Centroid 2p + i, rows h..h+3: the 64-bit half i of the accumulators of row pairs 0 and 1.
      for (int j = 0; j < nj; ++j) {
        const int p = j / 2;
        const int64x2_t a01 = vreinterpretq_s64_s32(acc[0][p]), a23 = vreinterpretq_s64_s32(acc[1][p]);
        const int64x2_t a45 = vreinterpretq_s64_s32(acc[2][p]), a67 = vreinterpretq_s64_s32(acc[3][p]);
        const bool odd = j % 2 != 0;
        const int32x4_t r0 = vreinterpretq_s32_s64(odd ? vzip2q_s64(a01, a23) : vzip1q_s64(a01, a23));
        const int32x4_t r1 = vreinterpretq_s32_s64(odd ? vzip2q_s64(a45, a67) : vzip1q_s64(a45, a67));
        centroids_i8_neon::store_octet(r0, r1, qscale, cscale[j0 + j], h, o + j * kRows, thr,
                                       f != nullptr ? f + j : nullptr);
      }
    }
  }
}

}  // namespace

const CentroidI8Ops centroid_i8_ops_neon_i8mm{true, block_scores_i8};

}  // namespace edgecolbert
