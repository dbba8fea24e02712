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

// Residual bytes per token: dim * nbits / 8 (the codec requires dim * nbits % 8 == 0).
inline int64_t residual_width(int64_t dim, int nbits) { return dim * nbits / 8; }

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
