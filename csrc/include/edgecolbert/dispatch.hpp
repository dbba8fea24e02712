// Run-time dispatch: CPU features are read once; each compiled ISA variant exports a table of kernel
// entry points; the best variant the CPU can run is chosen once (EDGECOLBERT_ISA caps the choice).
#pragma once
#include <string>
#include <vector>

#include "edgecolbert/common.hpp"

namespace edgecolbert {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512bf16 = false, avx512vnni = false;
  bool avx_vnni = false;  // AVX-VNNI: the VEX-encoded vpdpbusd ymm (Alder Lake and later, Zen 5)
  bool os_avx = false, os_avx512 = false;  // XGETBV: the OS saves ymm / zmm state
  bool neon = false, neon_fp16 = false, neon_bf16 = false, neon_dotprod = false, neon_i8mm = false;
  std::vector<std::string> names() const;  // the flags that are set, for info()
};

const CpuFeatures& cpu_features();

// MaxSim for one ISA. A query is packed once into the variant's layout (rows are query tokens in
// float32, masked rows already removed); score_doc then returns
//   sum_r max(floor, max_j <q_r, doc_j>)  over a document of ntok >= 1 tokens of type doc_dtype.
// scratch must hold scratch_floats(rows, dim) floats for a query of up to `rows` rows (per thread: the
// row maxima between tiles and the widened half-precision tokens). next: the document the caller scores
// after this one (same dim and dtype; tokens == nullptr: none known), whose first tokens a path may
// prefetch while it finishes this one; it never changes the score.
struct NextDoc {
  const void* tokens = nullptr;
  int64_t ntok = 0;
};
struct MaxSimOps {
  std::size_t (*packed_query_bytes)(int64_t rows, int64_t dim, DType doc_dtype);
  void (*pack_query)(const float* q, int64_t rows, int64_t dim, DType doc_dtype, void* out);
  float (*score_doc)(const void* packed, int64_t rows, int64_t dim, const void* doc, DType doc_dtype,
                     int64_t ntok, float floor, float* scratch, NextDoc next);
  std::size_t (*scratch_floats)(int64_t rows, int64_t dim);
};

// Centroid scores for one ISA (centroid search, assignment, k-means, compressed scoring). Rows (query
// or document tokens, float32) are packed kCentroidBlockRows at a time; block_scores then computes for
// one packed block and nc centroids [nc, dim] of type ct, centroid-major:
//   out[j * kCentroidBlockRows + r] = <row r, centroid j>   (padded rows score 0)
// and flags[j] = 1 when some r has out[j * 32 + r] > thr[r] (thr +inf for padded rows); a path may
// skip storing unflagged columns. thr == nullptr: every column is stored, flags (may be null) unset. Every
// (row, centroid) dot product is the same float32 sequence wherever it falls in a tile, so results
// do not depend on how centroids are split into calls. scratch holds scratch_floats(dim) floats.
constexpr int64_t kCentroidBlockRows = 32;
struct CentroidOps {
  std::size_t (*packed_bytes)(int64_t dim);
  void (*pack)(const float* rows, int64_t nrows, int64_t dim, void* out);  // nrows <= 32
  void (*block_scores)(const void* packed, int64_t dim, const void* centroids, DType ct, int64_t nc, const float* thr,
                       float* out, uint8_t* flags, float* scratch);
  std::size_t (*scratch_floats)(int64_t dim);
};

// Centroid scores in int8 (PLAID's candidate generation; centroids.hpp has the quantisation, quantize_rows_i8 and
// quantize_centroids_i8).
// A packed block is 32 rows of int8 as [dim4 / 4][32][4] (row r's dimensions 4g..4g+3 at [g][r]) with
// per-row scales qscale [32] (padded rows: zero bytes, scale 0); centroids c8 [nc, dim4] int8 with
// scales cscale [nc] and csum [nc] = 128 * sum_k c8[j, k]. Every path writes exactly
//   out[j * 32 + r] = float(sum_k q8[r, k] * c8[j, k]) * (qscale[r] * cscale[j])
// (the integer sum is exact, then two float32 roundings in this order), so all paths agree bit for
// bit. With thr [32] (+inf for padded rows), also flags[j] = 1 when some r has out[j * 32 + r] > thr[r],
// else 0 (PLAID's probe then looks only at flagged centroids); thr == nullptr: flags untouched. Every
// column is stored either way. fast: the path has a dot-product instruction (faster than its float32
// scores).
struct CentroidI8Ops {
  bool fast;
  void (*block_scores)(const int8_t* packed, const float* qscale, int64_t dim4, const int8_t* c8, const float* cscale,
                       const int32_t* csum, int64_t nc, float* out, const float* thr, uint8_t* flags);
};

// A residual codec as the kernels see it (see codec.hpp for the formulas and the byte layout).
// byte_table [256][8 / nbits]: for each residual byte value, the bucket weights of the dimensions it
// encodes, in dimension order (built once per call by make_byte_table).
struct CodecView {
  const float* centroids = nullptr;  // [num_centroids, dim]
  int64_t num_centroids = 0, dim = 0;
  int nbits = 0;
  const float* weights = nullptr;     // [2^nbits]
  const float* byte_table = nullptr;  // [256, 8 / nbits]
};

// Residual codec kernels for one ISA.
//  decompress: out[t] = (c + r) / max(||c + r||, 1e-12) for n tokens, float32 or float16 out.
//  token_norms: out[t] = ||c + r|| (not clamped), the same float32 sequence decompress uses on this path.
//  Compressed MaxSim (fused decode + MaxSim): prepare_query packs the kept query rows [rows, dim]
//   (float32) into the path's transposed layout (query_floats(rows, dim) floats); score_doc returns
//     sum_r max_t <q_r, c_t + r_t> / max(n_t, 1e-12),  n_t = norms[t] when norms is given, else ||c_t + r_t||
//   for a document of ntok >= 1 tokens: tiles of tokens are decoded into L1 scratch (never to memory)
//   and run through the MaxSim micro-kernel. scratch holds scratch_floats(rows, dim) floats.
// Compressed MaxSim through lookup tables (nbits 1 and 2), WARP's implicit decompression: with qc[c] =
// <q_r, centroid c> (centroid-major, from centroid_scores_t) and, per 16 query rows and residual byte
// p (8 / nbits dims), a 256-entry table of <q_r, weights of that byte value>, a token scores qc[code] +
// sum_p lut[p][byte_p] with one table read and add per byte instead of dim FMAs, divided by its norm as
// score_doc does. lut_floats returns 0 where the path has no
// table kernel for (nbits, dim). prepare_lut builds the tables from prepare_query's layout. score_doc
// writes the same quantity as CodecOps::score_doc up to float rounding (another summation order) and
// returns false, leaving *out unset, where a token's norm overflows (the caller scores that document
// with CodecOps::score_doc). slot (may be null) maps a code to its qc row.
struct CodecLutOps {
  std::size_t (*lut_floats)(int64_t rows, int64_t dim, int nbits);
  void (*prepare_lut)(const float* prepared, int64_t rows, const CodecView& cv, float* lut);
  bool (*score_doc)(const float* lut, const float* qc, int64_t qc_stride, const int32_t* slot, int64_t rows,
                    const CodecView& cv, const int32_t* codes, const uint8_t* packed, const float* norms,
                    int64_t ntok, float* scratch, float* out);
  std::size_t (*scratch_floats)(int64_t rows, int64_t dim);
};

struct CodecOps {
  void (*decompress)(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, void* out,
                     DType out_dtype);
  void (*token_norms)(const CodecView& cv, const int32_t* codes, const uint8_t* packed, int64_t n, float* out);
  std::size_t (*query_floats)(int64_t rows, int64_t dim);
  void (*prepare_query)(const float* qr, int64_t rows, int64_t dim, float* out);
  float (*score_doc)(const float* prepared, int64_t rows, const CodecView& cv, const int32_t* codes,
                     const uint8_t* packed, const float* norms, int64_t ntok, float* scratch);
  std::size_t (*scratch_floats)(int64_t rows, int64_t dim);
  const CodecLutOps* lut;  // null: no table kernel on this path
};

// The codes of one index segment: int32, or uint16 when the codec has at most 65,536 centroids.
struct PlaidCodes {
  const void* data = nullptr;
  bool u16 = false;
  int64_t n = 0;
};

// A probed centroid of one query token: ranking key (NaN as -inf) and id.
struct PlaidCand {
  float key;
  int32_t id;
};

// PLAID's stage loops for one ISA (the same C++, plaid_kernels.hpp, compiled with each ISA's flags;
// formulas and layouts in plaid.hpp). St is centroid-major [*, stride]; rows are read to mp floats
// (a multiple of 16, mp <= stride), so the loops vectorise with no tail.
//  interact: stage B for docs[j0, j1) into out[j0, j1); a token of a pruned centroid (keep[c] == 0)
//   reads zeros [mp]; false when a code is outside [0, K).
//  probe_rows: feeds centroids [c0, c1) (ids increasing from call to call) to every token's running
//   q best (top [m, q], best first, `filled` entries in so far; thr [mp] the q-th best key per token,
//   +inf past m and until q centroids are in); row [mp] is scratch. Returns the new filled.
struct PlaidOps {
  bool (*interact)(const float* St, int64_t stride, int64_t mp, int64_t m, int64_t K, const uint8_t* keep,
                   const float* zeros, const PlaidCodes& codes, const int64_t* offsets, const int64_t* docs, int64_t j0,
                   int64_t j1, float* out);
  int64_t (*probe_rows)(const float* St, int64_t m, int64_t stride, int64_t mp, int64_t q, int64_t c0, int64_t c1,
                        PlaidCand* top, float* thr, float* row, int64_t filled);
};

struct KernelPath {
  const char* name;    // variant: scalar, avx2, avx2_vnni, avx512, avx512_vnni, avx512_bf16, neon, neon_dotprod, neon_bf16,
                       // neon_i8mm
  const char* family;  // what EDGECOLBERT_ISA names: scalar, avx2, avx512, neon
  bool (*supported)(const CpuFeatures&);
  MaxSimOps maxsim;
  CentroidOps centroids;  // the bf16 variants reuse their base ISA's tables
  CodecOps codec;
  PlaidOps plaid;
  CentroidI8Ops centroids_i8;
};

// Every variant compiled into this build, in increasing preference.
const std::vector<const KernelPath*>& compiled_paths();
// The variants this CPU can run, in increasing preference.
std::vector<const KernelPath*> available_paths();
// The chosen variant: the best available one, capped by EDGECOLBERT_ISA (read once). Throws
// std::invalid_argument naming what the CPU can run when the variable asks for something else.
const KernelPath& default_path();
// Whether `variant` (a variant's name) is compiled into this build and this CPU can run it.
bool variant_supported(const std::string& variant);
// A variant or family by name ("" = default_path()); throws std::invalid_argument when unknown,
// not compiled, or not supported by this CPU.
const KernelPath& path_by_name(const std::string& name);

// Per-ISA tables, defined in csrc/cpu/maxsim_<isa>.cpp.
extern const MaxSimOps maxsim_ops_scalar;
extern const MaxSimOps maxsim_ops_avx2;
extern const MaxSimOps maxsim_ops_avx512;
extern const MaxSimOps maxsim_ops_avx512_bf16;
extern const MaxSimOps maxsim_ops_neon;
extern const MaxSimOps maxsim_ops_neon_bf16;
// Per-ISA tables, defined in csrc/cpu/centroids_<isa>.cpp and codec_<isa>.cpp.
extern const CentroidOps centroid_ops_scalar, centroid_ops_avx2, centroid_ops_avx512, centroid_ops_neon;
extern const CodecOps codec_ops_scalar, codec_ops_avx2, codec_ops_avx512, codec_ops_neon;
// Per-ISA tables, defined in csrc/cpu/plaid_<isa>.cpp.
extern const PlaidOps plaid_ops_scalar, plaid_ops_avx2, plaid_ops_avx512, plaid_ops_neon;
// Defined in csrc/cpu/centroids_scalar.cpp, centroids_avx2vnni.cpp (AVX-VNNI), centroids_avx512vnni.cpp
// (AVX512_VNNI), centroids_neondotprod.cpp (SDOT) and centroids_neoni8mm.cpp (SMMLA).
extern const CentroidI8Ops centroid_i8_ops_scalar, centroid_i8_ops_avx2_vnni, centroid_i8_ops_avx512_vnni;
// The avx2_vnni kernel's source built with AVX512_VNNI's EVEX vpdpbusd ymm (centroids_avx512vnni.cpp), so
// that the tests run that source on AVX-512 hosts; no variant uses it.
extern const CentroidI8Ops centroid_i8_ops_ymm_evex_for_tests;
extern const CentroidI8Ops centroid_i8_ops_neon_dotprod, centroid_i8_ops_neon_i8mm;

}  // namespace edgecolbert
