// MaxSim drivers: prepare queries once, split documents over the pool, call one ISA's score_doc.
// score(q, d) = sum over kept query rows r of max over tokens j of <q_r, d_j>; an empty document
// (or a query with no kept rows) scores 0.
#pragma once
#include "edgecolbert/common.hpp"
#include "edgecolbert/dispatch.hpp"

namespace edgecolbert {

// out [nq, n] row-major.
void maxsim(const KernelPath& path, const QueryBatch& q, const DocSet& docs, float* out, int num_threads);

// Fused top-k per query over all documents: scores and indices [nq, k], best first, ties to the
// lower document index; NaN scores rank below every number. Requires 1 <= k <= docs.n.
void maxsim_topk(const KernelPath& path, const QueryBatch& q, const DocSet& docs, int64_t k, float* scores,
                 int64_t* indices, int num_threads);

// out[i, c] = score(query i, document candidates[i, c]); candidates [nq, ncand], each in [0, n).
void maxsim_candidates(const KernelPath& path, const QueryBatch& q, const DocSet& docs, const int64_t* candidates,
                       int64_t ncand, float* out, int num_threads);

}  // namespace edgecolbert
