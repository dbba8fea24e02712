// Scalar vocabulary shared by the CUDA kernels (nvcc) and the host harness (any C++17 compiler):
// half-precision conversions, the running max, the total order of top-k. Every function is
// __host__ __device__ under nvcc and a plain inline function elsewhere, so the host harness in
// csrc/tests runs exactly the code the kernels run. Conversions are the portable bit-level definitions
// of common.hpp (exact widening, round-to-nearest-even narrowing), written without std:: calls.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define EC_HD __host__ __device__ __forceinline__
#else
#define EC_HD inline
#endif
#if defined(__CUDA_ARCH__)
#define EC_UNROLL _Pragma("unroll")  // device pass only: the host compiler would warn about the pragma
#else
#define EC_UNROLL
#endif

namespace edgecolbert::device {

// Element types, numbered as edgecolbert::DType (f32 0, f16 1, bf16 2).
enum : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

// A float's bits and back: the intrinsics on the device, memcpy on the host.
#if defined(__CUDA_ARCH__)
EC_HD uint32_t f32_bits(float f) { return __float_as_uint(f); }
EC_HD float bits_f32(uint32_t u) { return __uint_as_float(u); }
#else
template <typename To, typename From>
inline To bit_copy(From x) {
  static_assert(sizeof(To) == sizeof(From), "a bit copy keeps the size");
  To y;
  std::memcpy(&y, &x, sizeof y);
  return y;
}
EC_HD uint32_t f32_bits(float f) { return bit_copy<uint32_t>(f); }
EC_HD float bits_f32(uint32_t u) { return bit_copy<float>(u); }
#endif

EC_HD int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
EC_HD int64_t max64(int64_t a, int64_t b) { return a < b ? b : a; }

EC_HD bool is_nan(float f) { return (f32_bits(f) & 0x7fffffffu) > 0x7f800000u; }
EC_HD float neg_inf() { return bits_f32(0xff800000u); }

// bfloat16 is the top half of a float32: widening is exact.
EC_HD float bf16_to_f32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

// Round to nearest even, NaN kept quiet (as common.hpp's f32_to_bf16).
EC_HD uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// IEEE binary16 -> binary32, exact for every input (subnormals, inf, NaN).
EC_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return bits_f32(sign);
    int e = -1;  // subnormal: normalise
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    return bits_f32(sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13));
  }
  if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (mant << 13));
  return bits_f32(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

// binary32 -> binary16, round to nearest even (as common.hpp's f32_to_f16).
EC_HD uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t absu = u & 0x7fffffffu;
  if (absu >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (absu > 0x7f800000u ? 0x200u : 0));
  if (absu >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (absu < 0x38800000u) {
    if (absu < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = absu >> 23;
    const uint32_t m = (absu & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = absu - (112u << 23);
  const uint32_t rem = r & 0x1fffu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

// Element i of an array of type t, widened to float32 exactly.
EC_HD float load_f32(const void* base, int t, int64_t i) {
  if (t == kF32) return static_cast<const float*>(base)[i];
  const uint16_t h = static_cast<const uint16_t*>(base)[i];
  return t == kF16 ? f16_to_f32(h) : bf16_to_f32(h);
}

// Narrowing store of a float32 value into an array of type t.
EC_HD void store_from_f32(void* base, int t, int64_t i, float v) {
  if (t == kF32) {
    static_cast<float*>(base)[i] = v;
  } else {
    static_cast<uint16_t*>(base)[i] = t == kF16 ? f32_to_f16(v) : f32_to_bf16(v);
  }
}

// The running max of the scalar reference, std::max(best, x): a NaN x leaves best unchanged, so a
// NaN dot product never wins (every path, CPU and GPU, keeps this rule).
EC_HD float running_max(float best, float x) { return best < x ? x : best; }

// The total order of every top-k: higher score first, NaN after every number, ties to the lower index.
EC_HD bool better(float sa, int64_t ia, float sb, int64_t ib) {
  const bool an = is_nan(sa), bn = is_nan(sb);
  if (an != bn) return bn;
  if (!an && sa != sb) return sa > sb;
  return ia < ib;
}

}  // namespace edgecolbert::device
