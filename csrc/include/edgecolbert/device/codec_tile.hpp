// Residual-codec arithmetic shared by csrc/cuda/codec.cu and the host harness. The byte layout is
// colbert-ai's (codec.hpp): dimension d's nbits-bit bucket index, bits least significant first, packed
// dimension after dimension into bytes most-significant-bit first (numpy.packbits). So byte p holds
// dims p*g .. p*g+g-1 (g = 8 / nbits) and bit i of bucket(d) is bit 7 - ((d % g) * nbits + i) of it.
// A decoded token is v / max(||v||, 1e-12) with v[d] = centroid[code][d] + weights[bucket(d)].
#pragma once
#include "edgecolbert/device/hd.hpp"

namespace edgecolbert::device {

EC_HD bool nbits_supported(int nbits) { return nbits == 1 || nbits == 2 || nbits == 4 || nbits == 8; }
EC_HD int dims_per_byte(int nbits) { return 8 / nbits; }
EC_HD int64_t residual_bytes(int64_t dim, int nbits) { return dim * nbits / 8; }

// Bucket of the j-th dimension (0 <= j < 8 / nbits) held in byte value v.
EC_HD int bucket_of(unsigned v, int j, int nbits) {
  int b = 0;
  for (int i = 0; i < nbits; ++i) b |= static_cast<int>((v >> (7 - (j * nbits + i))) & 1u) << i;
  return b;
}

// The byte lookup table: table[v * g + j] = weights[bucket_of(v, j)], 256 * g floats (8 KiB at nbits 1).
// A kernel builds it once per block in shared memory; decoding a dimension is then one load.
EC_HD float byte_table_entry(const float* weights, int nbits, int index) {
  const int g = dims_per_byte(nbits);
  return weights[bucket_of(static_cast<unsigned>(index / g), index % g, nbits)];
}

// v[d] before normalisation, through the byte table.
EC_HD float decode_dim(const float* centroid_row, const float* table, const uint8_t* res_row, int64_t d, int nbits) {
  const int g = dims_per_byte(nbits);
  return centroid_row[d] + table[static_cast<int64_t>(res_row[d / g]) * g + d % g];
}

// The normalisation divisor F.normalize uses: max(||v||, eps).
EC_HD float l2_divisor(float sum_squares) {
  const float n = sqrtf(sum_squares);
  return n > 1e-12f ? n : 1e-12f;
}

// Code clamped into [0, K): an out-of-range code (corrupt input) never reads outside the centroids.
EC_HD int64_t clamp_code(int64_t code, int64_t K) { return code < 0 ? 0 : (code >= K ? K - 1 : code); }

}  // namespace edgecolbert::device
