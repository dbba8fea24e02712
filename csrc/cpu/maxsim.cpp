// MaxSim drivers (ISA-independent): queries are widened to float32 with masked rows dropped, packed
// once per call into the chosen variant's layout, and documents are split into chunks that the pool
// hands out dynamically. Every (query, document) score is computed by the same code whatever the
// thread count, so results do not depend on it.
#include "edgecolbert/maxsim.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "edgecolbert/threadpool.hpp"
#include "rank_order.hpp"

namespace edgecolbert {
namespace {

constexpr std::size_t kAlign = 64;

struct PreparedQueries {
  std::vector<int64_t> rows;
  std::vector<std::size_t> offset;
  std::unique_ptr<uint8_t[]> storage;
  uint8_t* base = nullptr;
  const void* packed(int64_t i) const { return base + offset[i]; }
};

PreparedQueries prepare(const KernelPath& path, const QueryBatch& q, DType doc_dtype) {
  PreparedQueries p;
  p.rows.resize(q.nq);
  p.offset.resize(q.nq);
  std::size_t total = 0;
  for (int64_t i = 0; i < q.nq; ++i) {
    int64_t kept = q.lq;
    if (q.mask != nullptr) {
      kept = 0;
      for (int64_t r = 0; r < q.lq; ++r) kept += q.mask[i * q.lq + r] != 0;
    }
    p.rows[i] = kept;
    p.offset[i] = total;
    total += (path.maxsim.packed_query_bytes(kept, q.dim, doc_dtype) + kAlign - 1) / kAlign * kAlign;
  }
  p.storage.reset(new uint8_t[total + kAlign]);
  p.base = p.storage.get() + (kAlign - reinterpret_cast<uintptr_t>(p.storage.get()) % kAlign) % kAlign;
  std::vector<float> rowsf(static_cast<std::size_t>(q.lq * q.dim));
  for (int64_t i = 0; i < q.nq; ++i) {
    const int64_t w = kept_rows(q, i, rowsf.data());
    path.maxsim.pack_query(rowsf.data(), w, q.dim, doc_dtype, p.base + p.offset[i]);
  }
  return p;
}

struct Scorer {
  const KernelPath& path;
  const PreparedQueries& pq;
  const DocSet& docs;
  int64_t dim;

  const void* tokens(int64_t di) const {
    return static_cast<const uint8_t*>(docs.tokens) + static_cast<std::size_t>(docs.begin[di] * dim) * dtype_size(docs.dtype);
  }

  // Query qi against document di; next_di: the document this thread scores next (-1: none), whose first
  // tokens the kernel prefetches (MaxSimOps::score_doc).
  float operator()(int64_t qi, int64_t di, float* scratch, int64_t next_di) const {
    const int64_t ntok = docs.end[di] - docs.begin[di];
    const int64_t rows = pq.rows[qi];
    if (ntok <= 0 || rows == 0) return 0.0f;
    const float floor = (docs.floor_zero != nullptr && docs.floor_zero[di] != 0)
                            ? 0.0f
                            : -std::numeric_limits<float>::infinity();
    NextDoc next;
    if (next_di >= 0) next = {tokens(next_di), docs.end[next_di] - docs.begin[next_di]};
    return path.maxsim.score_doc(pq.packed(qi), rows, dim, tokens(di), docs.dtype, ntok, floor, scratch, next);
  }

  // In the drivers' order (each document by every query, then the next): what follows (d, i) in [lo, hi).
  static int64_t next_in(int64_t d, int64_t i, int64_t nq, int64_t hi) {
    return i + 1 < nq ? d : d + 1 < hi ? d + 1 : -1;
  }
};

// Per thread; a query has at most lq rows.
std::vector<std::vector<float>> make_scratch(const KernelPath& path, int num_threads, const QueryBatch& q) {
  return std::vector<std::vector<float>>(static_cast<std::size_t>(num_threads),
                                         std::vector<float>(path.maxsim.scratch_floats(q.lq, q.dim) + 16));
}

// Enough chunks that the dynamic schedule balances ragged documents, few enough to stay cheap.
int64_t chunk_size(int64_t n, int num_threads) {
  return std::max<int64_t>(1, n / (static_cast<int64_t>(num_threads) * 16));
}

using Entry = Ranked<int64_t>;  // rank_order.hpp: the order of every native top-k
constexpr bool (*better)(const Entry&, const Entry&) = ranks_before<int64_t>;

}  // namespace

void maxsim(const KernelPath& path, const QueryBatch& q, const DocSet& docs, float* out, int num_threads) {
  if (q.nq == 0 || docs.n == 0) return;
  const PreparedQueries pq = prepare(path, q, docs.dtype);
  const Scorer score{path, pq, docs, q.dim};
  auto scratch = make_scratch(path, num_threads, q);
  const int64_t chunk = chunk_size(docs.n, num_threads);
  const int64_t ntasks = (docs.n + chunk - 1) / chunk;
  parallel_for(ntasks, num_threads, [&](int64_t t, int worker) {
    float* s = scratch[worker].data();
    const int64_t lo = t * chunk, hi = std::min(docs.n, lo + chunk);
    for (int64_t d = lo; d < hi; ++d)
      for (int64_t i = 0; i < q.nq; ++i) out[i * docs.n + d] = score(i, d, s, Scorer::next_in(d, i, q.nq, hi));
  });
}

void maxsim_topk(const KernelPath& path, const QueryBatch& q, const DocSet& docs, int64_t k, float* scores,
                 int64_t* indices, int num_threads) {
  if (q.nq == 0) return;
  const PreparedQueries pq = prepare(path, q, docs.dtype);
  const Scorer score{path, pq, docs, q.dim};
  auto scratch = make_scratch(path, num_threads, q);
  // One bounded heap per (participant, query); the worst kept entry sits on top.
  std::vector<std::vector<Entry>> heaps(static_cast<std::size_t>(num_threads * q.nq));
  for (auto& h : heaps) h.reserve(static_cast<std::size_t>(k));
  const int64_t chunk = chunk_size(docs.n, num_threads);
  const int64_t ntasks = (docs.n + chunk - 1) / chunk;
  parallel_for(ntasks, num_threads, [&](int64_t t, int worker) {
    float* s = scratch[worker].data();
    const int64_t lo = t * chunk, hi = std::min(docs.n, lo + chunk);
    for (int64_t d = lo; d < hi; ++d) {
      for (int64_t i = 0; i < q.nq; ++i) {
        const Entry e{score(i, d, s, Scorer::next_in(d, i, q.nq, hi)), d};
        auto& h = heaps[static_cast<std::size_t>(worker * q.nq + i)];
        if (static_cast<int64_t>(h.size()) < k) {
          h.push_back(e);
          std::push_heap(h.begin(), h.end(), better);
        } else if (better(e, h.front())) {
          std::pop_heap(h.begin(), h.end(), better);
          h.back() = e;
          std::push_heap(h.begin(), h.end(), better);
        }
      }
    }
  });
  std::vector<Entry> all;
  for (int64_t i = 0; i < q.nq; ++i) {
    all.clear();
    for (int w = 0; w < num_threads; ++w) {
      const auto& h = heaps[static_cast<std::size_t>(w * q.nq + i)];
      all.insert(all.end(), h.begin(), h.end());
    }
    std::partial_sort(all.begin(), all.begin() + k, all.end(), better);
    for (int64_t j = 0; j < k; ++j) {
      scores[i * k + j] = all[j].score;
      indices[i * k + j] = all[j].id;
    }
  }
}

void maxsim_candidates(const KernelPath& path, const QueryBatch& q, const DocSet& docs, const int64_t* candidates,
                       int64_t ncand, float* out, int num_threads) {
  const int64_t pairs = q.nq * ncand;
  if (pairs == 0) return;
  const PreparedQueries pq = prepare(path, q, docs.dtype);
  const Scorer score{path, pq, docs, q.dim};
  auto scratch = make_scratch(path, num_threads, q);
  const int64_t chunk = chunk_size(pairs, num_threads);
  const int64_t ntasks = (pairs + chunk - 1) / chunk;
  parallel_for(ntasks, num_threads, [&](int64_t t, int worker) {
    float* s = scratch[worker].data();
    const int64_t lo = t * chunk, hi = std::min(pairs, lo + chunk);
    for (int64_t p = lo; p < hi; ++p) out[p] = score(p / ncand, candidates[p], s, p + 1 < hi ? candidates[p + 1] : -1);
  });
}

}  // namespace edgecolbert
