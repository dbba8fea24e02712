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
#include "edgecolbert/mca_markers.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 4;
constexpr int kNJ = 8;

inline float hsum(float32x4_t v) { return vaddvq_f32(v); }

inline float add_centroid(const float* c, int64_t dim, float* x) {
  float32x4_t ss = vdupq_n_f32(0.0f);
  int64_t d = 0;
  EC_MCA_BEGIN("codec_add_centroid_neon");
  for (; d + kLanes <= dim; d += kLanes) {
    const float32x4_t v = vaddq_f32(vld1q_f32(c + d), vld1q_f32(x + d));
    vst1q_f32(x + d, v);
    ss = vfmaq_f32(ss, v, v);
  }
  EC_MCA_END("codec_add_centroid_neon");
  float tail = 0.0f;
  for (; d < dim; ++d) {
    x[d] += c[d];
    tail += x[d] * x[d];
  }
  return std::sqrt(hsum(ss) + tail);
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
    const float dens = std::max(token_norm(cv, codes[t], packed + t * w, w, x), 1e-12f);
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

void token_norms(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, float* out) {
  const int64_t w = codec_detail::packed_width(cv.dim, cv.nbits);
  std::vector<float> buf(static_cast<std::size_t>(cv.dim + kLanes));
  for (int64_t t = 0; t < n; ++t) out[t] = token_norm(cv, codes[t], packed + t * w, w, buf.data());
}

std::size_t query_floats(int64_t rows, int64_t dim) {
  return static_cast<std::size_t>((rows + kLanes - 1) / kLanes * dim * kLanes);
}

void prepare_query(const float* qr, int64_t rows, int64_t dim, float* out) {
  codec_detail::pack_rows_transposed<kLanes>(qr, rows, dim, out);
}

// MaxSim micro-kernel (as in maxsim_neon.cpp) on decoded tokens d [NJ][dim]; column j scaled by inv[j].
template <int MR, int NJ>
inline void tile(const float* qb, int64_t dim, const float* d, const float* inv, float32x4_t (&runmax)[2]) {
  float32x4_t acc[MR][NJ];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) acc[m][j] = vdupq_n_f32(0.0f);
  for (int64_t k = 0; k < dim; ++k) {
    float32x4_t qv[MR];
    for (int m = 0; m < MR; ++m) qv[m] = vld1q_f32(qb + (m * dim + k) * kLanes);
    for (int j = 0; j < NJ; ++j) {
      const float b = d[j * dim + k];
      for (int m = 0; m < MR; ++m) acc[m][j] = vfmaq_n_f32(acc[m][j], qv[m], b);
    }
  }
  // FMAXNM returns the number when one operand is NaN: NaN similarities are ignored.
  for (int j = 0; j < NJ; ++j)
    for (int m = 0; m < MR; ++m) runmax[m] = vmaxnmq_f32(runmax[m], vmulq_n_f32(acc[m][j], inv[j]));
}

template <int MR>
void tile_n(int nj, const float* qb, int64_t dim, const float* d, const float* inv, float32x4_t (&runmax)[2]) {
  switch (nj) {
    case 1: tile<MR, 1>(qb, dim, d, inv, runmax); break;
    case 2: tile<MR, 2>(qb, dim, d, inv, runmax); break;
    case 3: tile<MR, 3>(qb, dim, d, inv, runmax); break;
    case 4: tile<MR, 4>(qb, dim, d, inv, runmax); break;
    case 5: tile<MR, 5>(qb, dim, d, inv, runmax); break;
    case 6: tile<MR, 6>(qb, dim, d, inv, runmax); break;
    case 7: tile<MR, 7>(qb, dim, d, inv, runmax); break;
    default: tile<MR, 8>(qb, dim, d, inv, runmax); break;
  }
}

float score_doc(const float* q, int64_t rows, const CodecView& cv, const int32_t* codes, const uint8_t* packed,
                const float* norms, int64_t ntok, float* scratch) {
  const int64_t dim = cv.dim, w = codec_detail::packed_width(dim, cv.nbits);
  const int64_t blocks = (rows + kLanes - 1) / kLanes;
  float* x = scratch;                     // [kNJ * dim + kLanes] decoded tile
  float* inv = x + kNJ * dim + kLanes;    // [kNJ]
  float* rmax = inv + kNJ;                // [blocks * kLanes]
  std::fill_n(rmax, blocks * kLanes, -std::numeric_limits<float>::infinity());
  const int64_t crow_bytes = dim * static_cast<int64_t>(sizeof(float));
  (void)crow_bytes;
  for (int64_t j0 = 0; j0 < ntok; j0 += kNJ) {
    const int nj = static_cast<int>(std::min<int64_t>(kNJ, ntok - j0));
    const int64_t next = std::min<int64_t>(kNJ, std::max<int64_t>(0, ntok - j0 - kNJ));
    for (int64_t i = 0; i < next; ++i)
      __builtin_prefetch(cv.centroids + static_cast<int64_t>(codes[j0 + kNJ + i]) * dim);
    for (int j = 0; j < nj; ++j) {
      const int64_t t = j0 + j;
      const float nrm = token_norm(cv, codes[t], packed + t * w, w, x + j * dim);
      inv[j] = codec_detail::inv_norm_or_normalise(norms != nullptr ? norms[t] : nrm, x + j * dim, dim);
    }
    for (int64_t b = 0; b < blocks; b += 2) {
      const float* qb = q + b * dim * kLanes;
      float32x4_t runmax[2] = {vld1q_f32(rmax + b * kLanes), vdupq_n_f32(0.0f)};
      if (blocks - b >= 2) {
        runmax[1] = vld1q_f32(rmax + (b + 1) * kLanes);
        tile_n<2>(nj, qb, dim, x, inv, runmax);
        vst1q_f32(rmax + (b + 1) * kLanes, runmax[1]);
      } else {
        tile_n<1>(nj, qb, dim, x, inv, runmax);
      }
      vst1q_f32(rmax + b * kLanes, runmax[0]);
    }
  }
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) total += rmax[r];
  return static_cast<float>(total);
}

std::size_t scratch_floats(int64_t rows, int64_t dim) {
  return static_cast<std::size_t>(kNJ * dim + kLanes + kNJ + (rows + kLanes - 1) / kLanes * kLanes);
}

}  // namespace

const CodecOps codec_ops_neon{decompress, token_norms, query_floats, prepare_query, score_doc, scratch_floats, nullptr};

}  // namespace edgecolbert
