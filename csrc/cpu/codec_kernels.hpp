// Residual codec kernels over vector traits (simd.hpp), compiled by each codec_<isa>.cpp with its own
// flags (formulas and byte layout: codec.hpp). Shared by every ISA:
//  - expanding a token's residual bytes through the byte table, and the overflow rule of the fused
//    kernel (inv_norm_or_normalise);
//  - the scoring half of compressed MaxSim (DecodedTiles): a tile of NJ tokens decoded (c + r,
//    unnormalised) into per-thread scratch that stays in L1, never to memory, runs through the MaxSim
//    tile (maxsim_kernels.hpp, TileFold: queries transposed, MR = 2 row blocks x NJ tokens) and each
//    column is multiplied by 1 / max(||v_t||, 1e-12) before it is folded into the running row maxima.
//    So per token the decode is O(dim) and the dot products O(rows * dim) at MaxSim's speed;
//  - the whole codec of the paths without a register decoder (CodecF32: AVX2, NEON): decompression
//    expands residual bytes through the byte table, adds the centroid L dims at a time (scalar tail),
//    divides by max(||v||, 1e-12) and stores float32 or float16 (round to nearest even); compressed
//    MaxSim decodes its tiles the same way. codec_avx512.cpp decodes in registers instead and shares
//    DecodedTiles.
// Everything has internal linkage (an anonymous namespace): each file's copy runs only on its ISA.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "edgecolbert/codec.hpp"
#include "maxsim_kernels.hpp"
#include "mca_markers.hpp"
#include "simd.hpp"

namespace edgecolbert {
namespace {
namespace codec_kernels {

// x = centroid[code] + weights of the token's buckets, expanded through the byte table (G = 8 / nbits
// floats per byte, a compile-time copy).
template <int G>
inline void expand_residual(const float* table, const uint8_t* bytes, int64_t nbytes, float* x) {
  if constexpr (G == 4) EC_MCA_BEGIN("codec_expand_nbits2");
  for (int64_t p = 0; p < nbytes; ++p) std::memcpy(x + p * G, table + bytes[p] * G, G * sizeof(float));
  if constexpr (G == 4) EC_MCA_END("codec_expand_nbits2");
}

inline void expand_any(int nbits, const float* table, const uint8_t* bytes, int64_t nbytes, float* x) {
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
inline float inv_norm_or_normalise(float norm, float* x, int64_t dim) {
  const float den = std::max(norm, 1e-12f);
  const float inv = 1.0f / den;
  if (inv != 0.0f) return inv;
  for (int64_t d = 0; d < dim; ++d) x[d] /= den;
  return 1.0f;
}

// The centroid rows of the tokens [t0, t1) into L1 (random reads into a table that lives in L2),
// while the tile before them decodes and computes.
inline void prefetch_centroids(const CodecView& cv, const int32_t* codes, int64_t t0, int64_t t1, int64_t dim) {
  for (int64_t t = t0; t < t1; ++t)
    simd::prefetch_bytes(cv.centroids + static_cast<int64_t>(codes[t]) * dim, dim * static_cast<int64_t>(sizeof(float)));
}

// Scores of a decoded tile folded into the running row maxima. Query rows are prepare_query's
// (simd::pack_rows_transposed<L>); the scratch of a score_doc is x [NJ * dim + L] (decoded tile),
// inv [NJ], rmax [blocks * L].
template <class V, int NJ>
struct DecodedTiles {
  using F = typename V::F;
  static constexpr int L = V::kLanes;

  static std::size_t query_floats(int64_t rows, int64_t dim) { return simd::packed_rows_floats<L>(rows, dim); }
  static void prepare_query(const float* qr, int64_t rows, int64_t dim, float* out) {
    simd::pack_rows_transposed<L>(qr, rows, dim, out);
  }
  static std::size_t scratch_floats(int64_t rows, int64_t dim) {
    return static_cast<std::size_t>(NJ * dim + L + NJ + (rows + L - 1) / L * L);
  }
  struct Scratch {
    float *x, *inv, *rmax;
  };
  // Lays out the scratch and starts every row maximum at -inf.
  static Scratch begin(float* scratch, int64_t rows, int64_t dim) {
    Scratch s{scratch, scratch + NJ * dim + L, scratch + NJ * dim + L + NJ};
    std::fill_n(s.rmax, (rows + L - 1) / L * L, -std::numeric_limits<float>::infinity());
    return s;
  }

  // The nj decoded tokens s.x [nj][dim] with inverse norms s.inv folded into the row maxima.
  EC_ALWAYS_INLINE static void score(const float* q, int64_t rows, int64_t dim, int nj, const Scratch& s) {
    TileFold<V, NJ>::template fold<true>(q, (rows + L - 1) / L, dim, s.x, nj, s.inv, s.rmax, simd::LineStream{});
  }

  static float total(const Scratch& s, int64_t rows) { return TileFold<V, NJ>::total(s.rmax, rows); }
};

// The codec of a path without a register decoder (CodecOps, dispatch.hpp).
template <class V, int NJ>
struct CodecF32 : DecodedTiles<V, NJ> {
  using Tiles = DecodedTiles<V, NJ>;
  using F = typename V::F;
  static constexpr int L = V::kLanes;

  // x += c; returns ||x|| (the squared norm in L lane sums, then the tail in order).
  static float add_centroid(const float* c, int64_t dim, float* x) {
    F ss = V::zero();
    int64_t d = 0;
    EC_MCA_BEGIN("codec_add_centroid");
    for (; d + L <= dim; d += L) {
      const F v = V::add(V::loadu(c + d), V::loadu(x + d));
      V::storeu(x + d, v);
      ss = V::fmadd(v, v, ss);
    }
    EC_MCA_END("codec_add_centroid");
    float tail = 0.0f;
    for (; d < dim; ++d) {
      x[d] += c[d];
      tail += x[d] * x[d];
    }
    return std::sqrt(V::hsum(ss) + tail);
  }

  static float token_norm(const CodecView& cv, int32_t code, const uint8_t* bytes, int64_t nbytes, float* x) {
    expand_any(cv.nbits, cv.byte_table, bytes, nbytes, x);
    return add_centroid(cv.centroids + static_cast<int64_t>(code) * cv.dim, cv.dim, x);
  }

  static void decompress(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, void* out,
                         DType ot) {
    const int64_t w = residual_width(cv.dim, cv.nbits), dim = cv.dim;
    std::vector<float> buf(static_cast<std::size_t>(dim + L));
    float* x = buf.data();
    for (int64_t t = 0; t < n; ++t) {
      const float dens = std::max(token_norm(cv, codes[t], packed + t * w, w, x), 1e-12f);
      const F den = V::set1(dens);
      int64_t d = 0;
      if (ot == DType::f32) {
        float* o = static_cast<float*>(out) + t * dim;
        for (; d + L <= dim; d += L) V::storeu(o + d, V::div(V::loadu(x + d), den));
        for (; d < dim; ++d) o[d] = x[d] / dens;
      } else {
        uint16_t* o = static_cast<uint16_t*>(out) + t * dim;
        for (; d + L <= dim; d += L) V::store_f16(o + d, V::div(V::loadu(x + d), den));
        for (; d < dim; ++d) o[d] = f32_to_f16(x[d] / dens);
      }
    }
  }

  static void token_norms(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, float* out) {
    const int64_t w = residual_width(cv.dim, cv.nbits);
    std::vector<float> buf(static_cast<std::size_t>(cv.dim + L));
    for (int64_t t = 0; t < n; ++t) out[t] = token_norm(cv, codes[t], packed + t * w, w, buf.data());
  }

  static float score_doc(const float* q, int64_t rows, const CodecView& cv, const int32_t* codes, const uint8_t* packed,
                         const float* norms, int64_t ntok, float* scratch) {
    const int64_t dim = cv.dim, w = residual_width(dim, cv.nbits);
    const auto s = Tiles::begin(scratch, rows, dim);
    for (int64_t j0 = 0; j0 < ntok; j0 += NJ) {
      const int nj = static_cast<int>(std::min<int64_t>(NJ, ntok - j0));
      prefetch_centroids(cv, codes, j0 + NJ, std::min<int64_t>(ntok, j0 + 2 * NJ), dim);
      for (int j = 0; j < nj; ++j) {
        const int64_t t = j0 + j;
        const float nrm = token_norm(cv, codes[t], packed + t * w, w, s.x + j * dim);
        s.inv[j] = inv_norm_or_normalise(norms != nullptr ? norms[t] : nrm, s.x + j * dim, dim);
      }
      Tiles::score(q, rows, dim, nj, s);
    }
    return Tiles::total(s, rows);
  }

  // The path's table of codec kernels (no table-lookup kernel). constexpr: a path's table is constant-
  // initialised, so the dispatch tables of other files can copy it during static initialisation.
  static constexpr CodecOps ops() {
    return {CodecF32::decompress, CodecF32::token_norms, CodecF32::query_floats, CodecF32::prepare_query,
            CodecF32::score_doc,  CodecF32::scratch_floats, nullptr};
  }
};

}  // namespace codec_kernels
}  // namespace
}  // namespace edgecolbert
