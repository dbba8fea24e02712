// PLAID candidate stages, ISA-independent drivers (formulas in plaid.hpp).
//
// Stage B transposes the pruned centroid scores once per query into St [K, mp] (centroid-major, mp =
// m rounded up to 16 floats, 64-byte rows), so a document token costs one contiguous row of maxima
// instead of m strided gathers; the transposition is O(K·m), about the cost of the centroid scores
// themselves, and is split over the pool with the documents. The row loop is plain C++ that the
// compiler vectorises at the baseline ISA (max is exact, the sum runs in row order like the scalar
// reference, so the two agree bit for bit). Stage A walks the probed IVF lists once with per-document
// stamps (dense arrays over the segment's documents: O(n) memory, no hashing).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "edgecolbert/plaid.hpp"
#include "edgecolbert/threadpool.hpp"

namespace edgecolbert {
namespace {

constexpr int64_t kLane = 16;        // row padding of St (one 64-byte line per 16 floats)
constexpr int64_t kDocsPerTask = 64;  // candidate documents per pool task
constexpr int64_t kCentsPerTask = 1024;
constexpr int64_t kTile = 64;  // centroids transposed together (64 floats of a row of S: 4 lines)

template <typename Code>
bool interact(const float* St, int64_t mp, int64_t m, int64_t K, const Code* codes, const int64_t* offsets,
              const int64_t* docs, int64_t j0, int64_t j1, float* out) {
  alignas(64) float best[256];
  std::unique_ptr<float[]> heap;
  float* b = best;
  if (mp > 256) {
    heap.reset(new float[mp]);
    b = heap.get();
  }
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t lo = offsets[docs[j]], hi = offsets[docs[j] + 1];
    float sum = 0.0f;
    if (hi > lo) {
      const int64_t c0 = codes[lo];
      if (c0 < 0 || c0 >= K) return false;
      const float* r0 = St + c0 * mp;
      for (int64_t i = 0; i < mp; ++i) b[i] = r0[i];
      for (int64_t t = lo + 1; t < hi; ++t) {
        const int64_t c = codes[t];
        if (c < 0 || c >= K) return false;
        const float* r = St + c * mp;
        for (int64_t i = 0; i < mp; ++i) b[i] = r[i] > b[i] ? r[i] : b[i];
      }
      for (int64_t i = 0; i < m; ++i) sum += b[i];
    }
    out[j] = sum;
  }
  return true;
}

}  // namespace

bool plaid_centroid_interaction(const float* S, int64_t m, int64_t K, float threshold, const PlaidCodes& codes,
                                const int64_t* offsets, const int64_t* docs, int64_t nd, float* out, int num_threads) {
  if (nd == 0) return true;
  if (m == 0) {
    std::fill(out, out + nd, 0.0f);
    return true;
  }
  const int64_t mp = (m + kLane - 1) / kLane * kLane;
  std::unique_ptr<float[]> raw(new float[static_cast<std::size_t>(K * mp) + kLane]);
  float* St = raw.get() + ((64 - reinterpret_cast<uintptr_t>(raw.get()) % 64) % 64) / sizeof(float);
  const int64_t ctasks = (K + kCentsPerTask - 1) / kCentsPerTask;
  parallel_for(ctasks, num_threads, [&](int64_t task, int) {
    // Blocks of kTile centroids: the column maxima and the copy read S row by row (contiguous), the
    // transposed tile is written to kTile rows of St.
    alignas(64) float cmax[kTile];
    for (int64_t c0 = task * kCentsPerTask, cend = std::min(K, c0 + kCentsPerTask); c0 < cend; c0 += kTile) {
      const int64_t nc = std::min(kTile, cend - c0);
      for (int64_t k = 0; k < nc; ++k) cmax[k] = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < m; ++i) {
        const float* src = S + i * K + c0;
        for (int64_t k = 0; k < nc; ++k) cmax[k] = src[k] > cmax[k] ? src[k] : cmax[k];
      }
      for (int64_t i = 0; i < m; ++i) {
        const float* src = S + i * K + c0;
        for (int64_t k = 0; k < nc; ++k) St[(c0 + k) * mp + i] = cmax[k] >= threshold ? src[k] : 0.0f;
      }
      for (int64_t k = 0; k < nc; ++k)
        for (int64_t i = m; i < mp; ++i) St[(c0 + k) * mp + i] = 0.0f;
    }
  });
  std::atomic<bool> ok{true};
  const int64_t tasks = (nd + kDocsPerTask - 1) / kDocsPerTask;
  parallel_for(tasks, num_threads, [&](int64_t task, int) {
    const int64_t j0 = task * kDocsPerTask, j1 = std::min(nd, j0 + kDocsPerTask);
    const bool good = codes.u16 ? interact(St, mp, m, K, static_cast<const uint16_t*>(codes.data), offsets, docs, j0, j1, out)
                                : interact(St, mp, m, K, static_cast<const int32_t*>(codes.data), offsets, docs, j0, j1, out);
    if (!good) ok = false;
  });
  return ok;
}

namespace {

// Ranking key of a score: NaN ranks below every number (and ties with -inf, broken by id).
inline float rank_key(float v) { return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v; }

// Best first, ties to the lower id.
struct Cand {
  float key;
  int32_t id;
  bool operator<(const Cand& o) const { return key > o.key || (key == o.key && id < o.id); }
};

// The q best entries of one row, best first, into top[0..q).
void row_top(const float* row, int64_t K, int64_t q, Cand* top) {
  if (q > 64) {  // partial sort of every index: O(K log q), no worst case from the insertion below
    std::vector<Cand> all(static_cast<std::size_t>(K));
    for (int64_t c = 0; c < K; ++c) all[c] = {rank_key(row[c]), static_cast<int32_t>(c)};
    std::partial_sort(all.begin(), all.begin() + q, all.end());
    std::copy(all.begin(), all.begin() + q, top);
    return;
  }
  for (int64_t c = 0; c < q; ++c) top[c] = {rank_key(row[c]), static_cast<int32_t>(c)};
  std::sort(top, top + q);
  // Later ids lose ties, so only a strictly greater score enters. Blocks of 16 are skipped with one
  // vectorisable any-greater test against the running threshold (NaN compares false: never enters).
  float thr = top[q - 1].key;
  auto enter = [&](int64_t c) {
    const float v = row[c];
    if (!(v > thr)) return;
    int64_t j = q - 1;
    while (j > 0 && top[j - 1].key < v) {
      top[j] = top[j - 1];
      --j;
    }
    top[j] = {v, static_cast<int32_t>(c)};
    thr = top[q - 1].key;
  };
  int64_t c = q;
  for (; c < K && c % 16 != 0; ++c) enter(c);
  for (; c + 16 <= K; c += 16) {
    bool any = false;
    for (int k = 0; k < 16; ++k) any |= row[c + k] > thr;
    if (any)
      for (int k = 0; k < 16; ++k) enter(c + k);
  }
  for (; c < K; ++c) enter(c);
}

}  // namespace

void plaid_probe(const float* S, int64_t m, int64_t K, int64_t p, int32_t* cells, float* cell_scores, float* miss) {
  const int64_t q = std::min(p + 1, K);
  std::vector<Cand> top(static_cast<std::size_t>(q));
  for (int64_t i = 0; i < m; ++i) {
    const float* row = S + i * K;
    row_top(row, K, q, top.data());
    float lowest = 0.0f;
    bool any_finite = false;
    for (int64_t j = 0; j < p; ++j) {
      cells[i * p + j] = top[j].id;
      const float v = row[top[j].id];
      cell_scores[i * p + j] = v;
      if (std::isfinite(v)) {
        lowest = any_finite ? std::min(lowest, v) : v;
        any_finite = true;
      }
    }
    // What an unprobed centroid could give at most; a non-finite one (NaN or -inf scores) is replaced
    // by the lowest finite probed score so that stage A's gains stay finite and >= 0.
    float ms = 0.0f;
    if (p < K) ms = std::isfinite(row[top[p].id]) ? row[top[p].id] : (any_finite ? lowest : 0.0f);
    miss[i] = ms;
  }
}

PlaidStageA plaid_stage_a(const int32_t* cells, const float* cell_scores, const float* miss, int64_t m, int64_t p,
                          const int32_t* ivf, const int64_t* ivf_offsets, int64_t num_docs, const uint8_t* allowed) {
  PlaidStageA r;
  // The dense per-document arrays cover only the documents the probed lists name (checked against
  // num_docs first), so memory follows the data actually read, never a caller's num_docs alone.
  int64_t span = 0;
  for (int64_t e = 0; e < m * p; ++e)
    for (int64_t x = ivf_offsets[cells[e]]; x < ivf_offsets[cells[e] + 1]; ++x) {
      const int64_t d = ivf[x];
      if (d < 0 || d >= num_docs) {
        r.bad_ivf = true;
        return r;
      }
      span = std::max(span, d + 1);
    }
  // stamp[d] = 1 + the last query token that touched d (0: never); cur[d] = that token's gain so far.
  std::vector<int32_t> stamp(static_cast<std::size_t>(span), 0);
  std::vector<float> cur(static_cast<std::size_t>(span));
  std::vector<double> acc(static_cast<std::size_t>(span));
  std::vector<int64_t> touched;
  double base = 0.0;
  for (int64_t i = 0; i < m; ++i) base += miss[i];
  for (int64_t i = 0; i < m; ++i) {
    const int32_t st = static_cast<int32_t>(i + 1);
    for (int64_t j = 0; j < p; ++j) {
      const int32_t cell = cells[i * p + j];
      const float gain = cell_scores[i * p + j] - miss[i];
      for (int64_t e = ivf_offsets[cell]; e < ivf_offsets[cell + 1]; ++e) {
        const int64_t d = ivf[e];  // in [0, span): checked above
        if (stamp[d] != st) {
          if (stamp[d] == 0) touched.push_back(d);
          stamp[d] = st;
          cur[d] = gain;
          acc[d] += gain;
        } else if (gain > cur[d]) {  // cells not sorted by score: keep the best probe of this token
          acc[d] += static_cast<double>(gain) - cur[d];
          cur[d] = gain;
        }
      }
    }
  }
  r.docs.reserve(touched.size());
  r.est.reserve(touched.size());
  for (int64_t d : touched) {
    if (allowed && !allowed[d]) continue;
    r.docs.push_back(d);
    r.est.push_back(static_cast<float>(base + acc[d]));
  }
  return r;
}

}  // namespace edgecolbert
