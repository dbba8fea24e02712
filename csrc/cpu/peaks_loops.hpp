// The two probe loops of peaks.hpp, written once and instantiated by each peaks_<isa>.cpp over a
// small traits struct (the instruction, the accumulator type, how to sum its lanes), so every ISA's
// probe counts the same way. Included only by the peaks_<isa>.cpp files, each built with its own flags:
// everything here has internal linkage.
#pragma once
#include <algorithm>
#include <cstdint>

#include "edgecolbert/peaks.hpp"

// Hides a value from the optimiser: the accumulators start equal and take the same steps, so without
// this GCC 12 keeps one chain and adds it up 16 times (check_probe_code.py caught exactly that).
// volatile: identical non-volatile asm statements may be merged.
#if defined(__x86_64__) || defined(__i386__)
#define EC_PROBE_OPAQUE(x) asm volatile("" : "+v"(x))
#elif defined(__aarch64__)
#define EC_PROBE_OPAQUE(x) asm volatile("" : "+w"(x))
#else
#error "peak probes: no register constraint for this architecture"
#endif

namespace edgecolbert {
namespace {

// V: using Acc, Operand; static constexpr int kAccumulators; static Acc zero(); static Operand
// operand(int one) (every element `one`); static Acc step(Acc, Operand) (one instruction:
// acc + one x one per product, or acc x one + one for the FMA probes); static double lanes_sum(Acc).
// Inlined into each probe's named function, where the disassembly test (csrc/tests/check_probe_code.py)
// counts its instructions.
template <class V>
__attribute__((always_inline)) inline double compute_probe_loop(int64_t iters, int one) {
  constexpr int K = V::kAccumulators;
  const typename V::Operand x = V::operand(one);
  double counted = 0;
  for (int64_t done = 0; done < iters;) {
    const int64_t n = std::min(kProbeChunk, iters - done);
    typename V::Acc acc[K];
#pragma GCC unroll 32
    for (int j = 0; j < K; ++j) {
      acc[j] = V::zero();
      EC_PROBE_OPAQUE(acc[j]);
    }
    for (int64_t i = 0; i < n; ++i) {
#pragma GCC unroll 32
      for (int j = 0; j < K; ++j) acc[j] = V::step(acc[j], x);
    }
#pragma GCC unroll 32
    for (int j = 0; j < K; ++j) counted += V::lanes_sum(acc[j]);
    done += n;
  }
  return 2 * counted;  // a multiply and an add per product counted
}

// R: using Vec; static constexpr int kLanes (int32 lanes); static Vec zero(); static void
// accumulate(Vec& acc, const int32_t* p) (acc += the vector at p); static int64_t lanes_sum(Vec).
constexpr int kReadAccumulators = 8;

template <class R>
int64_t read_probe_loop(const int32_t* buf, int64_t n, int64_t passes) {
  constexpr int64_t kBlock = kReadAccumulators * R::kLanes;
  int64_t total = 0;
  for (int64_t p = 0; p < passes; ++p) {
    // The buffer may have changed as far as the compiler knows: every pass reads it again.
    asm volatile("" ::: "memory");
    typename R::Vec acc[kReadAccumulators];
#pragma GCC unroll 8
    for (int u = 0; u < kReadAccumulators; ++u) acc[u] = R::zero();
    for (int64_t i = 0; i + kBlock <= n; i += kBlock) {
#pragma GCC unroll 8
      for (int u = 0; u < kReadAccumulators; ++u) R::accumulate(acc[u], buf + i + u * R::kLanes);
    }
#pragma GCC unroll 8
    for (int u = 0; u < kReadAccumulators; ++u) total += R::lanes_sum(acc[u]);
  }
  return total;
}

}  // namespace
}  // namespace edgecolbert
