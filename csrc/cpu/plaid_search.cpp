// The search of a whole index in one call per batch (plaid_search.hpp): the plaid mode's stage driver, the
// native source of its stages over an index's segments, and the selective and exhaustive modes.
#include "edgecolbert/plaid_search.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "edgecolbert/centroids.hpp"
#include "edgecolbert/codec.hpp"
#include "edgecolbert/maxsim.hpp"
#include "edgecolbert/threadpool.hpp"
#include "rank_order.hpp"

namespace edgecolbert {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Centroids per slice of St probed while in cache (128 KiB of scores at 32 query tokens).
constexpr int64_t kProbeSlice = 1024;

// The selection order: value descending with NaN as -inf, ties to the lower position.
inline bool selects_before(float va, int64_t pa, float vb, int64_t pb) {
  const float ka = plaid_rank_key(va), kb = plaid_rank_key(vb);
  return ka > kb || (ka == kb && pa < pb);
}

// Keeps the n best of (val, pos) in the selection order, in no particular order.
void keep_best(std::vector<float>& val, std::vector<int64_t>& pos, int64_t n) {
  if (static_cast<int64_t>(val.size()) <= n) return;
  std::vector<int64_t> idx(val.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::nth_element(idx.begin(), idx.begin() + n, idx.end(),
                   [&](int64_t a, int64_t b) { return selects_before(val[a], pos[a], val[b], pos[b]); });
  std::vector<float> v(static_cast<std::size_t>(n));
  std::vector<int64_t> p(static_cast<std::size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    v[j] = val[idx[j]];
    p[j] = pos[idx[j]];
  }
  val.swap(v);
  pos.swap(p);
}

// The k best of n (val, pos) pairs, best first, into one output row (left as it is past the hits).
void write_top(const float* val, const int64_t* pos, int64_t n, int64_t k, float* out_s, int64_t* out_p) {
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  const int64_t kk = std::min(k, n);
  std::partial_sort(order.begin(), order.begin() + kk, order.end(),
                    [&](int64_t a, int64_t b) { return ranks_before(val[a], pos[a], val[b], pos[b]); });
  for (int64_t j = 0; j < kk; ++j) {
    out_s[j] = val[order[j]];
    out_p[j] = pos[order[j]];
  }
}

// Whether codes [t0, t1) are centroids in [0, K). Min / max reductions, which the compiler vectorises (a
// running `ok &= ...` stayed scalar: 2% of a search that re-ranks 40 documents).
bool codes_in_range(const PlaidCodes& c, int64_t t0, int64_t t1, int64_t K) {
  if (t0 >= t1) return true;
  if (c.u16) {
    const uint16_t* p = static_cast<const uint16_t*>(c.data);
    uint16_t hi = 0;
    for (int64_t t = t0; t < t1; ++t) hi = std::max(hi, p[t]);
    return hi < K;
  }
  const int32_t* p = static_cast<const int32_t*>(c.data);
  int32_t lo = p[t0], hi = p[t0];
  for (int64_t t = t0; t < t1; ++t) {
    lo = std::min(lo, p[t]);
    hi = std::max(hi, p[t]);
  }
  return lo >= 0 && hi < K;
}

inline bool doc_range_ok(const PlaidSegment& s, int64_t d) {
  const int64_t lo = s.offsets[d], hi = s.offsets[d + 1];
  if (!(lo >= 0 && lo <= hi && hi <= s.codes.n)) return false;
  if (s.distinct_offsets == nullptr) return true;
  const int64_t dlo = s.distinct_offsets[d], dhi = s.distinct_offsets[d + 1];
  return dlo >= 0 && dlo <= dhi && dhi <= s.distinct.n;
}

PlaidStatus fault(PlaidFault f, int64_t segment = 0) { return PlaidStatus{f, segment}; }

}  // namespace

int64_t PlaidIndex::positions() const {
  int64_t n = 0;
  for (int64_t s = 0; s < num_segments; ++s) n += segments[s].n;
  return n;
}

int64_t PlaidIndex::num_allowed() const {
  const int64_t n = positions();
  if (allowed == nullptr) return n;
  int64_t a = 0;
  for (int64_t p = 0; p < n; ++p) a += allowed[p] != 0;
  return a;
}

// ---------------------------------------------------------------------------------------------- driver

int64_t plaid_hits_width(const PlaidHits& hits) {
  int64_t width = 1;
  for (std::size_t j = 0; j + 1 < hits.offsets.size(); ++j) width = std::max(width, hits.offsets[j + 1] - hits.offsets[j]);
  return width;
}

void plaid_hits_dense(const PlaidHits& hits, const std::vector<int64_t>& queries, int64_t nq, int64_t width,
                      float* scores, int64_t* pos) {
  std::fill_n(scores, nq * width, -std::numeric_limits<float>::infinity());
  std::fill_n(pos, nq * width, int64_t{-1});
  for (std::size_t j = 0; j < queries.size(); ++j)
    for (int64_t h = hits.offsets[j]; h < hits.offsets[j + 1]; ++h) {
      scores[queries[j] * width + h - hits.offsets[j]] = hits.scores[static_cast<std::size_t>(h)];
      pos[queries[j] * width + h - hits.offsets[j]] = hits.pos[static_cast<std::size_t>(h)];
    }
}

PlaidStatus plaid_drive(PlaidSource& source, const std::vector<int64_t>& queries, const PlaidDriveParams& prm,
                        PlaidHits& hits) {
  const int64_t k = prm.k, nsel = static_cast<int64_t>(queries.size());
  hits.offsets.assign(static_cast<std::size_t>(nsel) + 1, 0);
  hits.pos.clear();
  hits.scores.clear();
  if (nsel == 0) return {};
  // Stage A, widening the probe of the queries whose pool is short (the pool rule, plaid_search.hpp).
  struct Query {
    int64_t probe = 0;
    std::vector<int64_t> pos;  // the pool: global positions
    std::vector<float> val;
  };
  std::vector<Query> qs(static_cast<std::size_t>(nsel));
  std::vector<int64_t> todo, next, ask_q, ask_p;
  for (int64_t j = 0; j < nsel; ++j) {
    qs[j].probe = prm.nprobe;
    todo.push_back(j);
  }
  const int64_t target = prm.subset ? std::min(prm.ndocs, prm.num_allowed) : 0;  // tombstones never widen
  PlaidPools got;
  while (!todo.empty()) {
    ask_q.clear();
    ask_p.clear();
    for (int64_t j : todo) {
      ask_q.push_back(queries[j]);
      ask_p.push_back(qs[j].probe);
    }
    const PlaidStatus st = source.candidates(ask_q, ask_p, prm.ndocs, got);
    if (!st.ok()) return st;
    next.clear();
    for (std::size_t a = 0; a < todo.size(); ++a) {
      Query& qj = qs[todo[a]];
      if (got.count[a] < target && qj.probe < prm.num_centroids) {
        qj.probe = qj.probe > prm.num_centroids / 4 ? prm.num_centroids : qj.probe * 4;  // min(4p, K), no overflow
        next.push_back(todo[a]);
        continue;
      }
      qj.pos.assign(got.docs.begin() + got.offsets[a], got.docs.begin() + got.offsets[a + 1]);
      qj.val.assign(got.values.begin() + got.offsets[a], got.values.begin() + got.offsets[a + 1]);
      keep_best(qj.val, qj.pos, prm.ndocs);
    }
    todo.swap(next);
  }

  // Pools of several queries as one CSR request.
  std::vector<int64_t> req_q, req_off, req_docs;
  std::vector<float> scores;
  auto request = [&](const std::vector<int64_t>& which) {
    req_q.clear();
    req_docs.clear();
    req_off.assign(1, 0);
    for (int64_t j : which) {
      req_q.push_back(queries[j]);
      req_docs.insert(req_docs.end(), qs[j].pos.begin(), qs[j].pos.end());
      req_off.push_back(static_cast<int64_t>(req_docs.size()));
    }
  };

  // Stage B for the pools larger than the re-rank takes.
  std::vector<int64_t> which;
  for (int64_t j = 0; j < nsel; ++j)
    if (static_cast<int64_t>(qs[j].pos.size()) > prm.rerank) which.push_back(j);
  if (!which.empty()) {
    request(which);
    const PlaidStatus st = source.approximate(req_q, req_off, req_docs, scores);
    if (!st.ok()) return st;
    for (std::size_t a = 0; a < which.size(); ++a) {
      Query& qj = qs[which[a]];
      qj.val.assign(scores.begin() + req_off[a], scores.begin() + req_off[a + 1]);
      keep_best(qj.val, qj.pos, prm.rerank);
    }
  }

  // The exact re-rank of every pool (in position order), and the k best.
  which.clear();
  for (int64_t j = 0; j < nsel; ++j)
    if (!qs[j].pos.empty()) {
      std::sort(qs[j].pos.begin(), qs[j].pos.end());
      which.push_back(j);
    }
  if (which.empty()) return {};
  request(which);
  const PlaidStatus st = source.exact(req_q, req_off, req_docs, scores);
  if (!st.ok()) return st;
  std::vector<float> top_s;
  std::vector<int64_t> top_p;
  std::size_t a = 0;
  for (int64_t j = 0; j < nsel; ++j) {
    if (a < which.size() && which[a] == j) {
      const int64_t o = req_off[a], n = req_off[a + 1] - o, kk = std::min(k, n);
      top_s.resize(static_cast<std::size_t>(kk));
      top_p.resize(static_cast<std::size_t>(kk));
      write_top(scores.data() + o, req_docs.data() + o, n, k, top_s.data(), top_p.data());
      hits.scores.insert(hits.scores.end(), top_s.begin(), top_s.end());
      hits.pos.insert(hits.pos.end(), top_p.begin(), top_p.end());
      ++a;
    }
    hits.offsets[static_cast<std::size_t>(j) + 1] = static_cast<int64_t>(hits.pos.size());
  }
  return {};
}

// ------------------------------------------------------------------------------- the native source

struct PlaidIndexSource::State {
  const KernelPath& path;
  QueryBatch q;
  CodecView cv;
  PlaidIndex index;
  const PlaidCentroidsI8* ci8;
  float threshold;
  int threads;
  int64_t K, dim, width, lq;
  std::vector<int64_t> base;  // [segments + 1]: segment s holds positions [base[s], base[s+1])
  std::vector<float> rows;
  std::vector<int8_t> q8;
  std::vector<float> qscale;
  std::unique_ptr<AlignedFloats> St_;  // the query's centroid scores, allocated at its first use
  float* St = nullptr;
  AlignedFloats prep;
  std::vector<std::vector<float>> scratch;
  std::vector<std::vector<int32_t>> wide;
  std::vector<int32_t> cells, deep_cells;  // the probe at width probed, and the deepest one taken (deep)
  std::vector<float> cell_scores, miss, deep_scores, deep_miss;
  std::vector<int64_t> seg_of, local;  // per document of an exact or approximate request

  // The query in hand: its kept rows, and how far its stages got.
  int64_t cur = -1, m = 0, sm = 0;
  bool int8 = false, scored = false, prepared = false;
  int64_t probed = 0, deep = 0;  // the probe widths of cells and deep_cells (0: not probed)
  bool may_widen = false;        // a subset (not filled) may make the pool rule widen the probe
  std::unique_ptr<PackedRowsI8> packed8;

  State(const KernelPath& p, const QueryBatch& qb, const CodecView& c, const PlaidIndex& ix, const PlaidCentroidsI8* c8,
        float th, int nt)
      : path(p), q(qb), cv(c), index(ix), ci8(c8), threshold(th), threads(nt), K(c.num_centroids), dim(c.dim),
        width(residual_width(c.dim, c.nbits)), lq(std::max<int64_t>(qb.lq, 1)),
        prep(p.codec.query_floats(std::max<int64_t>(qb.lq, 1), c.dim)) {
    base.assign(1, 0);
    for (int64_t s = 0; s < index.num_segments; ++s) base.push_back(base.back() + index.segments[s].n);
    may_widen = index.subset && !index.fill;
    rows.resize(static_cast<std::size_t>(lq * dim));
    qscale.resize(static_cast<std::size_t>(lq));
    if (ci8 != nullptr) q8.resize(static_cast<std::size_t>(lq * ci8->dim4));
    const std::size_t scratch_n = path.codec.scratch_floats(lq, dim) + 16;
    scratch.assign(static_cast<std::size_t>(threads), std::vector<float>(scratch_n));
    wide.resize(static_cast<std::size_t>(threads));
  }

  // Every query number names a query of the batch (the stages read its rows with no check of their own).
  bool in_batch(const std::vector<int64_t>& queries) const {
    for (int64_t qi : queries)
      if (qi < 0 || qi >= q.nq) return false;
    return true;
  }

  void load(int64_t qi) {
    if (qi == cur) return;
    cur = qi;
    m = kept_rows(q, qi, rows.data());
    sm = (m + kCentroidBlockRows - 1) / kCentroidBlockRows * kCentroidBlockRows;
    int8 = scored = prepared = false;
    probed = deep = 0;
  }

  // Rows [c0, c0 + nc) of St; with thr (int8 only), flags[j] = centroid c0 + j beats some threshold.
  void score(int64_t c0, int64_t nc, int nt, const float* thr = nullptr, uint8_t* flags = nullptr) {
    if (int8)
      centroid_scores_t_i8(path, *packed8, ci8->c8 + c0 * ci8->dim4, ci8->scale + c0, ci8->csum + c0, nc,
                           St + c0 * sm, nt, thr, flags);
    else
      centroid_scores_t(path, Matrix{rows.data(), DType::f32, m, dim}, Matrix{cv.centroids + c0 * dim, DType::f32, nc, dim},
                        sm, St + c0 * sm, nt);
  }

  void begin_scores() {
    if (!St) {
      // Every element read is written by the score kernels first: no zeroing (2 MB at K = 16,384). Rows
      // start on a cache line (stage B reads random rows of 32 floats: two lines each, not three).
      const int64_t stride = (lq + kCentroidBlockRows - 1) / kCentroidBlockRows * kCentroidBlockRows;
      St_ = std::make_unique<AlignedFloats>(static_cast<std::size_t>(K * stride));
      St = St_->p;
    }
    int8 = ci8 != nullptr && quantize_rows_i8(rows.data(), m, dim, q8.data(), qscale.data());
    if (int8) packed8 = std::make_unique<PackedRowsI8>(q8.data(), qscale.data(), m, ci8->dim4, sm);
    scored = true;
  }

  void ensure_scored() {
    if (scored) return;
    begin_scores();
    score(0, K, threads);
  }

  // The probe at width p (1 <= p <= K) into cells / cell_scores / miss. A token's p best centroids under the
  // probe's total order are the first p of its q best, so a deeper probe taken earlier serves it: where a
  // subset may make the pool rule widen (x4 at a time), a query's first probe, fused with the scores, goes one
  // widening deeper (q = 4p + 1 instead of p + 1: a few more insertions into short lists), and the first
  // widening then costs no pass over St. A re-probe takes the width asked: a wide probe is a pass over all
  // of St with many insertions (on the 20k peer set, 32 tokens: 0.3 ms at width 16, ~4 ms at 64), too dear
  // to take on speculation.
  void probe(int64_t p) {
    if (probed == p) return;
    if (p > deep) {
      int64_t w = p;
      if (may_widen && !scored)
        while (w < K && std::min(4 * w + 1, K) <= kPlaidFeedMax) w = std::min(K, 4 * w);
      deep_probe(w);
    }
    probed = p;
    cells.resize(static_cast<std::size_t>(m * p));
    cell_scores.resize(static_cast<std::size_t>(m * p));
    miss.resize(static_cast<std::size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      std::copy_n(deep_cells.data() + i * deep, p, cells.data() + i * p);
      std::copy_n(deep_scores.data() + i * deep, p, cell_scores.data() + i * p);
      if (p == deep) {
        miss[i] = deep_miss[i];
        continue;
      }
      // finish_probe's rule (plaid.cpp) for width p: the (p+1)-th score, or when it is not finite the lowest
      // finite probed score (0 when none is).
      const float next = deep_scores[i * deep + p];
      float lowest = 0.0f;
      bool any_finite = false;
      for (int64_t j = 0; j < p; ++j) {
        const float v = cell_scores[i * p + j];
        if (std::isfinite(v)) {
          lowest = any_finite ? std::min(lowest, v) : v;
          any_finite = true;
        }
      }
      miss[i] = std::isfinite(next) ? next : (any_finite ? lowest : 0.0f);
    }
  }

  // St (when not computed yet) and the probe at width w into deep_*. With min(w + 1, K) <= kPlaidFeedMax and
  // St not computed yet, each slice of St is probed right after it is computed, while it is still in cache;
  // with threads, each scores and probes its own contiguous share of the slices (so its part of St stays in
  // its core's cache) and the probes merge exactly. Once a probe's lists are full, the int8 kernel flags the
  // centroids that beat a threshold as of the slice's start (with the scores still in registers) and only
  // those are probed: the same result, since thresholds only rise.
  void deep_probe(int64_t w) {
    deep = w;
    deep_cells.resize(static_cast<std::size_t>(m * w));
    deep_scores.resize(static_cast<std::size_t>(m * w));
    deep_miss.resize(static_cast<std::size_t>(m));
    if (scored || std::min(w + 1, K) > kPlaidFeedMax) {
      ensure_scored();
      plaid_probe(path, St, m, K, sm, w, deep_cells.data(), deep_scores.data(), deep_miss.data());
      return;
    }
    begin_scores();
    const int64_t nslices = (K + kProbeSlice - 1) / kProbeSlice;
    const int64_t workers = std::min<int64_t>(threads, nslices);
    std::vector<std::unique_ptr<PlaidProbe>> probes(static_cast<std::size_t>(workers));
    parallel_for(workers, static_cast<int>(workers), [&](int64_t wk, int) {
      auto pr = std::make_unique<PlaidProbe>(path, m, K, w);
      std::vector<float> thr(int8 ? static_cast<std::size_t>(sm) : 0);
      std::vector<uint8_t> flags(int8 ? static_cast<std::size_t>(kProbeSlice) : 0);
      for (int64_t sl = wk * nslices / workers; sl < (wk + 1) * nslices / workers; ++sl) {
        const int64_t c0 = sl * kProbeSlice, nc = std::min(kProbeSlice, K - c0);
        if (int8 && pr->full()) {
          pr->thresholds(thr.data(), sm);
          score(c0, nc, 1, thr.data(), flags.data());
          pr->feed_flagged(St, sm, c0, c0 + nc, flags.data());
          continue;
        }
        score(c0, nc, 1);
        pr->feed(St, sm, c0, c0 + nc);
      }
      probes[static_cast<std::size_t>(wk)] = std::move(pr);
    });
    for (int64_t wk = 1; wk < workers; ++wk) probes[0]->merge(*probes[static_cast<std::size_t>(wk)]);
    probes[0]->finish(St, sm, deep_cells.data(), deep_scores.data(), deep_miss.data());
  }

  // Stage A over every segment at the current probe: allowed candidates (global positions) appended to
  // pos / est (the masked documents skipped as the lists are read).
  PlaidStatus stage_a(std::vector<int64_t>& pos, std::vector<float>& est) {
    const int64_t p = probed;
    for (int64_t s = 0; s < index.num_segments; ++s) {
      const PlaidSegment& seg = index.segments[s];
      for (int32_t c : cells) {  // the probed IVF ranges, checked before they are read
        const int64_t lo = seg.ivf_offsets[c], hi = seg.ivf_offsets[c + 1];
        if (lo < 0 || lo > hi || hi > seg.ivf_len) return fault(PlaidFault::bad_ivf_range, s);
      }
      const uint8_t* allowed = index.allowed != nullptr ? index.allowed + base[s] : nullptr;
      PlaidStageA a = index.fill ? plaid_stage_a_fill(cells.data(), cell_scores.data(), miss.data(), m, p, seg.ivf,
                                                      seg.ivf_offsets, seg.n, allowed)
                                 : plaid_stage_a(cells.data(), cell_scores.data(), miss.data(), m, p, seg.ivf,
                                                 seg.ivf_offsets, seg.n, allowed);
      if (a.bad_ivf) return fault(PlaidFault::bad_ivf_doc, s);
      for (int64_t d : a.docs)
        if (!doc_range_ok(seg, d)) return fault(PlaidFault::bad_doc_range, s);
      if (pos.empty() && base[s] == 0) {  // the first segment's candidates as they are (no copy)
        pos = std::move(a.docs);
        est = std::move(a.est);
        continue;
      }
      for (int64_t d : a.docs) pos.push_back(base[s] + d);
      est.insert(est.end(), a.est.begin(), a.est.end());
    }
    return {};
  }

  // seg_of / local of docs[0..nd): their segments and segment-local numbers, every range checked.
  PlaidStatus locate(const int64_t* docs, int64_t nd, bool check_codes) {
    seg_of.resize(static_cast<std::size_t>(nd));
    local.resize(static_cast<std::size_t>(nd));
    for (int64_t j = 0; j < nd; ++j) {
      const int64_t x = docs[j];
      if (x < 0 || x >= base.back()) return fault(PlaidFault::bad_position);
      const int64_t s = std::upper_bound(base.begin(), base.end(), x) - base.begin() - 1;
      const PlaidSegment& seg = index.segments[s];
      seg_of[j] = s;
      local[j] = x - base[s];
      if (!doc_range_ok(seg, local[j])) return fault(PlaidFault::bad_doc_range, s);
      if (check_codes && !codes_in_range(seg.codes, seg.offsets[local[j]], seg.offsets[local[j] + 1], K))
        return fault(PlaidFault::bad_code, s);
    }
    return {};
  }

  // one(query, its documents, how many, their scores) for each query of a CSR request.
  PlaidStatus each_query(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                         const std::vector<int64_t>& docs, std::vector<float>& out,
                         PlaidStatus (State::*one)(int64_t, const int64_t*, int64_t, float*)) {
    out.resize(docs.size());
    if (!in_batch(queries)) return {PlaidFault::bad_query, 0};
    for (std::size_t j = 0; j < queries.size(); ++j) {
      const PlaidStatus st = (this->*one)(queries[j], docs.data() + offsets[j], offsets[j + 1] - offsets[j],
                                          out.data() + offsets[j]);
      if (!st.ok()) return st;
    }
    return {};
  }

  PlaidStatus approximate_one(int64_t qi, const int64_t* docs, int64_t nd, float* out) {
    const PlaidStatus st = locate(docs, nd, false);
    if (!st.ok()) return st;
    load(qi);
    if (m == 0) {
      std::fill_n(out, nd, 0.0f);
      return {};
    }
    ensure_scored();
    // One call per segment over its documents (codes are range-checked by the kernel, where read).
    std::vector<int64_t> ld;
    std::vector<float> lv;
    for (int64_t s = 0; s < index.num_segments; ++s) {
      ld.clear();
      for (int64_t j = 0; j < nd; ++j)
        if (seg_of[j] == s) ld.push_back(local[j]);
      if (ld.empty()) continue;
      lv.resize(ld.size());
      const PlaidSegment& seg = index.segments[s];
      const bool distinct = seg.distinct_offsets != nullptr;
      if (!plaid_centroid_interaction(path, St, m, K, sm, threshold, distinct ? seg.distinct : seg.codes,
                                      distinct ? seg.distinct_offsets : seg.offsets, ld.data(),
                                      static_cast<int64_t>(ld.size()), lv.data(), threads))
        return fault(PlaidFault::bad_code, s);
      for (int64_t j = 0, at = 0; j < nd; ++j)
        if (seg_of[j] == s) out[j] = lv[static_cast<std::size_t>(at++)];
    }
    return {};
  }

  PlaidStatus exact_one(int64_t qi, const int64_t* docs, int64_t nd, float* out) {
    const PlaidStatus st = locate(docs, nd, true);
    if (st.ok()) exact_located(qi, nd, out);
    return st;
  }

  // Exact scores of the nd documents of the last locate (codes checked) for query qi.
  void exact_located(int64_t qi, int64_t nd, float* out) {
    load(qi);
    if (m == 0) {
      std::fill_n(out, nd, 0.0f);
      return;
    }
    if (!prepared) {
      path.codec.prepare_query(rows.data(), m, dim, prep.p);
      prepared = true;
    }
    const int64_t chunk = std::max<int64_t>(1, nd / (static_cast<int64_t>(threads) * 16));
    parallel_for((nd + chunk - 1) / chunk, threads, [&](int64_t t, int worker) {
      float* s = scratch[static_cast<std::size_t>(worker)].data();
      std::vector<int32_t>& wc = wide[static_cast<std::size_t>(worker)];
      const int64_t hi = std::min(nd, (t + 1) * chunk);
      for (int64_t j = t * chunk; j < hi; ++j) {
        const PlaidSegment& seg = index.segments[seg_of[j]];
        const int64_t b = seg.offsets[local[j]], ntok = seg.offsets[local[j] + 1] - b;
        if (ntok <= 0) {
          out[j] = 0.0f;
          continue;
        }
        const int32_t* codes = static_cast<const int32_t*>(seg.codes.data) + b;
        if (seg.codes.u16) {
          const uint16_t* c16 = static_cast<const uint16_t*>(seg.codes.data) + b;
          wc.assign(c16, c16 + ntok);
          codes = wc.data();
        }
        out[j] = path.codec.score_doc(prep.p, m, cv, codes, seg.residuals + b * width, nullptr, ntok, s);
      }
    });
  }
};

PlaidIndexSource::PlaidIndexSource(const KernelPath& path, const QueryBatch& q, const CodecView& cv,
                                   const PlaidIndex& index, const PlaidCentroidsI8* ci8, float threshold,
                                   int num_threads)
    : s_(std::make_unique<State>(path, q, cv, index, ci8, threshold, num_threads)) {}

PlaidIndexSource::~PlaidIndexSource() = default;

int64_t PlaidIndexSource::kept(int64_t qi) const {
  if (s_->q.mask == nullptr) return s_->q.lq;
  int64_t n = 0;
  for (int64_t r = 0; r < s_->q.lq; ++r) n += s_->q.mask[qi * s_->q.lq + r] != 0;
  return n;
}

PlaidStatus PlaidIndexSource::candidates(const std::vector<int64_t>& queries, const std::vector<int64_t>& probes,
                                         int64_t ndocs, PlaidPools& out) {
  State& s = *s_;
  const std::size_t nq = queries.size();
  out.offsets.assign(1, 0);
  out.docs.clear();
  out.values.clear();
  out.count.assign(nq, 0);
  if (!s.in_batch(queries)) return {PlaidFault::bad_query, 0};
  std::vector<int64_t> pos;
  std::vector<float> est;
  for (std::size_t j = 0; j < nq; ++j) {
    s.load(queries[j]);
    if (s.m > 0) {
      s.probe(std::min(probes[j], s.K));
      pos.clear();
      est.clear();
      const PlaidStatus st = s.stage_a(pos, est);
      if (!st.ok()) return st;
      out.count[j] = static_cast<int64_t>(pos.size());
      keep_best(est, pos, ndocs);
      out.docs.insert(out.docs.end(), pos.begin(), pos.end());
      out.values.insert(out.values.end(), est.begin(), est.end());
    }
    out.offsets.push_back(static_cast<int64_t>(out.docs.size()));
  }
  return {};
}

PlaidStatus PlaidIndexSource::approximate(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                                          const std::vector<int64_t>& docs, std::vector<float>& out) {
  return s_->each_query(queries, offsets, docs, out, &State::approximate_one);
}

PlaidStatus PlaidIndexSource::exact(const std::vector<int64_t>& queries, const std::vector<int64_t>& offsets,
                                    const std::vector<int64_t>& docs, std::vector<float>& out) {
  return s_->each_query(queries, offsets, docs, out, &State::exact_one);
}

PlaidStatus PlaidIndexSource::score_allowed(int64_t k, float* out_scores, int64_t* out_pos) {
  State& s = *s_;
  std::vector<int64_t> apos;
  for (int64_t p = 0, n = s.base.back(); p < n; ++p)
    if (s.index.allowed == nullptr || s.index.allowed[p]) apos.push_back(p);
  const int64_t n = static_cast<int64_t>(apos.size());
  const PlaidStatus st = s.locate(apos.data(), n, true);  // once: every query scores the same documents
  if (!st.ok()) return st;
  std::vector<float> val(apos.size());
  for (int64_t qi = 0; qi < s.q.nq; ++qi) {
    s.exact_located(qi, n, val.data());
    write_top(val.data(), apos.data(), n, k, out_scores + qi * k, out_pos + qi * k);
  }
  return {};
}

// ----------------------------------------------------------------------------------------- modes

namespace {

// MaxSim of every allowed document's decoded tokens, the k best per query: each segment's k best
// (maxsim_topk over its allowed documents, in position order, so its ties also go to the lower position),
// then the k best of those.
PlaidStatus search_exhaustive(const KernelPath& path, const QueryBatch& q, const PlaidIndex& index, int64_t k,
                              float* out_scores, int64_t* out_pos, int num_threads) {
  std::vector<std::vector<float>> cand_s(static_cast<std::size_t>(q.nq));
  std::vector<std::vector<int64_t>> cand_p(static_cast<std::size_t>(q.nq));
  std::vector<int64_t> docs, begin, end, idx;
  std::vector<float> sc;
  int64_t base = 0;
  for (int64_t s = 0; s < index.num_segments; ++s) {
    const PlaidSegment& seg = index.segments[s];
    docs.clear();
    begin.clear();
    end.clear();
    for (int64_t d = 0; d < seg.n; ++d) {
      if (index.allowed != nullptr && !index.allowed[base + d]) continue;
      if (!doc_range_ok(seg, d)) return fault(PlaidFault::bad_doc_range, s);
      docs.push_back(base + d);
      begin.push_back(seg.offsets[d]);
      end.push_back(seg.offsets[d + 1]);
    }
    base += seg.n;
    const int64_t n = static_cast<int64_t>(docs.size());
    if (n == 0) continue;
    const int64_t kk = std::min(k, n);
    sc.resize(static_cast<std::size_t>(q.nq * kk));
    idx.resize(sc.size());
    const DocSet set{seg.decoded, DType::f32, q.dim, n, begin.data(), end.data(), nullptr};
    maxsim_topk(path, q, set, kk, sc.data(), idx.data(), num_threads);
    for (int64_t i = 0; i < q.nq; ++i)
      for (int64_t j = 0; j < kk; ++j) {
        cand_s[i].push_back(sc[i * kk + j]);
        cand_p[i].push_back(docs[idx[i * kk + j]]);
      }
  }
  for (int64_t i = 0; i < q.nq; ++i)
    write_top(cand_s[i].data(), cand_p[i].data(), static_cast<int64_t>(cand_s[i].size()), k, out_scores + i * k,
              out_pos + i * k);
  return {};
}

}  // namespace

PlaidStatus plaid_search(const KernelPath& path, const QueryBatch& q, const CodecView& cv, const PlaidIndex& index,
                         const PlaidSearchParams& prm, PlaidMode mode, const PlaidCentroidsI8* ci8, float* out_scores,
                         int64_t* out_pos, int num_threads) {
  const int64_t k = prm.k;
  std::fill_n(out_scores, q.nq * k, kNegInf);
  std::fill_n(out_pos, q.nq * k, int64_t{-1});
  const int64_t n_allowed = index.num_allowed();
  if (q.nq == 0 || n_allowed == 0) return {};
  if (mode == PlaidMode::exhaustive) return search_exhaustive(path, q, index, k, out_scores, out_pos, num_threads);
  PlaidIndexSource source(path, q, cv, index, ci8, prm.threshold, num_threads);
  if (mode == PlaidMode::selective) return source.score_allowed(k, out_scores, out_pos);
  PlaidDriveParams dp;
  dp.nprobe = prm.nprobe, dp.ndocs = prm.ndocs, dp.rerank = prm.rerank, dp.k = k;
  dp.num_centroids = cv.num_centroids, dp.num_allowed = n_allowed, dp.subset = index.subset;
  // One query at a time: its centroid scores stay in the source across its stages.
  std::vector<int64_t> one(1);
  PlaidHits hits;
  for (int64_t qi = 0; qi < q.nq; ++qi) {
    if (source.kept(qi) == 0) continue;
    one[0] = qi;
    const PlaidStatus st = plaid_drive(source, one, dp, hits);
    if (!st.ok()) return st;
    std::copy(hits.scores.begin(), hits.scores.end(), out_scores + qi * k);
    std::copy(hits.pos.begin(), hits.pos.end(), out_pos + qi * k);
  }
  return {};
}

}  // namespace edgecolbert
