// Residual codec, AVX-512 (F/BW/VL/DQ).
// Decompression: each residual byte is expanded through the byte table (8 / nbits weights per byte,
// one fixed-size copy), the centroid row is added 16 dims at a time (masked tail), the squared norm
// accumulates in a zmm, and the row is divided by max(||v||, 1e-12) (F.normalize), stored as float32
// or rounded to float16 (VCVTPS2PH, round to nearest even).
// Compressed MaxSim (WARP-style implicit decompression): a decompressed token is v / ||v|| with
// v = c + r, so <q, v / ||v||> = (<q, c> + sum_p lut[p][byte_p]) / ||v||. Per token the 32 query rows
// of a block sit in two zmm: start from qc[code] (one row of the centroid scores), add one 32-float
// lut entry per residual byte, multiply by 1 / ||v|| (computed exactly like decompression, once per
// token for all row blocks), fold into the running maxima. No decompressed token is ever stored.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "edgecolbert/codec.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 16;
constexpr int64_t kTokChunk = 64;

// Bucket weights of 16 consecutive dims (a whole number of residual bytes) straight into a zmm:
// composing the vector from the byte-table entries in registers (inserts, or a gather for 1 and 2
// floats per byte) avoids writing small pieces to memory and reading them back as one wide load, a
// store-forwarding stall that cost more than the rest of the token.
template <int G>
inline __m512 weights16(const float* table, const uint8_t* bytes) {
  if constexpr (G == 8) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(table + bytes[0] * 8)),
                              _mm256_loadu_ps(table + bytes[1] * 8), 1);
  } else if constexpr (G == 4) {
    __m512 v = _mm512_castps128_ps512(_mm_loadu_ps(table + bytes[0] * 4));
    v = _mm512_insertf32x4(v, _mm_loadu_ps(table + bytes[1] * 4), 1);
    v = _mm512_insertf32x4(v, _mm_loadu_ps(table + bytes[2] * 4), 2);
    return _mm512_insertf32x4(v, _mm_loadu_ps(table + bytes[3] * 4), 3);
  } else if constexpr (G == 2) {
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)));
    const __m512i dup = _mm512_permutexvar_epi32(_mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0), b);
    const __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(dup, 1), _mm512_set_epi32(1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0));
    return _mm512_i32gather_ps(idx, table, 4);
  } else {
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)));
    return _mm512_i32gather_ps(idx, table, 4);
  }
}

// x = c + r (written to x), returns max(||x||, 1e-12).
template <int G>
inline float expand_norm(const float* c, const float* table, const uint8_t* bytes, int64_t dim, float* x) {
  __m512 ss = _mm512_setzero_ps();
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    const __m512 v = _mm512_add_ps(_mm512_loadu_ps(c + d), weights16<G>(table, bytes + d / G));
    _mm512_storeu_ps(x + d, v);
    ss = _mm512_fmadd_ps(v, v, ss);
  }
  float tail = 0.0f;
  for (; d < dim; ++d) {
    x[d] = c[d] + table[bytes[d / G] * G + d % G];
    tail += x[d] * x[d];
  }
  return std::max(std::sqrt(_mm512_reduce_add_ps(ss) + tail), 1e-12f);
}

inline float token_norm(const CodecView& cv, int32_t code, const uint8_t* bytes, int64_t, float* x) {
  const float* c = cv.centroids + static_cast<int64_t>(code) * cv.dim;
  switch (cv.nbits) {
    case 1: return expand_norm<8>(c, cv.byte_table, bytes, cv.dim, x);
    case 2: return expand_norm<4>(c, cv.byte_table, bytes, cv.dim, x);
    case 4: return expand_norm<2>(c, cv.byte_table, bytes, cv.dim, x);
    default: return expand_norm<1>(c, cv.byte_table, bytes, cv.dim, x);
  }
}

void decompress(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, void* out, DType ot) {
  const int64_t w = codec_detail::packed_width(cv.dim, cv.nbits), dim = cv.dim;
  std::vector<float> buf(static_cast<std::size_t>(dim + kLanes));
  float* x = buf.data();
  for (int64_t t = 0; t < n; ++t) {
    const __m512 den = _mm512_set1_ps(token_norm(cv, codes[t], packed + t * w, w, x));
    int64_t d = 0;
    if (ot == DType::f32) {
      float* o = static_cast<float*>(out) + t * dim;
      for (; d + kLanes <= dim; d += kLanes) _mm512_storeu_ps(o + d, _mm512_div_ps(_mm512_loadu_ps(x + d), den));
      if (d < dim) {
        const __mmask16 m = static_cast<__mmask16>((1u << (dim - d)) - 1);
        _mm512_mask_storeu_ps(o + d, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + d), den));
      }
    } else {
      uint16_t* o = static_cast<uint16_t*>(out) + t * dim;
      for (; d + kLanes <= dim; d += kLanes)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + d),
                            _mm512_cvtps_ph(_mm512_div_ps(_mm512_loadu_ps(x + d), den), _MM_FROUND_TO_NEAREST_INT));
      if (d < dim) {
        const __mmask16 m = static_cast<__mmask16>((1u << (dim - d)) - 1);
        const __m256i h = _mm512_cvtps_ph(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + d), den), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(o + d, m, h);
      }
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
  float* inv = scratch;                 // [kTokChunk]
  float* rmax = scratch + kTokChunk;    // [stride]
  float* x = rmax + stride;             // [dim + 16]
  std::fill_n(rmax, stride, -std::numeric_limits<float>::infinity());
  for (int64_t t0 = 0; t0 < ntok; t0 += kTokChunk) {
    const int64_t nt = std::min(kTokChunk, ntok - t0);
    for (int64_t i = 0; i < nt; ++i) inv[i] = 1.0f / token_norm(cv, codes[t0 + i], packed + (t0 + i) * w, w, x);
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t off = b * kCentroidBlockRows;
      __m512 m0 = _mm512_loadu_ps(rmax + off), m1 = _mm512_loadu_ps(rmax + off + kLanes);
      for (int64_t i = 0; i < nt; ++i) {
        if (inv[i] == 0.0f) continue;  // scored by the definition below
        const float* qcr = qc + static_cast<int64_t>(codes[t0 + i]) * stride + off;
        __m512 a0 = _mm512_loadu_ps(qcr), a1 = _mm512_loadu_ps(qcr + kLanes);
        const uint8_t* bytes = packed + (t0 + i) * w;
        const float* base = lut + off;
        for (int64_t p = 0; p < w; ++p) {
          const float* l = base + (p * 256 + bytes[p]) * stride;
          a0 = _mm512_add_ps(a0, _mm512_loadu_ps(l));
          a1 = _mm512_add_ps(a1, _mm512_loadu_ps(l + kLanes));
        }
        const __m512 s = _mm512_set1_ps(inv[i]);
        m0 = _mm512_max_ps(m0, _mm512_mul_ps(a0, s));
        m1 = _mm512_max_ps(m1, _mm512_mul_ps(a1, s));
      }
      _mm512_storeu_ps(rmax + off, m0);
      _mm512_storeu_ps(rmax + off + kLanes, m1);
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

const CodecOps codec_ops_avx512{decompress, build_lut, score_doc, scratch_floats};

}  // namespace edgecolbert
