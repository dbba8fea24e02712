// PLAID candidate stages: the threaded, transposed stage B against the scalar reference (bit-identical)
// and a float64 re-derivation; stage A against a brute-force evaluation of its formula. Awkward sizes:
// m 1..40 (not a multiple of the 16-float row), empty documents, one-token documents, codes int32 and
// uint16, thresholds that prune nothing, some or everything; a bad code is reported, not read.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "edgecolbert/dispatch.hpp"
#include "edgecolbert/plaid.hpp"
#include "test_util.hpp"

using namespace edgecolbert;

namespace {

struct Seg {
  std::vector<int32_t> codes;
  std::vector<uint16_t> codes16;
  std::vector<int64_t> offsets;
};

Seg make_seg(std::mt19937_64& rng, int64_t n, int64_t K) {
  Seg s;
  s.offsets.push_back(0);
  std::uniform_int_distribution<int> len(0, 9), code(0, static_cast<int>(K - 1));
  for (int64_t d = 0; d < n; ++d) {
    const int l = d % 7 == 0 ? 0 : (d % 5 == 0 ? 1 : len(rng));
    for (int t = 0; t < l; ++t) s.codes.push_back(code(rng));
    s.offsets.push_back(static_cast<int64_t>(s.codes.size()));
  }
  for (int32_t c : s.codes) s.codes16.push_back(static_cast<uint16_t>(c));
  return s;
}

// A random IVF over n documents and K centroids: each document in the lists of up to three random
// centroids (none for every sixth when some_empty), each list sorted and unique.
struct Ivf {
  std::vector<std::vector<int32_t>> lists;
  std::vector<int32_t> ivf;
  std::vector<int64_t> offsets{0};
};

Ivf random_ivf(std::mt19937_64& rng, int64_t K, int64_t n, bool some_empty) {
  Ivf v;
  v.lists.resize(static_cast<std::size_t>(K));
  std::uniform_int_distribution<int> cpick(0, static_cast<int>(K - 1));
  for (int32_t d = 0; d < n; ++d)
    for (int t = 0; t < (some_empty && d % 6 == 0 ? 0 : 3); ++t) {
      auto& l = v.lists[cpick(rng)];
      if (l.empty() || l.back() != d) l.push_back(d);
    }
  for (auto& l : v.lists) {
    v.ivf.insert(v.ivf.end(), l.begin(), l.end());
    v.offsets.push_back(static_cast<int64_t>(v.ivf.size()));
  }
  return v;
}

// For each of m tokens, p distinct random centroids of K (p <= K), token after token.
std::vector<int32_t> random_cells(std::mt19937_64& rng, int64_t m, int64_t p, int64_t K) {
  std::vector<int32_t> cells(static_cast<std::size_t>(m * p)), perm(static_cast<std::size_t>(K));
  for (int64_t i = 0; i < m; ++i) {
    for (int32_t c = 0; c < K; ++c) perm[c] = c;
    std::shuffle(perm.begin(), perm.end(), rng);
    std::copy_n(perm.begin(), p, cells.begin() + i * p);
  }
  return cells;
}

// S [m, K] row-major -> St [K, stride] centroid-major; the padding columns hold garbage (the
// stages must ignore them).
std::vector<float> transpose(const std::vector<float>& S, int64_t m, int64_t K, int64_t stride) {
  std::vector<float> St(static_cast<std::size_t>(K * stride), std::numeric_limits<float>::quiet_NaN());
  for (int64_t c = 0; c < K; ++c)
    for (int64_t i = m; i < stride; ++i) St[c * stride + i] = (i % 2) ? 1e30f : std::numeric_limits<float>::quiet_NaN();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < K; ++c) St[c * stride + i] = S[i * K + c];
  return St;
}

}  // namespace

EC_TEST(plaid_centroid_interaction_matches_reference) {
  std::mt19937_64 rng(7);
  for (int64_t m : {1, 7, 16, 17, 32, 40}) {
    for (int64_t K : {1, 5, 300}) {
      auto S = ectest::awkward_values(rng, static_cast<std::size_t>(m * K));
      const Seg s = make_seg(rng, 200, K);
      std::vector<int64_t> docs;
      std::uniform_int_distribution<int64_t> pick(0, 199);
      for (int j = 0; j < 150; ++j) docs.push_back(pick(rng));
      for (float th : {-std::numeric_limits<float>::infinity(), 0.4f, 1.0f, 1e30f}) {
        for (bool u16 : {false, true}) {
          PlaidCodes c{u16 ? static_cast<const void*>(s.codes16.data()) : s.codes.data(), u16,
                       static_cast<int64_t>(s.codes.size())};
          std::vector<float> ref(docs.size(), NAN), fast(docs.size(), NAN);
          EC_CHECK(plaid_centroid_interaction_scalar(S.data(), m, K, th, c, s.offsets.data(), docs.data(),
                                                     static_cast<int64_t>(docs.size()), ref.data()), "ref failed");
          for (const KernelPath* path : available_paths())
          for (int64_t stride : {m, m + 3, (m + 31) / 32 * 32})
          for (int threads : {1, 3}) {
            const auto St = transpose(S, m, K, stride);
            std::fill(fast.begin(), fast.end(), NAN);
            EC_CHECK(plaid_centroid_interaction(*path, St.data(), m, K, stride, th, c, s.offsets.data(), docs.data(),
                                                static_cast<int64_t>(docs.size()), fast.data(), threads), "fast failed");
            for (std::size_t j = 0; j < docs.size(); ++j)
              EC_CHECK(fast[j] == ref[j], "%s m %lld K %lld th %g doc %lld: %g vs %g", path->name, (long long)m,
                       (long long)K, th, (long long)docs[j], fast[j], ref[j]);
          }
          // float64 re-derivation of the formula
          for (std::size_t j = 0; j < docs.size(); ++j) {
            const int64_t lo = s.offsets[docs[j]], hi = s.offsets[docs[j] + 1];
            double want = 0;
            if (hi > lo) {
              for (int64_t i = 0; i < m; ++i) {
                double b = -INFINITY;
                for (int64_t t = lo; t < hi; ++t) {
                  const int64_t cc = s.codes[t];
                  double cm = -INFINITY;
                  for (int64_t r = 0; r < m; ++r) cm = std::max(cm, static_cast<double>(S[r * K + cc]));
                  b = std::max(b, cm >= th ? static_cast<double>(S[i * K + cc]) : 0.0);
                }
                want += b;
              }
            }
            EC_CHECK(std::fabs(ref[j] - want) <= 1e-5 * (1.0 + std::fabs(want)) * m, "float64: %g vs %g", ref[j], want);
          }
        }
      }
    }
  }
}

EC_TEST(plaid_centroid_interaction_rejects_bad_codes) {
  std::vector<float> S(4 * 3, 1.0f);
  std::vector<int32_t> codes = {0, 1, 3};  // 3 is outside K = 3
  std::vector<int64_t> off = {0, 2, 3}, docs = {0, 1};
  std::vector<float> out(2);
  PlaidCodes c{codes.data(), false, 3};
  for (const KernelPath* path : available_paths())
    EC_CHECK(!plaid_centroid_interaction(*path, S.data(), 4, 3, 4, -INFINITY, c, off.data(), docs.data(), 2, out.data(), 2),
             "not caught on %s", path->name);
  EC_CHECK(!plaid_centroid_interaction_scalar(S.data(), 4, 3, -INFINITY, c, off.data(), docs.data(), 2, out.data()), "ref");
  docs = {0};
  EC_CHECK(plaid_centroid_interaction(default_path(), S.data(), 4, 3, 4, -INFINITY, c, off.data(), docs.data(), 1,
                                      out.data(), 2), "good doc");
  EC_CHECK(out[0] == 4.0f, "got %g", out[0]);
}

EC_TEST(plaid_stage_a_matches_formula) {
  std::mt19937_64 rng(11);
  for (int64_t m : {1, 5, 32}) {
    for (int64_t p : {1, 3, 8}) {
      const int64_t K = 40, n = 120;
      Ivf iv = random_ivf(rng, K, n, false);
      const auto& lists = iv.lists;
      std::vector<int32_t>& ivf = iv.ivf;
      std::vector<int64_t>& io = iv.offsets;
      const std::vector<int32_t> cells = random_cells(rng, m, p, K);
      std::vector<float> cs(m * p), miss(m);
      std::normal_distribution<float> g(0.0f, 1.0f);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < p; ++j) cs[i * p + j] = std::fabs(g(rng)) - 1.0f;
        miss[i] = -2.0f - 0.1f * std::fabs(g(rng));  // below every probed score, as the (p+1)-th best is
      }
      std::vector<uint8_t> allowed(n);
      for (int64_t d = 0; d < n; ++d) allowed[d] = d % 3 != 0;
      for (bool use_allowed : {false, true}) {
        auto r = plaid_stage_a(cells.data(), cs.data(), miss.data(), m, p, ivf.data(), io.data(), n,
                               use_allowed ? allowed.data() : nullptr);
        EC_CHECK(!r.bad_ivf, "bad ivf");
        std::vector<int> seen(n, 0);
        for (std::size_t e = 0; e < r.docs.size(); ++e) {
          const int64_t d = r.docs[e];
          seen[d] = 1;
          double want = 0;
          for (int64_t i = 0; i < m; ++i) {
            double best = miss[i];
            for (int64_t j = 0; j < p; ++j) {
              const auto& l = lists[cells[i * p + j]];
              if (std::find(l.begin(), l.end(), d) != l.end()) best = std::max(best, static_cast<double>(cs[i * p + j]));
            }
            want += best;
          }
          EC_CHECK(std::fabs(r.est[e] - want) <= 1e-4 * (1 + std::fabs(want)), "m %lld p %lld doc %lld: %g vs %g", (long long)m, (long long)p, (long long)d, r.est[e], want);
          EC_CHECK(!use_allowed || allowed[d], "doc %lld not allowed", (long long)d);
        }
        for (int64_t d = 0; d < n; ++d) {
          bool probed = false;
          for (int64_t e = 0; e < m * p; ++e) {
            const auto& l = lists[cells[e]];
            probed |= std::find(l.begin(), l.end(), static_cast<int32_t>(d)) != l.end();
          }
          EC_CHECK(seen[d] == (probed && (!use_allowed || allowed[d])), "doc %lld returned %d", (long long)d, seen[d]);
        }
      }
      ivf.push_back(static_cast<int32_t>(n));  // a document number outside [0, n)
      io.back() += 1;
      std::vector<int32_t> all(K);
      std::vector<float> zs(K, 0.0f), zm(1, -1.0f);
      for (int32_t c = 0; c < K; ++c) all[c] = c;
      auto bad = plaid_stage_a(all.data(), zs.data(), zm.data(), 1, K, ivf.data(), io.data(), n, nullptr);
      EC_CHECK(bad.bad_ivf, "bad ivf not reported");
    }
  }
}

// The fill: stage A's candidates with its estimates, bit for bit (non-finite scores included), and every
// other allowed document at Σ miss (float64, token order), each allowed document once; a bad IVF entry
// reported as by stage A.
EC_TEST(plaid_stage_a_fill_adds_every_allowed_document_at_the_floor) {
  std::mt19937_64 rng(12);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t m : {1, 7, 32}) {
    for (int64_t p : {1, 4, 40}) {
      for (bool odd_scores : {false, true}) {
        const int64_t K = 40, n = 150;
        Ivf iv = random_ivf(rng, K, n, true);
        std::vector<int32_t>& ivf = iv.ivf;
        std::vector<int64_t>& io = iv.offsets;
        const int64_t pp = std::min(p, K);
        const std::vector<int32_t> cells = random_cells(rng, m, pp, K);
        std::vector<float> cs(m * pp), miss(m);
        std::normal_distribution<float> g(0.0f, 1.0f);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < pp; ++j) cs[i * pp + j] = g(rng);
          miss[i] = -3.0f + 0.1f * g(rng);
          if (odd_scores && i % 3 == 1) cs[i * pp + (i % pp)] = i % 2 ? nan : -inf;
          if (odd_scores && i == m - 1) miss[i] = -inf;
        }
        double base = 0.0;
        for (int64_t i = 0; i < m; ++i) base += miss[i];
        const float floor_est = static_cast<float>(base);
        std::vector<uint8_t> allowed(n);
        for (int64_t d = 0; d < n; ++d) allowed[d] = d % 4 != 1;
        for (bool use_allowed : {false, true}) {
          const uint8_t* al = use_allowed ? allowed.data() : nullptr;
          auto a = plaid_stage_a(cells.data(), cs.data(), miss.data(), m, pp, ivf.data(), io.data(), n, al);
          auto r = plaid_stage_a_fill(cells.data(), cs.data(), miss.data(), m, pp, ivf.data(), io.data(), n, al);
          EC_CHECK(!r.bad_ivf, "bad ivf");
          std::vector<float> want(n, floor_est);
          for (std::size_t e = 0; e < a.docs.size(); ++e) want[a.docs[e]] = a.est[e];
          std::vector<int> seen(n, 0);
          for (std::size_t e = 0; e < r.docs.size(); ++e) {
            const int64_t d = r.docs[e];
            ++seen[d];
            const float got = r.est[e];
            EC_CHECK(std::memcmp(&got, &want[d], sizeof got) == 0 || (std::isnan(got) && std::isnan(want[d])),
                     "m %lld p %lld doc %lld: %g vs %g", (long long)m, (long long)p, (long long)d, got, want[d]);
          }
          for (int64_t d = 0; d < n; ++d)
            EC_CHECK(seen[d] == ((al == nullptr || al[d]) ? 1 : 0), "doc %lld seen %d times", (long long)d, seen[d]);
        }
        ivf.push_back(static_cast<int32_t>(n));  // a document number outside [0, n)
        io.back() += 1;
        std::vector<int32_t> all(K);
        std::vector<float> zs(K, 0.0f), zm(1, -1.0f);
        for (int32_t c = 0; c < K; ++c) all[c] = c;
        EC_CHECK(plaid_stage_a_fill(all.data(), zs.data(), zm.data(), 1, K, ivf.data(), io.data(), n, nullptr).bad_ivf,
                 "bad ivf not reported");
      }
    }
  }
}

EC_TEST(plaid_probe_matches_brute_force) {
  std::mt19937_64 rng(11);
  std::normal_distribution<float> nd;
  for (int64_t K : {1, 6, 16, 17, 100, 700})
    for (int64_t p : {1, 2, 9, 40, 65, 900}) {
     for (int64_t m : {1, 5, 17, 33, 70}) {  // 70: past one 64-token mask of probe_rows
      const int64_t pp = std::min(p, K);
      std::vector<float> S(static_cast<std::size_t>(m * K));
      for (auto& v : S) v = std::round(nd(rng) * 4.0f) / 4.0f;  // coarse values: many ties
      if (K > 3) S[1] = std::numeric_limits<float>::quiet_NaN();
      std::vector<int32_t> cells(static_cast<std::size_t>(m * pp));
      std::vector<float> cs(cells.size()), miss(static_cast<std::size_t>(m));
      if (K > 3 && m > 2) S[2 * K + 3] = -std::numeric_limits<float>::infinity();
      const int64_t stride = m == 17 ? 17 : (m + 31) / 32 * 32;  // unpadded and padded rows
      const auto St = transpose(S, m, K, stride);
      for (const KernelPath* path : available_paths()) {
      plaid_probe(*path, St.data(), m, K, stride, pp, cells.data(), cs.data(), miss.data());
      if (std::min(pp + 1, K) <= kPlaidFeedMax) {
        // Whether a probe, finished, gives plaid_probe's cells, scores and misses bit for bit.
        auto finishes_as_plaid_probe = [&](const PlaidProbe& probe) {
          std::vector<int32_t> cells2(cells.size());
          std::vector<float> cs2(cs.size()), miss2(miss.size());
          probe.finish(St.data(), stride, cells2.data(), cs2.data(), miss2.data());
          return cells2 == cells && std::memcmp(cs2.data(), cs.data(), cs.size() * sizeof(float)) == 0 &&
                 std::memcmp(miss2.data(), miss.data(), miss.size() * sizeof(float)) == 0;
        };
        // Fed in slices of any size (the search probes each slice of St as it is computed): the same result.
        for (int64_t slice : {int64_t{1}, int64_t{7}, int64_t{64}}) {
          PlaidProbe probe(*path, m, K, pp);
          for (int64_t c0 = 0; c0 < K; c0 += slice) probe.feed(St.data(), stride, c0, std::min(K, c0 + slice));
          EC_CHECK(finishes_as_plaid_probe(probe),
                   "%s: sliced probe (slice %lld) differs", path->name, (long long)slice);
        }
        // Once full, fed only the centroids that beat the thresholds as of each slice's start (the
        // search's int8 kernel flags them): the same result.
        for (int64_t slice : {int64_t{1}, int64_t{5}, int64_t{13}, int64_t{64}}) {  // 13: a word of 8 flags and a tail
          PlaidProbe probe(*path, m, K, pp);
          std::vector<float> thr(static_cast<std::size_t>(stride + 3));
          std::vector<uint8_t> flags(static_cast<std::size_t>(slice));
          int64_t flagged = 0;
          for (int64_t c0 = 0; c0 < K; c0 += slice) {
            const int64_t c1 = std::min(K, c0 + slice);
            if (!probe.full()) {
              probe.feed(St.data(), stride, c0, c1);
              continue;
            }
            probe.thresholds(thr.data(), static_cast<int64_t>(thr.size()));
            for (int64_t i = m; i < static_cast<int64_t>(thr.size()); ++i) EC_CHECK(std::isinf(thr[i]) && thr[i] > 0, "pad");
            for (int64_t c = c0; c < c1; ++c) {
              flags[c - c0] = 0;
              for (int64_t i = 0; i < m; ++i) flags[c - c0] |= St[c * stride + i] > thr[i];
              flagged += flags[c - c0];
            }
            probe.feed_flagged(St.data(), stride, c0, c1, flags.data());
          }
          EC_CHECK(finishes_as_plaid_probe(probe),
                   "%s: flagged probe (slice %lld) differs", path->name, (long long)slice);
          if (K == 700 && pp == 1 && m == 1 && slice == 64) EC_CHECK(flagged < 100, "flags skip little: %lld", (long long)flagged);
        }
        // Probes of disjoint ranges (one per thread in the search), merged in any order: the same result.
        for (int64_t parts : {int64_t{2}, int64_t{3}, int64_t{5}}) {
          std::vector<std::unique_ptr<PlaidProbe>> pr;
          for (int64_t w = 0; w < parts; ++w) {
            pr.push_back(std::make_unique<PlaidProbe>(*path, m, K, pp));
            pr.back()->feed(St.data(), stride, w * K / parts, (w + 1) * K / parts);
          }
          for (int64_t w = parts - 1; w >= 1; --w) pr[w - 1]->merge(*pr[w]);  // right to left
          EC_CHECK(finishes_as_plaid_probe(*pr[0]),
                   "%s: probe merged from %lld parts differs", path->name, (long long)parts);
        }
      }
      for (int64_t i = 0; i < m; ++i) {
        std::vector<int32_t> order(static_cast<std::size_t>(K));
        for (int64_t c = 0; c < K; ++c) order[c] = static_cast<int32_t>(c);
        auto key = [&](int32_t c) {
          const float v = S[i * K + c];
          return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v;
        };
        std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return key(a) > key(b); });
        for (int64_t j = 0; j < pp; ++j) {
          EC_CHECK(cells[i * pp + j] == order[j], "cell");
          EC_CHECK(std::memcmp(&cs[i * pp + j], &S[i * K + order[j]], sizeof(float)) == 0, "score");
        }
        if (pp < K && std::isfinite(S[i * K + order[pp]])) EC_CHECK(miss[i] == S[i * K + order[pp]], "miss");
        if (pp == K) EC_CHECK(miss[i] == 0.0f, "miss when everything is probed");
      }
      }
     }
    }
}

EC_TEST(plaid_gather_concatenates_in_order) {
  std::mt19937_64 rng(5);
  const Seg s = make_seg(rng, 50, 300);
  const int64_t w = 3;
  std::vector<uint8_t> res(s.codes.size() * w);
  for (std::size_t i = 0; i < res.size(); ++i) res[i] = static_cast<uint8_t>(i * 7 + 1);
  const std::vector<int64_t> docs = {4, 0, 4, 49, 7, 1};  // repeats, empty document 0 and 7
  for (bool u16 : {false, true}) {
    PlaidCodes c{u16 ? static_cast<const void*>(s.codes16.data()) : s.codes.data(), u16,
                 static_cast<int64_t>(s.codes.size())};
    std::vector<int32_t> oc(s.codes.size() * 2);
    std::vector<uint8_t> orr(oc.size() * w);
    std::vector<int64_t> oo(docs.size() + 1, -1);
    plaid_gather(c, res.data(), w, s.offsets.data(), docs.data(), static_cast<int64_t>(docs.size()), oc.data(),
                 orr.data(), oo.data());
    int64_t at = 0;
    EC_CHECK(oo[0] == 0, "offsets start at 0");
    for (std::size_t j = 0; j < docs.size(); ++j) {
      for (int64_t t = s.offsets[docs[j]]; t < s.offsets[docs[j] + 1]; ++t, ++at) {
        EC_CHECK(oc[at] == s.codes[t], "code");
        for (int64_t b = 0; b < w; ++b) EC_CHECK(orr[at * w + b] == res[t * w + b], "residual byte");
      }
      EC_CHECK(oo[j + 1] == at, "offset %zu", j + 1);
    }
  }
}

// Each document's distinct codes, ascending (sort + unique per document, any thread count, documents
// empty or of one token), and stage B over them gives the same bits as over every code, on every path.
EC_TEST(plaid_distinct_codes_keep_stage_b) {
  std::mt19937_64 rng(11);
  for (int64_t n : {0, 1, 5, 1030, 3000}) {  // 1030, 3000: uneven shares of the document range
    for (int64_t K : {1, 4, 300}) {  // K 1 and 4: many repeats in a document
      const Seg s = make_seg(rng, n, K);
      for (int threads : {1, 2, 3, 7}) {
        std::vector<int32_t> d32;
        std::vector<uint16_t> d16;
        std::vector<int64_t> o32(static_cast<std::size_t>(n) + 1, -1), o16(static_cast<std::size_t>(n) + 1, -1);
        plaid_distinct_codes(s.codes.data(), s.offsets.data(), n, d32, o32.data(), threads);
        plaid_distinct_codes(s.codes16.data(), s.offsets.data(), n, d16, o16.data(), threads);
        EC_CHECK(o32 == o16 && o32[0] == 0 && o32[n] == static_cast<int64_t>(d32.size()), "offsets");
        for (int64_t d = 0; d < n; ++d) {
          std::vector<int32_t> want(s.codes.begin() + s.offsets[d], s.codes.begin() + s.offsets[d + 1]);
          std::sort(want.begin(), want.end());
          want.erase(std::unique(want.begin(), want.end()), want.end());
          EC_CHECK(o32[d + 1] - o32[d] == static_cast<int64_t>(want.size()), "n %lld doc %lld count", (long long)n,
                   (long long)d);
          for (std::size_t t = 0; t < want.size(); ++t)
            EC_CHECK(d32[o32[d] + t] == want[t] && d16[o32[d] + t] == want[t], "doc %lld code %zu", (long long)d, t);
        }
        if (threads != 3 || n == 0) continue;
        for (int64_t m : {7, 32}) {
          auto S = ectest::awkward_values(rng, static_cast<std::size_t>(m * K));
          const auto St = transpose(S, m, K, (m + 31) / 32 * 32);
          std::vector<int64_t> docs;
          std::uniform_int_distribution<int64_t> pick(0, n - 1);
          for (int j = 0; j < 100; ++j) docs.push_back(pick(rng));
          const PlaidCodes all{s.codes16.data(), true, static_cast<int64_t>(s.codes16.size())};
          const PlaidCodes few{d16.data(), true, static_cast<int64_t>(d16.size())};
          for (float th : {-std::numeric_limits<float>::infinity(), 0.4f})
            for (const KernelPath* path : available_paths()) {
              std::vector<float> a(docs.size(), NAN), b(docs.size(), NAN);
              const int64_t stride = (m + 31) / 32 * 32, nd = static_cast<int64_t>(docs.size());
              EC_CHECK(plaid_centroid_interaction(*path, St.data(), m, K, stride, th, all, s.offsets.data(),
                                                  docs.data(), nd, a.data(), 1), "all codes");
              EC_CHECK(plaid_centroid_interaction(*path, St.data(), m, K, stride, th, few, o16.data(), docs.data(), nd,
                                                  b.data(), 2), "distinct codes");
              for (std::size_t j = 0; j < docs.size(); ++j)
                EC_CHECK(std::memcmp(&a[j], &b[j], sizeof(float)) == 0, "%s doc %lld: %g vs %g", path->name,
                         (long long)docs[j], a[j], b[j]);
            }
        }
      }
    }
  }
}
