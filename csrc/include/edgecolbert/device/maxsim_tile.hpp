// MaxSim arithmetic shared by csrc/cuda/maxsim.cu and the host harness (csrc/tests/test_device_harness.cpp).
//
// Decomposition. A "pair" is (query, document): every document for maxsim / maxsim_topk, or
// candidates[q, c] for maxsim_candidates. A document is cut into work items of kItemTokens tokens
// (ragged CSR, 32k-token documents included, balance across warps); an empty document has no item.
// Query rows are cut into slices of kSliceRows (one row per lane). One warp runs one (slice, item):
// it keeps, per row, the running max over the item's tokens and folds it into
//   rowmax[pair * lq + row]  with an atomic max on max_key(value)
// (max is order-independent and row maxima are never NaN, so the result does not depend on which warp
// ran first). reduce_pair then sums the kept rows' maxima in double in row order -- the scalar
// reference's summation, so a GPU score differs from it only through the dot products.
//
// Bad input never reads out of bounds: offsets are clamped into [0, T] and made non-decreasing, a
// candidate outside [0, n) has no item and scores NaN (the Python layer validates before calling).
#pragma once
#include "edgecolbert/device/hd.hpp"

namespace edgecolbert::device {

constexpr int kSliceRows = 32;     // query rows per warp (lane = row)
constexpr int kTileTokens = 16;    // tokens per staged tile (one WMMA n-tile; the SIMT tile too)
constexpr int64_t kItemTokens = 512;  // tokens per work item: 32 tiles, enough to amortise the query load

struct MaxSimWork {
  const int64_t* offsets = nullptr;  // CSR [n + 1]
  int64_t n = 0;                     // documents
  int64_t T = 0;                     // tokens
  int64_t nq = 0, lq = 0;
  const int64_t* cand = nullptr;     // optional [nq, ncand]
  int64_t ncand = 0;
  const int64_t* item_off = nullptr;  // prefix of items over entries: [n + 1] (no cand) or [nq * ncand + 1]
};

// Entries the items are counted over: documents, or (query, candidate) pairs.
EC_HD int64_t num_entries(const MaxSimWork& w) { return w.cand != nullptr ? w.nq * w.ncand : w.n; }
// Score matrix columns per query.
EC_HD int64_t pairs_per_query(const MaxSimWork& w) { return w.cand != nullptr ? w.ncand : w.n; }

// Tokens [b, e) of document d, clamped; valid is false for a document index outside [0, n).
EC_HD bool doc_range(const MaxSimWork& w, int64_t d, int64_t& b, int64_t& e) {
  if (d < 0 || d >= w.n) {
    b = e = 0;
    return false;
  }
  b = w.offsets[d];
  e = w.offsets[d + 1];
  b = b < 0 ? 0 : (b > w.T ? w.T : b);
  e = e < b ? b : (e > w.T ? w.T : e);
  return true;
}

// Document of entry p (see num_entries).
EC_HD int64_t entry_doc(const MaxSimWork& w, int64_t p) { return w.cand != nullptr ? w.cand[p] : p; }

EC_HD int64_t items_of_tokens(int64_t ntok) { return (ntok + kItemTokens - 1) / kItemTokens; }

EC_HD int64_t entry_items(const MaxSimWork& w, int64_t p) {
  int64_t b, e;
  doc_range(w, entry_doc(w, p), b, e);
  return items_of_tokens(e - b);
}

// Work items of one launch (item_off must be filled).
EC_HD int64_t total_items(const MaxSimWork& w) {
  const int64_t per = w.item_off[num_entries(w)];
  return w.cand != nullptr ? per : w.nq * per;
}

// Largest i in [0, len) with a[i] <= x, for non-decreasing a with a[0] <= x.
EC_HD int64_t last_not_above(const int64_t* a, int64_t len, int64_t x) {
  int64_t lo = 0, hi = len;  // invariant: a[lo] <= x, a[hi] > x (virtually a[len] = +inf)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (a[mid] <= x) lo = mid; else hi = mid;
  }
  return lo;
}

struct ItemPos {
  int64_t q = 0;     // query
  int64_t pair = 0;  // column of the score matrix: q * n + d, or the candidate entry
  int64_t begin = 0, end = 0;  // token rows of this item
};

EC_HD ItemPos locate_item(const MaxSimWork& w, int64_t item) {
  ItemPos pos;
  int64_t entry, chunk;
  if (w.cand != nullptr) {
    entry = last_not_above(w.item_off, w.nq * w.ncand, item);
    chunk = item - w.item_off[entry];
    pos.q = entry / w.ncand;
    pos.pair = entry;
  } else {
    const int64_t per = w.item_off[w.n];
    pos.q = item / per;
    const int64_t r = item - pos.q * per;
    entry = last_not_above(w.item_off, w.n, r);
    chunk = r - w.item_off[entry];
    pos.pair = pos.q * w.n + entry;
  }
  int64_t b, e;
  doc_range(w, entry_doc(w, entry), b, e);
  pos.begin = b + chunk * kItemTokens;
  pos.end = pos.begin + kItemTokens < e ? pos.begin + kItemTokens : e;
  return pos;
}

// One staged tile element: token n (of nvalid starting at rows) and dimension k (of dim) -- zero in
// the padding (tokens past the item's end, dimensions past dim), so padded products are exact zeros
// and padded tokens are excluded from the max by tile_row_max, not by their value.
template <typename U>
EC_HD U stage_elem(const U* rows, int64_t dim, int nvalid, int n, int k) {
  return (n < nvalid && k < dim) ? rows[static_cast<int64_t>(n) * dim + k] : U(0);
}

// The staged query operand of the tensor-core path: row r of the slice (zero when r >= rows kept in the
// slice or k >= dim), rounded to the document dtype t (f16 or bf16) as raw bits.
EC_HD uint16_t stage_query_bits(const void* q, int qt, int64_t dim, int rows, int r, int k, int t) {
  if (r >= rows || k >= dim) return 0;
  const float v = load_f32(q, qt, static_cast<int64_t>(r) * dim + k);
  return t == kF16 ? f32_to_f16(v) : f32_to_bf16(v);
}

// Running max over the first nvalid (<= kTileTokens) entries of one accumulator row, in token order.
// The fixed trip count keeps a register-resident acc_row in registers.
EC_HD float tile_row_max(float best, const float* acc_row, int nvalid) {
  EC_UNROLL
  for (int j = 0; j < kTileTokens; ++j)
    if (j < nvalid) best = running_max(best, acc_row[j]);
  return best;
}

// SIMT tile: acc[j] = <query row at q + qoff, staged float32 token j> for the kTileTokens tokens of the
// tile (row-major [kTileTokens, dim]), each accumulated in float32 in order k = 0..dim-1 (the scalar order).
EC_HD void simt_tile_dots(const void* q, int qt, int64_t qoff, const float* tile, int64_t dim, float* acc) {
  EC_UNROLL
  for (int j = 0; j < kTileTokens; ++j) acc[j] = 0.0f;
  for (int64_t k = 0; k < dim; ++k) {
    const float qk = load_f32(q, qt, qoff + k);
    EC_UNROLL
    for (int j = 0; j < kTileTokens; ++j) acc[j] += qk * tile[j * dim + k];
  }
}

// An order-preserving unsigned key of a non-NaN float (unsigned compare == float compare), so that an
// atomicMax on keys is a max on floats; key 0 is below every float's key, so zeroed memory is "no value".
EC_HD uint32_t max_key(float f) {
  const uint32_t u = f32_bits(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
EC_HD float from_max_key(uint32_t k) { return bits_f32((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k); }

// Is row r of query q kept? (mask [nq, lq], nonzero = keep; null = all kept)
EC_HD bool row_kept(const uint8_t* mask, int64_t lq, int64_t q, int64_t r) {
  return mask == nullptr || mask[q * lq + r] != 0;
}

// Score of pair (q, column c) from the row maxima keys rowmax[(q * per + c) * lq + r]: kept rows summed
// in double in row order. Empty document: 0; candidate outside [0, n): NaN.
EC_HD float reduce_pair(const MaxSimWork& w, const uint8_t* mask, const uint32_t* rowmax, int64_t q, int64_t c) {
  int64_t b, e;
  const int64_t d = w.cand != nullptr ? w.cand[q * w.ncand + c] : c;
  if (!doc_range(w, d, b, e)) return bits_f32(0x7fc00000u);
  if (e == b) return 0.0f;
  const uint32_t* row = rowmax + (q * pairs_per_query(w) + c) * w.lq;
  double total = 0.0;
  for (int64_t r = 0; r < w.lq; ++r)
    if (row_kept(mask, w.lq, q, r)) total += from_max_key(row[r]);
  return static_cast<float>(total);
}

}  // namespace edgecolbert::device
