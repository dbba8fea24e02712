// Centroid search drivers: token rows x centroids, inner product, split over the pool.
//  centroid_scores: dense [m, K]; centroid_scores_t: the same centroid-major (PLAID's search stages).
//  centroid_topk:   best k centroids per row, best first, ties to the lower id, NaN ranks last;
//                   k = 1 is assignment. Streaming: rows are processed 32 at a time against chunks of
//                   centroids, so no [m, K] buffer exists (assign over 10^8 tokens needs O(threads) memory).
// Results do not depend on the thread count: each score is computed by the same code wherever it
// falls, and a top-k under a total order is unique.
#pragma once
#include <cstdint>
#include <vector>

#include "edgecolbert/common.hpp"
#include "edgecolbert/dispatch.hpp"

namespace edgecolbert {

// A row-major matrix [n, dim] of token vectors (rows) or centroids.
struct Matrix {
  const void* data = nullptr;
  DType dtype = DType::f32;
  int64_t n = 0, dim = 0;
};

// out [rows.n, cents.n] row-major.
void centroid_scores(const KernelPath& path, const Matrix& rows, const Matrix& cents, float* out, int num_threads);

// The same scores centroid-major, as PLAID's probe and centroid interaction read them:
// out[c * stride + r] = <row r, centroid c> for r < rows.n, and 0 for rows.n <= r < stride
// (stride >= rows.n, stride % 32 == 0). No transposition: the kernel's tiles are already this layout.
void centroid_scores_t(const KernelPath& path, const Matrix& rows, const Matrix& cents, int64_t stride, float* out,
                       int num_threads);

// The row stride (columns) of a centroid-major result for m rows: m rounded up to whole 32-row blocks,
// one block at least (so that m = 0 still gives a well-formed [K, 32] array).
inline int64_t centroid_major_stride(int64_t m) {
  return (m > 0 ? (m + kCentroidBlockRows - 1) / kCentroidBlockRows : 1) * kCentroidBlockRows;
}

// The int8 dot products accumulate in int32: (q + 128) * c sums to at most 255 * 127 * dim4, and csum is
// 128 * 127 * dim4, so a wider row could wrap. Wider rows are scored in float32 (index/_search.py).
inline constexpr int64_t kMaxDimI8 = 65536;

// int8 scores for PLAID's candidate generation (CentroidI8Ops in dispatch.hpp). Rows are quantised
// symmetrically per row: scale = max_k |x[k]| / 127 and q[k] = nearbyint(x[k] * (127 / max)), so
// |q| <= 127; rows are padded with zeros to dim4 = i8_width(dim). A zero row gets scale 0.
// Returns false (out unspecified) when some value is not finite.
inline int64_t i8_width(int64_t dim) { return (dim + 3) / 4 * 4; }
bool quantize_rows_i8(const float* x, int64_t n, int64_t dim, int8_t* out, float* scale);
// Centroids for centroid_scores_t_i8: quantize_rows_i8 and csum[i] = 128 * sum_k out[i, k] (the offset that
// turns the kernels' unsigned x signed dot products back into signed ones).
bool quantize_centroids_i8(const float* x, int64_t n, int64_t dim, int8_t* out, float* scale, int32_t* csum);

// Centroid-major int8 scores: out[c * stride + r] = float(<q8_r, c8_c>) * (qscale[r] * cscale[c]) for r < m,
// 0 for m <= r < stride (stride % 32 == 0). q8 [m, dim4], c8 [K, dim4] (quantize_rows_i8), csum [K] =
// 128 * sum_k c8[c, k]. With thr [stride] (+inf from m on), also flags[c] = 1 when some r has
// out[c * stride + r] > thr[r], else 0 (thr == nullptr: flags untouched).
void centroid_scores_t_i8(const KernelPath& path, const int8_t* q8, const float* qscale, int64_t m, int64_t dim4,
                          const int8_t* c8, const float* cscale, const int32_t* csum, int64_t K, int64_t stride,
                          float* out, int num_threads, const float* thr = nullptr, uint8_t* flags = nullptr);

// The same from float32 rows [m, dim], quantised here by quantize_rows_i8 (dim4 = i8_width(dim)); returns
// false (out untouched) when a row holds a value that is not finite.
bool centroid_scores_t_i8_from_f32(const KernelPath& path, const float* rows, int64_t m, int64_t dim, const int8_t* c8,
                                   const float* cscale, const int32_t* csum, int64_t K, int64_t stride, float* out,
                                   int num_threads);

// The same with the rows packed once (stride / 32 blocks of 32 rows as the kernels read them), for a
// caller that scores slices of the centroids one call at a time (PLAID's probe).
struct PackedRowsI8 {
  PackedRowsI8(const int8_t* q8, const float* qscale, int64_t m, int64_t dim4, int64_t stride);
  int64_t dim4, nb;
  std::vector<int8_t> blocks;  // [nb][dim4 / 4][32][4]
  std::vector<float> scales;   // [nb * 32], 0 for padded rows
};
void centroid_scores_t_i8(const KernelPath& path, const PackedRowsI8& rows, const int8_t* c8, const float* cscale,
                          const int32_t* csum, int64_t K, float* out, int num_threads, const float* thr = nullptr,
                          uint8_t* flags = nullptr);

// scores (may be null) and ids [rows.n, k]; requires 1 <= k <= cents.n.
void centroid_topk(const KernelPath& path, const Matrix& rows, const Matrix& cents, int64_t k, float* scores,
                   int32_t* ids, int num_threads);

// Rows scored against a subset of centroids, written centroid-major for the compressed scorer:
// out[c * stride + r] = <rows_f32[r], cents[c]> for every c in ids (rows <= stride, stride % 32 == 0).
void centroid_scores_gathered(const KernelPath& path, const float* rows_f32, int64_t rows, int64_t stride,
                              const Matrix& cents, const int32_t* ids, int64_t nids, float* out, int num_threads);

}  // namespace edgecolbert
