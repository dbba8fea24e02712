#pragma once
#include <cstdio>
#include <cstdint>
#include <random>
#include <vector>

#include "edgecolbert/common.hpp"

namespace ectest {
struct Case {
  const char* name;
  void (*fn)();
};
std::vector<Case>& registry();
extern int failures;
struct Registrar {
  Registrar(const char* n, void (*f)()) { registry().push_back({n, f}); }
};

// Random values with zeros, exact ties and a few large magnitudes mixed in.
inline std::vector<float> awkward_values(std::mt19937_64& rng, std::size_t n) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 99);
  std::vector<float> v(n);
  for (auto& x : v) {
    const int p = pick(rng);
    x = p < 5 ? 0.0f : (p < 8 ? 0.5f : (p < 10 ? 16.0f * g(rng) : g(rng)));
  }
  return v;
}

// Stores values in dtype (rounding as the caller's data would be) and returns the raw bytes.
inline std::vector<uint16_t> to_half(const std::vector<float>& v, edgecolbert::DType t) {
  std::vector<uint16_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    out[i] = t == edgecolbert::DType::f16 ? edgecolbert::f32_to_f16(v[i]) : edgecolbert::f32_to_bf16(v[i]);
  return out;
}
}  // namespace ectest

#define EC_TEST(name)                                           \
  static void name();                                           \
  static ectest::Registrar name##_registrar(#name, &name);      \
  static void name()

#define EC_CHECK(cond, ...)                                      \
  do {                                                           \
    if (!(cond)) {                                               \
      ++ectest::failures;                                        \
      std::printf("  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      std::printf(__VA_ARGS__);                                  \
      std::printf("\n");                                         \
    }                                                            \
  } while (0)
