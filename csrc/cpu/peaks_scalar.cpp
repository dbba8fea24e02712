// Peak probes for the scalar variant (peaks.hpp), built like the scalar kernels: baseline flags and no
// contraction, so a multiply-add is a multiply and an add (mulss + addss, fmul + fadd), 12 chains of
// both (each chain is 2 x 3-4 cycles long on current cores, with 2 pipes for each). The read probe is
// plain C++ (the compiler's choice of loads: SSE2 on x86-64, NEON on AArch64).
#include "peaks_loops.hpp"

namespace edgecolbert {

// The empty asm keeps each product a scalar in its own register: without it the compiler packs the
// 12 chains into vectors (SLP), which the scalar kernels' loops do not get.
static void mul_add(float& acc, float x) {
  float p = acc * x;
#if defined(__x86_64__) || defined(__i386__)
  asm("" : "+x"(p));
#elif defined(__aarch64__)
  asm("" : "+w"(p));
#endif
  acc = p + x;
}

// Wrapping, as the vector adds do (a signed overflow would be undefined).
static void add_wrapping(int32_t& acc, const int32_t* p) {
  acc = static_cast<int32_t>(static_cast<uint32_t>(acc) + static_cast<uint32_t>(*p));
}

#if defined(__aarch64__)
#define EC_SCALAR_MULADD "fmul s + fadd s"
#define EC_SCALAR_MNEMONIC "fmul"
#else
#define EC_SCALAR_MULADD "mulss + addss"
#define EC_SCALAR_MNEMONIC "mulss"
#endif
EC_COMPUTE_PROBE(fma_f32_scalar, "scalar", "float32", EC_SCALAR_MULADD, EC_SCALAR_MNEMONIC, 2,
                 InstructionProbe<mul_add, 12, float, float>);
EC_READ_PROBE(read_scalar, "scalar", "int32 loads, compiler's choice", LoadSums<add_wrapping>);

}  // namespace edgecolbert
