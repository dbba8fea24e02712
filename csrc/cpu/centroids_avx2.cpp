// Centroid scores, AVX2 + FMA + F16C, float32 arithmetic for every centroid dtype.
// The 32 rows of a block are packed transposed ([dim][32] floats). With 16 ymm registers a tile is
// half a block (16 rows = 2 vectors) x NJ = 6 centroids = 12 accumulators; the two halves of the block
// run one after the other over the same L1-resident centroid tile. Stores are centroid-major and
// compared with the per-row thresholds in registers (see centroids_avx512.cpp).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "edgecolbert/dispatch.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 8;
constexpr int kNJ = 6;
constexpr int64_t kRows = kCentroidBlockRows;

std::size_t packed_bytes(int64_t dim) { return static_cast<std::size_t>(kRows * dim) * sizeof(float); }

void pack(const float* rows, int64_t nrows, int64_t dim, void* out) {
  float* p = static_cast<float*>(out);
  std::memset(p, 0, packed_bytes(dim));
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t k = 0; k < dim; ++k) p[k * kRows + r] = rows[r * dim + k];
}

// Rows [h, h + 16) of the block.
template <int NJ>
inline void tile(const float* q, int h, int64_t dim, const float* c, const float* thr, float* out, uint8_t* flags) {
  __m256 acc[2][NJ];
  for (int j = 0; j < NJ; ++j) acc[0][j] = acc[1][j] = _mm256_setzero_ps();
  for (int64_t k = 0; k < dim; ++k) {
    const __m256 q0 = _mm256_load_ps(q + k * kRows + h), q1 = _mm256_load_ps(q + k * kRows + h + kLanes);
    for (int j = 0; j < NJ; ++j) {
      const __m256 b = _mm256_broadcast_ss(c + j * dim + k);
      acc[0][j] = _mm256_fmadd_ps(q0, b, acc[0][j]);
      acc[1][j] = _mm256_fmadd_ps(q1, b, acc[1][j]);
    }
  }
  const __m256 t0 = _mm256_loadu_ps(thr + h), t1 = _mm256_loadu_ps(thr + h + kLanes);
  for (int j = 0; j < NJ; ++j) {
    _mm256_storeu_ps(out + j * kRows + h, acc[0][j]);
    _mm256_storeu_ps(out + j * kRows + h + kLanes, acc[1][j]);
    const __m256 gt = _mm256_or_ps(_mm256_cmp_ps(acc[0][j], t0, _CMP_GT_OQ), _mm256_cmp_ps(acc[1][j], t1, _CMP_GT_OQ));
    flags[j] |= _mm256_movemask_ps(gt) != 0;
  }
}

void widen(const uint16_t* src, DType dtype, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m256 f = dtype == DType::f16 ? _mm256_cvtph_ps(h)
                                         : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    _mm256_storeu_ps(dst + i, f);
  }
  for (; i < n; ++i) dst[i] = dtype == DType::f16 ? f16_to_f32(src[i]) : bf16_to_f32(src[i]);
}

template <int NJ>
inline void both_halves(const float* q, int64_t dim, const float* c, const float* thr, float* out, uint8_t* flags) {
  for (int j = 0; j < NJ; ++j) flags[j] = 0;
  tile<NJ>(q, 0, dim, c, thr, out, flags);
  tile<NJ>(q, 16, dim, c, thr, out, flags);
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
      case 1: both_halves<1>(q, dim, c, thr, o, f); break;
      case 2: both_halves<2>(q, dim, c, thr, o, f); break;
      case 3: both_halves<3>(q, dim, c, thr, o, f); break;
      case 4: both_halves<4>(q, dim, c, thr, o, f); break;
      case 5: both_halves<5>(q, dim, c, thr, o, f); break;
      default: both_halves<6>(q, dim, c, thr, o, f); break;
    }
  }
}

std::size_t scratch_floats(int64_t dim) { return static_cast<std::size_t>(kNJ * dim); }

}  // namespace

const CentroidOps centroid_ops_avx2{packed_bytes, pack, block_scores, scratch_floats};

}  // namespace edgecolbert
