// Centroid scores in float32 for every centroid dtype, over vector traits (simd.hpp), instantiated by
// centroids_avx2.cpp, centroids_avx512.cpp and centroids_neon.cpp (CentroidOps, dispatch.hpp).
//
// The 32 rows of a block are packed transposed ([dim][32] floats), so a vector holds one dimension of
// L consecutive rows. A tile is 2 row vectors (2L rows) x NJ centroids: 2 NJ accumulators; per
// dimension 2 loads + NJ broadcasts + 2 NJ FMAs (simd::dot_tile: Q.C^T as a GEMM micro-kernel). Where
// 2L < 32 (AVX2: 2 halves, NEON: 4 quarters) the row groups of the block run one after the other over
// the same L1-resident centroid tile. Scores are stored centroid-major and compared with the per-row
// thresholds while in registers. Where one tile covers the whole block (AVX-512), only flagged columns
// are stored when thresholds are given (a top-k visits nothing else): the 64 KiB of stores per
// 512-centroid chunk that a dense result needs would otherwise leave L1 every chunk. Half-precision
// centroids are widened one tile (NJ x dim values) at a time into L1-resident scratch.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "edgecolbert/dispatch.hpp"
#include "simd.hpp"

namespace edgecolbert {
namespace {

// VD reads float32 centroids straight from memory, VS the widened ones in scratch (vec_avx512.hpp).
template <class VD, class VS, int NJ>
struct CentroidScoresF32 {
  using F = typename VD::F;
  static constexpr int L = VD::kLanes;
  static constexpr int64_t kRows = kCentroidBlockRows;
  static constexpr int kGroups = kRows / (2 * L);  // row groups of 2 vectors per block
  static_assert(kGroups * 2 * L == kRows, "a block is a whole number of 2-vector row groups");

  static std::size_t packed_bytes(int64_t dim) { return static_cast<std::size_t>(kRows * dim) * sizeof(float); }
  // [dim][32], rows past nrows (0 <= nrows <= 32) zero.
  static void pack(const float* rows, int64_t nrows, int64_t dim, void* out) {
    float* p = static_cast<float*>(out);
    std::memset(p, 0, packed_bytes(dim));
    for (int64_t r = 0; r < nrows; ++r)
      for (int64_t k = 0; k < dim; ++k) p[k * kRows + r] = rows[r * dim + k];
  }
  static std::size_t scratch_floats(int64_t dim) { return static_cast<std::size_t>(NJ * dim); }

  // Every row group x nc <= NJ centroids c [N][dim]; thr [32] (+inf: nothing flags).
  template <class V, int N>
  EC_ALWAYS_INLINE static void tile(const float* q, int64_t dim, const float* c, const float* thr, bool store_all,
                                    float* out, uint8_t* flags) {
    for (int j = 0; j < N; ++j) flags[j] = 0;
    for (int h = 0; h < kRows; h += 2 * L) {
      const F t0 = V::loadu(thr + h), t1 = V::loadu(thr + h + L);
      simd::dot_tile<V, 2, N>(q + h, kRows, L, c, dim, dim, [&](int j, F a0, F a1) EC_LAMBDA_INLINE {
        const bool hit = V::any_gt(a0, t0) | V::any_gt(a1, t1);
        flags[j] |= hit;
        if (kGroups > 1 || store_all || hit) {
          V::storeu(out + j * kRows + h, a0);
          V::storeu(out + j * kRows + h + L, a1);
        }
      });
    }
  }

  static void block_scores(const void* packed, int64_t dim, const void* cents, DType ct, int64_t nc, const float* thr,
                           float* out, uint8_t* flags, float* scratch) {
    const float* q = static_cast<const float*>(packed);
    // No thresholds: every column stored, nothing flagged.
    const bool store_all = thr == nullptr;
    float inf_thr[kRows];
    if (store_all) {
      for (auto& v : inf_thr) v = __builtin_inff();
      thr = inf_thr;
    }
    uint8_t unused_flags[NJ];
    for (int64_t j0 = 0; j0 < nc; j0 += NJ) {
      const int nj = static_cast<int>(std::min<int64_t>(NJ, nc - j0));
      float* o = out + j0 * kRows;
      uint8_t* f = flags != nullptr ? flags + j0 : unused_flags;
      simd::with_count<NJ>(nj, [&](auto n) EC_LAMBDA_INLINE {
        constexpr int N = decltype(n)::value;
        if (ct == DType::f32) {
          tile<VD, N>(q, dim, static_cast<const float*>(cents) + j0 * dim, thr, store_all, o, f);
        } else {
          VS::widen(static_cast<const uint16_t*>(cents) + j0 * dim, ct, N * dim, scratch);
          tile<VS, N>(q, dim, scratch, thr, store_all, o, f);
        }
      });
    }
  }
};

}  // namespace
}  // namespace edgecolbert
