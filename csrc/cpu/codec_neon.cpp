// Residual codec, AArch64 Advanced SIMD (NEON). Same scheme as codec_avx512.cpp with 4-lane registers: decompression
// expands residual bytes through the byte table, adds the centroid 8 dims at a time (scalar tail),
// divides by max(||v||, 1e-12) and stores float32 or float16 (FCVTN, round to nearest even).
// Compressed MaxSim keeps a block of 32 query rows in eight q-register accumulators per token:
// qc[code] + sum_p lut[p][byte_p], times 1 / ||v||, folded into the running maxima.
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "edgecolbert/codec.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 4;
constexpr int64_t kTokChunk = 64;

inline float hsum(float32x4_t v) { return vaddvq_f32(v); }

inline float add_centroid(const float* c, int64_t dim, float* x) {
  float32x4_t ss = vdupq_n_f32(0.0f);
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    const float32x4_t v = vaddq_f32(vld1q_f32(c + d), vld1q_f32(x + d));
    vst1q_f32(x + d, v);
    ss = vfmaq_f32(ss, v, v);
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
    const float32x4_t den = vdupq_n_f32(dens);
    int64_t d = 0;
    if (ot == DType::f32) {
      float* o = static_cast<float*>(out) + t * dim;
      for (; d + kLanes <= dim; d += kLanes) vst1q_f32(o + d, vdivq_f32(vld1q_f32(x + d), den));
      for (; d < dim; ++d) o[d] = x[d] / dens;
    } else {
      uint16_t* o = static_cast<uint16_t*>(out) + t * dim;
      for (; d + kLanes <= dim; d += kLanes)
        vst1_u16(o + d, vreinterpret_u16_f16(vcvt_f16_f32(vdivq_f32(vld1q_f32(x + d), den))));
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
      float32x4_t m[8];
      for (int v = 0; v < 8; ++v) m[v] = vld1q_f32(rmax + off + v * kLanes);
      for (int64_t i = 0; i < nt; ++i) {
        if (inv[i] == 0.0f) continue;  // scored by the definition below
        const float* qcr = qc + static_cast<int64_t>(codes[t0 + i]) * stride + off;
        float32x4_t a[8];
        for (int v = 0; v < 8; ++v) a[v] = vld1q_f32(qcr + v * kLanes);
        const uint8_t* bytes = packed + (t0 + i) * w;
        const float* base = lut + off;
        for (int64_t p = 0; p < w; ++p) {
          const float* l = base + (p * 256 + bytes[p]) * stride;
          for (int v = 0; v < 8; ++v) a[v] = vaddq_f32(a[v], vld1q_f32(l + v * kLanes));
        }
        const float32x4_t s = vdupq_n_f32(inv[i]);
        for (int v = 0; v < 8; ++v) m[v] = vmaxq_f32(m[v], vmulq_f32(a[v], s));
      }
      for (int v = 0; v < 8; ++v) vst1q_f32(rmax + off + v * kLanes, m[v]);
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

const CodecOps codec_ops_neon{decompress, build_lut, score_doc, scratch_floats};

}  // namespace edgecolbert
