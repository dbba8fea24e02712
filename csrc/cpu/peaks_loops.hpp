// The two probe loops of peaks.hpp and the traits they run on, written once. Each peaks_<isa>.cpp
// names only what is its own: the instruction (a one-line function, in asm where the intrinsic
// compiles badly), the accumulator count and the descriptor's strings, and defines its probes with
// EC_COMPUTE_PROBE / EC_READ_PROBE, so every ISA's probe counts the same way. Included only by the
// peaks_<isa>.cpp files, each built with its own flags: everything here has internal linkage.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "edgecolbert/common.hpp"
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

// Defines a probe in the including peaks_<isa>.cpp, both from one spelling of its name: the run
// function edgecolbert::peak_<NAME> (the loop is inlined there; check_probe_code.py reads that
// function's disassembly) and the descriptor peak_probe_<NAME> that peaks.cpp lists. The traits come
// last (__VA_ARGS__, as a template's arguments hold commas).
#define EC_COMPUTE_PROBE(NAME, VARIANT, DTYPE, INSTRUCTION, MNEMONIC, OPS_PER_INSTRUCTION, ...)            \
  double peak_##NAME(int64_t iters, int one) { return compute_probe_loop<__VA_ARGS__>(iters, one); } \
  extern const ComputeProbe peak_probe_##NAME {                                                       \
    #NAME, VARIANT, DTYPE, INSTRUCTION, MNEMONIC, __VA_ARGS__::kAccumulators, OPS_PER_INSTRUCTION, peak_##NAME \
  }
#define EC_READ_PROBE(NAME, VARIANT, INSTRUCTION, ...)                                                \
  int64_t peak_##NAME(const int32_t* buf, int64_t n, int64_t passes) {                               \
    return read_probe_loop<__VA_ARGS__>(buf, n, passes);                                              \
  }                                                                                                   \
  extern const ReadProbe peak_probe_##NAME {                                                          \
    #NAME, VARIANT, INSTRUCTION, kReadAccumulators * __VA_ARGS__::kLanes, peak_##NAME                 \
  }

namespace edgecolbert {
namespace {

// V: using Acc, Operand; static constexpr int kAccumulators; static Acc zero(); static Operand
// operand(int one) (every element `one`); static void step(Acc&, Operand) (one instruction:
// acc + one x one per product); static double lanes_sum(Acc).
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
      for (int j = 0; j < K; ++j) V::step(acc[j], x);
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

// A bfloat16 lane from a small integer (exact: its float32 has no bits below the top half).
struct Bf16 {
  uint16_t bits;
  explicit Bf16(int v) : bits(f32_to_bf16(static_cast<float>(v))) {}
};

// A register T (vector or scalar) as a GCC vector of its lanes: Lane is the element the instruction
// reads or writes, which T may not say (__m512i is 8 x int64 to the compiler). In registers: no trip
// through memory.
template <class Lane, class T>
struct LanesOf {
  typedef Lane type __attribute__((vector_size(sizeof(T))));
};

template <class T, class Lane>
T splat(Lane value) {
  if constexpr (std::is_same_v<Lane, Bf16>) {
    return splat<T>(value.bits);
  } else if constexpr (sizeof(T) == sizeof(Lane)) {
    return __builtin_bit_cast(T, value);
  } else {
    return __builtin_bit_cast(T, typename LanesOf<Lane, T>::type{} + value);
  }
}

// In lane order, integer lanes in int64. Exact: the lanes hold integers (float32 lanes below 2^24),
// and a double or int64 holds the sum of any number of them that a probe makes.
template <class Lane, class Sum, class T>
Sum sum_lanes(T v) {
  if constexpr (sizeof(T) == sizeof(Lane)) {
    return __builtin_bit_cast(Lane, v);
  } else {
    const auto lanes = __builtin_bit_cast(typename LanesOf<Lane, T>::type, v);
    std::conditional_t<std::is_integral_v<Lane>, int64_t, Sum> s = 0;
    for (std::size_t i = 0; i < sizeof(T) / sizeof(Lane); ++i) s += lanes[i];
    return static_cast<Sum>(s);
  }
}

// Compute-probe traits from the instruction: Step(acc, x) is one instruction on an accumulator
// register of AccLane lanes with both multiplicands x, a register of OperandLane lanes all `one`;
// K accumulators. The accumulators start at zero.
template <auto Step, int K, class AccLane, class OperandLane>
struct InstructionProbe;
template <class A, class O, void (*Step)(A&, O), int K, class AccLane, class OperandLane>
struct InstructionProbe<Step, K, AccLane, OperandLane> {
  using Acc = A;
  using Operand = O;
  static constexpr int kAccumulators = K;
  static Acc zero() { return Acc{}; }
  static Operand operand(int one) { return splat<Operand>(static_cast<OperandLane>(one)); }
  static void step(Acc& acc, Operand x) { Step(acc, x); }
  static double lanes_sum(Acc acc) { return sum_lanes<AccLane, double>(acc); }
};

// The multiply-add probes: acc + one x one by V's fmadd (vec_<isa>.hpp), float32 lanes throughout. The
// accumulator is the addend: AArch64's FMLA accumulates into its destination, so acc x one + one would
// cost two register copies per instruction there (x86's FMA forms take either order).
template <class V>
void fmadd_step(typename V::F& acc, typename V::F x) {
  acc = V::fmadd(x, x, acc);
}
template <class V, int K>
using FmaProbe = InstructionProbe<fmadd_step<V>, K, float, float>;

// Read-probe traits from the add: Accumulate(acc, p) adds the Vec of int32 lanes at p into acc.
template <auto Accumulate>
struct LoadSums;
template <class V, void (*Accumulate)(V&, const int32_t*)>
struct LoadSums<Accumulate> {
  using Vec = V;
  static constexpr int kLanes = sizeof(Vec) / sizeof(int32_t);
  static Vec zero() { return Vec{}; }
  static void accumulate(Vec& acc, const int32_t* p) { Accumulate(acc, p); }
  static int64_t lanes_sum(Vec v) { return sum_lanes<int32_t, int64_t>(v); }
};

#if defined(__x86_64__) || defined(__i386__)
// The load folded into the add, in asm: through intrinsics GCC 12 moves all 8 accumulators to new
// registers every iteration (8 extra instructions per 8 loads).
template <class Vec>
void vpaddd_from_memory(Vec& acc, const int32_t* p) {
  asm("vpaddd %1, %0, %0" : "+v"(acc) : "m"(*reinterpret_cast<const Vec*>(p)));
}
#endif

}  // namespace
}  // namespace edgecolbert
