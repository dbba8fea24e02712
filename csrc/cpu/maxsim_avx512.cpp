// MaxSim, AVX-512 (F/BW/VL/DQ), float32 arithmetic for every input dtype.
// Tiling: queries are packed transposed in blocks of 16 rows ([dim][16] floats per block), so one zmm
// holds one dimension of 16 query rows. A tile is MR = 2 row blocks x NJ = 12 document tokens: 24
// accumulators; per dimension 2 loads + 12 broadcasts + 24 FMAs. When a tile's dot products complete,
// its 12 columns are folded into the running row maxima, so no score matrix is ever stored (the GEMM
// micro-kernel idea with the reduction moved into the epilogue). float16 / bfloat16 document tokens
// are widened a tile at a time (12 x dim values) into per-thread scratch that stays in L1.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "edgecolbert/dispatch.hpp"
#include "edgecolbert/mca_markers.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 16;
constexpr int kNJ = 12;

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
inline void tile(const float* qb, int64_t dim, const float* d, __m512 (&runmax)[2]) {
  __m512 acc[MR][NJ];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) acc[m][j] = _mm512_setzero_ps();
  if constexpr (MR == 2 && NJ == kNJ) EC_MCA_BEGIN("maxsim_f32_avx512");
  for (int64_t k = 0; k < dim; ++k) {
    __m512 qv[MR];
    for (int m = 0; m < MR; ++m) qv[m] = _mm512_load_ps(qb + (m * dim + k) * kLanes);
    for (int j = 0; j < NJ; ++j) {
      const __m512 b = _mm512_set1_ps(d[j * dim + k]);
      for (int m = 0; m < MR; ++m) acc[m][j] = _mm512_fmadd_ps(qv[m], b, acc[m][j]);
    }
  }
  if constexpr (MR == 2 && NJ == kNJ) EC_MCA_END("maxsim_f32_avx512");
  // max_ps returns its second operand when either is NaN: with the running max second, NaN
  // similarities are ignored, as in the scalar reference (the running max itself is never NaN).
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) runmax[m] = _mm512_max_ps(acc[m][j], runmax[m]);
}

template <int MR>
void tile_n(int nj, const float* qb, int64_t dim, const float* d, __m512 (&runmax)[2]) {
  switch (nj) {
    case 1: tile<MR, 1>(qb, dim, d, runmax); break;
    case 2: tile<MR, 2>(qb, dim, d, runmax); break;
    case 3: tile<MR, 3>(qb, dim, d, runmax); break;
    case 4: tile<MR, 4>(qb, dim, d, runmax); break;
    case 5: tile<MR, 5>(qb, dim, d, runmax); break;
    case 6: tile<MR, 6>(qb, dim, d, runmax); break;
    case 7: tile<MR, 7>(qb, dim, d, runmax); break;
    case 8: tile<MR, 8>(qb, dim, d, runmax); break;
    case 9: tile<MR, 9>(qb, dim, d, runmax); break;
    case 10: tile<MR, 10>(qb, dim, d, runmax); break;
    case 11: tile<MR, 11>(qb, dim, d, runmax); break;
    default: tile<MR, 12>(qb, dim, d, runmax); break;
  }
}

// The tile after next, pulled into L1 while this one computes (the hardware prefetcher alone leaves
// a single core short of its memory bandwidth on long CSR streams).
inline void prefetch_ahead(const uint8_t* d, int64_t left, int64_t row_bytes) {
  if (left <= 2 * kNJ) return;
  const char* p = reinterpret_cast<const char*>(d + 2 * kNJ * row_bytes);
  const int64_t bytes = std::min<int64_t>(left - 2 * kNJ, kNJ) * row_bytes;
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
}

// Widens n contiguous half-precision values to float32.
void widen(const uint16_t* src, DType dtype, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    __m512 f = dtype == DType::f16 ? _mm512_cvtph_ps(h)
                                   : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    _mm512_storeu_ps(dst + i, f);
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m256i h = _mm256_maskz_loadu_epi16(m, src + i);
    __m512 f = dtype == DType::f16 ? _mm512_cvtph_ps(h)
                                   : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    _mm512_mask_storeu_ps(dst + i, m, f);
  }
}

float score(const void* packed, int64_t rows, int64_t dim, const void* doc, DType dtype, int64_t ntok, float floor,
            float* scratch) {
  const float* q = static_cast<const float*>(packed);
  const int64_t blocks = (rows + kLanes - 1) / kLanes;
  double total = 0.0;
  alignas(64) float rowmax[2 * kLanes];
  for (int64_t b = 0; b < blocks; b += 2) {
    const int mr = blocks - b >= 2 ? 2 : 1;
    const float* qb = q + b * dim * kLanes;
    __m512 runmax[2] = {_mm512_set1_ps(floor), _mm512_set1_ps(floor)};
    for (int64_t j0 = 0; j0 < ntok; j0 += kNJ) {
      const int nj = static_cast<int>(std::min<int64_t>(kNJ, ntok - j0));
      const float* d;
      prefetch_ahead(static_cast<const uint8_t*>(doc) + j0 * dim * dtype_size(dtype), ntok - j0, dim * dtype_size(dtype));
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
    _mm512_store_ps(rowmax, runmax[0]);
    _mm512_store_ps(rowmax + kLanes, runmax[1]);
    const int64_t valid = std::min<int64_t>(rows - b * kLanes, mr * kLanes);
    for (int64_t r = 0; r < valid; ++r) total += rowmax[r];
  }
  return static_cast<float>(total);
}

std::size_t scratch_floats(int64_t dim) { return static_cast<std::size_t>(kNJ * dim); }

}  // namespace

const MaxSimOps maxsim_ops_avx512{packed_bytes, pack, score, scratch_floats};

}  // namespace edgecolbert
