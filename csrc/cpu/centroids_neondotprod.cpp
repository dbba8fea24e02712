// int8 centroid scores with the ARMv8.2 dot product (FEAT_DotProd: SDOT), built with
// -march=armv8.2-a+dotprod and chosen where HWCAP_ASIMDDP is set (Cortex-A76/A78, Neoverse N1,
// Apple M1 and every later core). Layout (dispatch.hpp, CentroidI8Ops): a packed block is
// [dim4 / 4][32 rows][4] int8, so one 16-byte load holds 4 rows x 4 dims, exactly SDOT's left operand;
// centroids are [nc, dim4] int8, and one 16-byte load of centroid j holds its next 4 groups of 4 dims,
// which SDOT's by-element form picks one group (lane) at a time, so no broadcast is spent. Signed x
// signed: no offset and no csum correction (unlike VNNI's unsigned x signed). A tile is 8 rows (2
// vectors) x NJ = 8 centroids = 16 int32 accumulators; per 16 dims: 8 centroid loads, 8 row loads,
// 64 SDOT (16 MACs each). The four row octets of the block run one after the other over the same
// L1-resident centroid tile. The integer sum is exact (|q|, |c| <= 127: no overflow below dim4 =
// 133,000), then centroids_i8_neon.hpp gives the reference's float epilogue bit for bit.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "centroids_i8_neon.hpp"
#include "edgecolbert/dispatch.hpp"
#include "mca_markers.hpp"

namespace edgecolbert {
namespace {

constexpr int kNJ = 8;
constexpr int64_t kRows = kCentroidBlockRows;
constexpr int64_t kGroupBytes = kRows * 4;  // one group of 4 dims of the 32 rows

// Rows h..h+7 of group qg (qg points at row h) times group L of each centroid register.
template <int NJ, int L>
inline void dot_group(const int8_t* qg, const int8x16_t (&cv)[NJ], int32x4_t (&acc)[2][NJ]) {
  const int8x16_t q0 = vld1q_s8(qg), q1 = vld1q_s8(qg + 16);
  for (int j = 0; j < NJ; ++j) {
    acc[0][j] = vdotq_laneq_s32(acc[0][j], q0, cv[j], L);
    acc[1][j] = vdotq_laneq_s32(acc[1][j], q1, cv[j], L);
  }
}

template <int NJ>
inline void tile(const int8_t* q, int h, int64_t groups, int64_t dim4, const int8_t* c, const float* qscale,
                 const float* cscale, float* out, const float* thr, uint8_t* flags) {
  int32x4_t acc[2][NJ];
  for (int j = 0; j < NJ; ++j) acc[0][j] = acc[1][j] = vdupq_n_s32(0);
  const int8_t* qh = q + h * 4;
  int64_t g = 0;
  if constexpr (NJ == kNJ) EC_MCA_BEGIN("centroids_i8_sdot");
  for (; g + 4 <= groups; g += 4) {
    int8x16_t cv[NJ];
    for (int j = 0; j < NJ; ++j) cv[j] = vld1q_s8(c + j * dim4 + 4 * g);
    const int8_t* qg = qh + g * kGroupBytes;
    dot_group<NJ, 0>(qg, cv, acc);
    dot_group<NJ, 1>(qg + kGroupBytes, cv, acc);
    dot_group<NJ, 2>(qg + 2 * kGroupBytes, cv, acc);
    dot_group<NJ, 3>(qg + 3 * kGroupBytes, cv, acc);
  }
  if constexpr (NJ == kNJ) EC_MCA_END("centroids_i8_sdot");
  for (; g < groups; ++g) {  // the last 1..3 groups: each centroid's 4 bytes in lane 0
    int8x16_t cv[NJ];
    for (int j = 0; j < NJ; ++j) {
      int32_t w;
      std::memcpy(&w, c + j * dim4 + 4 * g, sizeof w);
      cv[j] = vreinterpretq_s8_s32(vdupq_n_s32(w));
    }
    dot_group<NJ, 0>(qh + g * kGroupBytes, cv, acc);
  }
  for (int j = 0; j < NJ; ++j)
    centroids_i8_neon::store_octet(acc[0][j], acc[1][j], qscale, cscale[j], h, out + j * kRows, thr,
                                   thr != nullptr ? flags + j : nullptr);
}

template <int NJ>
inline void all_octets(const int8_t* q, const float* qscale, int64_t dim4, const int8_t* c, const float* cscale,
                       float* out, const float* thr, uint8_t* flags) {
  if (thr != nullptr)
    for (int j = 0; j < NJ; ++j) flags[j] = 0;
  for (int h = 0; h < kRows; h += 8) tile<NJ>(q, h, dim4 / 4, dim4, c, qscale, cscale, out, thr, flags);
}

void block_scores_i8(const int8_t* packed, const float* qscale, int64_t dim4, const int8_t* c8, const float* cscale,
                     const int32_t*, int64_t nc, float* out, const float* thr, uint8_t* flags) {
  for (int64_t j0 = 0; j0 < nc; j0 += kNJ) {
    const int nj = static_cast<int>(std::min<int64_t>(kNJ, nc - j0));
    const int8_t* c = c8 + j0 * dim4;
    const float* s = cscale + j0;
    float* o = out + j0 * kRows;
    uint8_t* f = thr != nullptr ? flags + j0 : nullptr;
    switch (nj) {
      case 1: all_octets<1>(packed, qscale, dim4, c, s, o, thr, f); break;
      case 2: all_octets<2>(packed, qscale, dim4, c, s, o, thr, f); break;
      case 3: all_octets<3>(packed, qscale, dim4, c, s, o, thr, f); break;
      case 4: all_octets<4>(packed, qscale, dim4, c, s, o, thr, f); break;
      case 5: all_octets<5>(packed, qscale, dim4, c, s, o, thr, f); break;
      case 6: all_octets<6>(packed, qscale, dim4, c, s, o, thr, f); break;
      case 7: all_octets<7>(packed, qscale, dim4, c, s, o, thr, f); break;
      default: all_octets<8>(packed, qscale, dim4, c, s, o, thr, f); break;
    }
  }
}

}  // namespace

const CentroidI8Ops centroid_i8_ops_neon_dotprod{true, block_scores_i8};

}  // namespace edgecolbert
