// Residual codec drivers (ISA-independent): compression (assignment through the centroid kernels,
// then bucketize + pack here: O(dim) per token against the O(K dim) assignment), decompression split
// over the pool, per-token norms, and compressed MaxSim. For compressed MaxSim each query is prepared
// once (kept rows widened to float32 and packed in the path's transposed layout); documents (or
// candidates) are then scored in parallel chunks by the path's fused decode + MaxSim kernel. Scores do
// not depend on the thread count.
#include "edgecolbert/codec.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <tuple>
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
  const int64_t w = residual_width(cv.dim, cv.nbits);
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
  const int64_t w = residual_width(cv.dim, cv.nbits);
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
  const int64_t w = residual_width(cv.dim, cv.nbits);
  const int64_t chunk = 4096;
  parallel_for((n + chunk - 1) / chunk, num_threads, [&](int64_t t, int) {
    const int64_t lo = t * chunk, cnt = std::min(chunk, n - lo);
    path.codec.token_norms(cv, codes + lo, residuals + lo * w, cnt, out + lo);
  });
}

namespace {

// Times both compressed-MaxSim kernels of `path` on a synthetic problem of this shape (32 query rows,
// 8 documents of 256 tokens, 64 centroids; the minimum of 5 alternated runs each) and says whether the
// table kernel took less than 0.85 of the decoding one. Which wins depends on how many 512-bit FMAs the
// core retires per cycle (one on Zen 4, where the tables run 1.2-1.3x faster with norms recomputed; two
// on Zen 5, where the FMAs won), which CPUID does not report. The margin keeps a near tie on the
// decoding kernel.
bool measure_lut_faster(const KernelPath& path, int nbits, int64_t dim) {
  constexpr int64_t K = 64, ndoc = 8, doclen = 256, T = ndoc * doclen, rows = 32;
  const int64_t w = residual_width(dim, nbits);
  std::mt19937 rng(12345);
  std::normal_distribution<float> normal;
  std::vector<float> cents(static_cast<std::size_t>(K * dim)), q(static_cast<std::size_t>(rows * dim));
  for (float& v : cents) v = normal(rng) / std::sqrt(static_cast<float>(dim));
  for (float& v : q) v = normal(rng) / std::sqrt(static_cast<float>(dim));
  std::vector<float> weights(static_cast<std::size_t>(1) << nbits);
  const auto nw = static_cast<float>(weights.size() - 1);
  for (std::size_t b = 0; b < weights.size(); ++b) weights[b] = -0.1f + 0.2f * static_cast<float>(b) / nw;
  const std::vector<float> table = make_byte_table(weights.data(), nbits);
  const CodecView cv{cents.data(), K, dim, nbits, weights.data(), table.data()};
  std::vector<int32_t> codes(T);
  std::vector<uint8_t> res(static_cast<std::size_t>(T * w));
  for (int32_t& c : codes) c = static_cast<int32_t>(rng() % K);
  for (uint8_t& b : res) b = static_cast<uint8_t>(rng());
  const CodecLutOps& lut_ops = *path.codec.lut;
  AlignedFloats prep(path.codec.query_floats(rows, dim)), lut(lut_ops.lut_floats(rows, dim, nbits));
  AlignedFloats qc(static_cast<std::size_t>(K * rows));
  AlignedFloats scratch(std::max(path.codec.scratch_floats(rows, dim), lut_ops.scratch_floats(rows, dim)));
  path.codec.prepare_query(q.data(), rows, dim, prep.p);
  lut_ops.prepare_lut(prep.p, rows, cv, lut.p);
  centroid_scores_t(path, Matrix{q.data(), DType::f32, rows, dim}, Matrix{cents.data(), DType::f32, K, dim}, rows,
                    qc.p, 1);
  volatile float sink = 0.0f;
  auto seconds = [&](bool use_lut) {
    const auto t0 = std::chrono::steady_clock::now();
    float acc = 0.0f;
    for (int64_t d = 0; d < ndoc; ++d) {
      const int32_t* c = codes.data() + d * doclen;
      const uint8_t* r = res.data() + d * doclen * w;
      float v = 0.0f;
      if (use_lut) lut_ops.score_doc(lut.p, qc.p, rows, nullptr, rows, cv, c, r, nullptr, doclen, scratch.p, &v);
      else v = path.codec.score_doc(prep.p, rows, cv, c, r, nullptr, doclen, scratch.p);
      acc += v;
    }
    sink = sink + acc;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double best_decode = 1e30, best_lut = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    best_decode = std::min(best_decode, seconds(false));
    best_lut = std::min(best_lut, seconds(true));
  }
  return best_lut < 0.85 * best_decode;
}

// Whether maxsim_compressed scores through the path's tables for this codec shape: where the path has
// them, as `kernel` says, or for automatic as EDGECOLBERT_COMPRESSED_KERNEL says ("decode" or "lut"),
// else as measured once per process and shape. The choice never depends on the documents or candidates
// of a call, so a document's score does not either.
bool use_lut_kernel(const KernelPath& path, const CodecView& cv, CompressedKernel kernel) {
  if (path.codec.lut == nullptr || path.codec.lut->lut_floats(1, cv.dim, cv.nbits) == 0) return false;
  if (kernel != CompressedKernel::automatic) return kernel == CompressedKernel::tables;
  if (const char* env = std::getenv("EDGECOLBERT_COMPRESSED_KERNEL")) {
    if (std::strcmp(env, "decode") == 0) return false;
    if (std::strcmp(env, "lut") == 0) return true;
  }
  static std::mutex mu;
  static std::map<std::tuple<const KernelPath*, int, int64_t>, bool> measured;
  const std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(&path, cv.nbits, cv.dim);
  auto it = measured.find(key);
  if (it == measured.end()) it = measured.emplace(key, measure_lut_faster(path, cv.nbits, cv.dim)).first;
  return it->second;
}

// <q_r, centroid c> for the kept rows of one query, centroid-major with a stride of a multiple of 32,
// for the centroids that the query's documents use: all of them (slot == nullptr, row = code) when they
// hold at least K tokens, else only those met (row = slot[code]). Each score is the same float32 sequence
// either way (centroid_scores_t), so a document's score does not depend on the others.
struct QueryCentroidRows {
  // 64-byte aligned: a block's 16 scores are then one cache line (a std::vector's storage is 16-byte
  // aligned, and every row load spanned two lines)
  AlignedFloats scores{0};
  std::size_t capacity = 0;
  std::vector<float> gathered;
  std::vector<int32_t> slot;
  std::vector<uint8_t> seen;
  std::vector<int32_t> used;
  int64_t stride = 0;

  template <class DocOf>
  const int32_t* build(const KernelPath& path, const CodecView& cv, const CompressedDocs& docs, const float* rows,
                       int64_t kept, int64_t ncols, DocOf doc_of, int num_threads) {
    const int64_t K = cv.num_centroids, dim = cv.dim;
    stride = (kept + kCentroidBlockRows - 1) / kCentroidBlockRows * kCentroidBlockRows;
    const Matrix qrows{rows, DType::f32, kept, dim};
    int64_t tokens = 0;
    for (int64_t c = 0; c < ncols; ++c) tokens += docs.offsets[doc_of(c) + 1] - docs.offsets[doc_of(c)];
    if (tokens >= K) {
      reserve(static_cast<std::size_t>(K * stride));
      centroid_scores_t(path, qrows, Matrix{cv.centroids, DType::f32, K, dim}, stride, scores.p, num_threads);
      return nullptr;
    }
    if (seen.empty()) {
      seen.assign(static_cast<std::size_t>(K), 0);
      slot.assign(static_cast<std::size_t>(K), 0);
    }
    used.clear();
    for (int64_t c = 0; c < ncols; ++c) {
      const int64_t d = doc_of(c);
      for (int64_t t = docs.offsets[d]; t < docs.offsets[d + 1]; ++t) {
        const int32_t code = docs.codes[t];
        if (seen[static_cast<std::size_t>(code)] != 0) continue;
        seen[static_cast<std::size_t>(code)] = 1;
        slot[static_cast<std::size_t>(code)] = static_cast<int32_t>(used.size());
        used.push_back(code);
      }
    }
    const auto nu = static_cast<int64_t>(used.size());
    gathered.resize(static_cast<std::size_t>(std::max<int64_t>(nu, 1) * dim));
    for (int64_t u = 0; u < nu; ++u) {
      const int64_t code = used[static_cast<std::size_t>(u)];
      std::copy_n(cv.centroids + code * dim, dim, gathered.data() + u * dim);
    }
    for (int32_t code : used) seen[static_cast<std::size_t>(code)] = 0;
    reserve(static_cast<std::size_t>(std::max<int64_t>(nu, 1) * stride));
    centroid_scores_t(path, qrows, Matrix{gathered.data(), DType::f32, nu, dim}, stride, scores.p, num_threads);
    return slot.data();
  }

  void reserve(std::size_t n) {
    if (n > capacity) {
      scores = AlignedFloats(n);
      capacity = n;
    }
  }
};

}  // namespace

void maxsim_compressed(const KernelPath& path, const QueryBatch& q, const CodecView& cv, const CompressedDocs& docs,
                       const int64_t* candidates, int64_t ncand, float* out, int num_threads, const float* norms,
                       CompressedKernel kernel) {
  const int64_t ncols = candidates != nullptr ? ncand : docs.n;
  if (q.nq == 0 || ncols == 0) return;
  const int64_t w = residual_width(cv.dim, cv.nbits);
  const int64_t dim = q.dim, lq = std::max<int64_t>(q.lq, 1);
  const CodecLutOps* lut_ops = use_lut_kernel(path, cv, kernel) ? path.codec.lut : nullptr;
  std::vector<float> rows(static_cast<std::size_t>(lq * dim));
  AlignedFloats prep(path.codec.query_floats(lq, dim));
  AlignedFloats lut(lut_ops != nullptr ? lut_ops->lut_floats(lq, dim, cv.nbits) : 0);
  QueryCentroidRows qc;
  std::size_t scratch_n = path.codec.scratch_floats(lq, dim) + 16;
  if (lut_ops != nullptr) scratch_n = std::max(scratch_n, lut_ops->scratch_floats(lq, dim) + 16);
  std::vector<std::vector<float>> scratch(static_cast<std::size_t>(num_threads), std::vector<float>(scratch_n));
  for (int64_t i = 0; i < q.nq; ++i) {
    float* orow = out + i * ncols;
    const int64_t kept = kept_rows(q, i, rows.data());
    if (kept == 0) {
      std::fill_n(orow, ncols, 0.0f);
      continue;
    }
    auto doc_of = [&](int64_t c) { return candidates != nullptr ? candidates[i * ncand + c] : c; };
    path.codec.prepare_query(rows.data(), kept, dim, prep.p);
    const int32_t* slot = nullptr;
    if (lut_ops != nullptr) {
      lut_ops->prepare_lut(prep.p, kept, cv, lut.p);
      slot = qc.build(path, cv, docs, rows.data(), kept, ncols, doc_of, num_threads);
    }
    const int64_t chunk = std::max<int64_t>(1, ncols / (static_cast<int64_t>(num_threads) * 16));
    parallel_for((ncols + chunk - 1) / chunk, num_threads, [&](int64_t t, int worker) {
      float* s = scratch[static_cast<std::size_t>(worker)].data();
      const int64_t hi = std::min(ncols, (t + 1) * chunk);
      for (int64_t c = t * chunk; c < hi; ++c) {
        const int64_t d = doc_of(c);
        const int64_t b = docs.offsets[d], ntok = docs.offsets[d + 1] - b;
        const int32_t* dc = docs.codes + b;
        const uint8_t* dr = docs.residuals + b * w;
        const float* dn = norms != nullptr ? norms + b : nullptr;
        float v = 0.0f;
        if (ntok > 0) {
          // (a norm that overflows to inf: the decoding kernel scores the document by the definition)
          const bool by_tables =
              lut_ops != nullptr &&
              lut_ops->score_doc(lut.p, qc.scores.p, qc.stride, slot, kept, cv, dc, dr, dn, ntok, s, &v);
          if (!by_tables) v = path.codec.score_doc(prep.p, kept, cv, dc, dr, dn, ntok, s);
        }
        orow[c] = v;
      }
    });
  }
}

}  // namespace edgecolbert
