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
#include "edgecolbert/mca_markers.hpp"

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

// Per-token norms ||c + r|| [n] (float32, not clamped): what decompress divides by, computed by the
// same instruction sequence on the same path. An index can store them (4 bytes per token) and hand
// them to maxsim_compressed, which then skips the norm work.
void token_norms(const KernelPath& path, const CodecView& cv, const int32_t* codes, const uint8_t* residuals, int64_t n,
                 float* out, int num_threads);

// Which compressed-MaxSim kernel scores: the path's faster one for this codec shape (measured once per
// process; EDGECOLBERT_COMPRESSED_KERNEL=decode|lut overrides), the decoding kernel, or the byte tables
// where the path has them for the shape (else the decoding kernel).
enum class CompressedKernel { automatic, decode, tables };

// MaxSim of queries against compressed documents, equal to decompress-then-maxsim up to float
// rounding. candidates (optional, [nq, ncand]) picks documents per query; out [nq, n] or [nq, ncand].
// norms (optional, [T], from token_norms) replaces the per-token norm computation.
void maxsim_compressed(const KernelPath& path, const QueryBatch& q, const CodecView& cv, const CompressedDocs& docs,
                       const int64_t* candidates, int64_t ncand, float* out, int num_threads,
                       const float* norms = nullptr, CompressedKernel kernel = CompressedKernel::automatic);

}  // namespace edgecolbert

namespace edgecolbert::codec_detail {
// Helpers every codec_<isa>.cpp compiles with its own flags. `static` keeps one private copy per
// file: an inline function shared across files built with different -m flags could be linked to a
// copy the CPU cannot run.

// Residual bytes per token.
static inline int64_t packed_width(int64_t dim, int nbits) { return dim * nbits / 8; }

// Packs rows [rows, dim] transposed in blocks of L rows: out[(blk * dim + k) * L + r % L], zero-padded.
template <int L>
static inline void pack_rows_transposed(const float* q, int64_t rows, int64_t dim, float* out) {
  const int64_t blocks = (rows + L - 1) / L;
  std::memset(out, 0, static_cast<std::size_t>(blocks * dim * L) * sizeof(float));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < dim; ++k) out[((r / L) * dim + k) * L + r % L] = q[r * dim + k];
}

// x = centroid[code] + weights of the token's buckets, expanded through the byte table (G = 8 / nbits
// floats per byte, a compile-time copy).
template <int G>
static inline void expand_residual(const float* table, const uint8_t* bytes, int64_t nbytes, float* x) {
  if constexpr (G == 4) EC_MCA_BEGIN("codec_expand_nbits2");
  for (int64_t p = 0; p < nbytes; ++p) std::memcpy(x + p * G, table + bytes[p] * G, G * sizeof(float));
  if constexpr (G == 4) EC_MCA_END("codec_expand_nbits2");
}

static inline void expand_any(int nbits, const float* table, const uint8_t* bytes, int64_t nbytes, float* x) {
  switch (nbits) {
    case 1: expand_residual<8>(table, bytes, nbytes, x); break;
    case 2: expand_residual<4>(table, bytes, nbytes, x); break;
    case 4: expand_residual<2>(table, bytes, nbytes, x); break;
    default: expand_residual<1>(table, bytes, nbytes, x); break;
  }
}

// The fused compressed MaxSim scores a decoded row x = c + r as <q, x> * (1 / max(||x||, 1e-12)). When
// ||x|| overflows to inf (a finite centroid or bucket weight above ~1.8e19), 1 / inf = 0 and <q, x> * 0
// is NaN or 0 where the definition (codec_scalar.cpp: decompress, then dot) gives <q, x / inf>: 0 for
// a finite x. Such a row is divided in place, as decompress does, and scored with factor 1.
static inline float inv_norm_or_normalise(float norm, float* x, int64_t dim) {
  const float den = std::max(norm, 1e-12f);
  const float inv = 1.0f / den;
  if (inv != 0.0f) return inv;
  for (int64_t d = 0; d < dim; ++d) x[d] /= den;
  return 1.0f;
}

}  // namespace edgecolbert::codec_detail
