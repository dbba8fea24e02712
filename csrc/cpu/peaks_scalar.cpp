// Peak probes for the scalar variant (peaks.hpp), built like the scalar kernels: baseline flags and no
// contraction, so a multiply-add is a multiply and an add (mulss + addss, fmul + fadd), 12 chains of
// both (each chain is 2 x 3-4 cycles long on current cores, with 2 pipes for each). The empty asm keeps
// each product a scalar in its own register: without it the compiler packs the 12 chains into vectors
// (SLP), which the scalar kernels' loops do not get. The read probe is plain C++ (the compiler's
// choice of loads: SSE2 on x86-64, NEON on AArch64).
#include "peaks_loops.hpp"

namespace edgecolbert {
namespace {

struct MulAddF32Scalar {
  using Acc = float;
  using Operand = float;
  static constexpr int kAccumulators = 12;
  static Acc zero() { return 0.0f; }
  static Operand operand(int one) { return static_cast<float>(one); }
  static Acc step(Acc acc, Operand x) {
    float p = acc * x;
#if defined(__x86_64__) || defined(__i386__)
    asm("" : "+x"(p));
#elif defined(__aarch64__)
    asm("" : "+w"(p));
#endif
    return p + x;
  }
  static double lanes_sum(Acc acc) { return acc; }
};

struct ReadScalar {
  using Vec = int32_t;
  static constexpr int kLanes = 1;
  static Vec zero() { return 0; }
  static void accumulate(Vec& acc, const int32_t* p) {
    acc = static_cast<Vec>(static_cast<uint32_t>(acc) + static_cast<uint32_t>(*p));
  }
  static int64_t lanes_sum(Vec v) { return v; }
};

}  // namespace

double peak_fma_f32_scalar(int64_t iters, int one) { return compute_probe_loop<MulAddF32Scalar>(iters, one); }
int64_t peak_read_scalar(const int32_t* buf, int64_t n, int64_t passes) {
  return read_probe_loop<ReadScalar>(buf, n, passes);
}

#if defined(__aarch64__)
#define EC_SCALAR_MULADD "fmul s + fadd s"
#define EC_SCALAR_MNEMONIC "fmul"
#else
#define EC_SCALAR_MULADD "mulss + addss"
#define EC_SCALAR_MNEMONIC "mulss"
#endif
extern const ComputeProbe peak_probe_fma_f32_scalar{"fma_f32_scalar", "scalar", "float32", EC_SCALAR_MULADD,
                                                    EC_SCALAR_MNEMONIC, MulAddF32Scalar::kAccumulators, 2,
                                                    peak_fma_f32_scalar};
extern const ReadProbe peak_probe_read_scalar{"read_scalar", "scalar", "int32 loads, compiler's choice",
                                              kReadAccumulators * ReadScalar::kLanes, peak_read_scalar};

}  // namespace edgecolbert
