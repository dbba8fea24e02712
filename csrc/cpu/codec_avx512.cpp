// Residual codec, AVX-512 (F/BW/VL/DQ).
// Decode of 16 dims (a whole number of residual bytes) straight into a zmm, no table in memory:
// the 2·nbits bytes are broadcast to the lanes (one 32-bit broadcast for nbits 1 and 2, two halves of a
// 64-bit load for nbits 4), VPSRLVD moves each lane's bucket bits to the bottom, and VPERMPS looks the
// weight up in a 16-entry register table indexed by the low 4 bits (entries repeat over the bits that
// belong to neighbouring dims; the table is bit-reversed because packbits stores a bucket's least
// significant bit first, in the byte's higher bit). nbits 8 gathers from the 256-entry byte table.
// v = centroid + weights, the squared norm accumulates in a zmm (masked tail, no scalar epilogue).
// Decompression divides by max(||v||, 1e-12) (F.normalize) and stores float32 or float16 (VCVTPS2PH,
// round to nearest even).
// Compressed MaxSim (fused decode + MaxSim, codec_kernels.hpp's DecodedTiles): a tile of kNJ = 12
// tokens is decoded into L1 scratch and run through the AVX-512 MaxSim tile (16 rows per zmm, 2 row
// blocks x 12 tokens = 24 accumulators, the broadcast in a register: vec_avx512.hpp); each column is
// scaled by 1 / max(||v_t||, 1e-12) (computed by the same sequence as decompression, or taken from
// stored norms) before the max; as each token is decoded, the centroid row of the token a tile ahead is
// prefetched (one row at a time: the whole next tile's rows requested at once stalled on the prefetches).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "codec_kernels.hpp"
#include "vec_avx512.hpp"

namespace edgecolbert {
namespace {

constexpr int kLanes = 16;
constexpr int kNJ = 12;
using Tiles = codec_kernels::DecodedTiles<VecAvx512, kNJ>;

// 16-entry register table: entry x is the weight of the bucket whose bits are the low nbits of x,
// most significant first (nbits <= 4).
inline __m512 weight_table(const CodecView& cv) {
  alignas(64) float t[16];
  const unsigned mask = (1u << cv.nbits) - 1;
  for (unsigned x = 0; x < 16; ++x) t[x] = cv.weights[byte_bucket((x & mask) << (8 - cv.nbits), 0, cv.nbits)];
  return _mm512_load_ps(t);
}

// Lane l holds dim l of 16: byte (l / g) % 4 of its 32-bit word, j = l % g within the byte; its
// bucket bits sit at 8 * byte + 8 - nbits * (j + 1) .. + nbits - 1.
template <int NB>
inline __m512i lane_shifts() {
  constexpr int g = 8 / NB;
  alignas(64) int32_t s[16];
  for (int l = 0; l < 16; ++l) s[l] = 8 * ((l / g) % 4) + 8 - NB * (l % g + 1);
  return _mm512_load_si512(s);
}

// The residual bits of 16 dims, u = 2·NB bytes little-endian, spread so that each lane's word holds
// its byte (NB 1, 2: the one 32-bit word; NB 4: lanes 0-7 the low word, 8-15 the high word).
template <int NB>
inline __m512i spread(uint64_t u) {
  if constexpr (NB == 4) {
    const __m512i lo_hi = _mm512_castsi128_si512(_mm_cvtsi64_si128(static_cast<long long>(u)));
    return _mm512_permutexvar_epi32(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), lo_hi);
  } else {
    return _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(u)));
  }
}

struct Decoder {
  __m512 wtab;
  __m512i shifts;
  const float* byte_table;  // nbits 8
};

// Weights of 16 dims from `nbytes` residual bytes (2·NB for a full chunk; fewer in the tail, whose
// missing lanes are masked off by the caller).
template <int NB>
inline __m512 weights16(const Decoder& dc, const uint8_t* bytes, int64_t nbytes) {
  if constexpr (NB == 8) {
    const __mmask16 m = static_cast<__mmask16>(nbytes >= 16 ? 0xFFFFu : (1u << nbytes) - 1);
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, bytes));
    return _mm512_i32gather_ps(idx, dc.byte_table, 4);
  } else {
    uint64_t u = 0;
    std::memcpy(&u, bytes, static_cast<std::size_t>(std::min<int64_t>(nbytes, 2 * NB)));
    return _mm512_permutexvar_ps(_mm512_srlv_epi32(spread<NB>(u), dc.shifts), dc.wtab);
  }
}

// x = c + r for one token (x has room for dim rounded up to 16; not written when kStore is false);
// returns the squared norm's 16 partial sums (lane l: dims l, l + 16, ...).
template <int NB, bool kStore = true>
inline __m512 decode_ss(const Decoder& dc, const float* c, const uint8_t* bytes, int64_t dim, float* x) {
  constexpr int64_t kBytes16 = 2 * NB;  // residual bytes per 16 dims
  __m512 ss = _mm512_setzero_ps();
  int64_t d = 0;
  for (; d + kLanes <= dim; d += kLanes) {
    const __m512 v = _mm512_add_ps(_mm512_loadu_ps(c + d), weights16<NB>(dc, bytes + d / 16 * kBytes16, kBytes16));
    if constexpr (kStore) _mm512_storeu_ps(x + d, v);
    ss = _mm512_fmadd_ps(v, v, ss);
  }
  if (d < dim) {
    const __mmask16 m = static_cast<__mmask16>((1u << (dim - d)) - 1);
    const __m512 v = _mm512_maskz_add_ps(m, _mm512_maskz_loadu_ps(m, c + d),
                                         weights16<NB>(dc, bytes + d / 16 * kBytes16, (dim - d) * NB / 8));
    if constexpr (kStore) _mm512_mask_storeu_ps(x + d, m, v);
    ss = _mm512_fmadd_ps(v, v, ss);
  }
  return ss;
}

// The horizontal sums of 16 vectors, lane t = sum of v[t], each added in exactly the pairing order of
// _mm512_reduce_add_ps (lanes i + i+8, then + i+4, + i+2, + i+1; float addition is commutative), so a
// norm computed here equals the one decompress computes bit for bit. 15 adds and 31 shuffles for 16
// tokens instead of 16 reductions into scalars.
// Levels 1-2 of the tree for 4 tokens (quarter q of the result: token q's (i + i+8) + (i+4 + i+12)).
inline __m512 hsum4_partial(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
  const __m512 a0 = _mm512_add_ps(_mm512_shuffle_f32x4(v0, v1, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_f32x4(v0, v1, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 a1 = _mm512_add_ps(_mm512_shuffle_f32x4(v2, v3, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_f32x4(v2, v3, _MM_SHUFFLE(3, 2, 3, 2)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)));
}

// Levels 3-4 for four groups of 4 tokens (b[g] from hsum4_partial): lane t = token t's full sum.
inline __m512 hsum16_finish(__m512 b0, __m512 b1, __m512 b2, __m512 b3) {
  const __m512 c0 = _mm512_add_ps(_mm512_shuffle_ps(b0, b1, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 c1 = _mm512_add_ps(_mm512_shuffle_ps(b2, b3, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_ps(b2, b3, _MM_SHUFFLE(3, 2, 3, 2)));
  // lane 4q + j: token 4j + q
  const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(c0, c1, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(c0, c1, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i to_token = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  return _mm512_permutexvar_ps(to_token, r);
}

// Calls f(std::integral_constant<int, NC>) with NC = dim / 16 for the common ColBERT widths (32, 48, 64,
// 96, 128) and NC = 0 for the rest. A kernel taking NC uses dim = 16 * NC as a compile-time constant, so
// decode_ss is unrolled with no loop bounds or tail test per token (the same operations, the same bits).
template <class F>
inline auto by_width(int64_t dim, F&& f) {
  switch (dim % kLanes == 0 ? dim / kLanes : 0) {
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 8: return f(std::integral_constant<int, 8>{});
    default: return f(std::integral_constant<int, 0>{});
  }
}

// Sum of squares of one decoded token (the decompress path).
template <int NB>
inline float decode(const Decoder& dc, const float* c, const uint8_t* bytes, int64_t dim, float* x) {
  return _mm512_reduce_add_ps(decode_ss<NB>(dc, c, bytes, dim, x));
}

Decoder make_decoder(const CodecView& cv) {
  Decoder dc{_mm512_setzero_ps(), _mm512_setzero_si512(), cv.byte_table};
  if (cv.nbits <= 4) dc.wtab = weight_table(cv);
  switch (cv.nbits) {
    case 1: dc.shifts = lane_shifts<1>(); break;
    case 2: dc.shifts = lane_shifts<2>(); break;
    case 4: dc.shifts = lane_shifts<4>(); break;
    default: break;
  }
  return dc;
}

template <int NB>
void decompress_nb(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, void* out, DType ot) {
  const int64_t w = residual_width(cv.dim, NB), dim = cv.dim;
  const Decoder dc = make_decoder(cv);
  std::vector<float> buf(static_cast<std::size_t>(dim + kLanes));
  float* x = buf.data();
  for (int64_t t = 0; t < n; ++t) {
    const float* c = cv.centroids + static_cast<int64_t>(codes[t]) * dim;
    const float nrm = std::max(std::sqrt(decode<NB>(dc, c, packed + t * w, dim, x)), 1e-12f);
    const __m512 den = _mm512_set1_ps(nrm);
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

void decompress(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, void* out, DType ot) {
  switch (cv.nbits) {
    case 1: decompress_nb<1>(cv, codes, packed, n, out, ot); break;
    case 2: decompress_nb<2>(cv, codes, packed, n, out, ot); break;
    case 4: decompress_nb<4>(cv, codes, packed, n, out, ot); break;
    default: decompress_nb<8>(cv, codes, packed, n, out, ot); break;
  }
}

// Norms ||c + r|| of nt <= 16 tokens in one vector (lane t: token t; lanes past nt 0), by the reduction
// score_doc uses (groups of 4 reduced as they are decoded: no spill of 16 partial sums).
template <int NB, int NC>
inline __m512 norms16(const Decoder& dc, const CodecView& cv, const int32_t* codes, const uint8_t* packed, int nt) {
  const int64_t dim = NC > 0 ? NC * kLanes : cv.dim, w = residual_width(dim, NB);
  auto ss_of = [&](int j) {
    return j < nt ? decode_ss<NB, false>(dc, cv.centroids + static_cast<int64_t>(codes[j]) * dim, packed + j * w, dim,
                                         nullptr)
                  : _mm512_setzero_ps();
  };
  __m512 grp[4];
  for (int g = 0; g < 4; ++g)
    grp[g] = 4 * g < nt ? hsum4_partial(ss_of(4 * g), ss_of(4 * g + 1), ss_of(4 * g + 2), ss_of(4 * g + 3))
                        : _mm512_setzero_ps();
  return _mm512_sqrt_ps(hsum16_finish(grp[0], grp[1], grp[2], grp[3]));
}

template <int NB, int NC>
void token_norms_nb(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, float* out) {
  const int64_t w = residual_width(cv.dim, NB);
  const Decoder dc = make_decoder(cv);
  for (int64_t t0 = 0; t0 < n; t0 += 16) {
    const int nt = static_cast<int>(std::min<int64_t>(16, n - t0));
    _mm512_mask_storeu_ps(out + t0, static_cast<__mmask16>((1u << nt) - 1),
                          norms16<NB, NC>(dc, cv, codes + t0, packed + t0 * w, nt));
  }
}

template <int NB>
void token_norms_w(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, float* out) {
  by_width(cv.dim, [&](auto nc) { token_norms_nb<NB, decltype(nc)::value>(cv, codes, packed, n, out); });
}

void token_norms(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, float* out) {
  switch (cv.nbits) {
    case 1: token_norms_w<1>(cv, codes, packed, n, out); break;
    case 2: token_norms_w<2>(cv, codes, packed, n, out); break;
    case 4: token_norms_w<4>(cv, codes, packed, n, out); break;
    default: token_norms_w<8>(cv, codes, packed, n, out); break;
  }
}

template <int NB, int NC>
float score_doc_nb(const float* q, int64_t rows, const CodecView& cv, const int32_t* codes, const uint8_t* packed,
                   const float* norms, int64_t ntok, float* scratch) {
  const int64_t dim = NC > 0 ? NC * kLanes : cv.dim, w = residual_width(dim, NB);
  const Decoder dc = make_decoder(cv);
  const auto s = Tiles::begin(scratch, rows, dim);
  for (int64_t j0 = 0; j0 < ntok; j0 += kNJ) {
    const int nj = static_cast<int>(std::min<int64_t>(kNJ, ntok - j0));
    // Decode the tile; 1 / max(||v||, 1e-12) for its tokens in one vector (sqrt and division are IEEE
    // exact, the sums are decompress's: the same bits as its scalar sequence).
    // (groups of 4 tokens reduced as they are decoded: few live vectors, no spill of 16 partial sums)
    auto ss_of = [&](int j) {
      if (j < nj && j0 + kNJ + j < ntok)  // the centroid row a tile ahead, one token's at a time (no burst)
        simd::prefetch_bytes(cv.centroids + static_cast<int64_t>(codes[j0 + kNJ + j]) * dim,
                             dim * static_cast<int64_t>(sizeof(float)));
      return j < nj ? decode_ss<NB>(dc, cv.centroids + static_cast<int64_t>(codes[j0 + j]) * dim,
                                    packed + (j0 + j) * w, dim, s.x + j * dim)
                    : _mm512_setzero_ps();
    };
    __m512 grp[4];
    for (int g = 0; g < 4; ++g)
      grp[g] = 4 * g < nj ? hsum4_partial(ss_of(4 * g), ss_of(4 * g + 1), ss_of(4 * g + 2), ss_of(4 * g + 3))
                          : _mm512_setzero_ps();
    const __mmask16 live = static_cast<__mmask16>((1u << nj) - 1);
    const __m512 nrm = norms != nullptr ? _mm512_maskz_loadu_ps(live, norms + j0)
                                        : _mm512_sqrt_ps(hsum16_finish(grp[0], grp[1], grp[2], grp[3]));
    const __m512 iv = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_set1_ps(1e-12f), nrm));
    _mm512_mask_storeu_ps(s.inv, live, iv);
    // A norm that overflowed to inf gives 1 / inf = 0: such a row is scored by the definition instead.
    for (__mmask16 z = _mm512_mask_cmp_ps_mask(live, iv, _mm512_setzero_ps(), _CMP_EQ_OQ); z != 0; z &= z - 1) {
      const int j = __builtin_ctz(z);
      float nr = 0.0f;
      _mm_store_ss(&nr, _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_set1_epi32(j), nrm)));
      s.inv[j] = codec_kernels::inv_norm_or_normalise(nr, s.x + j * dim, dim);
    }
    Tiles::score(q, rows, dim, nj, s);
  }
  return Tiles::total(s, rows);
}

template <int NB>
float score_doc_dim(const float* q, int64_t rows, const CodecView& cv, const int32_t* codes, const uint8_t* packed,
                    const float* norms, int64_t ntok, float* scratch) {
  return by_width(cv.dim, [&](auto nc) {
    return score_doc_nb<NB, decltype(nc)::value>(q, rows, cv, codes, packed, norms, ntok, scratch);
  });
}

float score_doc(const float* q, int64_t rows, const CodecView& cv, const int32_t* codes, const uint8_t* packed,
                const float* norms, int64_t ntok, float* scratch) {
  switch (cv.nbits) {
    case 1: return score_doc_dim<1>(q, rows, cv, codes, packed, norms, ntok, scratch);
    case 2: return score_doc_dim<2>(q, rows, cv, codes, packed, norms, ntok, scratch);
    case 4: return score_doc_dim<4>(q, rows, cv, codes, packed, norms, ntok, scratch);
    default: return score_doc_dim<8>(q, rows, cv, codes, packed, norms, ntok, scratch);
  }
}

// Compressed MaxSim through tables (CodecLutOps). Per 16 query rows and residual byte position, a
// 256-entry table of 16-row partial sums (16 KB; 160 KB at dim 48, nbits 2, in L2), so a token costs one
// table read and add per residual byte and 16 rows where score_doc spends dim FMAs (and the broadcasts that
// feed them). The reads are random lines from L2, and L2's bandwidth bounds the kernel, while the L1 load
// port has room: so at nbits 2 the last kLutNibbleBytes bytes of a token are looked up as two nibbles each,
// in 16-entry tables (2 KB per byte, in L1): two L1 reads instead of one L2 line (on a Zen 4, dim 48, nbits 2:
// 0.94 of the time of byte tables for every byte, 4-7% less in the library, 2-6% at dim 64; nibble tables
// for every byte took 1.2x: the load port was then the limit). At nbits 1 (half the L2 reads per dim) they
// measured 2-7% slower at dims 48 and 128, so nbits 1 keeps byte tables for every byte. A document is taken
// kLutChunk tokens at a time: first the chunk's inverse norms, then one pass over it per 16-row block, so that
// each block's tables are the only ones in use.
constexpr int64_t kLutMaxBytes = 16;
constexpr int64_t kLutChunk = 256;
constexpr int64_t kLutNibbleBytes = 2;
constexpr int64_t kLutEntry = 256 * kLanes;      // floats per byte table: 256 values x 16 rows
constexpr int64_t kLutNibbleEntry = 32 * kLanes;  // floats per byte's nibble tables: (high, low) x 16 values x 16 rows

// Residual bytes looked up in byte tables (the rest, the last ones, in nibble tables).
constexpr int64_t lut_byte_tables(int64_t w, int nbits) {
  return nbits != 2 ? w : (w > kLutNibbleBytes ? w - kLutNibbleBytes : 0);
}
constexpr int64_t lut_block_floats(int64_t w, int nbits) {
  return lut_byte_tables(w, nbits) * kLutEntry + (w - lut_byte_tables(w, nbits)) * kLutNibbleEntry;
}

std::size_t lut_floats(int64_t rows, int64_t dim, int nbits) {
  const int64_t w = dim * nbits / 8;
  if ((nbits != 1 && nbits != 2) || w > kLutMaxBytes || dim * nbits % 8 != 0) return 0;
  return static_cast<std::size_t>((rows + kLanes - 1) / kLanes * lut_block_floats(w, nbits));
}

// Block b's tables start at lut + b * lut_block_floats(W, nbits). Byte p < P = lut_byte_tables(W, nbits):
// [p * 4096 + v * 16 + l] = hi[v >> 4] + lo[v & 15]; byte p >= P: [P * 4096 + (p - P) * 512 + h * 256 + x * 16 + l]
// = (hi, lo)[h][x]. hi and lo are the byte's two nibble sums, each sum_j q[16 b + l][d_j] * w[bucket of d_j]
// over its 4 / nbits dims in order (one multiply, then FMAs); q from prepare_query (padded rows 0).
void prepare_lut(const float* prepared, int64_t rows, const CodecView& cv, float* lut) {
  const int64_t dim = cv.dim, w = dim * cv.nbits / 8, blocks = (rows + kLanes - 1) / kLanes;
  const int64_t nbytes = lut_byte_tables(w, cv.nbits);
  const int g = 4 / cv.nbits;  // dims per nibble
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t p = 0; p < w; ++p) {
      __m512 half[2][16];  // [high, low nibble][value]
      for (int h = 0; h < 2; ++h) {
        const float* q = prepared + (b * dim + (2 * p + h) * g) * kLanes;
        for (unsigned v = 0; v < 16; ++v) {
          const unsigned byte = h == 0 ? v << 4 : v;  // the nibble's dims j are the byte's dims h * g + j
          __m512 acc = _mm512_mul_ps(_mm512_load_ps(q), _mm512_set1_ps(cv.weights[byte_bucket(byte, h * g, cv.nbits)]));
          for (int j = 1; j < g; ++j)
            acc = _mm512_fmadd_ps(_mm512_load_ps(q + j * kLanes),
                                  _mm512_set1_ps(cv.weights[byte_bucket(byte, h * g + j, cv.nbits)]), acc);
          half[h][v] = acc;
        }
      }
      float* block = lut + b * lut_block_floats(w, cv.nbits);
      if (p < nbytes) {
        float* out = block + p * kLutEntry;
        for (unsigned v = 0; v < 256; ++v)
          _mm512_store_ps(out + v * kLanes, _mm512_add_ps(half[0][v >> 4], half[1][v & 15]));
      } else {
        float* out = block + nbytes * kLutEntry + (p - nbytes) * kLutNibbleEntry;
        for (int h = 0; h < 2; ++h)
          for (unsigned v = 0; v < 16; ++v) _mm512_store_ps(out + (h * 16 + v) * kLanes, half[h][v]);
      }
    }
}

// <q, c + r> for 16 rows: the centroid row plus one byte-table row per residual byte (the first nb of w),
// then two nibble-table rows per remaining byte, over four accumulators (short dependency chains;
// the order is fixed, so the same token gives the same bits wherever it falls).
inline __m512 lut_dot(const char* tab, const float* qc_row, const uint8_t* bytes, int64_t nb, int64_t w) {
  constexpr std::size_t kPos = kLutEntry * sizeof(float);  // bytes per byte table
  constexpr std::size_t kNib = kLutNibbleEntry * sizeof(float);
  auto row = [&](int64_t i) {
    return _mm512_load_ps(reinterpret_cast<const float*>(tab + static_cast<std::size_t>(i) * kPos +
                                                         (static_cast<std::size_t>(bytes[i]) << 6)));
  };
  const char* nib = tab + static_cast<std::size_t>(nb) * kPos;
  auto half = [&](int64_t i, int h) {  // the high (h 0) or low nibble's row of byte i >= nb
    const unsigned x = h == 0 ? bytes[i] >> 4 : bytes[i] & 15u;
    return _mm512_load_ps(reinterpret_cast<const float*>(nib + static_cast<std::size_t>(i - nb) * kNib +
                                                         static_cast<std::size_t>(h * 16 + x) * 64));
  };
  __m512 a0 = _mm512_loadu_ps(qc_row), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 4 <= nb; i += 4) {
    a0 = _mm512_add_ps(a0, row(i));
    a1 = _mm512_add_ps(a1, row(i + 1));
    a2 = _mm512_add_ps(a2, row(i + 2));
    a3 = _mm512_add_ps(a3, row(i + 3));
  }
  if (i < nb) a0 = _mm512_add_ps(a0, row(i++));
  if (i < nb) a1 = _mm512_add_ps(a1, row(i++));
  if (i < nb) a2 = _mm512_add_ps(a2, row(i++));
  for (; i < w; ++i) {
    a2 = _mm512_add_ps(a2, half(i, 0));
    a3 = _mm512_add_ps(a3, half(i, 1));
  }
  return _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
}

template <int NB, int NC>
bool score_doc_lut_nb(const float* lut, const float* qc, int64_t qc_stride, const int32_t* slot, int64_t rows,
                      const CodecView& cv, const int32_t* codes, const uint8_t* packed, const float* norms,
                      int64_t ntok, float* scratch, float* out) {
  const int64_t dim = NC > 0 ? NC * kLanes : cv.dim;
  // a compile-time byte count where the width is, so lut_dot unrolls
  const int64_t w = NC > 0 ? NC * 2 * NB : residual_width(dim, NB);
  const int64_t nb = lut_byte_tables(w, NB), block_floats = lut_block_floats(w, NB);
  const int64_t blocks = (rows + kLanes - 1) / kLanes;
  const Decoder dc = make_decoder(cv);
  float* inv = scratch;               // [kLutChunk]
  float* rmax = inv + kLutChunk;      // [blocks * 16]
  std::fill_n(rmax, blocks * kLanes, -std::numeric_limits<float>::infinity());
  for (int64_t t0 = 0; t0 < ntok; t0 += kLutChunk) {
    const int64_t n = std::min(kLutChunk, ntok - t0);
    // The chunk's inverse norms first, by score_doc's decode sequence (the same bits), so that every block's
    // pass is the same table loop (decoding them in the first block's loop took 9% longer in all).
    for (int64_t j0 = 0; j0 < n; j0 += kLanes) {
      const int nt = static_cast<int>(std::min<int64_t>(kLanes, n - j0));
      const __mmask16 live = static_cast<__mmask16>((1u << nt) - 1);
      const int64_t t = t0 + j0;
      const __m512 nrm = norms != nullptr ? _mm512_maskz_loadu_ps(live, norms + t)
                                          : norms16<NB, NC>(dc, cv, codes + t, packed + t * w, nt);
      const __m512 iv = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_set1_ps(1e-12f), nrm));
      if (_mm512_mask_cmp_ps_mask(live, iv, _mm512_setzero_ps(), _CMP_EQ_OQ) != 0) return false;  // overflow
      _mm512_storeu_ps(inv + j0, iv);
    }
    for (int64_t b = 0; b < blocks; ++b) {
      const char* tab = reinterpret_cast<const char*>(lut + b * block_floats);
      const float* qcb = qc + b * kLanes;
      __m512 rm = _mm512_loadu_ps(rmax + b * kLanes);
      // NaN similarities are ignored, as in score_doc.
      for (int64_t j = 0; j < n; ++j) {
        const int64_t code = codes[t0 + j];
        const __m512 dot =
            lut_dot(tab, qcb + (slot != nullptr ? slot[code] : code) * qc_stride, packed + (t0 + j) * w, nb, w);
        rm = _mm512_max_ps(_mm512_mul_ps(dot, _mm512_set1_ps(inv[j])), rm);
      }
      _mm512_storeu_ps(rmax + b * kLanes, rm);
    }
  }
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) total += rmax[r];
  *out = static_cast<float>(total);
  return true;
}

bool score_doc_lut(const float* lut, const float* qc, int64_t qc_stride, const int32_t* slot, int64_t rows,
                   const CodecView& cv, const int32_t* codes, const uint8_t* packed, const float* norms, int64_t ntok,
                   float* scratch, float* out) {
  return by_width(cv.dim, [&](auto nc) {
    constexpr int NC = decltype(nc)::value;
    return cv.nbits == 1 ? score_doc_lut_nb<1, NC>(lut, qc, qc_stride, slot, rows, cv, codes, packed, norms, ntok,
                                                   scratch, out)
                         : score_doc_lut_nb<2, NC>(lut, qc, qc_stride, slot, rows, cv, codes, packed, norms, ntok,
                                                   scratch, out);
  });
}

std::size_t lut_scratch_floats(int64_t rows, int64_t dim) {
  (void)dim;
  return static_cast<std::size_t>(kLutChunk + (rows + kLanes - 1) / kLanes * kLanes);
}

const CodecLutOps codec_lut_ops{lut_floats, prepare_lut, score_doc_lut, lut_scratch_floats};

}  // namespace

const CodecOps codec_ops_avx512{decompress, token_norms, Tiles::query_floats, Tiles::prepare_query, score_doc,
                                Tiles::scratch_floats, &codec_lut_ops};

}  // namespace edgecolbert
