// What the per-ISA kernel files share, written once over vector traits (vec_avx2.hpp, vec_avx512.hpp,
// vec_neon.hpp): the register tile of every float32 dot-product kernel (MaxSim, compressed MaxSim,
// centroid scores), the transposed query packing, and the compile-time tile widths.
//
// A traits struct V gives: F (the float32 vector) and kLanes; zero, load (aligned), loadu, storeu, set1,
// mul, fmadd(a, b, c) = a * b + c; max_keep(x, run), the running max that ignores a NaN x (the running max itself is never NaN);
// any_gt(a, t), whether some lane has a > t (ordered: NaN never counts); B, bcast(p) and fma(acc, q, b),
// acc + q * (*p broadcast) as one fused multiply-add (B is what bcast hands to fma: a register or, where
// the FMA takes a broadcast memory operand, the pointer itself); widen (float16 / bfloat16 -> float32,
// exact); kPrefetchTokens (how many document tokens ahead the MaxSim drivers prefetch; 0: none). The portable codec
// (codec_kernels.hpp) also uses add, div, hsum (the lanes' sum in the ISA's fixed order) and store_f16.
//
// Everything here has internal linkage (an anonymous namespace) and is included only by the
// csrc/cpu/<kernel>_<isa>.cpp files, each built with its own -m flags: a copy compiled with AVX-512 flags
// must never be linked into a path that runs on a CPU without AVX-512.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "mca_markers.hpp"

#define EC_ALWAYS_INLINE inline __attribute__((always_inline))
// After a lambda's parameter list: the lambda is inlined where it is called.
#define EC_LAMBDA_INLINE __attribute__((always_inline))

namespace edgecolbert {
namespace {
namespace simd {

// f(std::integral_constant<int, n>{}) for a run-time n in [1, N]: a tile's column count as a
// compile-time constant, so each width gets its own fully unrolled tile.
template <int N, class F, int... I>
EC_ALWAYS_INLINE void with_count_impl(int n, F&& f, std::integer_sequence<int, I...>) {
  (void)((n == I + 1 ? (f(std::integral_constant<int, I + 1>{}), true) : false) || ...);
}
template <int N, class F>
EC_ALWAYS_INLINE void with_count(int n, F&& f) {
  with_count_impl<N>(n, std::forward<F>(f), std::make_integer_sequence<int, N>{});
}

// rows [rows, dim] packed transposed in blocks of L rows: out[(blk * dim + k) * L + r % L], padded rows
// zero. One vector load then holds dimension k of L rows.
template <int L>
inline void pack_rows_transposed(const float* q, int64_t rows, int64_t dim, float* out) {
  const int64_t blocks = (rows + L - 1) / L;
  std::memset(out, 0, static_cast<std::size_t>(blocks * dim * L) * sizeof(float));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < dim; ++k) out[((r / L) * dim + k) * L + r % L] = q[r * dim + k];
}

template <int L>
constexpr std::size_t packed_rows_floats(int64_t rows, int64_t dim) {
  return static_cast<std::size_t>((rows + L - 1) / L * dim * L);
}

// Every cache line of the bytes [p, p + bytes) into L1 at once (the centroid rows a compressed-MaxSim tile
// reads next, a document's codes: a few random lines). Stepped from the line that holds p, so that an
// unaligned span's last line is requested too.
EC_ALWAYS_INLINE void prefetch_bytes(const void* p, int64_t bytes) {
  const auto end = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes);
  for (auto line = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63}; line < end; line += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(line), 0, 3);
}

// Software prefetch of the document stream, into L1. A tile's lines requested all at once (36 to 96
// prefetches in a burst) stall the core on its limit of outstanding misses: on Zen 4 MaxSim at dim 128
// from memory ran at 55-65% of the FMA peak whatever the distance. Spread over the loop of the tile
// before, one line per step k, the same lines cost nothing: 85-90% (bench/bench_maxsim_limits.py).
// Spread as thinly as the tile's loops allow (over every row pair's loop, evenly): the AVX2 tile at dim
// 128, Lq 32 requests 48 lines over 2 x 128 steps, and one per step for the first 48 still stalled it
// (69-72% of the FMA peak; 80-83% at one every 2 steps of the first pair; 91-92% over both pairs).
struct NoPrefetch {
  EC_ALWAYS_INLINE void at(int64_t) const {}
};
struct LineStream {
  const char* p = nullptr;     // the next line to request
  int64_t lines = 0;           // lines left to request
  int64_t every = 1;           // steps from one request to the next
  int64_t next = 0;            // the step of the next request
  int64_t run = 0;             // lines left in p's range; at 0 the stream continues at `then`
  const char* then = nullptr;  // the second range's first line (the next document's)
  EC_ALWAYS_INLINE void at(int64_t k) {
    if (k == next && lines > 0) {
      __builtin_prefetch(p, 0, 3);
      p = --run == 0 ? then : p + 64;
      --lines;
      next += every;
    }
  }
  // The stream as a loop that starts at step `step` of its schedule sees it (a later loop continues an
  // earlier loop's requests).
  EC_ALWAYS_INLINE LineStream from(int64_t step) const {
    const int64_t skip = std::min(lines, (step + every - 1) / every);
    const bool jumped = run > 0 && skip >= run;
    return {jumped ? then + 64 * (skip - run) : p + 64 * skip, lines - skip, every, skip * every - step, run - skip, then};
  }
};
// The lines of tokens [j0 + ahead, j0 + ahead + n) of a document of ntok rows of row_bytes, for its tile of
// tokens [j0, j0 + n), spread evenly over the tile's `steps` loop steps: a window that passes the end of
// the document continues into the document scored next (next, next_ntok rows; null: none), up to its
// first `ahead` rows, which no tile of its own requests (a document shorter than `ahead` requests them
// all, from the next document's first row, in its first tile). Without them every document began with a
// tile of misses: MaxSim of 20-40-token documents at dim 128 ran at 70% of the FMA peak (BENCHMARKS.md).
// Each range is requested in whole lines from the one that holds its first byte. Lines past the loop's end
// are not requested: the drivers keep them within (a float32 tile of NJ <= 16 tokens has at most dim lines
// ahead and dim steps, + 2 unaligned).
EC_ALWAYS_INLINE LineStream tokens_ahead(const void* doc, int64_t row_bytes, int64_t j0, int64_t ntok, int64_t ahead,
                                         int64_t n, int64_t steps, const void* next = nullptr, int64_t next_ntok = 0) {
  auto span = [row_bytes](const void* rows, int64_t a, int64_t b, const char*& line) -> int64_t {
    if (b <= a) return 0;
    const auto begin = reinterpret_cast<uintptr_t>(rows) + static_cast<uintptr_t>(a * row_bytes);
    const auto end = reinterpret_cast<uintptr_t>(rows) + static_cast<uintptr_t>(b * row_bytes);
    line = reinterpret_cast<const char*>(begin & ~uintptr_t{63});
    return static_cast<int64_t>((end - (begin & ~uintptr_t{63}) + 63) / 64);
  };
  const int64_t first = j0 + ahead, last = first + n;
  const char *own = nullptr, *then = nullptr;
  // The window's rows in this document (most tiles' whole window: one range, as cheap as it can be).
  const int64_t n_own = span(doc, first, std::min(last, ntok), own);
  const int64_t n_next = next == nullptr || last <= ntok
                             ? 0
                             : span(next, j0 == 0 ? 0 : std::max<int64_t>(first - ntok, 0),
                                    std::min({last - ntok, ahead, next_ntok}), then);
  const int64_t lines = n_own + n_next;
  if (lines == 0) return {};
  const int64_t every = std::max<int64_t>(1, steps / lines);
  if (n_own == 0) return {then, lines, every, 0, lines, nullptr};
  return {own, lines, every, 0, n_own, then};
}

// The next document as tokens_ahead should see it: null where the hardware prefetchers already cover it,
// a document that starts where this one ends with its first `ahead` rows under kHardwareReach bytes (they
// follow a stream that far by themselves: on Zen 4, requesting those rows at dim 48 gained nothing and, with
// 8-16-token documents, may have cost a few points of the FMA peak). A longer step (float32 rows of dim 96
// and 128: 20-35 points gained) or a jump elsewhere (maxsim_candidates' order) is requested.
constexpr int64_t kHardwareReach = 3072;
EC_ALWAYS_INLINE const void* next_to_request(const void* doc, int64_t ntok, int64_t row_bytes, const void* next,
                                             int64_t ahead) {
  const bool follows = next == static_cast<const char*>(doc) + ntok * row_bytes;
  return follows && ahead * row_bytes < kHardwareReach ? nullptr : next;
}

// The register tile of the float32 kernels (the GEMM micro-kernel): MR <= 2 query vectors x NJ columns,
//   acc[m][j] = sum_k q[k * q_k + m * q_m .. + L) * d[j * d_stride + k],   k = 0..dim-1 in order,
// one FMA per (m, j, k), so every (row, column) dot product is the same float32 sequence wherever
// it falls in a tile. Per k: MR vector loads, NJ broadcasts, MR x NJ FMAs. Then column(j, acc[0][j],
// acc[MR - 1][j]) for j = 0..NJ-1 in order (the epilogue: fold into running maxima, or compare and store).
// GCC 12 keeps the accumulators in registers only when the tile, its epilogue and the tile-width
// dispatch are all inlined into the driver that owns the running state, and when no aggregate of
// accumulators is returned or passed by reference (the columns go to the epilogue by value): otherwise
// it keeps a copy in memory and stores every accumulator on every k (24 stores per 12 FMAs in the
// AVX2 MaxSim tile, 2x slower). prefetch.at(k) runs at each step k (LineStream: a later tile's lines,
// spread over the steps). kMark puts LLVM-MCA markers ("dot_tile", mca_markers.hpp) around the k loop of the
// tile that `make arm-model` analyses.
template <class V, int MR, int NJ, bool kMark = false, class Column, class Prefetch = NoPrefetch>
EC_ALWAYS_INLINE void dot_tile(const float* q, int64_t q_k, int64_t q_m, const float* d, int64_t d_stride, int64_t dim,
                               Column&& column, Prefetch prefetch = {}) {
  static_assert(MR == 1 || MR == 2, "one or two query vectors per tile");
  typename V::F acc[MR][NJ];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) acc[m][j] = V::zero();
  if constexpr (kMark) EC_MCA_BEGIN("dot_tile");
  for (int64_t k = 0; k < dim; ++k) {
    prefetch.at(k);
    typename V::F qv[MR];
    for (int m = 0; m < MR; ++m) qv[m] = V::load(q + k * q_k + m * q_m);
    for (int j = 0; j < NJ; ++j) {
      const typename V::B b = V::bcast(d + j * d_stride + k);
      for (int m = 0; m < MR; ++m) acc[m][j] = V::fma(acc[m][j], qv[m], b);
    }
  }
  if constexpr (kMark) EC_MCA_END("dot_tile");
  for (int j = 0; j < NJ; ++j) column(j, acc[0][j], acc[MR - 1][j]);
}

}  // namespace simd
}  // namespace
}  // namespace edgecolbert
