// Residual codec, scalar reference: the specification every SIMD path is tested against.
// Decompression reads each dimension's bucket straight from the bit layout (codec.hpp), adds its
// weight to the centroid, and divides by max(||v||, 1e-12) with the squared norm summed in float in
// dimension order. Compressed MaxSim is defined as decompress-then-MaxSim: each token is decompressed
// into scratch (divided by the given norm when norms are passed) and dotted with every query row
// (float32, k = 0..dim-1), row maxima summed in double.
#include <algorithm>
#include <cmath>
#include <limits>

#include "edgecolbert/codec.hpp"

namespace edgecolbert {
namespace {

// x = c + r; returns ||x|| (float, dimension order).
float decode_raw(const CodecView& cv, int32_t code, const uint8_t* bytes, float* x) {
  const int g = 8 / cv.nbits;
  const float* c = cv.centroids + static_cast<int64_t>(code) * cv.dim;
  float ss = 0.0f;
  for (int64_t d = 0; d < cv.dim; ++d) {
    x[d] = c[d] + cv.weights[byte_bucket(bytes[d / g], static_cast<int>(d % g), cv.nbits)];
    ss += x[d] * x[d];
  }
  return std::sqrt(ss);
}

// The decompressed token: x / max(norm, 1e-12), norm = ||x|| unless given (>= 0).
void decode_token(const CodecView& cv, int32_t code, const uint8_t* bytes, float* x, float norm = -1.0f) {
  const float n = decode_raw(cv, code, bytes, x);
  const float den = std::max(norm >= 0.0f || std::isnan(norm) ? norm : n, 1e-12f);
  for (int64_t d = 0; d < cv.dim; ++d) x[d] /= den;
}

void decompress(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, void* out, DType ot) {
  const int64_t w = residual_width(cv.dim, cv.nbits);
  std::vector<float> x(static_cast<std::size_t>(cv.dim));
  for (int64_t t = 0; t < n; ++t) {
    decode_token(cv, codes[t], packed + t * w, x.data());
    if (ot == DType::f32) {
      std::copy_n(x.data(), cv.dim, static_cast<float*>(out) + t * cv.dim);
    } else {
      uint16_t* o = static_cast<uint16_t*>(out) + t * cv.dim;
      for (int64_t d = 0; d < cv.dim; ++d) o[d] = f32_to_f16(x[d]);
    }
  }
}

void token_norms(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, float* out) {
  const int64_t w = residual_width(cv.dim, cv.nbits);
  std::vector<float> x(static_cast<std::size_t>(cv.dim));
  for (int64_t t = 0; t < n; ++t) out[t] = decode_raw(cv, codes[t], packed + t * w, x.data());
}

std::size_t query_floats(int64_t rows, int64_t dim) { return static_cast<std::size_t>(rows * dim); }

void prepare_query(const float* qr, int64_t rows, int64_t dim, float* out) { std::copy_n(qr, rows * dim, out); }

float score_doc(const float* qr, int64_t rows, const CodecView& cv, const int32_t* codes, const uint8_t* packed,
                const float* norms, int64_t ntok, float* scratch) {
  const int64_t w = residual_width(cv.dim, cv.nbits);
  float* best = scratch + cv.dim;
  std::fill_n(best, rows, -std::numeric_limits<float>::infinity());
  for (int64_t t = 0; t < ntok; ++t) {
    decode_token(cv, codes[t], packed + t * w, scratch, norms != nullptr ? norms[t] : -1.0f);
    for (int64_t r = 0; r < rows; ++r) {
      float dot = 0.0f;
      for (int64_t k = 0; k < cv.dim; ++k) dot += qr[r * cv.dim + k] * scratch[k];
      best[r] = std::max(best[r], dot);
    }
  }
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) total += best[r];
  return static_cast<float>(total);
}

std::size_t scratch_floats(int64_t rows, int64_t dim) { return static_cast<std::size_t>(dim + rows); }

}  // namespace

const CodecOps codec_ops_scalar{decompress,    token_norms,    query_floats, prepare_query,
                                score_doc,     scratch_floats, nullptr};

}  // namespace edgecolbert
