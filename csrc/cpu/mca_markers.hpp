// LLVM-MCA region markers around the inner loops that `make arm-model` analyses (bench/arm_model.py).
// They exist only in the model's own assembly build (-DEDGECOLBERT_MCA_MARKERS): production code and
// the tests compile them to nothing. The marker is an assembler comment, so it changes no instruction;
// as a volatile asm it can still keep the compiler from moving code across it, which is why it is
// never in what is installed.
#pragma once

#ifdef EDGECOLBERT_MCA_MARKERS
#if defined(__aarch64__)
#define EC_MCA_BEGIN(name) __asm__ volatile("// LLVM-MCA-BEGIN " name)
#define EC_MCA_END(name) __asm__ volatile("// LLVM-MCA-END " name)
#else
#define EC_MCA_BEGIN(name) __asm__ volatile("# LLVM-MCA-BEGIN " name)
#define EC_MCA_END(name) __asm__ volatile("# LLVM-MCA-END " name)
#endif
#else
#define EC_MCA_BEGIN(name) ((void)0)
#define EC_MCA_END(name) ((void)0)
#endif
