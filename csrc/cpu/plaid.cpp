// PLAID candidate stages, ISA-independent drivers (formulas in plaid.hpp).
//
// Both stages read the centroid scores centroid-major (St [K, stride], as centroid_scores_t writes
// them): a document token costs one contiguous row of maxima in stage B, and the probe walks St once,
// comparing a centroid's row with every token's running threshold at a time. The loops are plain C++
// that the compiler vectorises at the baseline ISA (max is exact, the sum runs in row order like the
// scalar reference, so the two agree bit for bit). Stage A walks the probed IVF lists once with
// per-document stamps (dense arrays over the segment's documents: O(n) memory, no hashing).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "edgecolbert/plaid.hpp"
#include "edgecolbert/threadpool.hpp"

namespace edgecolbert {
namespace {

constexpr int64_t kLane = 16;        // rows of St are walked in multiples of 16 floats
constexpr int64_t kDocsPerTask = 64;  // candidate documents per pool task

}  // namespace

bool plaid_centroid_interaction(const KernelPath& path, const float* St, int64_t m, int64_t K, int64_t stride,
                                float threshold, const PlaidCodes& codes, const int64_t* offsets, const int64_t* docs,
                                int64_t nd, float* out, int num_threads) {
  if (nd == 0) return true;
  if (m == 0) {
    std::fill(out, out + nd, 0.0f);
    return true;
  }
  // Rows are walked to m rounded up to 16 floats (never past the row: stride >= m).
  const int64_t mp = std::min(stride, (m + kLane - 1) / kLane * kLane);
  // PLAID's pruning: a centroid whose best score over the query tokens is under the threshold
  // counts as 0 for every token.
  std::vector<uint8_t> keep;
  if (threshold > -std::numeric_limits<float>::infinity()) {
    keep.resize(static_cast<std::size_t>(K));
    for (int64_t c = 0; c < K; ++c) {
      const float* r = St + c * stride;
      float cmax = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < m; ++i) cmax = r[i] > cmax ? r[i] : cmax;
      keep[c] = cmax >= threshold;
    }
  }
  std::vector<float> zeros(static_cast<std::size_t>(mp), 0.0f);
  std::atomic<bool> ok{true};
  const int64_t tasks = (nd + kDocsPerTask - 1) / kDocsPerTask;
  const uint8_t* kp = keep.empty() ? nullptr : keep.data();
  parallel_for(tasks, num_threads, [&](int64_t task, int) {
    const int64_t j0 = task * kDocsPerTask, j1 = std::min(nd, j0 + kDocsPerTask);
    if (!path.plaid.interact(St, stride, mp, m, K, kp, zeros.data(), codes, offsets, docs, j0, j1, out)) ok = false;
  });
  return ok;
}

namespace {

// Best first, ties to the lower id.
bool better(const PlaidCand& a, const PlaidCand& b) { return a.key > b.key || (a.key == b.key && a.id < b.id); }

// Every token's q best centroids, best first, into top [m, q]: one pass over St's rows in order (the layout's
// natural order, as the one-pass probe reads it), with a binary heap per token holding its q best so far, the
// worst on top, so that an entry costs O(log q) (a sorted list's insertion costs O(q), fine only for small q).
// Ids arrive in increasing order and later ids lose ties, so a row enters only with a strictly greater score;
// NaN compares false and never enters after the first q (rank_key: NaN ranks as -inf).
void top_by_heaps(const float* St, int64_t m, int64_t K, int64_t stride, int64_t q, PlaidCand* top) {
  std::vector<float> thr(static_cast<std::size_t>(m));
  for (int64_t c = 0; c < K; ++c) {
    const float* r = St + c * stride;
    if (c < q) {
      for (int64_t i = 0; i < m; ++i) {
        PlaidCand* h = top + i * q;
        h[c] = {plaid_rank_key(r[i]), static_cast<int32_t>(c)};
        std::push_heap(h, h + c + 1, better);
        if (c + 1 == q) thr[i] = h[0].key;
      }
      continue;
    }
    bool any = false;
    for (int64_t i = 0; i < m; ++i) any |= r[i] > thr[i];
    if (!any) continue;
    for (int64_t i = 0; i < m; ++i) {
      if (!(r[i] > thr[i])) continue;
      PlaidCand* h = top + i * q;
      std::pop_heap(h, h + q, better);
      h[q - 1] = {r[i], static_cast<int32_t>(c)};
      std::push_heap(h, h + q, better);
      thr[i] = h[0].key;
    }
  }
  for (int64_t i = 0; i < m; ++i) std::sort_heap(top + i * q, top + (i + 1) * q, better);
}

// cells / cell_scores [m, p] and miss [m] from every token's q = min(p + 1, K) best.
void finish_probe(const float* St, int64_t m, int64_t K, int64_t stride, int64_t p, int64_t q, const PlaidCand* top,
                  int32_t* cells, float* cell_scores, float* miss) {
  for (int64_t i = 0; i < m; ++i) {
    const PlaidCand* t = top + i * q;
    auto score = [&](int32_t c) { return St[c * stride + i]; };
    float lowest = 0.0f;
    bool any_finite = false;
    for (int64_t j = 0; j < p; ++j) {
      cells[i * p + j] = t[j].id;
      const float v = score(t[j].id);
      cell_scores[i * p + j] = v;
      if (std::isfinite(v)) {
        lowest = any_finite ? std::min(lowest, v) : v;
        any_finite = true;
      }
    }
    // What an unprobed centroid could give at most; a non-finite one (NaN or -inf scores) is replaced
    // by the lowest finite probed score so that stage A's gains stay finite and >= 0.
    float ms = 0.0f;
    if (p < K) ms = std::isfinite(score(t[p].id)) ? score(t[p].id) : (any_finite ? lowest : 0.0f);
    miss[i] = ms;
  }
}

}  // namespace

PlaidProbe::PlaidProbe(const KernelPath& path, int64_t m, int64_t K, int64_t p)
    : path_(path), m_(m), K_(K), p_(p), q_(std::min(p + 1, K)), mp_((m + kLane - 1) / kLane * kLane),
      top_(static_cast<std::size_t>(m * q_)), thr_(static_cast<std::size_t>(mp_), std::numeric_limits<float>::infinity()),
      row_(static_cast<std::size_t>(mp_)) {}

void PlaidProbe::feed(const float* St, int64_t stride, int64_t c0, int64_t c1) {
  filled_ = path_.plaid.probe_rows(St, m_, stride, mp_, q_, c0, c1, top_.data(), thr_.data(), row_.data(), filled_);
}

void PlaidProbe::thresholds(float* thr, int64_t n) const {
  for (int64_t i = 0; i < n; ++i) thr[i] = i < m_ ? thr_[i] : std::numeric_limits<float>::infinity();
}

void PlaidProbe::feed_flagged(const float* St, int64_t stride, int64_t c0, int64_t c1, const uint8_t* flags) {
  for (int64_t c = c0; c < c1;) {
    if (c + 8 <= c1) {  // eight flags at a time: a slice flags a few of its 1,024 centroids
      uint64_t word;
      std::memcpy(&word, flags + (c - c0), sizeof word);
      if (word == 0) {
        c += 8;
        continue;
      }
    }
    for (const int64_t e = std::min(c + 8, c1); c < e; ++c)
      if (flags[c - c0]) filled_ = path_.plaid.probe_rows(St, m_, stride, mp_, q_, c, c + 1, top_.data(),
                                                          thr_.data(), row_.data(), filled_);
  }
}

void PlaidProbe::merge(const PlaidProbe& o) {
  const int64_t n = std::min(q_, filled_ + o.filled_);
  std::vector<PlaidCand> t(static_cast<std::size_t>(q_));
  for (int64_t i = 0; i < m_; ++i) {
    const PlaidCand* a = top_.data() + i * q_;
    const PlaidCand* b = o.top_.data() + i * q_;
    int64_t ia = 0, ib = 0;
    for (int64_t j = 0; j < n; ++j)
      t[j] = ib >= o.filled_ || (ia < filled_ && better(a[ia], b[ib])) ? a[ia++] : b[ib++];
    std::copy_n(t.data(), n, top_.data() + i * q_);
    if (n == q_) thr_[i] = top_[i * q_ + q_ - 1].key;
  }
  filled_ = n;
}

void PlaidProbe::finish(const float* St, int64_t stride, int32_t* cells, float* cell_scores, float* miss) const {
  finish_probe(St, m_, K_, stride, p_, q_, top_.data(), cells, cell_scores, miss);
}

void plaid_probe(const KernelPath& path, const float* St, int64_t m, int64_t K, int64_t stride, int64_t p,
                 int32_t* cells, float* cell_scores, float* miss) {
  if (m == 0) return;
  const int64_t q = std::min(p + 1, K);
  if (q <= kPlaidFeedMax) {  // one pass over St with running thresholds
    PlaidProbe probe(path, m, K, p);
    probe.feed(St, stride, 0, K);
    probe.finish(St, stride, cells, cell_scores, miss);
    return;
  }
  // Many cells per token: a heap per token.
  std::vector<PlaidCand> top(static_cast<std::size_t>(m * q));
  top_by_heaps(St, m, K, stride, q, top.data());
  finish_probe(St, m, K, stride, p, q, top.data(), cells, cell_scores, miss);
}

void plaid_gather(const PlaidCodes& codes, const uint8_t* residuals, int64_t width, const int64_t* offsets,
                  const int64_t* docs, int64_t nd, int32_t* out_codes, uint8_t* out_residuals, int64_t* out_offsets) {
  int64_t at = 0;
  out_offsets[0] = 0;
  for (int64_t j = 0; j < nd; ++j) {
    const int64_t lo = offsets[docs[j]], n = offsets[docs[j] + 1] - lo;
    if (codes.u16) {
      const uint16_t* c = static_cast<const uint16_t*>(codes.data) + lo;
      for (int64_t t = 0; t < n; ++t) out_codes[at + t] = c[t];
    } else {
      std::copy_n(static_cast<const int32_t*>(codes.data) + lo, n, out_codes + at);
    }
    std::copy_n(residuals + lo * width, n * width, out_residuals + at * width);
    at += n;
    out_offsets[j + 1] = at;
  }
}

template <typename Code>
void plaid_distinct_codes(const Code* codes, const int64_t* offsets, int64_t n, std::vector<Code>& out,
                          int64_t* out_offsets, int num_threads) {
  // Each worker sorts its documents' codes into its own buffer and records the counts; the buffers are
  // then concatenated at their prefix sums. (Documents are short: a sort per document needs no array over K.)
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(num_threads, n / 1024 + 1));
  std::vector<std::vector<Code>> part(static_cast<std::size_t>(workers));
  out_offsets[0] = 0;
  parallel_for(workers, static_cast<int>(workers), [&](int64_t wk, int) {
    const int64_t d0 = wk * n / workers, d1 = (wk + 1) * n / workers;
    std::vector<Code>& buf = part[static_cast<std::size_t>(wk)];
    buf.reserve(static_cast<std::size_t>(offsets[d1] - offsets[d0]));
    for (int64_t d = d0; d < d1; ++d) {
      const std::size_t at = buf.size();
      buf.insert(buf.end(), codes + offsets[d], codes + offsets[d + 1]);
      std::sort(buf.begin() + static_cast<std::ptrdiff_t>(at), buf.end());
      buf.erase(std::unique(buf.begin() + static_cast<std::ptrdiff_t>(at), buf.end()), buf.end());
      out_offsets[d + 1] = static_cast<int64_t>(buf.size() - at);  // the count, summed below
    }
  });
  for (int64_t d = 0; d < n; ++d) out_offsets[d + 1] += out_offsets[d];
  out.resize(static_cast<std::size_t>(out_offsets[n]));
  parallel_for(workers, static_cast<int>(workers), [&](int64_t wk, int) {
    const std::vector<Code>& buf = part[static_cast<std::size_t>(wk)];
    std::copy(buf.begin(), buf.end(), out.begin() + out_offsets[wk * n / workers]);
  });
}

template void plaid_distinct_codes<uint16_t>(const uint16_t*, const int64_t*, int64_t, std::vector<uint16_t>&, int64_t*,
                                             int);
template void plaid_distinct_codes<int32_t>(const int32_t*, const int64_t*, int64_t, std::vector<int32_t>&, int64_t*,
                                            int);

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
  // stamp[d] = 1 + the last query token that touched d (0: never); cur[d] = that token's gain so far;
  // acc[d] the sum. Only stamp is zeroed: cur and acc are written at a document's first touch.
  std::vector<int32_t> stamp(static_cast<std::size_t>(span), 0);
  std::unique_ptr<float[]> cur(new float[static_cast<std::size_t>(span)]);
  std::unique_ptr<double[]> acc(new double[static_cast<std::size_t>(span)]);
  std::vector<int64_t> touched;
  double base = 0.0;
  for (int64_t i = 0; i < m; ++i) base += miss[i];
  // A document the mask drops is skipped as it is read (no stamp, no sums: under a selective mask most of
  // the lists' entries are).
  for (int64_t i = 0; i < m; ++i) {
    const int32_t st = static_cast<int32_t>(i + 1);
    for (int64_t j = 0; j < p; ++j) {
      const int32_t cell = cells[i * p + j];
      const float gain = cell_scores[i * p + j] - miss[i];
      for (int64_t e = ivf_offsets[cell]; e < ivf_offsets[cell + 1]; ++e) {
        const int64_t d = ivf[e];  // in [0, span): checked above
        if (allowed != nullptr && !allowed[d]) continue;
        if (stamp[d] != st) {
          if (stamp[d] == 0) {
            touched.push_back(d);
            acc[d] = 0.0;
          }
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
    r.docs.push_back(d);
    r.est.push_back(static_cast<float>(base + acc[d]));
  }
  return r;
}

PlaidStageA plaid_stage_a_fill(const int32_t* cells, const float* cell_scores, const float* miss, int64_t m, int64_t p,
                               const int32_t* ivf, const int64_t* ivf_offsets, int64_t num_docs, const uint8_t* allowed) {
  PlaidStageA r = plaid_stage_a(cells, cell_scores, miss, m, p, ivf, ivf_offsets, num_docs, allowed);
  if (r.bad_ivf) return r;
  double base = 0.0;  // stage A's base: a document no probed list holds gets exactly this
  for (int64_t i = 0; i < m; ++i) base += miss[i];
  const float floor_est = static_cast<float>(base);
  std::vector<uint8_t> listed(static_cast<std::size_t>(num_docs), 0);
  for (int64_t d : r.docs) listed[static_cast<std::size_t>(d)] = 1;
  for (int64_t d = 0; d < num_docs; ++d)
    if (!listed[static_cast<std::size_t>(d)] && (allowed == nullptr || allowed[d])) {
      r.docs.push_back(d);
      r.est.push_back(floor_est);
    }
  return r;
}

bool plaid_centroid_interaction_reference(const float* St, int64_t m, int64_t K, int64_t stride, float threshold,
                                          const PlaidCodes& codes, const int64_t* offsets, const int64_t* docs,
                                          int64_t nd, float* out) {
  std::vector<float> rows(static_cast<std::size_t>(m * K));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < K; ++k) rows[i * K + k] = St[k * stride + i];
  return plaid_centroid_interaction_scalar(rows.data(), m, K, threshold, codes, offsets, docs, nd, out);
}

}  // namespace edgecolbert
