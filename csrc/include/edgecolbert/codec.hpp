// ColBERTv2 residual codec (colbert-ai's ResidualCodec, byte for byte) and scoring straight from codes.
//
// A token x is stored as code = argmax_c <x, centroid_c> (ties to the lower id) and, per dimension d,
// bucket b_d = #{i : cutoffs[i] < x_d - centroid[code]_d}  (torch.bucketize, right=False: a value equal
// to a cutoff goes to the lower bucket), b_d in [0, 2^nbits). Packing: each dimension contributes its
// nbits bits least significant first, dimension after dimension; the bit stream is cut into bytes with
// the first bit as the most significant (numpy.packbits). So byte p holds dims p*g .. p*g+g-1
// (g = 8 / nbits), and bit i of b_d sits at bit 7 - ((d % g) * nbits + i) of that byte.
// Decompression: v = centroid[code] + weights[b], returned as v / max(||v||, 1e-12) (F.normalize).
#pragma once
#include "edgecolbert/centroids.hpp"
#include "edgecolbert/common.hpp"
#include "edgecolbert/dispatch.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace edgecolbert {

// [256 * (8 / nbits)] floats: the CodecView byte_table for these weights.
std::vector<float> make_byte_table(const float* weights, int nbits);

// Bucket of dimension j (0 <= j < 8 / nbits) within a residual byte value.
inline int byte_bucket(unsigned v, int j, int nbits) {
  int b = 0;
  for (int i = 0; i < nbits; ++i) b |= static_cast<int>((v >> (7 - (j * nbits + i))) & 1u) << i;
  return b;
}

// codes [n] (from centroid_topk k=1) and residuals [n, dim*nbits/8]; cutoffs [2^nbits - 1].
void compress(const KernelPath& path, const CodecView& cv, const float* cutoffs, const Matrix& tokens, int32_t* codes,
              uint8_t* residuals, int num_threads);

// out [n, dim] float32 or float16.
void decompress(const KernelPath& path, const CodecView& cv, const int32_t* codes, const uint8_t* residuals, int64_t n,
                void* out, DType out_dtype, int num_threads);

// Compressed documents: CSR offsets [n+1] over codes [T] / residuals [T, dim*nbits/8].
struct CompressedDocs {
  const int32_t* codes = nullptr;
  const uint8_t* residuals = nullptr;
  const int64_t* offsets = nullptr;
  int64_t n = 0;
};

// MaxSim of queries against compressed documents, equal to decompress-then-maxsim up to float
// rounding. candidates (optional, [nq, ncand]) picks documents per query; out [nq, n] or [nq, ncand].
void maxsim_compressed(const KernelPath& path, const QueryBatch& q, const CodecView& cv, const CompressedDocs& docs,
                       const int64_t* candidates, int64_t ncand, float* out, int num_threads);

}  // namespace edgecolbert

namespace edgecolbert::codec_detail {
// Helpers every codec_<isa>.cpp compiles with its own flags. `static` keeps one private copy per
// file: an inline function shared across files built with different -m flags could be linked to a
// copy the CPU cannot run.

// Residual bytes per token.
static inline int64_t packed_width(int64_t dim, int nbits) { return dim * nbits / 8; }

// Builds the per-query lookup table lut[p][v][r] (see CodecOps) from the query rows transposed to
// qt [dim][stride] (zero for padded rows). For nbits <= 4 each byte is split into its two nibbles,
// whose dims are disjoint: lut[p][v] = hi[v >> 4] + lo[v & 15], with 16-entry tables of partial sums;
// for nbits 8 a byte is one dimension: lut[p][v] = q[p] * w[bucket(v)].
static inline void build_lut_generic(const float* qt, int64_t stride, const CodecView& cv, float* lut, float* tmp) {
  const int nbits = cv.nbits, g = 8 / nbits;
  const int64_t nbytes = packed_width(cv.dim, nbits);
  if (nbits == 8) {
    for (int64_t p = 0; p < nbytes; ++p)
      for (unsigned v = 0; v < 256; ++v) {
        const float w = cv.weights[byte_bucket(v, 0, 8)];
        float* o = lut + (p * 256 + v) * stride;
        const float* q = qt + p * stride;
        for (int64_t r = 0; r < stride; ++r) o[r] = q[r] * w;
      }
    return;
  }
  float* hi = tmp;                // [16][stride]
  float* lo = tmp + 16 * stride;  // [16][stride]
  const int half = g / 2;
  for (int64_t p = 0; p < nbytes; ++p) {
    for (unsigned n = 0; n < 16; ++n) {
      float* h = hi + n * stride;
      float* l = lo + n * stride;
      for (int64_t r = 0; r < stride; ++r) h[r] = l[r] = 0.0f;
      for (int j = 0; j < half; ++j) {
        const float wh = cv.weights[byte_bucket(n << 4, j, nbits)];
        const float wl = cv.weights[byte_bucket(n, j + half, nbits)];
        const float* qh = qt + (p * g + j) * stride;
        const float* ql = qt + (p * g + j + half) * stride;
        for (int64_t r = 0; r < stride; ++r) {
          h[r] += qh[r] * wh;
          l[r] += ql[r] * wl;
        }
      }
    }
    for (unsigned v = 0; v < 256; ++v) {
      float* o = lut + (p * 256 + v) * stride;
      const float* h = hi + (v >> 4) * stride;
      const float* l = lo + (v & 15) * stride;
      for (int64_t r = 0; r < stride; ++r) o[r] = h[r] + l[r];
    }
  }
}

// Scratch floats build_lut_generic needs besides qt: 32 * stride.
static inline void transpose_rows(const float* qr, int64_t rows, int64_t dim, int64_t stride, float* qt) {
  for (int64_t d = 0; d < dim; ++d)
    for (int64_t r = 0; r < stride; ++r) qt[d * stride + r] = r < rows ? qr[r * dim + d] : 0.0f;
}

// x = centroid[code] + weights of the token's buckets, expanded through the byte table (G = 8 / nbits
// floats per byte, a compile-time copy).
template <int G>
static inline void expand_residual(const float* table, const uint8_t* bytes, int64_t nbytes, float* x) {
  for (int64_t p = 0; p < nbytes; ++p) std::memcpy(x + p * G, table + bytes[p] * G, G * sizeof(float));
}

static inline void expand_any(int nbits, const float* table, const uint8_t* bytes, int64_t nbytes, float* x) {
  switch (nbits) {
    case 1: expand_residual<8>(table, bytes, nbytes, x); break;
    case 2: expand_residual<4>(table, bytes, nbytes, x); break;
    case 4: expand_residual<2>(table, bytes, nbytes, x); break;
    default: expand_residual<1>(table, bytes, nbytes, x); break;
  }
}

// The SIMD score_doc factors a token's scores as (<q, centroid> + sum_p lut[p][byte_p]) / ||v||. When
// ||v|| overflows float (a centroid or weight beyond ~1.8e19), 1 / ||v|| is 0 and the factored score is
// inf * 0 or (inf - inf) * 0 = NaN, where the definition (codec_scalar.cpp: decompress, then dot) gives
// <q, v / inf>, 0 for a finite v. Such a token (1 / ||v|| == 0, also when it underflowed) is scored here
// by the definition, into the running row maxima rmax[0, rows); qr is [rows, dim], x has dim floats.
static inline void score_token_by_definition(const float* qr, int64_t rows, const CodecView& cv, int32_t code,
                                             const uint8_t* bytes, float* x, float* rmax) {
  const int g = 8 / cv.nbits;
  const float* c = cv.centroids + static_cast<int64_t>(code) * cv.dim;
  float ss = 0.0f;
  for (int64_t d = 0; d < cv.dim; ++d) {
    x[d] = c[d] + cv.weights[byte_bucket(bytes[d / g], static_cast<int>(d % g), cv.nbits)];
    ss += x[d] * x[d];
  }
  const float den = std::max(std::sqrt(ss), 1e-12f);
  for (int64_t d = 0; d < cv.dim; ++d) x[d] /= den;
  for (int64_t r = 0; r < rows; ++r) {
    float dot = 0.0f;
    for (int64_t k = 0; k < cv.dim; ++k) dot += qr[r * cv.dim + k] * x[k];
    rmax[r] = std::max(rmax[r], dot);
  }
}

}  // namespace edgecolbert::codec_detail
