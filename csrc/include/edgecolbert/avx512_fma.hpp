// An FMA pair with the broadcast folded into each FMA's memory operand, for AVX-512 files only.
#pragma once
#include <immintrin.h>

namespace edgecolbert {
namespace {

// acc0 += q0 * x and acc1 += q1 * x for x = *p broadcast to 16 lanes, as two vfmadd231ps with a {1to16}
// memory operand. Compilers load the shared broadcast once into a register (vbroadcastss), and on Zen 4
// that broadcast takes a vector-pipe slot next to the FMAs: folded, the load unit does it, and
// centroid_search's 2 x 12 tile ran 12-25% faster (interleaved runs). The arithmetic is the same FMAs.
// Not used in the compressed-MaxSim tile, whose tokens are decoded just before: there it ran 2x slower.
inline __attribute__((always_inline)) void fma2_bcast(__m512& acc0, __m512& acc1, const float* p, __m512 q0,
                                                      __m512 q1) {
  asm("vfmadd231ps %2%{1to16%}, %3, %0\n\tvfmadd231ps %2%{1to16%}, %4, %1"
      : "+v"(acc0), "+v"(acc1)
      : "m"(*p), "v"(q0), "v"(q1));
}

}  // namespace
}  // namespace edgecolbert
