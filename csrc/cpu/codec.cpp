// Residual codec drivers (ISA-independent): compression (assignment through the centroid kernels,
// then bucketize + pack here: O(dim) per token against the O(K dim) assignment), decompression split
// over the pool, per-token norms, and compressed MaxSim. For compressed MaxSim each query is prepared
// once (kept rows widened to float32 and packed in the path's transposed layout); documents (or
// candidates) are then scored in parallel chunks by the path's fused decode + MaxSim kernel. Scores do
// not depend on the thread count.
#include "edgecolbert/codec.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "edgecolbert/threadpool.hpp"

namespace edgecolbert {

std::vector<float> make_byte_table(const float* weights, int nbits) {
  const int g = 8 / nbits;
  std::vector<float> t(static_cast<std::size_t>(256 * g));
  for (unsigned v = 0; v < 256; ++v)
    for (int j = 0; j < g; ++j) t[v * g + j] = weights[byte_bucket(v, j, nbits)];
  return t;
}

void compress(const KernelPath& path, const CodecView& cv, const float* cutoffs, const Matrix& tokens, int32_t* codes,
              uint8_t* residuals, int num_threads) {
  if (tokens.n == 0) return;
  const Matrix cents{cv.centroids, DType::f32, cv.num_centroids, cv.dim};
  centroid_topk(path, tokens, cents, 1, nullptr, codes, num_threads);
  const int64_t w = codec_detail::packed_width(cv.dim, cv.nbits);
  const int ncut = (1 << cv.nbits) - 1;
  const int64_t chunk = 1024;
  parallel_for((tokens.n + chunk - 1) / chunk, num_threads, [&](int64_t t, int) {
    const int64_t hi = std::min(tokens.n, (t + 1) * chunk);
    for (int64_t i = t * chunk; i < hi; ++i) {
      const float* c = cv.centroids + static_cast<int64_t>(codes[i]) * cv.dim;
      uint8_t* out = residuals + i * w;
      std::fill_n(out, w, 0);
      for (int64_t d = 0; d < cv.dim; ++d) {
        const float r = load_as_f32(tokens.data, tokens.dtype, static_cast<std::size_t>(i * cv.dim + d)) - c[d];
        // torch.bucketize(right=False): the number of cutoffs strictly below r (cutoffs sorted).
        const int b = static_cast<int>(std::lower_bound(cutoffs, cutoffs + ncut, r) - cutoffs);
        for (int k = 0; k < cv.nbits; ++k) {
          const int64_t bit = d * cv.nbits + k;  // position in the bit stream, first bit = MSB of byte 0
          out[bit >> 3] |= static_cast<uint8_t>(((b >> k) & 1) << (7 - (bit & 7)));
        }
      }
    }
  });
}

void decompress(const KernelPath& path, const CodecView& cv, const int32_t* codes, const uint8_t* residuals, int64_t n,
                void* out, DType out_dtype, int num_threads) {
  if (n == 0) return;
  const int64_t w = codec_detail::packed_width(cv.dim, cv.nbits);
  const int64_t chunk = 4096;
  const std::size_t osz = dtype_size(out_dtype);
  parallel_for((n + chunk - 1) / chunk, num_threads, [&](int64_t t, int) {
    const int64_t lo = t * chunk, cnt = std::min(chunk, n - lo);
    path.codec.decompress(cv, codes + lo, residuals + lo * w, cnt,
                          static_cast<uint8_t*>(out) + static_cast<std::size_t>(lo * cv.dim) * osz, out_dtype);
  });
}

void token_norms(const KernelPath& path, const CodecView& cv, const int32_t* codes, const uint8_t* residuals, int64_t n,
                 float* out, int num_threads) {
  if (n == 0) return;
  const int64_t w = codec_detail::packed_width(cv.dim, cv.nbits);
  const int64_t chunk = 4096;
  parallel_for((n + chunk - 1) / chunk, num_threads, [&](int64_t t, int) {
    const int64_t lo = t * chunk, cnt = std::min(chunk, n - lo);
    path.codec.token_norms(cv, codes + lo, residuals + lo * w, cnt, out + lo);
  });
}

void maxsim_compressed(const KernelPath& path, const QueryBatch& q, const CodecView& cv, const CompressedDocs& docs,
                       const int64_t* candidates, int64_t ncand, float* out, int num_threads, const float* norms) {
  const int64_t ncols = candidates != nullptr ? ncand : docs.n;
  if (q.nq == 0 || ncols == 0) return;
  const int64_t w = codec_detail::packed_width(cv.dim, cv.nbits);
  const int64_t dim = q.dim;
  std::vector<float> rows(static_cast<std::size_t>(std::max<int64_t>(q.lq, 1) * dim));
  // The packed query is read with vector loads: 64-byte aligned.
  std::vector<float> prep_buf(path.codec.query_floats(std::max<int64_t>(q.lq, 1), dim) + 16);
  float* prep = prep_buf.data() + ((64 - reinterpret_cast<uintptr_t>(prep_buf.data()) % 64) % 64) / sizeof(float);
  const std::size_t scratch_n = path.codec.scratch_floats(std::max<int64_t>(q.lq, 1), dim) + 16;
  std::vector<std::vector<float>> scratch(static_cast<std::size_t>(num_threads), std::vector<float>(scratch_n));
  for (int64_t i = 0; i < q.nq; ++i) {
    float* orow = out + i * ncols;
    const int64_t kept = kept_rows(q, i, rows.data());
    if (kept == 0) {
      std::fill_n(orow, ncols, 0.0f);
      continue;
    }
    auto doc_of = [&](int64_t c) { return candidates != nullptr ? candidates[i * ncand + c] : c; };
    path.codec.prepare_query(rows.data(), kept, dim, prep);
    const int64_t chunk = std::max<int64_t>(1, ncols / (static_cast<int64_t>(num_threads) * 16));
    parallel_for((ncols + chunk - 1) / chunk, num_threads, [&](int64_t t, int worker) {
      float* s = scratch[static_cast<std::size_t>(worker)].data();
      const int64_t hi = std::min(ncols, (t + 1) * chunk);
      for (int64_t c = t * chunk; c < hi; ++c) {
        const int64_t d = doc_of(c);
        const int64_t b = docs.offsets[d], ntok = docs.offsets[d + 1] - b;
        orow[c] = ntok <= 0 ? 0.0f
                            : path.codec.score_doc(prep, kept, cv, docs.codes + b, docs.residuals + b * w,
                                                   norms != nullptr ? norms + b : nullptr, ntok, s);
      }
    });
  }
}

}  // namespace edgecolbert
