// MaxSim, AArch64 NEON with the BF16 extension (BFDOT) for bfloat16 documents; other dtypes use the
// float32 NEON kernel. BFDOT adds the two products of a bf16 pair into each float32 lane, so one
// instruction does the work of two float32 FMAs. Queries are packed in blocks of 4 rows as
// [dim/2 pairs][4 lanes][2] bf16 and split into hi + lo as in the AVX512_BF16 file (lo is skipped when
// all zero, i.e. for bf16 queries). Tile: MR = 2 row blocks x NJ = 8 tokens. Odd dim: tokens are copied
// per tile with an even stride and a zero pad. BFDOT flushes subnormals and may round differently
// from IEEE float32 FMA; the tests bound the difference against the float64 reference.
#include <arm_neon.h>

#include <algorithm>
#include <cstring>

#include "edgecolbert/dispatch.hpp"
#include "edgecolbert/mca_markers.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 4;
constexpr int kNJ = 8;
constexpr std::size_t kHeader = 64;

std::size_t block_bytes(int64_t dim) { return static_cast<std::size_t>((dim + 1) / 2) * kLanes * 4; }

std::size_t packed_bytes(int64_t rows, int64_t dim, DType doc_dtype) {
  if (doc_dtype != DType::bf16) return maxsim_ops_neon.packed_query_bytes(rows, dim, doc_dtype);
  const int64_t blocks = (rows + kLanes - 1) / kLanes;
  return kHeader + 2 * static_cast<std::size_t>(blocks) * block_bytes(dim);
}

void pack(const float* q, int64_t rows, int64_t dim, DType doc_dtype, void* out) {
  if (doc_dtype != DType::bf16) return maxsim_ops_neon.pack_query(q, rows, dim, doc_dtype, out);
  const int64_t blocks = (rows + kLanes - 1) / kLanes;
  const int64_t npairs = (dim + 1) / 2;
  const std::size_t half = static_cast<std::size_t>(blocks) * block_bytes(dim);
  auto* base = static_cast<uint8_t*>(out);
  auto* hi = reinterpret_cast<uint16_t*>(base + kHeader);
  auto* lo = reinterpret_cast<uint16_t*>(base + kHeader + half);
  std::memset(base, 0, kHeader + 2 * half);
  uint32_t has_lo = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < dim; ++k) {
      const float v = q[r * dim + k];
      const uint16_t h = f32_to_bf16(v);
      const uint16_t l = f32_to_bf16(v - bf16_to_f32(h));
      const std::size_t at = static_cast<std::size_t>((((r / kLanes) * npairs + k / 2) * kLanes + r % kLanes) * 2 + k % 2);
      hi[at] = h;
      lo[at] = l;
      has_lo |= (l & 0x7fffu) != 0;
    }
  }
  std::memcpy(base, &has_lo, 4);
}

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
inline void tile(const uint16_t* hi, const uint16_t* lo, int64_t npairs, const uint16_t* d, int64_t stride,
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

template <int MR, bool LO>
void tile_n(int nj, const uint16_t* hi, const uint16_t* lo, int64_t npairs, const uint16_t* d, int64_t stride,
            float32x4_t (&runmax)[2]) {
  switch (nj) {
    case 1: tile<MR, 1, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 2: tile<MR, 2, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 3: tile<MR, 3, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 4: tile<MR, 4, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 5: tile<MR, 5, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 6: tile<MR, 6, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 7: tile<MR, 7, LO>(hi, lo, npairs, d, stride, runmax); break;
    default: tile<MR, 8, LO>(hi, lo, npairs, d, stride, runmax); break;
  }
}

float score(const void* packed, int64_t rows, int64_t dim, const void* doc, DType dtype, int64_t ntok, float floor,
            float* scratch) {
  if (dtype != DType::bf16) return maxsim_ops_neon.score_doc(packed, rows, dim, doc, dtype, ntok, floor, scratch);
  const auto* base = static_cast<const uint8_t*>(packed);
  uint32_t has_lo;
  std::memcpy(&has_lo, base, 4);
  const int64_t blocks = (rows + kLanes - 1) / kLanes;
  const int64_t npairs = (dim + 1) / 2;
  const std::size_t half = static_cast<std::size_t>(blocks) * block_bytes(dim);
  const auto* hi_all = reinterpret_cast<const uint16_t*>(base + kHeader);
  const auto* lo_all = reinterpret_cast<const uint16_t*>(base + kHeader + half);
  const auto* tokens = static_cast<const uint16_t*>(doc);
  const bool odd = (dim & 1) != 0;
  const int64_t stride = odd ? dim + 1 : dim;
  auto* padded = reinterpret_cast<uint16_t*>(scratch);
  double total = 0.0;
  float rowmax[2 * kLanes];
  for (int64_t b = 0; b < blocks; b += 2) {
    const int mr = blocks - b >= 2 ? 2 : 1;
    const uint16_t* hi = hi_all + b * npairs * kLanes * 2;
    const uint16_t* lo = lo_all + b * npairs * kLanes * 2;
    float32x4_t runmax[2] = {vdupq_n_f32(floor), vdupq_n_f32(floor)};
    for (int64_t j0 = 0; j0 < ntok; j0 += kNJ) {
      const int nj = static_cast<int>(std::min<int64_t>(kNJ, ntok - j0));
      const uint16_t* d = tokens + j0 * dim;
      if (odd) {
        for (int j = 0; j < nj; ++j) {
          std::memcpy(padded + j * stride, d + j * dim, static_cast<std::size_t>(dim) * 2);
          padded[j * stride + dim] = 0;
        }
        d = padded;
      }
      if (mr == 2) {
        if (has_lo) tile_n<2, true>(nj, hi, lo, npairs, d, stride, runmax);
        else tile_n<2, false>(nj, hi, lo, npairs, d, stride, runmax);
      } else {
        if (has_lo) tile_n<1, true>(nj, hi, lo, npairs, d, stride, runmax);
        else tile_n<1, false>(nj, hi, lo, npairs, d, stride, runmax);
      }
    }
    vst1q_f32(rowmax, runmax[0]);
    vst1q_f32(rowmax + kLanes, runmax[1]);
    const int64_t valid = std::min<int64_t>(rows - b * kLanes, mr * kLanes);
    for (int64_t r = 0; r < valid; ++r) total += rowmax[r];
  }
  return static_cast<float>(total);
}

std::size_t scratch_floats(int64_t dim) { return static_cast<std::size_t>(kNJ * (dim + 1)); }

}  // namespace

const MaxSimOps maxsim_ops_neon_bf16{packed_bytes, pack, score, scratch_floats};

}  // namespace edgecolbert
