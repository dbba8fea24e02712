// The search of a whole index, one call per query batch (issue 21): every segment in the same call (one
// candidate pool, one stage B selection, one re-rank), an optional mask of the positions a search may return
// (a caller's subset, tombstones, or both), and the rule that widens the probe when the mask leaves too few
// candidates. Three modes answer a batch:
//
//  plaid       the PLAID stages (plaid.hpp), per query:
//                St (centroid_scores_t, or _i8) -> probe p = nprobe -> stage A in every segment (allowed
//                documents only) -> the ndocs best estimates; while the pool is short (below), p *= 4 (at
//                most K) and stage A again -> stage B when more than rerank remain -> the rerank best ->
//                exact MaxSim from the codes (fused decode, as maxsim_compressed's decoding kernel) -> top k.
//              Pool rule: with a subset, the probe widens until stage A found min(ndocs, allowed documents)
//              candidates (a filter costs no recall inside it); without one it never widens: tombstones drop
//              their documents from the lists and change nothing else, so a search after deletions is the
//              search of the same index compacted. A filled subset (PlaidIndex::fill) never widens either:
//              plaid_stage_a_fill makes every allowed document a candidate, those no probed list holds at
//              the floor estimate, so that stage B ranks them instead of a wider probe finding them.
//  selective   every allowed document scored exactly from its codes (a subset of at most 4·ndocs: about the
//              work of one re-rank, and nothing in it can be missed) -> top k.
//  exhaustive  MaxSim (maxsim.hpp) of every allowed document's decoded tokens (PlaidSegment::decoded) -> top k.
//
// Orders: a selection keeps the n best by value descending with NaN as -inf, ties to the lower position; the
// top k is score descending with NaN after every number (-inf included), ties to the lower position. Both are
// total orders over distinct positions, so where the candidates are split (segments, shards, threads) never
// changes what is kept. Positions are global: segment s holds [base_s, base_s + n_s), base_0 = 0.
//
// The stage loop of the plaid mode (plaid_drive) is written once, against an abstract source of the three
// stages (PlaidSource). PlaidIndexSource runs them natively over an index's segments; the sharded coordinator
// (python/edgecolbert_native/distributed/sharded/) runs them over its shards from Python through a pybind11
// trampoline (csrc/bindings/plaid.cpp). The widening rule, the selections and the top k exist only here.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "edgecolbert/centroids.hpp"
#include "edgecolbert/common.hpp"
#include "edgecolbert/dispatch.hpp"
#include "edgecolbert/plaid.hpp"

namespace edgecolbert {

// One segment of an index. Every range the search reads is checked where it is read (a bad one is a
// PlaidFault, never an out-of-bounds read): IVF ranges of probed cells, IVF document numbers, candidates'
// CSR ranges and codes.
struct PlaidSegment {
  PlaidCodes codes;
  const uint8_t* residuals = nullptr;  // [codes.n, dim * nbits / 8]
  const int64_t* offsets = nullptr;    // [n+1], CSR over codes
  int64_t n = 0;
  const int32_t* ivf = nullptr;          // [ivf_len]
  const int64_t* ivf_offsets = nullptr;  // [K+1]
  int64_t ivf_len = 0;
  const float* decoded = nullptr;  // [codes.n, dim] float32 decoded tokens: the exhaustive mode's input
  // Optional: each document's distinct codes (plaid_distinct_codes), what stage B then reads instead of codes
  // (the same scores; each centroid row read once per document). distinct_offsets [n+1] is a CSR over them.
  PlaidCodes distinct;
  const int64_t* distinct_offsets = nullptr;
};

// An index: its segments in position order and the positions a search may return.
struct PlaidIndex {
  const PlaidSegment* segments = nullptr;
  int64_t num_segments = 0;
  const uint8_t* allowed = nullptr;  // [positions], nonzero: may be returned; nullptr: every position
  bool subset = false;               // allowed holds a caller's subset (the pool rule above)
  bool fill = false;                 // stage A fills the pool with every allowed document (plaid_stage_a_fill)

  int64_t positions() const;
  int64_t num_allowed() const;
};

struct PlaidSearchParams {
  int64_t nprobe = 1, ndocs = 256, rerank = 64, k = 10;
  float threshold = -std::numeric_limits<float>::infinity();  // stage B pruning; -inf keeps every centroid
};

// Optional int8 centroids (centroids.hpp, quantize_rows_i8): when given, the centroid scores that drive
// the probe and stage B are the int8 scores of the quantised query rows (centroid_scores_t_i8); a
// query with a non-finite value falls back to float32 scores. The re-rank is exact either way.
struct PlaidCentroidsI8 {
  const int8_t* c8 = nullptr;  // [K, dim4]
  const float* scale = nullptr;
  const int32_t* csum = nullptr;
  int64_t dim4 = 0;
};

enum class PlaidFault { none, bad_ivf_range, bad_ivf_doc, bad_doc_range, bad_code, bad_position, bad_query };

// What went wrong, and in which segment (bad_position: a document given to a source is not a position;
// bad_query: a query number given to a source is not one of its batch).
struct PlaidStatus {
  PlaidFault fault = PlaidFault::none;
  int64_t segment = 0;
  bool ok() const { return fault == PlaidFault::none; }
};

// Candidates of several queries, CSR: query j's are docs / values [offsets[j], offsets[j+1]).
struct PlaidPools {
  std::vector<int64_t> offsets, docs;  // docs: global positions
  std::vector<float> values;           // stage A estimates
  std::vector<int64_t> count;          // per query: allowed documents in the probed lists
};

// The three stages of the plaid mode, for the queries of one batch (indices into it; each has kept rows).
// Documents are global positions, given as CSR by query (query j's are docs [offsets[j], offsets[j+1])).
class PlaidSource {
 public:
  virtual ~PlaidSource() = default;
  // Query queries[j] probed at probes[j] (>= 1; more than K probes every centroid): at least its ndocs best
  // allowed candidates under the selection order (any superset of them: the driver selects again), their
  // estimates, and the counts.
  virtual PlaidStatus candidates(const std::vector<int64_t>& queries, const std::vector<int64_t>& probes,
                                 int64_t ndocs, PlaidPools& out) = 0;
  // Stage B scores of the documents, out [docs.size()].
  virtual PlaidStatus approximate(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                                  const std::vector<int64_t>& docs, std::vector<float>& out) = 0;
  // Exact MaxSim of the documents from their codes, out [docs.size()] (0 for a query with no kept row).
  virtual PlaidStatus exact(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                            const std::vector<int64_t>& docs, std::vector<float>& out) = 0;
};

// What the driver needs besides the source: the parameters and the collection's counts.
struct PlaidDriveParams {
  int64_t nprobe = 1, ndocs = 256, rerank = 64, k = 10;
  int64_t num_centroids = 0;  // K: the probe widens up to it
  int64_t num_allowed = 0;    // documents a search may return
  bool subset = false;        // the mask holds a caller's subset (the pool rule)
};

// Each query's hits, best first (at most k; none for a query with no candidate), CSR in the order of the
// queries given: query j's are scores / pos [offsets[j], offsets[j+1]).
struct PlaidHits {
  std::vector<int64_t> offsets, pos;
  std::vector<float> scores;
};

// The plaid mode's stage loop for the queries given (all at once, stage by stage: a source over shards
// answers each stage for every query in one round). Errors of the source are returned (or thrown, by a
// source that throws).
PlaidStatus plaid_drive(PlaidSource& source, const std::vector<int64_t>& queries, const PlaidDriveParams& prm,
                        PlaidHits& hits);

// Hits as dense rows: width = the longest list of hits (>= 1); scores / pos [nq, width] get query
// queries[j]'s hits in row queries[j], -inf / -1 past them and in the rows of queries not listed.
int64_t plaid_hits_width(const PlaidHits& hits);
void plaid_hits_dense(const PlaidHits& hits, const std::vector<int64_t>& queries, int64_t nq, int64_t width,
                      float* scores, int64_t* pos);

// The stages over an index's segments, natively. q: nq queries [lq, dim] float32 with an optional mask
// [nq, lq]; cv: the codec (its centroids float32 [K, dim]). Every pointer is borrowed for the source's
// life. A query's centroid scores are computed once and kept while the calls ask for the same query
// (plaid_search drives one query at a time), so stages of one query never score it twice.
class PlaidIndexSource final : public PlaidSource {
 public:
  PlaidIndexSource(const KernelPath& path, const QueryBatch& q, const CodecView& cv, const PlaidIndex& index,
                   const PlaidCentroidsI8* ci8, float threshold, int num_threads);
  ~PlaidIndexSource() override;
  PlaidStatus candidates(const std::vector<int64_t>& queries, const std::vector<int64_t>& probes, int64_t ndocs,
                         PlaidPools& out) override;
  PlaidStatus approximate(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                          const std::vector<int64_t>& docs, std::vector<float>& out) override;
  PlaidStatus exact(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                    const std::vector<int64_t>& docs, std::vector<float>& out) override;
  // The selective mode: every allowed document scored exactly for every query, the k best into
  // out_scores / out_pos [nq, k] (rows filled by the caller past the hits).
  PlaidStatus score_allowed(int64_t k, float* out_scores, int64_t* out_pos);
  int64_t kept(int64_t qi) const;  // query qi's kept rows

 private:
  struct State;
  std::unique_ptr<State> s_;
};

enum class PlaidMode { plaid, selective, exhaustive };

// A batch in one call. Out: scores / positions [nq, k], best first, -inf / -1 past the hits. The plaid mode
// returns no hits for a query with no kept row; the others score every allowed document 0 for it.
PlaidStatus plaid_search(const KernelPath& path, const QueryBatch& q, const CodecView& cv, const PlaidIndex& index,
                         const PlaidSearchParams& prm, PlaidMode mode, const PlaidCentroidsI8* ci8, float* out_scores,
                         int64_t* out_pos, int num_threads);

}  // namespace edgecolbert
