// MaxSim in float32 for every document dtype, over vector traits (simd.hpp), instantiated by
// maxsim_avx2.cpp, maxsim_avx512.cpp and maxsim_neon.cpp with their ISA's traits and tile width; the
// tile and its fold (TileFold) also score compressed MaxSim's decoded tokens (codec_kernels.hpp).
//
// Queries are packed transposed in blocks of L rows ([dim][L] floats per block, L = the vector width),
// so one vector holds one dimension of L query rows. A tile is MR = 2 row blocks x NJ document tokens:
// 2 x NJ accumulators; per dimension 2 loads + NJ broadcasts + 2 NJ FMAs (simd::dot_tile). When a tile's
// dot products complete, its columns are folded into the running row maxima, so no score matrix is
// ever stored (the GEMM micro-kernel with the reduction moved into the epilogue). A document is read
// once, a tile at a time: each tile of NJ tokens meets every pair of row blocks while it is in L1, and
// the row maxima wait in scratch between tiles (at Lq 32 the AVX2 tile covers 16 rows, so a document
// read once per row pair would cross the memory bus twice). float16 / bfloat16 tokens are widened a
// tile at a time into per-thread scratch that stays in L1. Each dot product accumulates in float32 in
// order k = 0..dim-1 (FMA), each row's maximum sees the tokens in order, and the row maxima are summed
// in double in row order, as in the scalar reference.
//
// Traits: VD reads float32 tokens straight from the documents, VS the widened tokens in scratch (they
// differ on AVX-512: the broadcast folded into the FMA for the first, in a register for the second,
// vec_avx512.hpp says why).
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>

#include "edgecolbert/dispatch.hpp"
#include "simd.hpp"

namespace edgecolbert {
namespace {

// A tile of nj <= NJ tokens d [nj][dim] against every row block of q (blocks of L rows, packed by
// simd::pack_rows_transposed<L>), folded into the running row maxima rmax [blocks * L]. With kScaled,
// column j is multiplied by inv[j] before the max (compressed MaxSim: 1 / the token's norm). pf: the
// lines to prefetch, one stream spread over the row pairs' loops (pair b / 2 continues at step b / 2 * dim).
template <class V, int NJ>
struct TileFold {
  using F = typename V::F;
  static constexpr int L = V::kLanes;
  static_assert(NJ <= 16, "a tile's prefetch stream must fit its dim steps (simd::tokens_ahead)");

  template <int M, int N, bool kScaled>
  EC_ALWAYS_INLINE static void tile(const float* qb, int64_t dim, const float* d, const float* inv, F (&runmax)[2],
                                    simd::LineStream pf) {
    simd::dot_tile<V, M, N, M == 2 && N == NJ && !kScaled>(qb, L, dim * L, d, dim, dim,
                                                           [&](int j, F a0, F a1) EC_LAMBDA_INLINE {
      if constexpr (kScaled) {
        const F s = V::set1(inv[j]);
        a0 = V::mul(a0, s);
        a1 = V::mul(a1, s);
      }
      runmax[0] = V::max_keep(a0, runmax[0]);
      if constexpr (M == 2) runmax[1] = V::max_keep(a1, runmax[1]);
    }, pf);
  }

  template <bool kScaled>
  EC_ALWAYS_INLINE static void fold(const float* q, int64_t blocks, int64_t dim, const float* d, int nj,
                                    const float* inv, float* rmax, simd::LineStream pf) {
    simd::with_count<NJ>(nj, [&](auto n) EC_LAMBDA_INLINE {
      constexpr int N = decltype(n)::value;
      for (int64_t b = 0; b < blocks; b += 2) {
        const float* qb = q + b * dim * L;
        const simd::LineStream p = pf.from(b / 2 * dim);  // one stream over the row pairs' loops
        F runmax[2] = {V::loadu(rmax + b * L), V::zero()};
        if (blocks - b >= 2) {
          runmax[1] = V::loadu(rmax + (b + 1) * L);
          tile<2, N, kScaled>(qb, dim, d, inv, runmax, p);
          V::storeu(rmax + (b + 1) * L, runmax[1]);
        } else {
          tile<1, N, kScaled>(qb, dim, d, inv, runmax, p);
        }
        V::storeu(rmax + b * L, runmax[0]);
      }
    });
  }

  // The score: the row maxima summed in double, in row order.
  static float total(const float* rmax, int64_t rows) {
    double t = 0.0;
    for (int64_t r = 0; r < rows; ++r) t += rmax[r];
    return static_cast<float>(t);
  }
};

template <class VD, class VS, int NJ>
struct MaxSimF32 {
  static constexpr int L = VD::kLanes;

  static std::size_t packed_bytes(int64_t rows, int64_t dim, DType) {
    return simd::packed_rows_floats<L>(rows, dim) * sizeof(float);
  }
  static void pack(const float* q, int64_t rows, int64_t dim, DType, void* out) {
    simd::pack_rows_transposed<L>(q, rows, dim, static_cast<float*>(out));
  }
  // A widened tile [NJ][dim], then the row maxima [blocks * L].
  static std::size_t scratch_floats(int64_t rows, int64_t dim) {
    return static_cast<std::size_t>(NJ * dim + (rows + L - 1) / L * L);
  }

  static float score(const void* packed, int64_t rows, int64_t dim, const void* doc, DType dtype, int64_t ntok,
                     float floor, float* scratch, NextDoc next) {
    const float* q = static_cast<const float*>(packed);
    const int64_t blocks = (rows + L - 1) / L;
    const int64_t row_bytes = dim * static_cast<int64_t>(dtype_size(dtype));
    float* widened = scratch;
    float* rmax = scratch + NJ * dim;
    std::fill_n(rmax, blocks * L, floor);
    const void* after = simd::next_to_request(doc, ntok, row_bytes, next.tokens, VD::kPrefetchTokens);
    for (int64_t j0 = 0; j0 < ntok; j0 += NJ) {
      const int nj = static_cast<int>(std::min<int64_t>(NJ, ntok - j0));
      const auto* dj = static_cast<const uint8_t*>(doc) + j0 * row_bytes;
      // The tokens kPrefetchTokens ahead into L1 while this tile computes, past the end into the next
      // document's first ones (simd::tokens_ahead): the hardware prefetchers alone leave a single core
      // short of its memory bandwidth on CSR streams.
      const simd::LineStream pf =
          VD::kPrefetchTokens > 0 ? simd::tokens_ahead(doc, row_bytes, j0, ntok, VD::kPrefetchTokens, NJ,
                                                       (blocks + 1) / 2 * dim, after, next.ntok)
                                  : simd::LineStream{};
      if (dtype == DType::f32) {
        TileFold<VD, NJ>::template fold<false>(q, blocks, dim, reinterpret_cast<const float*>(dj), nj, nullptr, rmax, pf);
      } else {
        VS::widen(reinterpret_cast<const uint16_t*>(dj), dtype, nj * dim, widened);
        TileFold<VS, NJ>::template fold<false>(q, blocks, dim, widened, nj, nullptr, rmax, pf);
      }
    }
    return TileFold<VD, NJ>::total(rmax, rows);
  }
};

}  // namespace
}  // namespace edgecolbert
