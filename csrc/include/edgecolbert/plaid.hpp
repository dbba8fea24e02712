// PLAID's candidate stages (Santhanam et al., 2022, "PLAID"; WARP, Scheerer et al., 2025), one query
// at a time, on one index segment. m = query tokens kept, K = centroids.
//
//  Stage A (candidate generation from the IVF alone, WARP's missing-similarity estimate):
//    for each query token i, cells[i*p .. i*p+p) are its probed centroids with scores cell_scores, and
//    miss[i] is its (p+1)-th best centroid score (what an unprobed centroid could give at most).
//    A document in some probed list gets
//      est(d) = Σ_i (max over probed cells c of token i whose list holds d of s_ic, or miss[i] when none does)
//    (callers pass miss[i] <= every probed score of token i, so this is also max(miss[i], ...)). Only documents with allowed[d]
//    (when given) are returned, in first-touch order.
//
//  Stage B (centroid interaction): for candidate documents d with code lists codes[offsets[d] ..
//  offsets[d+1]),
//      approx(d) = Σ_i max_t S'[i, code_t],  S'[i, c] = S[i, c] if max_i S[i, c] >= threshold else 0
//    (PLAID's centroid pruning; threshold -inf keeps every centroid); an empty document scores 0.
//    The per-token maxima are summed in float32 in row order i = 0..m-1, so results do not depend on
//    the thread count or on the ISA.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "edgecolbert/common.hpp"
#include "edgecolbert/dispatch.hpp"

namespace edgecolbert {

// Ranking key of a score in every PLAID selection: NaN ranks below every number (and ties with -inf,
// broken by id or document). For the ISA-independent drivers; plaid_kernels.hpp has its own copy.
inline float plaid_rank_key(float v) { return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v; }

struct PlaidStageA {
  std::vector<int64_t> docs;  // segment-local document numbers
  std::vector<float> est;
  bool bad_ivf = false;  // an IVF entry named a document outside [0, num_docs): nothing returned
};

// The search stages read the centroid scores centroid-major, as centroid_scores_t writes them:
// St[c * stride + i] = S[i, c] for the m kept query tokens i < m <= stride (rows past m are ignored),
// so that a document token's scores for every query token are one contiguous row.
//
// Probing: for each query token i, its p best centroids, best first (ties to the lower id), into
// cells [m, p] / cell_scores [m, p], and miss[i] = the (p+1)-th best score (0 when p >= K: nothing is
// unprobed). NaN scores rank below every number. Requires 1 <= p <= K. With min(p + 1, K) <= kPlaidFeedMax:
// one pass over St with a running threshold per token (a centroid is looked at only when it beats some
// token's current p+1-th best; PlaidProbe), for larger p a partial sort per token.
void plaid_probe(const KernelPath& path, const float* St, int64_t m, int64_t K, int64_t stride, int64_t p,
                 int32_t* cells, float* cell_scores, float* miss);

constexpr int64_t kPlaidFeedMax = 64;

// The one-pass probe fed in pieces, so that a caller can probe each slice of St right after computing
// it (while it is in cache): feed centroid ranges [c0, c1) in increasing order, then finish once every
// centroid 0..K-1 was fed to this probe or to one merged into it. Probes fed disjoint ranges (one per
// thread) merge exactly: a token's best is a total order (key, then id). St is the same array throughout
// (finish reads the winners' scores from it). Requires min(p + 1, K) <= kPlaidFeedMax.
class PlaidProbe {
 public:
  PlaidProbe(const KernelPath& path, int64_t m, int64_t K, int64_t p);
  void feed(const float* St, int64_t stride, int64_t c0, int64_t c1);
  // Once every token's list is full (full()), a centroid whose scores beat no token's threshold can
  // never enter, and thresholds only rise: feed_flagged is feed over the centroids c0 + j with flags[j]
  // set, where flags compare [c0, c1) against thresholds() taken after the last feed (or lower ones;
  // centroid_scores_t_i8 computes them with the scores). n >= m entries, +inf from m on.
  bool full() const { return filled_ == q_; }
  void thresholds(float* thr, int64_t n) const;
  void feed_flagged(const float* St, int64_t stride, int64_t c0, int64_t c1, const uint8_t* flags);
  void merge(const PlaidProbe& other);  // same m, K, p
  void finish(const float* St, int64_t stride, int32_t* cells, float* cell_scores, float* miss) const;

 private:
  const KernelPath& path_;
  int64_t m_, K_, p_, q_, mp_, filled_ = 0;
  std::vector<PlaidCand> top_;
  std::vector<float> thr_, row_;
};

// ivf_offsets [K+1] and every probed cell are checked by the caller (cells in [0, K), the probed
// ranges inside ivf); document numbers read from ivf are checked here. The documents allowed drops are
// skipped as they are read.
PlaidStageA plaid_stage_a(const int32_t* cells, const float* cell_scores, const float* miss, int64_t m, int64_t p,
                          const int32_t* ivf, const int64_t* ivf_offsets, int64_t num_docs, const uint8_t* allowed);

// Stage A with the pool filled: plaid_stage_a (allowed documents only, skipped as the lists are read), then
// every other allowed document at the floor estimate Σ_i miss[i] (summed in float64 in token order, as stage
// A's own base: what it gives a document when no probed cell holds it), so that every allowed document is
// a candidate and a short pool never needs a wider probe. Candidates in no particular order.
PlaidStageA plaid_stage_a_fill(const int32_t* cells, const float* cell_scores, const float* miss, int64_t m, int64_t p,
                               const int32_t* ivf, const int64_t* ivf_offsets, int64_t num_docs, const uint8_t* allowed);

// St centroid-major (above); docs [nd] segment-local, each with offsets[d] <= offsets[d+1] <= codes.n
// (checked by the caller); out [nd]. Codes are range-checked here: returns false (out unspecified)
// when a candidate's code is outside [0, K).
bool plaid_centroid_interaction(const KernelPath& path, const float* St, int64_t m, int64_t K, int64_t stride,
                                float threshold, const PlaidCodes& codes, const int64_t* offsets, const int64_t* docs,
                                int64_t nd, float* out, int num_threads);

// The re-rank's input: the codes (widened to int32) and residual rows (width bytes each) of docs [nd]
// (segment-local, CSR ranges checked by the caller), concatenated in the order given; out_offsets
// [nd+1] from 0. out_codes / out_residuals hold out_offsets[nd] entries / rows.
void plaid_gather(const PlaidCodes& codes, const uint8_t* residuals, int64_t width, const int64_t* offsets,
                  const int64_t* docs, int64_t nd, int32_t* out_codes, uint8_t* out_residuals, int64_t* out_offsets);

// Stage B's input per document: its distinct codes, ascending. Stage B takes a maximum over a document's
// tokens, which is exact and order-free, so it scores a document the same from these as from all its codes
// (bit for bit) while reading each centroid's row once: on real text half of a document's tokens repeat a
// centroid of the same document (docs/index.md, "Search"). offsets [n+1] is a CSR over codes (checked by the
// caller); out_offsets [n+1] receives the CSR over the result, which has out_offsets[n] entries and the
// codes' type. Documents are split over num_threads threads.
template <typename Code>
void plaid_distinct_codes(const Code* codes, const int64_t* offsets, int64_t n, std::vector<Code>& out,
                          int64_t* out_offsets, int num_threads);

// The plain reference of stage B on S [m, K] row-major (no threads): what the tests compare against.
bool plaid_centroid_interaction_scalar(const float* S, int64_t m, int64_t K, float threshold, const PlaidCodes& codes,
                                       const int64_t* offsets, const int64_t* docs, int64_t nd, float* out);
// The same reference read from St [K, stride] centroid-major (transposed to S first), for the bindings'
// reference= switch.
bool plaid_centroid_interaction_reference(const float* St, int64_t m, int64_t K, int64_t stride, float threshold,
                                          const PlaidCodes& codes, const int64_t* offsets, const int64_t* docs,
                                          int64_t nd, float* out);

}  // namespace edgecolbert
