// PLAID centroid interaction, scalar reference (the specification; see plaid.hpp for the formula).
// Reads S [m, K] in place (one strided gather per query token and document token), applies the
// centroid-pruning threshold per centroid, keeps per-token maxima in float32 and sums them in row
// order. Max is exact, so any path that sums in the same order gives identical bits.
#include <limits>
#include <vector>

#include "edgecolbert/plaid.hpp"
#include "plaid_kernels.hpp"

namespace edgecolbert {
namespace {

inline int64_t code_at(const PlaidCodes& c, int64_t t) {
  return c.u16 ? static_cast<const uint16_t*>(c.data)[t] : static_cast<const int32_t*>(c.data)[t];
}

}  // namespace

bool plaid_centroid_interaction_scalar(const float* S, int64_t m, int64_t K, float threshold, const PlaidCodes& codes,
                                       const int64_t* offsets, const int64_t* docs, int64_t nd, float* out) {
  std::vector<float> best(static_cast<std::size_t>(m));
  for (int64_t j = 0; j < nd; ++j) {
    const int64_t lo = offsets[docs[j]], hi = offsets[docs[j] + 1];
    float sum = 0.0f;
    if (hi > lo) {
      for (int64_t i = 0; i < m; ++i) best[i] = -std::numeric_limits<float>::infinity();
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t c = code_at(codes, t);
        if (c < 0 || c >= K) return false;
        float cmax = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < m; ++i) cmax = S[i * K + c] > cmax ? S[i * K + c] : cmax;
        const bool keep = cmax >= threshold;
        for (int64_t i = 0; i < m; ++i) {
          const float v = keep ? S[i * K + c] : 0.0f;
          best[i] = v > best[i] ? v : best[i];
        }
      }
      for (int64_t i = 0; i < m; ++i) sum += best[i];
    }
    out[j] = sum;
  }
  return true;
}

// The stage loops at baseline flags (plaid_kernels.hpp): the table of the scalar path.
const PlaidOps plaid_ops_scalar{plaid_detail::interact, plaid_detail::probe_rows};

}  // namespace edgecolbert
