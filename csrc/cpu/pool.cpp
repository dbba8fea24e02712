// Hierarchical pooling over a CSR set of documents: each document is pooled by one task into its own
// slot of the output (sized by pooled_rows_bound), then the slots are packed to the front in document
// order. A document's result depends only on its rows, so it does not depend on the thread count.
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "edgecolbert/pool.hpp"
#include "edgecolbert/threadpool.hpp"

namespace edgecolbert {

int64_t pooled_rows_capacity(const int64_t* offsets, int64_t n, int64_t pool_factor, int64_t protected_tokens) {
  int64_t capacity = 0;
  for (int64_t i = 0; i < n; ++i) capacity += pooled_rows_bound(offsets[i + 1] - offsets[i], pool_factor, protected_tokens);
  return capacity;
}

void pool_tokens(const float* tokens, int64_t dim, const int64_t* offsets, int64_t n, int64_t pool_factor,
                 int64_t protected_tokens, float* out, int64_t* out_offsets, int64_t* row_of, int num_threads) {
  std::vector<int64_t> slot(static_cast<std::size_t>(n + 1), 0);
  for (int64_t i = 0; i < n; ++i)
    slot[i + 1] = slot[i] + pooled_rows_bound(offsets[i + 1] - offsets[i], pool_factor, protected_tokens);
  std::vector<int64_t> written(static_cast<std::size_t>(n), 0);
  std::vector<PoolScratch> scratch(static_cast<std::size_t>(num_threads));
  parallel_for(n, num_threads, [&](int64_t i, int worker) {
    written[i] = pool_document_scalar(tokens + offsets[i] * dim, offsets[i + 1] - offsets[i], dim, pool_factor,
                                      protected_tokens, out + slot[i] * dim,
                                      row_of != nullptr ? row_of + offsets[i] : nullptr, scratch[worker]);
  });
  for (int64_t i = 0; i < n; ++i)
    if (written[i] < 0)
      throw std::invalid_argument("pool_tokens: document " + std::to_string(i) +
                                  " has a token similarity that is not finite (NaN or inf values, or overflow); "
                                  "scipy's linkage refuses such distances too");
  out_offsets[0] = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (out_offsets[i] != slot[i] && written[i] > 0)  // fewer clusters than the bound came before: move down
      std::memmove(out + out_offsets[i] * dim, out + slot[i] * dim,
                   static_cast<std::size_t>(written[i] * dim) * sizeof(float));
    out_offsets[i + 1] = out_offsets[i] + written[i];
  }
}

}  // namespace edgecolbert
