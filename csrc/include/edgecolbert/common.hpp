// Shared vocabulary of the native core: element types, half-precision conversions, views.
// Conversions here are the portable scalar definitions every SIMD path must agree with.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>

namespace edgecolbert {

// 64-byte aligned float buffer (packed blocks and tables are read with aligned vector loads).
struct AlignedFloats {
  static constexpr std::size_t kAlign = 64;
  std::unique_ptr<float[]> raw;
  float* p = nullptr;
  explicit AlignedFloats(std::size_t n) : raw(new float[n + kAlign / sizeof(float)]) {
    const auto a = reinterpret_cast<uintptr_t>(raw.get());
    p = raw.get() + ((kAlign - a % kAlign) % kAlign) / sizeof(float);
  }
};

enum class DType : int { f32 = 0, f16 = 1, bf16 = 2 };

inline std::size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }
inline const char* dtype_name(DType t) {
  return t == DType::f32 ? "float32" : (t == DType::f16 ? "float16" : "bfloat16");
}

// A float's bits, and the float of some bits.
inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// bfloat16 is the top half of a float32: widening is exact.
inline float bf16_to_f32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

// Round to nearest even, NaN kept quiet. Used to pack queries for bf16 dot products.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// IEEE binary16 -> binary32, exact for every input (subnormals, inf, NaN).
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      u = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return float_of(u);
}

// binary32 -> binary16, round to nearest even (test data generation and codec output).
inline uint16_t f32_to_f16(float f) {
  const uint32_t u = bits_of(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t absu = u & 0x7fffffffu;
  if (absu >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (absu > 0x7f800000u ? 0x200u : 0));
  if (absu >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (absu < 0x38800000u) {  // subnormal or zero in half
    if (absu < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t e = absu >> 23;
    const uint32_t m = (absu & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = absu - (112u << 23);  // rebias exponent
  const uint32_t rem = r & 0x1fffu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

inline float load_as_f32(const void* base, DType t, std::size_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    default: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
  }
}

// A set of documents inside one token matrix [T, dim]: document i is rows [begin[i], end[i]).
// CSR offsets give begin = offsets, end = offsets + 1; padded batches give their own arrays.
// floor_zero (optional, per document) makes each query row's max at least 0, which is what
// PyLate's colbert_scores computes when masked tokens are multiplied to 0 instead of dropped.
struct DocSet {
  const void* tokens = nullptr;
  DType dtype = DType::f32;
  int64_t dim = 0;
  int64_t n = 0;
  const int64_t* begin = nullptr;
  const int64_t* end = nullptr;
  const uint8_t* floor_zero = nullptr;
};

// Queries [nq, lq, dim] with an optional mask [nq, lq] (nonzero = keep).
struct QueryBatch {
  const void* data = nullptr;
  DType dtype = DType::f32;
  int64_t nq = 0, lq = 0, dim = 0;
  const uint8_t* mask = nullptr;
};

// Query i's kept rows widened to float32 into rows [lq, dim]; returns how many were kept.
inline int64_t kept_rows(const QueryBatch& q, int64_t i, float* rows) {
  int64_t kept = 0;
  for (int64_t r = 0; r < q.lq; ++r) {
    if (q.mask != nullptr && q.mask[i * q.lq + r] == 0) continue;
    const std::size_t src = static_cast<std::size_t>((i * q.lq + r) * q.dim);
    for (int64_t k = 0; k < q.dim; ++k) rows[kept * q.dim + k] = load_as_f32(q.data, q.dtype, src + k);
    ++kept;
  }
  return kept;
}

}  // namespace edgecolbert
