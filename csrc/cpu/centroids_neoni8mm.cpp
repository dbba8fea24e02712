// int8 centroid scores with the int8 matrix multiply (FEAT_I8MM: SMMLA), built with
// -march=armv8.2-a+dotprod+i8mm and chosen where HWCAP2_I8MM is set (Armv8.6 cores: Neoverse V1/N2/V2,
// Cortex-A710 and later, Apple M2 and later). SMMLA multiplies a 2x8 by an 8x2 int8 matrix into a 2x2
// int32 one: 32 MACs per instruction against SDOT's 16. Its operands are pairs of 8-byte rows, so:
//  - the block's rows are repacked once per call from [dim4 / 4][32][4] to [dim8 / 8][16 row pairs][2][8]
//    (two ZIP1/ZIP2 per 4 rows x 8 dims; dim8 = dim4 rounded up to 8, zero-padded);
//  - two centroids' 16-byte loads become two SMMLA left operands (dims 0-7 and 8-15 of both) with one
//    ZIP1 and one ZIP2 of their 64-bit halves;
//  - an accumulator holds [c0.r0, c0.r1, c1.r0, c1.r1]; the epilogue's 64-bit zips give back
//    centroid-major row vectors.
// A tile is 8 rows (4 row pairs) x 8 centroids (4 pairs) = 16 accumulators; per 16 dims: 8 centroid
// loads, 8 ZIP, 8 row loads, 32 SMMLA (56 instructions against the SDOT kernel's 80 for the same
// 1,024 MACs; docs/arm.md has the counts from the compiled loops). The integer sums are exact and the
// float epilogue (centroids_i8_neon.hpp) is the reference's, so every path agrees bit for bit.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "centroids_i8_neon.hpp"
#include "edgecolbert/dispatch.hpp"
#include "edgecolbert/mca_markers.hpp"

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

inline int8x16_t pair_lo(int8x16_t x, int8x16_t y) {
  return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(x), vreinterpretq_s64_s8(y)));
}
inline int8x16_t pair_hi(int8x16_t x, int8x16_t y) {
  return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(x), vreinterpretq_s64_s8(y)));
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

// One 8-dim step: acc[m][p] += centroid pair p (a[p]) x row pair m of the octet (qs points at it).
template <int NP>
inline void step(const int8_t* qs, const int8x16_t (&a)[NP], int32x4_t (&acc)[4][NP]) {
  for (int m = 0; m < 4; ++m) {
    const int8x16_t b = vld1q_s8(qs + m * 16);
    for (int p = 0; p < NP; ++p) acc[m][p] = vmmlaq_s32(acc[m][p], a[p], b);
  }
}

// Rows h..h+7 x centroids cr[0 .. 2 NP) (row pointers; an odd tile repeats its last centroid, whose
// duplicate scores are not stored).
template <int NP>
inline void tile(const int8_t* qp, int h, int64_t dim4, const int8_t* const (&cr)[2 * NP], int nj,
                 const float* qscale, const float* cscale, float* out, const float* thr, uint8_t* flags) {
  int32x4_t acc[4][NP];
  for (int m = 0; m < 4; ++m)
    for (int p = 0; p < NP; ++p) acc[m][p] = vdupq_n_s32(0);
  const int8_t* qh = qp + (h / 2) * 16;
  int64_t k = 0;
  for (; k + 16 <= dim4; k += 16) {
    if constexpr (NP == kNP) EC_MCA_BEGIN("centroids_i8_smmla");
    int8x16_t lo[NP], hi[NP];
    for (int p = 0; p < NP; ++p) {
      const int8x16_t x = vld1q_s8(cr[2 * p] + k), y = vld1q_s8(cr[2 * p + 1] + k);
      lo[p] = pair_lo(x, y);
      hi[p] = pair_hi(x, y);
    }
    step<NP>(qh + (k / 8) * kStepBytes, lo, acc);
    step<NP>(qh + (k / 8 + 1) * kStepBytes, hi, acc);
    if constexpr (NP == kNP) EC_MCA_END("centroids_i8_smmla");
  }
  for (; k < dim4; k += 8) {  // 4, 8 or 12 dims left (dim4 % 4 == 0); the repacked rows are zero past dim4
    const bool full = dim4 - k >= 8;
    int8x16_t a[NP];
    for (int p = 0; p < NP; ++p)
      a[p] = vreinterpretq_s8_u64(vcombine_u64(vcreate_u64(load8(cr[2 * p] + k, full)),
                                               vcreate_u64(load8(cr[2 * p + 1] + k, full))));
    step<NP>(qh + (k / 8) * kStepBytes, a, acc);
  }
  for (int p = 0; p < NP; ++p)
    for (int i = 0; i < 2 && 2 * p + i < nj; ++i) {
      const int j = 2 * p + i;
      // rows h..h+3 of centroid j: lanes 2i, 2i+1 of the accumulators of row pairs 0 and 1
      const int64x2_t a01 = vreinterpretq_s64_s32(acc[0][p]), a23 = vreinterpretq_s64_s32(acc[1][p]);
      const int64x2_t a45 = vreinterpretq_s64_s32(acc[2][p]), a67 = vreinterpretq_s64_s32(acc[3][p]);
      const int32x4_t r0 = vreinterpretq_s32_s64(i == 0 ? vzip1q_s64(a01, a23) : vzip2q_s64(a01, a23));
      const int32x4_t r1 = vreinterpretq_s32_s64(i == 0 ? vzip1q_s64(a45, a67) : vzip2q_s64(a45, a67));
      centroids_i8_neon::store_octet(r0, r1, qscale, cscale[j], h, out + j * kRows, thr,
                                     thr != nullptr ? flags + j : nullptr);
    }
}

template <int NP>
inline void all_octets(const int8_t* qp, const float* qscale, int64_t dim4, const int8_t* c, int nj,
                       const float* cscale, float* out, const float* thr, uint8_t* flags) {
  const int8_t* cr[2 * NP];
  for (int j = 0; j < 2 * NP; ++j) cr[j] = c + std::min(j, nj - 1) * dim4;
  if (thr != nullptr)
    for (int j = 0; j < nj; ++j) flags[j] = 0;
  for (int h = 0; h < kRows; h += 8) tile<NP>(qp, h, dim4, cr, nj, qscale, cscale, out, thr, flags);
}

void block_scores_i8(const int8_t* packed, const float* qscale, int64_t dim4, const int8_t* c8, const float* cscale,
                     const int32_t*, int64_t nc, float* out, const float* thr, uint8_t* flags) {
  // The repacked rows, on the stack up to dim 256 (PLAID's probe calls this once per 512 centroids).
  const int64_t groups = dim4 / 4;
  const std::size_t bytes = static_cast<std::size_t>((groups + 1) / 2 * kStepBytes);
  alignas(16) int8_t local[256 * kRows];
  std::vector<int8_t> heap(bytes > sizeof local ? bytes : 0);
  int8_t* qp = bytes > sizeof local ? heap.data() : local;
  repack_rows(packed, groups, qp);
  constexpr int kNJ = 2 * kNP;
  for (int64_t j0 = 0; j0 < nc; j0 += kNJ) {
    const int nj = static_cast<int>(std::min<int64_t>(kNJ, nc - j0));
    const int8_t* c = c8 + j0 * dim4;
    const float* s = cscale + j0;
    float* o = out + j0 * kRows;
    uint8_t* f = thr != nullptr ? flags + j0 : nullptr;
    switch ((nj + 1) / 2) {
      case 1: all_octets<1>(qp, qscale, dim4, c, nj, s, o, thr, f); break;
      case 2: all_octets<2>(qp, qscale, dim4, c, nj, s, o, thr, f); break;
      case 3: all_octets<3>(qp, qscale, dim4, c, nj, s, o, thr, f); break;
      default: all_octets<4>(qp, qscale, dim4, c, nj, s, o, thr, f); break;
    }
  }
}

}  // namespace

const CentroidI8Ops centroid_i8_ops_neon_i8mm{true, block_scores_i8};

}  // namespace edgecolbert
