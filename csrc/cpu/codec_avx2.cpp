// Residual codec, AVX2 + FMA. Same scheme as codec_avx512.cpp with 8-lane ymm registers: decompression
// expands residual bytes through the byte table, adds the centroid 8 dims at a time (scalar tail),
// divides by max(||v||, 1e-12) and stores float32 or float16 (F16C, round to nearest even).
// Compressed MaxSim keeps a block of 32 query rows in four ymm accumulators per token:
// qc[code] + sum_p lut[p][byte_p], times 1 / ||v||, folded into the running maxima.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "edgecolbert/codec.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 8;
constexpr int64_t kTokChunk = 64;

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float add_centroid(const float* c, int64_t dim, float* x) {
  __m256 ss = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    const __m256 v = _mm256_add_ps(_mm256_loadu_ps(c + d), _mm256_loadu_ps(x + d));
    _mm256_storeu_ps(x + d, v);
    ss = _mm256_fmadd_ps(v, v, ss);
  }
  float tail = 0.0f;
  for (; d < dim; ++d) {
    x[d] += c[d];
    tail += x[d] * x[d];
  }
  return std::max(std::sqrt(hsum(ss) + tail), 1e-12f);
}

inline float token_norm(const CodecView& cv, int32_t code, const uint8_t* bytes, int64_t nbytes, float* x) {
  codec_detail::expand_any(cv.nbits, cv.byte_table, bytes, nbytes, x);
  return add_centroid(cv.centroids + static_cast<int64_t>(code) * cv.dim, cv.dim, x);
}

void decompress(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, void* out, DType ot) {
  const int64_t w = codec_detail::packed_width(cv.dim, cv.nbits), dim = cv.dim;
  std::vector<float> buf(static_cast<std::size_t>(dim + kLanes));
  float* x = buf.data();
  for (int64_t t = 0; t < n; ++t) {
    const float dens = token_norm(cv, codes[t], packed + t * w, w, x);
    const __m256 den = _mm256_set1_ps(dens);
    int64_t d = 0;
    if (ot == DType::f32) {
      float* o = static_cast<float*>(out) + t * dim;
      for (; d + kLanes <= dim; d += kLanes) _mm256_storeu_ps(o + d, _mm256_div_ps(_mm256_loadu_ps(x + d), den));
      for (; d < dim; ++d) o[d] = x[d] / dens;
    } else {
      uint16_t* o = static_cast<uint16_t*>(out) + t * dim;
      for (; d + kLanes <= dim; d += kLanes)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o + d),
                         _mm256_cvtps_ph(_mm256_div_ps(_mm256_loadu_ps(x + d), den), _MM_FROUND_TO_NEAREST_INT));
      for (; d < dim; ++d) o[d] = f32_to_f16(x[d] / dens);
    }
  }
}

void build_lut(const float* qr, int64_t rows, int64_t stride, const CodecView& cv, float* lut) {
  std::vector<float> tmp(static_cast<std::size_t>((cv.dim + 32) * stride));
  codec_detail::transpose_rows(qr, rows, cv.dim, stride, tmp.data());
  codec_detail::build_lut_generic(tmp.data(), stride, cv, lut, tmp.data() + cv.dim * stride);
}

float score_doc(const float* qr, const float* lut, const float* qc, int64_t rows, int64_t stride, const CodecView& cv,
                const int32_t* codes, const uint8_t* packed, int64_t ntok, float* scratch) {
  const int64_t w = codec_detail::packed_width(cv.dim, cv.nbits);
  const int64_t nblocks = stride / kCentroidBlockRows;
  float* inv = scratch;
  float* rmax = scratch + kTokChunk;
  float* x = rmax + stride;
  std::fill_n(rmax, stride, -std::numeric_limits<float>::infinity());
  for (int64_t t0 = 0; t0 < ntok; t0 += kTokChunk) {
    const int64_t nt = std::min(kTokChunk, ntok - t0);
    for (int64_t i = 0; i < nt; ++i) inv[i] = 1.0f / token_norm(cv, codes[t0 + i], packed + (t0 + i) * w, w, x);
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t off = b * kCentroidBlockRows;
      __m256 m[4];
      for (int v = 0; v < 4; ++v) m[v] = _mm256_loadu_ps(rmax + off + v * kLanes);
      for (int64_t i = 0; i < nt; ++i) {
        if (inv[i] == 0.0f) continue;  // scored by the definition below
        const float* qcr = qc + static_cast<int64_t>(codes[t0 + i]) * stride + off;
        __m256 a[4];
        for (int v = 0; v < 4; ++v) a[v] = _mm256_loadu_ps(qcr + v * kLanes);
        const uint8_t* bytes = packed + (t0 + i) * w;
        const float* base = lut + off;
        for (int64_t p = 0; p < w; ++p) {
          const float* l = base + (p * 256 + bytes[p]) * stride;
          for (int v = 0; v < 4; ++v) a[v] = _mm256_add_ps(a[v], _mm256_loadu_ps(l + v * kLanes));
        }
        const __m256 s = _mm256_set1_ps(inv[i]);
        for (int v = 0; v < 4; ++v) m[v] = _mm256_max_ps(m[v], _mm256_mul_ps(a[v], s));
      }
      for (int v = 0; v < 4; ++v) _mm256_storeu_ps(rmax + off + v * kLanes, m[v]);
    }
    for (int64_t i = 0; i < nt; ++i)
      if (inv[i] == 0.0f)
        codec_detail::score_token_by_definition(qr, rows, cv, codes[t0 + i], packed + (t0 + i) * w, x, rmax);
  }
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) total += rmax[r];
  return static_cast<float>(total);
}

std::size_t scratch_floats(int64_t dim) { return static_cast<std::size_t>(kTokChunk + dim + 2 * kLanes); }

}  // namespace

const CodecOps codec_ops_avx2{decompress, build_lut, score_doc, scratch_floats};

}  // namespace edgecolbert
