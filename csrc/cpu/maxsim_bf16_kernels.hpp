// MaxSim of bfloat16 documents with a bf16 dot-product instruction (AVX512_BF16 vdpbf16ps, NEON BFDOT),
// the part both ISAs share: the query packing and the driver. maxsim_avx512bf16.cpp and
// maxsim_neonbf16.cpp each give their register tile; other document dtypes go to the ISA's float32
// kernel (maxsim_kernels.hpp).
//
// The instruction multiplies pairs of bf16 exactly and adds both products into a float32 lane, so one
// instruction does the work of two float32 FMAs. Queries are packed in blocks of L rows (L = float32
// lanes) as [dim/2 pairs][L lanes][2] bf16, so lane r of a vector holds (q[r][2p], q[r][2p+1]); a
// document token's pair (d[2p], d[2p+1]) is one 32-bit value. Precision: a float32 query is split
// into q = hi + lo with hi = bf16(q), lo = bf16(q - hi) (relative error <= 2^-17) and both halves are
// applied; when every lo is zero (bf16 queries) only hi runs, the fast bf16 x bf16 case. The
// instructions flush subnormal inputs to zero and may round differently from float32 FMAs; the tests
// bound the difference against the float64 reference. Odd dim: tokens are copied per tile into scratch
// with an even stride and a zero pad, so no pair reads past a token.
//
// T gives: F, kLanes, kNJ (tokens per tile), kPrefetchTokens, set1, storeu; f32() (the ISA's float32
// MaxSimOps); tile<MR, NJ, LO>(hi, lo, npairs, d, stride, runmax, pf): MR row blocks x NJ tokens (d [NJ]
// tokens of `stride` bf16), hi (+ lo when LO) applied, folded into runmax[0..MR) ignoring NaN, and
// pf.at(p) at each pair step p (simd::LineStream: the tokens ahead, spread over the npairs steps).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "edgecolbert/dispatch.hpp"
#include "simd.hpp"

namespace edgecolbert {
namespace {

template <class T>
struct MaxSimBf16 {
  using F = typename T::F;
  static constexpr int L = T::kLanes;
  static constexpr int NJ = T::kNJ;
  static constexpr std::size_t kHeader = 64;  // uint32 has_lo, padded to keep the blocks 64-byte aligned

  static std::size_t block_bytes(int64_t dim) { return static_cast<std::size_t>((dim + 1) / 2) * L * 4; }

  static std::size_t packed_bytes(int64_t rows, int64_t dim, DType doc_dtype) {
    if (doc_dtype != DType::bf16) return T::f32().packed_query_bytes(rows, dim, doc_dtype);
    const int64_t blocks = (rows + L - 1) / L;
    return kHeader + 2 * static_cast<std::size_t>(blocks) * block_bytes(dim);
  }

  static void pack(const float* q, int64_t rows, int64_t dim, DType doc_dtype, void* out) {
    if (doc_dtype != DType::bf16) return T::f32().pack_query(q, rows, dim, doc_dtype, out);
    const int64_t blocks = (rows + L - 1) / L;
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
        const std::size_t at = static_cast<std::size_t>((((r / L) * npairs + k / 2) * L + r % L) * 2 + k % 2);
        hi[at] = h;
        lo[at] = l;
        has_lo |= (l & 0x7fffu) != 0;
      }
    }
    std::memcpy(base, &has_lo, 4);
  }

  // float32 scratch for the float32 kernel, or (dim + 1) bf16 per token for the odd-dim copy.
  static std::size_t scratch_floats(int64_t rows, int64_t dim) {
    return std::max(T::f32().scratch_floats(rows, dim), static_cast<std::size_t>(NJ * (dim + 1)));
  }

  static_assert(NJ <= 16, "a tile's prefetch stream must fit its npairs steps");

  template <int MR, bool LO>
  EC_ALWAYS_INLINE static void tiles(int nj, const uint16_t* hi, const uint16_t* lo, int64_t npairs, const uint16_t* d,
                                     int64_t stride, F (&runmax)[2], simd::LineStream pf) {
    simd::with_count<NJ>(nj, [&](auto n) EC_LAMBDA_INLINE {
      T::template tile<MR, decltype(n)::value, LO>(hi, lo, npairs, d, stride, runmax, pf);
    });
  }

  static float score(const void* packed, int64_t rows, int64_t dim, const void* doc, DType dtype, int64_t ntok,
                     float floor, float* scratch, NextDoc next) {
    if (dtype != DType::bf16) return T::f32().score_doc(packed, rows, dim, doc, dtype, ntok, floor, scratch, next);
    const auto* base = static_cast<const uint8_t*>(packed);
    uint32_t has_lo;
    std::memcpy(&has_lo, base, 4);
    const int64_t blocks = (rows + L - 1) / L;
    const int64_t npairs = (dim + 1) / 2;
    const std::size_t half = static_cast<std::size_t>(blocks) * block_bytes(dim);
    const auto* hi_all = reinterpret_cast<const uint16_t*>(base + kHeader);
    const auto* lo_all = reinterpret_cast<const uint16_t*>(base + kHeader + half);
    const auto* tokens = static_cast<const uint16_t*>(doc);
    const bool odd = (dim & 1) != 0;
    const int64_t stride = odd ? dim + 1 : dim;
    auto* padded = reinterpret_cast<uint16_t*>(scratch);
    const void* after = simd::next_to_request(tokens, ntok, dim * 2, next.tokens, T::kPrefetchTokens);
    double total = 0.0;
    alignas(64) float rowmax[2 * L];
    for (int64_t b = 0; b < blocks; b += 2) {
      const int mr = blocks - b >= 2 ? 2 : 1;
      const uint16_t* hi = hi_all + b * npairs * L * 2;
      const uint16_t* lo = lo_all + b * npairs * L * 2;
      F runmax[2] = {T::set1(floor), T::set1(floor)};
      for (int64_t j0 = 0; j0 < ntok; j0 += NJ) {
        const int nj = static_cast<int>(std::min<int64_t>(NJ, ntok - j0));
        const uint16_t* d = tokens + j0 * dim;
        // The tokens kPrefetchTokens ahead, past the end into the next document's first, spread over the pair
        // steps (simd::tokens_ahead).
        const simd::LineStream pf =
            T::kPrefetchTokens > 0
                ? simd::tokens_ahead(tokens, dim * 2, j0, ntok, T::kPrefetchTokens, NJ, npairs, after, next.ntok)
                : simd::LineStream{};
        if (odd) {
          for (int j = 0; j < nj; ++j) {
            std::memcpy(padded + j * stride, d + j * dim, static_cast<std::size_t>(dim) * 2);
            padded[j * stride + dim] = 0;
          }
          d = padded;
        }
        if (mr == 2) {
          if (has_lo) tiles<2, true>(nj, hi, lo, npairs, d, stride, runmax, pf);
          else tiles<2, false>(nj, hi, lo, npairs, d, stride, runmax, pf);
        } else {
          if (has_lo) tiles<1, true>(nj, hi, lo, npairs, d, stride, runmax, pf);
          else tiles<1, false>(nj, hi, lo, npairs, d, stride, runmax, pf);
        }
      }
      T::storeu(rowmax, runmax[0]);
      T::storeu(rowmax + L, runmax[1]);
      const int64_t valid = std::min<int64_t>(rows - b * L, mr * L);
      for (int64_t r = 0; r < valid; ++r) total += rowmax[r];
    }
    return static_cast<float>(total);
  }
};

}  // namespace
}  // namespace edgecolbert
