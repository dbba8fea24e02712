// One PLAID search of one segment, every stage in C++ (plaid.hpp): the same stages, selections and
// kernels as the Python search loop, without a round trip through Python between them.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "edgecolbert/centroids.hpp"
#include "edgecolbert/codec.hpp"
#include "edgecolbert/plaid.hpp"
#include "edgecolbert/threadpool.hpp"

namespace edgecolbert {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Centroids per slice of St probed while in cache (128 KiB of scores at 32 query tokens).
constexpr int64_t kProbeSlice = 1024;

// The order every selection uses (the Python path's too): value descending with NaN as -inf, ties to
// the lower document.
bool ranks_before(const std::vector<float>& val, const std::vector<int64_t>& doc, int64_t a, int64_t b) {
  const float ka = plaid_rank_key(val[a]), kb = plaid_rank_key(val[b]);
  return ka > kb || (ka == kb && doc[a] < doc[b]);
}

// Keeps the n best of (val, doc) under ranks_before, in no particular order (_search._select).
void keep_best(std::vector<float>& val, std::vector<int64_t>& doc, int64_t n) {
  if (static_cast<int64_t>(val.size()) <= n) return;
  std::vector<int64_t> idx(val.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::nth_element(idx.begin(), idx.begin() + n, idx.end(),
                   [&](int64_t a, int64_t b) { return ranks_before(val, doc, a, b); });
  std::vector<float> v(static_cast<std::size_t>(n));
  std::vector<int64_t> d(static_cast<std::size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    v[j] = val[idx[j]];
    d[j] = doc[idx[j]];
  }
  val.swap(v);
  doc.swap(d);
}

bool code_in_range(const PlaidCodes& c, int64_t t, int64_t K) {
  const int64_t x = c.u16 ? static_cast<const uint16_t*>(c.data)[t] : static_cast<const int32_t*>(c.data)[t];
  return x >= 0 && x < K;
}

}  // namespace

PlaidStatus plaid_search(const KernelPath& path, const QueryBatch& q, const CodecView& cv, const PlaidSegment& seg,
                         const PlaidSearchParams& prm, const PlaidCentroidsI8* ci8, float* out_scores, int64_t* out_docs,
                         int num_threads) {
  const int64_t K = cv.num_centroids, dim = cv.dim, k = prm.k;
  std::fill_n(out_scores, q.nq * k, kNegInf);
  std::fill_n(out_docs, q.nq * k, int64_t{-1});
  if (q.nq == 0 || seg.n == 0) return PlaidStatus::ok;
  const int64_t stride = std::max<int64_t>(1, (q.lq + kCentroidBlockRows - 1) / kCentroidBlockRows) * kCentroidBlockRows;
  const int64_t p = std::min(prm.nprobe, K);
  const int64_t w = codec_detail::packed_width(dim, cv.nbits);
  std::vector<float> rows(static_cast<std::size_t>(std::max<int64_t>(q.lq, 1) * dim));
  std::vector<int8_t> q8(ci8 != nullptr ? static_cast<std::size_t>(std::max<int64_t>(q.lq, 1) * ci8->dim4) : 0);
  std::vector<float> qscale(static_cast<std::size_t>(std::max<int64_t>(q.lq, 1)));
  // Every element is written by centroid_scores_t before it is read: no zeroing (2 MB at K = 16,384).
  std::unique_ptr<float[]> St(new float[static_cast<std::size_t>(K * stride)]);
  std::vector<int32_t> cells;
  std::vector<float> cell_scores, miss;
  const AlignedFloats prep(path.codec.query_floats(std::max<int64_t>(q.lq, 1), dim));
  const std::size_t scratch_n = path.codec.scratch_floats(std::max<int64_t>(q.lq, 1), dim) + 16;
  std::vector<std::vector<float>> scratch(static_cast<std::size_t>(num_threads), std::vector<float>(scratch_n));
  std::vector<std::vector<int32_t>> wide(static_cast<std::size_t>(num_threads));

  for (int64_t qi = 0; qi < q.nq; ++qi) {
    const int64_t m = kept_rows(q, qi, rows.data());
    if (m == 0) continue;
    const int64_t sm = (m + kCentroidBlockRows - 1) / kCentroidBlockRows * kCentroidBlockRows;
    const Matrix qrows{rows.data(), DType::f32, m, dim};
    const bool int8 = ci8 != nullptr && quantize_rows_i8(rows.data(), m, dim, q8.data(), qscale.data());
    std::unique_ptr<PackedRowsI8> packed8;
    if (int8) packed8 = std::make_unique<PackedRowsI8>(q8.data(), qscale.data(), m, ci8->dim4, sm);
    cells.resize(static_cast<std::size_t>(m * p));
    cell_scores.resize(static_cast<std::size_t>(m * p));
    miss.resize(static_cast<std::size_t>(m));
    // Rows [c0, c0 + nc) of St; with thr (int8 only), flags[j] = centroid c0 + j beats some threshold.
    auto score = [&](int64_t c0, int64_t nc, int threads, const float* thr = nullptr, uint8_t* flags = nullptr) {
      if (int8)
        centroid_scores_t_i8(path, *packed8, ci8->c8 + c0 * ci8->dim4, ci8->scale + c0, ci8->csum + c0, nc,
                             St.get() + c0 * sm, threads, thr, flags);
      else
        centroid_scores_t(path, qrows, Matrix{cv.centroids + c0 * dim, DType::f32, nc, dim}, sm, St.get() + c0 * sm,
                          threads);
    };
    if (std::min(p + 1, K) <= kPlaidFeedMax) {
      // Each slice of St is probed right after it is computed, while it is still in cache. With
      // threads, each scores and probes its own contiguous share of the slices (so its part of St
      // stays in its core's cache) and the probes merge exactly. Once a probe's lists are full, the
      // int8 kernel flags the centroids that beat a threshold as of the slice's start (with the
      // scores still in registers) and only those are probed: the same result, since thresholds
      // only rise.
      const int64_t nslices = (K + kProbeSlice - 1) / kProbeSlice;
      const int64_t workers = std::min<int64_t>(num_threads, nslices);
      std::vector<std::unique_ptr<PlaidProbe>> probes(static_cast<std::size_t>(workers));
      parallel_for(workers, static_cast<int>(workers), [&](int64_t w, int) {
        auto probe = std::make_unique<PlaidProbe>(path, m, K, p);
        std::vector<float> thr(int8 ? static_cast<std::size_t>(sm) : 0);
        std::vector<uint8_t> flags(int8 ? static_cast<std::size_t>(kProbeSlice) : 0);
        for (int64_t sl = w * nslices / workers; sl < (w + 1) * nslices / workers; ++sl) {
          const int64_t c0 = sl * kProbeSlice, nc = std::min(kProbeSlice, K - c0);
          if (int8 && probe->full()) {
            probe->thresholds(thr.data(), sm);
            score(c0, nc, 1, thr.data(), flags.data());
            probe->feed_flagged(St.get(), sm, c0, c0 + nc, flags.data());
            continue;
          }
          score(c0, nc, 1);
          probe->feed(St.get(), sm, c0, c0 + nc);
        }
        probes[static_cast<std::size_t>(w)] = std::move(probe);
      });
      for (int64_t w = 1; w < workers; ++w) probes[0]->merge(*probes[static_cast<std::size_t>(w)]);
      probes[0]->finish(St.get(), sm, cells.data(), cell_scores.data(), miss.data());
    } else {
      score(0, K, num_threads);
      plaid_probe(path, St.get(), m, K, sm, p, cells.data(), cell_scores.data(), miss.data());
    }

    // Stage A over the probed lists (their IVF ranges checked before they are read).
    for (int32_t c : cells) {
      const int64_t lo = seg.ivf_offsets[c], hi = seg.ivf_offsets[c + 1];
      if (lo < 0 || lo > hi || hi > seg.ivf_len) return PlaidStatus::bad_ivf_range;
    }
    PlaidStageA a = plaid_stage_a(cells.data(), cell_scores.data(), miss.data(), m, p, seg.ivf, seg.ivf_offsets, seg.n,
                                  nullptr);
    if (a.bad_ivf) return PlaidStatus::bad_ivf_doc;
    std::vector<int64_t> docs = std::move(a.docs);
    std::vector<float> val = std::move(a.est);
    for (int64_t d : docs) {
      const int64_t lo = seg.offsets[d], hi = seg.offsets[d + 1];
      if (lo < 0 || lo > hi || hi > seg.codes.n) return PlaidStatus::bad_doc_range;
    }
    keep_best(val, docs, prm.ndocs);

    // Stage B when more candidates remain than the re-rank takes.
    if (static_cast<int64_t>(docs.size()) > prm.rerank) {
      val.resize(docs.size());
      if (!plaid_centroid_interaction(path, St.get(), m, K, sm, prm.threshold, seg.codes, seg.offsets, docs.data(),
                                      static_cast<int64_t>(docs.size()), val.data(), num_threads))
        return PlaidStatus::bad_code;
      keep_best(val, docs, prm.rerank);
    }
    std::sort(docs.begin(), docs.end());

    // Exact MaxSim of the survivors straight from their codes (no gathered copy).
    const int64_t nd = static_cast<int64_t>(docs.size());
    for (int64_t d : docs)
      for (int64_t t = seg.offsets[d]; t < seg.offsets[d + 1]; ++t)
        if (!code_in_range(seg.codes, t, K)) return PlaidStatus::bad_code;
    val.assign(static_cast<std::size_t>(nd), 0.0f);
    path.codec.prepare_query(rows.data(), m, dim, prep.p);
    const int64_t chunk = std::max<int64_t>(1, nd / (static_cast<int64_t>(num_threads) * 16));
    parallel_for((nd + chunk - 1) / chunk, num_threads, [&](int64_t t, int worker) {
      float* s = scratch[static_cast<std::size_t>(worker)].data();
      std::vector<int32_t>& wc = wide[static_cast<std::size_t>(worker)];
      const int64_t hi = std::min(nd, (t + 1) * chunk);
      for (int64_t j = t * chunk; j < hi; ++j) {
        const int64_t b = seg.offsets[docs[j]], ntok = seg.offsets[docs[j] + 1] - b;
        if (ntok <= 0) continue;
        const int32_t* codes = static_cast<const int32_t*>(seg.codes.data) + b;
        if (seg.codes.u16) {
          const uint16_t* c16 = static_cast<const uint16_t*>(seg.codes.data) + b;
          wc.assign(c16, c16 + ntok);
          codes = wc.data();
        }
        val[j] = path.codec.score_doc(prep.p, m, cv, codes, seg.residuals + b * w, nullptr, ntok, s);
      }
    });

    // The k best, best first.
    std::vector<int64_t> order(static_cast<std::size_t>(nd));
    std::iota(order.begin(), order.end(), 0);
    const int64_t kk = std::min(k, nd);
    std::partial_sort(order.begin(), order.begin() + kk, order.end(),
                      [&](int64_t x, int64_t y) { return ranks_before(val, docs, x, y); });
    for (int64_t j = 0; j < kk; ++j) {
      out_scores[qi * k + j] = val[order[j]];
      out_docs[qi * k + j] = docs[order[j]];
    }
  }
  return PlaidStatus::ok;
}

}  // namespace edgecolbert
