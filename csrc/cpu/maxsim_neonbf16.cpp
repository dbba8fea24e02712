// MaxSim, AArch64 NEON with the BF16 extension (BFDOT) for bfloat16 documents; other dtypes use the
// float32 NEON kernel (maxsim_kernels.hpp). Packing, hi/lo split and driver: maxsim_bf16_kernels.hpp
// (blocks of 4 query rows). Tile: 2 row blocks x 8 tokens, 16 accumulators. BFDOT flushes subnormals
// and may round differently from IEEE float32 FMA; the tests bound the difference against the float64
// reference.
#include <arm_neon.h>

#include "maxsim_bf16_kernels.hpp"
#include "mca_markers.hpp"
#include "vec_neon.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 4;
constexpr int kNJ = 8;

// Pair p's query rows (hi, and lo when LO) times lane L of each token register: lane L holds the
// token's pair p. Always inlined: GCC 12 otherwise calls it from the hi + lo loop.
template <int MR, int NJ, bool LO, int L>
__attribute__((always_inline)) inline void pair_step(const uint16_t* hi, const uint16_t* lo, int64_t npairs, int64_t p, const bfloat16x8_t (&b)[NJ],
                      float32x4_t (&acc)[MR][NJ]) {
  bfloat16x8_t qh[MR], ql[MR];
  for (int m = 0; m < MR; ++m) {
    qh[m] = vreinterpretq_bf16_u16(vld1q_u16(hi + (m * npairs + p) * kLanes * 2));
    if (LO) ql[m] = vreinterpretq_bf16_u16(vld1q_u16(lo + (m * npairs + p) * kLanes * 2));
  }
  for (int j = 0; j < NJ; ++j)
    for (int m = 0; m < MR; ++m) {
      acc[m][j] = vbfdotq_laneq_f32(acc[m][j], qh[m], b[j], L);
      if (LO) acc[m][j] = vbfdotq_laneq_f32(acc[m][j], ql[m], b[j], L);
    }
}

// Four pairs at a time: one 16-byte load per token and BFDOT's by-element form (no DUP, which would
// take a vector-pipe slot beside the BFDOTs: 8 DUPs per 16 BFDOTs, 67% of the BFDOT peak in the llvm-mca
// model of Neoverse N2/V2, docs/arm.md); the last npairs % 4 pairs broadcast one pair in lane 0.
template <int MR, int NJ, bool LO>
EC_ALWAYS_INLINE void tile_pairs(const uint16_t* hi, const uint16_t* lo, int64_t npairs, const uint16_t* d, int64_t stride,
                 float32x4_t (&runmax)[2]) {
  float32x4_t acc[MR][NJ];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) acc[m][j] = vdupq_n_f32(0.0f);
  int64_t p = 0;
  if constexpr (MR == 2 && NJ == kNJ && !LO) EC_MCA_BEGIN("maxsim_bf16_neon");
  if constexpr (MR == 2 && NJ == kNJ && LO) EC_MCA_BEGIN("maxsim_bf16_hilo_neon");
  for (; p + 4 <= npairs; p += 4) {
    bfloat16x8_t b[NJ];
    for (int j = 0; j < NJ; ++j) b[j] = vreinterpretq_bf16_u16(vld1q_u16(d + j * stride + 2 * p));
    pair_step<MR, NJ, LO, 0>(hi, lo, npairs, p, b, acc);
    pair_step<MR, NJ, LO, 1>(hi, lo, npairs, p + 1, b, acc);
    pair_step<MR, NJ, LO, 2>(hi, lo, npairs, p + 2, b, acc);
    pair_step<MR, NJ, LO, 3>(hi, lo, npairs, p + 3, b, acc);
  }
  if constexpr (MR == 2 && NJ == kNJ && !LO) EC_MCA_END("maxsim_bf16_neon");
  if constexpr (MR == 2 && NJ == kNJ && LO) EC_MCA_END("maxsim_bf16_hilo_neon");
  for (; p < npairs; ++p) {
    bfloat16x8_t b[NJ];
    for (int j = 0; j < NJ; ++j) {
      uint32_t pair;
      std::memcpy(&pair, d + j * stride + 2 * p, 4);
      b[j] = vreinterpretq_bf16_u32(vdupq_n_u32(pair));
    }
    pair_step<MR, NJ, LO, 0>(hi, lo, npairs, p, b, acc);
  }
  // FMAXNM returns the number when one operand is NaN: NaN similarities are ignored, as in the
  // scalar reference.
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) runmax[m] = vmaxnmq_f32(runmax[m], acc[m][j]);
}

struct TileNeonBf16 : VecNeon {
  static constexpr int kNJ = edgecolbert::kNJ;
  static const MaxSimOps& f32() { return maxsim_ops_neon; }
  template <int MR, int NJ, bool LO>
  EC_ALWAYS_INLINE static void tile(const uint16_t* hi, const uint16_t* lo, int64_t npairs, const uint16_t* d,
                                    int64_t stride, float32x4_t (&runmax)[2], simd::LineStream) {
    tile_pairs<MR, NJ, LO>(hi, lo, npairs, d, stride, runmax);  // kPrefetchTokens is 0: no stream
  }
};

using MaxSimNeonBf16 = MaxSimBf16<TileNeonBf16>;

}  // namespace

const MaxSimOps maxsim_ops_neon_bf16{MaxSimNeonBf16::packed_bytes, MaxSimNeonBf16::pack, MaxSimNeonBf16::score,
                                     MaxSimNeonBf16::scratch_floats};

}  // namespace edgecolbert
