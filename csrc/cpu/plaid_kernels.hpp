// PLAID's stage loops, written once in plain C++ and compiled by every plaid_<isa>.cpp with that ISA's
// flags (the loops over a row of St vectorise to 16-float steps). Everything here has internal linkage
// (static, or an anonymous namespace): a copy built with AVX-512 flags must never be linked into a
// path that runs on a CPU without AVX-512.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>

#include "edgecolbert/dispatch.hpp"
#include "simd.hpp"

namespace edgecolbert {
namespace {
namespace plaid_detail {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline float rank_key(float v) { return std::isnan(v) ? kNegInf : v; }

// Stage B's loads for the documents after j: the offsets of j + 2 and the codes of j + 1. A document's
// distinct codes are a few tens of rows, and each document starts a chain of misses (its offsets, then its
// codes, then its rows of St) that the out-of-order window does not reach across the end of the document
// before it. The offsets of j + 1 are read here: every document in [j0, j1) has been range-checked.
template <typename Code>
EC_ALWAYS_INLINE void prefetch_next_docs(const Code* codes, const int64_t* offsets, const int64_t* docs, int64_t j,
                                         int64_t j1) {
  if (j + 2 < j1) __builtin_prefetch(offsets + docs[j + 2], 0, 3);
  if (j + 1 < j1) {
    const int64_t lo = offsets[docs[j + 1]], hi = offsets[docs[j + 1] + 1];
    simd::prefetch_bytes(codes + lo, (hi - lo) * static_cast<int64_t>(sizeof(Code)));
  }
}

template <typename Code>
bool interact_docs(const float* St, int64_t stride, int64_t mp, int64_t m, int64_t K, const uint8_t* keep,
                   const float* zeros, const Code* codes, const int64_t* offsets, const int64_t* docs, int64_t j0,
                   int64_t j1, float* out) {
  alignas(64) float best[256];
  std::unique_ptr<float[]> heap;
  float* b = best;
  if (mp > 256) {
    heap.reset(new float[mp]);
    b = heap.get();
  }
  for (int64_t j = j0; j < j1; ++j) {
    prefetch_next_docs(codes, offsets, docs, j, j1);
    const int64_t lo = offsets[docs[j]], hi = offsets[docs[j] + 1];
    float sum = 0.0f;
    if (hi > lo) {
      for (int64_t i = 0; i < mp; ++i) b[i] = kNegInf;
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t c = codes[t];
        if (c < 0 || c >= K) return false;
        const float* r = keep == nullptr || keep[c] ? St + c * stride : zeros;
        for (int64_t i = 0; i < mp; ++i) b[i] = r[i] > b[i] ? r[i] : b[i];
      }
      for (int64_t i = 0; i < m; ++i) sum += b[i];  // row order: the scalar reference's sum
    }
    out[j] = sum;
  }
  return true;
}

// The same for rows of a compile-time MP floats (m <= 16 or <= 32, the usual query): the running maxima
// stay in registers, two sets for even and odd tokens (two independent max chains), merged per document.
// Max is exact and order-free, so the result equals interact_docs's (as floats: when +0 and -0 tie for a
// token's maximum, which of them is kept may differ).
template <int MP, typename Code>
bool interact_docs_fixed(const float* St, int64_t stride, int64_t m, int64_t K, const uint8_t* keep,
                         const float* zeros, const Code* codes, const int64_t* offsets, const int64_t* docs, int64_t j0,
                         int64_t j1, float* out) {
  for (int64_t j = j0; j < j1; ++j) {
    prefetch_next_docs(codes, offsets, docs, j, j1);
    const int64_t lo = offsets[docs[j]], hi = offsets[docs[j] + 1];
    float sum = 0.0f;
    if (hi > lo) {
      float b0[MP], b1[MP];
      for (int i = 0; i < MP; ++i) b0[i] = b1[i] = kNegInf;
      int64_t t = lo;
      for (; t + 1 < hi; t += 2) {
        const int64_t c0 = codes[t], c1 = codes[t + 1];
        if (c0 < 0 || c0 >= K || c1 < 0 || c1 >= K) return false;
        const float* r0 = keep == nullptr || keep[c0] ? St + c0 * stride : zeros;
        const float* r1 = keep == nullptr || keep[c1] ? St + c1 * stride : zeros;
        for (int i = 0; i < MP; ++i) {
          b0[i] = r0[i] > b0[i] ? r0[i] : b0[i];
          b1[i] = r1[i] > b1[i] ? r1[i] : b1[i];
        }
      }
      if (t < hi) {
        const int64_t c0 = codes[t];
        if (c0 < 0 || c0 >= K) return false;
        const float* r0 = keep == nullptr || keep[c0] ? St + c0 * stride : zeros;
        for (int i = 0; i < MP; ++i) b0[i] = r0[i] > b0[i] ? r0[i] : b0[i];
      }
      for (int i = 0; i < MP; ++i) b0[i] = b1[i] > b0[i] ? b1[i] : b0[i];
      for (int64_t i = 0; i < m; ++i) sum += b0[i];  // row order: the scalar reference's sum
    }
    out[j] = sum;
  }
  return true;
}

template <typename Code>
bool interact_any(const float* St, int64_t stride, int64_t mp, int64_t m, int64_t K, const uint8_t* keep,
                  const float* zeros, const Code* codes, const int64_t* offsets, const int64_t* docs, int64_t j0,
                  int64_t j1, float* out) {
  if (mp == 16) return interact_docs_fixed<16>(St, stride, m, K, keep, zeros, codes, offsets, docs, j0, j1, out);
  if (mp == 32) return interact_docs_fixed<32>(St, stride, m, K, keep, zeros, codes, offsets, docs, j0, j1, out);
  return interact_docs(St, stride, mp, m, K, keep, zeros, codes, offsets, docs, j0, j1, out);
}

bool interact(const float* St, int64_t stride, int64_t mp, int64_t m, int64_t K, const uint8_t* keep,
              const float* zeros, const PlaidCodes& codes, const int64_t* offsets, const int64_t* docs, int64_t j0,
              int64_t j1, float* out) {
  return codes.u16 ? interact_any(St, stride, mp, m, K, keep, zeros, static_cast<const uint16_t*>(codes.data),
                                  offsets, docs, j0, j1, out)
                   : interact_any(St, stride, mp, m, K, keep, zeros, static_cast<const int32_t*>(codes.data),
                                  offsets, docs, j0, j1, out);
}

// Inserts (x, c) into a token's list t of n entries (capacity > n when growing), best first; c is
// larger than every id already in, so it goes after every entry with key >= x (ties to the lower id).
inline void insert_sorted(PlaidCand* t, int64_t n, float x, int32_t c) {
  int64_t j = n;
  while (j > 0 && t[j - 1].key < x) {
    t[j] = t[j - 1];
    --j;
  }
  t[j] = {x, c};
}

// One pass over St's rows c0..c1 for every token's q best: the first q centroids fed fill the lists
// (filled: how many are in so far); after that a row is compared with the tokens' thresholds (the
// q-th best key; +inf in padded lanes) and only a row that beats one is looked at token by token.
// Ids arrive in increasing order and later ids lose ties, so only a strictly greater score enters; NaN
// compares false and never enters after the first q. Returns the new filled.
int64_t probe_rows(const float* St, int64_t m, int64_t stride, int64_t mp, int64_t q, int64_t c0, int64_t c1,
                   PlaidCand* top, float* thr, float* row, int64_t filled) {
  int64_t c = c0;
  for (; c < c1 && filled < q; ++c, ++filled) {
    const float* r = St + c * stride;
    for (int64_t i = 0; i < m; ++i) insert_sorted(top + i * q, filled, rank_key(r[i]), static_cast<int32_t>(c));
    if (filled + 1 == q)
      for (int64_t i = 0; i < m; ++i) thr[i] = top[i * q + q - 1].key;
  }
  for (; c < c1; ++c) {
    const float* r = St + c * stride;
    // Lanes past m may hold anything when stride is short of mp: compare a copy of the m real ones.
    const float* v = r;
    if (mp > stride) {
      for (int64_t i = 0; i < m; ++i) row[i] = r[i];
      v = row;
    }
    int any = 0;
    for (int64_t i = 0; i < mp; ++i) any |= v[i] > thr[i];
    if (!any) continue;
    // The tokens it beats as a bit mask, 64 at a time, then only those: a compare and branch per token
    // mispredicts on such rows (most of the first slice's, when the thresholds are still low).
    for (int64_t i0 = 0; i0 < m; i0 += 64) {
      const int64_t n = std::min<int64_t>(64, m - i0);
      uint64_t beats = 0;
      for (int64_t i = 0; i < n; ++i) beats |= static_cast<uint64_t>(v[i0 + i] > thr[i0 + i]) << i;
      while (beats != 0) {
        const int64_t i = i0 + __builtin_ctzll(beats);
        beats &= beats - 1;
        insert_sorted(top + i * q, q - 1, v[i], static_cast<int32_t>(c));
        thr[i] = top[i * q + q - 1].key;
      }
    }
  }
  return filled;
}

}  // namespace plaid_detail
}  // namespace
}  // namespace edgecolbert
