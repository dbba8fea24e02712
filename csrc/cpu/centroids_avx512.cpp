// Centroid scores, AVX-512 (F/BW/VL/DQ), float32 arithmetic for every centroid dtype.
// Tiling as in MaxSim: the 32 rows of a block are packed transposed ([dim][32] floats), so two zmm
// hold one dimension of all rows; a tile is 2 row vectors x NJ = 12 centroids = 24 accumulators, per
// dimension 2 loads + 24 FMAs whose broadcast is folded into their load (avx512_fma.hpp; Q.C^T as a
// GEMM micro-kernel). The tile's columns are
// compared with the per-row thresholds in registers and only flagged columns are stored, so the
// driver's top-k only visits (and the cache only sees) centroids that can enter some row's heap. Half-precision centroids are widened one tile
// (12 x dim values) at a time into L1-resident scratch.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "edgecolbert/avx512_fma.hpp"
#include "edgecolbert/dispatch.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 16;
constexpr int kNJ = 12;
constexpr int64_t kRows = kCentroidBlockRows;

std::size_t packed_bytes(int64_t dim) { return static_cast<std::size_t>(kRows * dim) * sizeof(float); }

void pack(const float* rows, int64_t nrows, int64_t dim, void* out) {
  float* p = static_cast<float*>(out);
  std::memset(p, 0, packed_bytes(dim));
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t k = 0; k < dim; ++k) p[k * kRows + r] = rows[r * dim + k];
}

template <int NJ>
inline void tile(const float* q, int64_t dim, const float* c, const __m512 (&thr)[2], bool store_all, float* out,
                 uint8_t* flags) {
  __m512 acc[2][NJ];
  for (int j = 0; j < NJ; ++j) acc[0][j] = acc[1][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < dim; ++k) {
    const __m512 q0 = _mm512_load_ps(q + k * kRows), q1 = _mm512_load_ps(q + k * kRows + kLanes);
    for (int j = 0; j < NJ; ++j) fma2_bcast(acc[0][j], acc[1][j], c + j * dim + k, q0, q1);
  }
  // With thresholds only the flagged columns are stored (a top-k visits nothing else): the 64 KiB of
  // stores per 512-centroid chunk that a dense result needs would otherwise leave L1 every chunk.
  for (int j = 0; j < NJ; ++j) {
    const __mmask16 m = _mm512_cmp_ps_mask(acc[0][j], thr[0], _CMP_GT_OQ) | _mm512_cmp_ps_mask(acc[1][j], thr[1], _CMP_GT_OQ);
    flags[j] = m != 0;
    if (store_all || m != 0) {
      _mm512_storeu_ps(out + j * kRows, acc[0][j]);
      _mm512_storeu_ps(out + j * kRows + kLanes, acc[1][j]);
    }
  }
}

void widen(const uint16_t* src, DType dtype, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m512 f = dtype == DType::f16 ? _mm512_cvtph_ps(h)
                                         : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    _mm512_storeu_ps(dst + i, f);
  }
  for (; i < n; ++i) dst[i] = dtype == DType::f16 ? f16_to_f32(src[i]) : bf16_to_f32(src[i]);
}

void block_scores(const void* packed, int64_t dim, const void* cents, DType ct, int64_t nc, const float* thr,
                  float* out, uint8_t* flags, float* scratch) {
  const float* q = static_cast<const float*>(packed);
  const bool all = thr == nullptr;
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  const __m512 t[2] = {all ? inf : _mm512_loadu_ps(thr), all ? inf : _mm512_loadu_ps(thr + kLanes)};
  uint8_t unused_flags[kNJ];
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
      case 1: tile<1>(q, dim, c, t, all, o, f); break;
      case 2: tile<2>(q, dim, c, t, all, o, f); break;
      case 3: tile<3>(q, dim, c, t, all, o, f); break;
      case 4: tile<4>(q, dim, c, t, all, o, f); break;
      case 5: tile<5>(q, dim, c, t, all, o, f); break;
      case 6: tile<6>(q, dim, c, t, all, o, f); break;
      case 7: tile<7>(q, dim, c, t, all, o, f); break;
      case 8: tile<8>(q, dim, c, t, all, o, f); break;
      case 9: tile<9>(q, dim, c, t, all, o, f); break;
      case 10: tile<10>(q, dim, c, t, all, o, f); break;
      case 11: tile<11>(q, dim, c, t, all, o, f); break;
      default: tile<12>(q, dim, c, t, all, o, f); break;
    }
  }
}

std::size_t scratch_floats(int64_t dim) { return static_cast<std::size_t>(kNJ * dim); }

}  // namespace

const CentroidOps centroid_ops_avx512{packed_bytes, pack, block_scores, scratch_floats};

}  // namespace edgecolbert
