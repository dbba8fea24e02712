// MaxSim, AVX-512 with AVX512_BF16 (vdpbf16ps) for bfloat16 documents; other document dtypes use the
// float32 AVX-512 kernel. vdpbf16ps multiplies pairs of bf16 exactly and adds them into float32 lanes,
// so one instruction does the work of two float32 FMAs.
// Layout: queries packed in blocks of 16 rows as [dim/2 pairs][16 lanes][2] bf16, so lane r of a
// zmm holds (q[r][2p], q[r][2p+1]); a document token's pair (d[2p], d[2p+1]) is one 32-bit broadcast.
// Precision: a float32 query is split into q = hi + lo with hi = bf16(q), lo = bf16(q - hi) (relative
// error <= 2^-17) and both halves are applied; when every lo is zero (bf16 queries) only hi runs, which
// is the fast bf16 x bf16 case. vdpbf16ps treats subnormal inputs as zero (DAZ).
// Tile: MR = 2 row blocks x NJ = 12 tokens, 24 accumulators. Odd dim: tokens are copied per tile
// into scratch with an even stride and a zero pad, so no pair reads past a token.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "edgecolbert/dispatch.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 16;
constexpr int kNJ = 12;
constexpr std::size_t kHeader = 64;  // uint32 has_lo, padded to keep the blocks 64-byte aligned

std::size_t block_bytes(int64_t dim) { return static_cast<std::size_t>((dim + 1) / 2) * kLanes * 4; }

std::size_t packed_bytes(int64_t rows, int64_t dim, DType doc_dtype) {
  if (doc_dtype != DType::bf16) return maxsim_ops_avx512.packed_query_bytes(rows, dim, doc_dtype);
  const int64_t blocks = (rows + kLanes - 1) / kLanes;
  return kHeader + 2 * static_cast<std::size_t>(blocks) * block_bytes(dim);
}

void pack(const float* q, int64_t rows, int64_t dim, DType doc_dtype, void* out) {
  if (doc_dtype != DType::bf16) return maxsim_ops_avx512.pack_query(q, rows, dim, doc_dtype, out);
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

// The tile after next, pulled into L1 while this one computes: the hardware prefetcher alone leaves
// the bf16 stream short of the single-core bandwidth.
inline void prefetch_ahead(const uint16_t* d, int64_t left, int64_t dim) {
  if (left <= 2 * kNJ) return;
  const char* p = reinterpret_cast<const char*>(d + 2 * kNJ * dim);
  const int64_t bytes = std::min<int64_t>(left - 2 * kNJ, kNJ) * dim * 2;
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

inline __m512bh as_bh(__m512i v) { return reinterpret_cast<__m512bh&>(v); }

template <int MR, int NJ, bool LO>
inline void tile(const uint16_t* hi, const uint16_t* lo, int64_t npairs, const uint16_t* d, int64_t stride,
                 __m512 (&runmax)[2]) {
  __m512 acc[MR][NJ];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) acc[m][j] = _mm512_setzero_ps();
  for (int64_t p = 0; p < npairs; ++p) {
    __m512bh qh[MR], ql[MR];
    for (int m = 0; m < MR; ++m) {
      qh[m] = as_bh(_mm512_load_si512(hi + (m * npairs + p) * kLanes * 2));
      if (LO) ql[m] = as_bh(_mm512_load_si512(lo + (m * npairs + p) * kLanes * 2));
    }
    for (int j = 0; j < NJ; ++j) {
      int32_t pair;
      std::memcpy(&pair, d + j * stride + 2 * p, 4);
      const __m512bh b = as_bh(_mm512_set1_epi32(pair));
      for (int m = 0; m < MR; ++m) {
        acc[m][j] = _mm512_dpbf16_ps(acc[m][j], qh[m], b);
        if (LO) acc[m][j] = _mm512_dpbf16_ps(acc[m][j], ql[m], b);
      }
    }
  }
  // max_ps returns its second operand when either is NaN: with the running max second, NaN
  // similarities are ignored, as in the scalar reference (the running max itself is never NaN).
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) runmax[m] = _mm512_max_ps(acc[m][j], runmax[m]);
}

template <int MR, bool LO>
void tile_n(int nj, const uint16_t* hi, const uint16_t* lo, int64_t npairs, const uint16_t* d, int64_t stride,
            __m512 (&runmax)[2]) {
  switch (nj) {
    case 1: tile<MR, 1, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 2: tile<MR, 2, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 3: tile<MR, 3, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 4: tile<MR, 4, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 5: tile<MR, 5, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 6: tile<MR, 6, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 7: tile<MR, 7, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 8: tile<MR, 8, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 9: tile<MR, 9, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 10: tile<MR, 10, LO>(hi, lo, npairs, d, stride, runmax); break;
    case 11: tile<MR, 11, LO>(hi, lo, npairs, d, stride, runmax); break;
    default: tile<MR, 12, LO>(hi, lo, npairs, d, stride, runmax); break;
  }
}

float score(const void* packed, int64_t rows, int64_t dim, const void* doc, DType dtype, int64_t ntok, float floor,
            float* scratch) {
  if (dtype != DType::bf16) return maxsim_ops_avx512.score_doc(packed, rows, dim, doc, dtype, ntok, floor, scratch);
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
  alignas(64) float rowmax[2 * kLanes];
  for (int64_t b = 0; b < blocks; b += 2) {
    const int mr = blocks - b >= 2 ? 2 : 1;
    const uint16_t* hi = hi_all + b * npairs * kLanes * 2;
    const uint16_t* lo = lo_all + b * npairs * kLanes * 2;
    __m512 runmax[2] = {_mm512_set1_ps(floor), _mm512_set1_ps(floor)};
    for (int64_t j0 = 0; j0 < ntok; j0 += kNJ) {
      const int nj = static_cast<int>(std::min<int64_t>(kNJ, ntok - j0));
      const uint16_t* d = tokens + j0 * dim;
      prefetch_ahead(d, ntok - j0, dim);
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
    _mm512_store_ps(rowmax, runmax[0]);
    _mm512_store_ps(rowmax + kLanes, runmax[1]);
    const int64_t valid = std::min<int64_t>(rows - b * kLanes, mr * kLanes);
    for (int64_t r = 0; r < valid; ++r) total += rowmax[r];
  }
  return static_cast<float>(total);
}

// float32 scratch for the delegated kernel, or (dim + 1) bf16 per token for the odd-dim copy.
std::size_t scratch_floats(int64_t dim) { return static_cast<std::size_t>(kNJ * (dim + 1)); }

}  // namespace

const MaxSimOps maxsim_ops_avx512_bf16{packed_bytes, pack, score, scratch_floats};

}  // namespace edgecolbert
