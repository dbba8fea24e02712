// The search of a whole index (plaid_search.hpp) against a stage-by-stage reference written here from the
// single stages (plaid_probe, plaid_stage_a, the scalar stage B, maxsim_compressed's decoding kernel, maxsim)
// and plain sorts: one and three segments, no mask, tombstones, a subset, both, a subset small enough for the
// selective mode, nothing allowed; empty queries and empty documents; k beyond the candidates; int32 and
// uint16 codes; float32 and int8 centroid scores; nbits 1, 2, 4; 1 and 3 threads; every path. Results must be
// bit-identical. Also: the stage driver over a source split like shards (two native sources over disjoint
// segments, merged) equals the single source, and a corrupt segment is a fault naming it, not a bad read.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "edgecolbert/centroids.hpp"
#include "edgecolbert/codec.hpp"
#include "edgecolbert/maxsim.hpp"
#include "edgecolbert/plaid_search.hpp"
#include "test_util.hpp"

using namespace edgecolbert;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Segment {
  std::vector<int32_t> codes;
  std::vector<uint16_t> codes16;
  std::vector<uint8_t> residuals;
  std::vector<int64_t> offsets;
  std::vector<int32_t> ivf;
  std::vector<int64_t> ivf_offsets;
  std::vector<float> decoded;
  int64_t n() const { return static_cast<int64_t>(offsets.size()) - 1; }
  PlaidSegment view(bool u16) const {
    PlaidSegment s;
    s.codes = PlaidCodes{u16 ? static_cast<const void*>(codes16.data()) : codes.data(), u16,
                         static_cast<int64_t>(codes.size())};
    s.residuals = residuals.data();
    s.offsets = offsets.data();
    s.n = n();
    s.ivf = ivf.data();
    s.ivf_offsets = ivf_offsets.data();
    s.ivf_len = static_cast<int64_t>(ivf.size());
    s.decoded = decoded.data();
    return s;
  }
};

struct World {
  int64_t K = 48, dim = 16;
  int nbits = 2;
  std::vector<float> centroids, cutoffs, weights, table;
  std::vector<int8_t> c8;
  std::vector<float> cscale;
  std::vector<int32_t> csum;
  std::vector<Segment> one, three;  // the same documents as one segment and as three
  std::vector<float> queries;
  std::vector<uint8_t> mask;
  int64_t nq = 6, lq = 9, n = 0;
  CodecView cv() const { return {centroids.data(), K, dim, nbits, weights.data(), table.data()}; }
  PlaidCentroidsI8 ci8() const { return {c8.data(), cscale.data(), csum.data(), i8_width(dim)}; }
};

// Documents of 0..12 tokens near a few centroids each; the IVF of a segment lists each centroid's documents.
Segment make_segment(const World& w, const std::vector<float>& tokens, const std::vector<int64_t>& lens,
                     int64_t d0, int64_t d1, int64_t t0) {
  Segment s;
  s.offsets.push_back(0);
  for (int64_t d = d0; d < d1; ++d) s.offsets.push_back(s.offsets.back() + lens[d]);
  const int64_t T = s.offsets.back(), width = w.dim * w.nbits / 8;
  s.codes.resize(static_cast<std::size_t>(T));
  s.residuals.resize(static_cast<std::size_t>(T * width));
  const KernelPath& path = default_path();
  const CodecView cv = w.cv();
  compress(path, cv, w.cutoffs.data(), Matrix{tokens.data() + t0 * w.dim, DType::f32, T, w.dim}, s.codes.data(),
           s.residuals.data(), 1);
  for (int32_t c : s.codes) s.codes16.push_back(static_cast<uint16_t>(c));
  s.decoded.resize(static_cast<std::size_t>(std::max<int64_t>(T, 1) * w.dim));
  decompress(path, cv, s.codes.data(), s.residuals.data(), T, s.decoded.data(), DType::f32, 1);
  std::vector<std::vector<int32_t>> lists(static_cast<std::size_t>(w.K));
  for (int64_t d = 0; d < s.n(); ++d)
    for (int64_t t = s.offsets[d]; t < s.offsets[d + 1]; ++t) {
      auto& l = lists[static_cast<std::size_t>(s.codes[t])];
      if (l.empty() || l.back() != d) l.push_back(static_cast<int32_t>(d));
    }
  s.ivf_offsets.push_back(0);
  for (auto& l : lists) {
    s.ivf.insert(s.ivf.end(), l.begin(), l.end());
    s.ivf_offsets.push_back(static_cast<int64_t>(s.ivf.size()));
  }
  return s;
}

World make_world(int nbits, std::mt19937_64& rng) {
  World w;
  w.nbits = nbits;
  std::normal_distribution<float> g(0.0f, 1.0f);
  auto unit = [&](float* v) {
    double ss = 0;
    for (int64_t d = 0; d < w.dim; ++d) ss += static_cast<double>(v[d]) * v[d];
    for (int64_t d = 0; d < w.dim; ++d) v[d] /= static_cast<float>(std::sqrt(ss) + 1e-12);
  };
  w.centroids.resize(static_cast<std::size_t>(w.K * w.dim));
  for (auto& x : w.centroids) x = g(rng);
  for (int64_t k = 0; k < w.K; ++k) unit(w.centroids.data() + k * w.dim);
  const int nb = 1 << nbits;
  for (int i = 1; i < nb; ++i) w.cutoffs.push_back(0.2f * (2.0f * i / nb - 1.0f));
  for (int i = 0; i < nb; ++i) w.weights.push_back(0.2f * (2.0f * (i + 0.5f) / nb - 1.0f));
  w.table = make_byte_table(w.weights.data(), nbits);
  const int64_t d4 = i8_width(w.dim);
  w.c8.resize(static_cast<std::size_t>(w.K * d4));
  w.cscale.resize(static_cast<std::size_t>(w.K));
  quantize_rows_i8(w.centroids.data(), w.K, w.dim, w.c8.data(), w.cscale.data());
  for (int64_t k = 0; k < w.K; ++k) {
    int32_t s = 0;
    for (int64_t j = 0; j < d4; ++j) s += w.c8[k * d4 + j];
    w.csum.push_back(128 * s);
  }
  // 240 documents: every 9th empty, tokens near 3 centroids of the document's own, plus noise.
  w.n = 240;
  std::vector<int64_t> lens;
  std::vector<float> tokens;
  std::uniform_int_distribution<int> len(1, 12), cpick(0, static_cast<int>(w.K - 1)), three(0, 2);
  for (int64_t d = 0; d < w.n; ++d) {
    lens.push_back(d % 9 == 0 ? 0 : len(rng));
    const int c[3] = {cpick(rng), cpick(rng), cpick(rng)};
    for (int64_t t = 0; t < lens.back(); ++t) {
      const float* cen = w.centroids.data() + c[three(rng)] * w.dim;
      for (int64_t j = 0; j < w.dim; ++j) tokens.push_back(cen[j] + 0.3f * g(rng));
      unit(tokens.data() + tokens.size() - w.dim);
    }
  }
  std::vector<int64_t> start(static_cast<std::size_t>(w.n) + 1, 0);
  for (int64_t d = 0; d < w.n; ++d) start[d + 1] = start[d] + lens[d];
  w.one.push_back(make_segment(w, tokens, lens, 0, w.n, 0));
  for (auto [a, b] : {std::pair<int64_t, int64_t>{0, 100}, {100, 190}, {190, 240}})
    w.three.push_back(make_segment(w, tokens, lens, a, b, start[a]));
  // Queries from the tokens of random documents; query 2 keeps no row, query 4 only three.
  w.queries.resize(static_cast<std::size_t>(w.nq * w.lq * w.dim));
  std::uniform_int_distribution<int64_t> tpick(0, start[w.n] - 1);
  for (int64_t r = 0; r < w.nq * w.lq; ++r) {
    const int64_t t = tpick(rng);
    for (int64_t j = 0; j < w.dim; ++j) w.queries[r * w.dim + j] = tokens[t * w.dim + j] + 0.2f * g(rng);
  }
  w.mask.assign(static_cast<std::size_t>(w.nq * w.lq), 1);
  for (int64_t r = 0; r < w.lq; ++r) w.mask[2 * w.lq + r] = 0, w.mask[4 * w.lq + r] = r < 3;
  return w;
}

// ---------------------------------------------------------------------------- the reference

bool selects_before(float va, int64_t pa, float vb, int64_t pb) {
  const float ka = std::isnan(va) ? kNegInf : va, kb = std::isnan(vb) ? kNegInf : vb;
  return ka > kb || (ka == kb && pa < pb);
}
bool ranks_before(float va, int64_t pa, float vb, int64_t pb) {
  if (std::isnan(va) != std::isnan(vb)) return std::isnan(vb);
  if (!std::isnan(va) && va != vb) return va > vb;
  return pa < pb;
}

// (value, position) pairs sorted by an order, the first n kept.
template <typename Order>
void sort_keep(std::vector<std::pair<float, int64_t>>& v, std::size_t n, Order before) {
  std::sort(v.begin(), v.end(), [&](const auto& a, const auto& b) { return before(a.first, a.second, b.first, b.second); });
  if (v.size() > n) v.resize(n);
}

std::vector<int32_t> widened(const PlaidSegment& sg) {
  std::vector<int32_t> c32(static_cast<std::size_t>(sg.codes.n));
  for (int64_t t = 0; t < sg.codes.n; ++t)
    c32[t] = sg.codes.u16 ? static_cast<const uint16_t*>(sg.codes.data)[t] : static_cast<const int32_t*>(sg.codes.data)[t];
  return c32;
}

struct Ref {
  std::vector<float> scores;
  std::vector<int64_t> pos;
  std::vector<std::vector<int64_t>> widths;  // per query: the probe widths of its stage A rounds
};

// The stage-by-stage search of one query's kept rows over segs (positions in order), per plaid_search.hpp.
void reference_query(const KernelPath& path, const World& w, const std::vector<PlaidSegment>& segs,
                     const uint8_t* allowed, bool subset, bool fill, const PlaidSearchParams& prm, bool int8,
                     const float* rows, int64_t m, int threads, std::vector<std::pair<float, int64_t>>& top,
                     std::vector<int64_t>& widths) {
  const int64_t K = w.K, sm = (m + 31) / 32 * 32, d4 = i8_width(w.dim);
  std::vector<float> St(static_cast<std::size_t>(K * sm));
  std::vector<int8_t> q8(static_cast<std::size_t>(m * d4));
  std::vector<float> qs(static_cast<std::size_t>(m));
  if (int8 && quantize_rows_i8(rows, m, w.dim, q8.data(), qs.data()))
    centroid_scores_t_i8(path, q8.data(), qs.data(), m, d4, w.c8.data(), w.cscale.data(), w.csum.data(), K, sm,
                         St.data(), threads);
  else
    centroid_scores_t(path, Matrix{rows, DType::f32, m, w.dim}, Matrix{w.centroids.data(), DType::f32, K, w.dim}, sm,
                      St.data(), threads);
  std::vector<int64_t> base(1, 0);
  int64_t n_allowed = 0;
  for (const auto& s : segs) base.push_back(base.back() + s.n);
  for (int64_t p = 0; p < base.back(); ++p) n_allowed += allowed == nullptr || allowed[p];
  std::vector<std::pair<float, int64_t>> pool;
  // The pool rule: a subset widens the probe until min(ndocs, allowed) are candidates; tombstones never do.
  const int64_t target = subset ? std::min(prm.ndocs, n_allowed) : 0;
  widths.clear();
  for (int64_t probe = prm.nprobe;;) {
    widths.push_back(probe);
    const int64_t p = std::min(probe, K);
    std::vector<int32_t> cells(static_cast<std::size_t>(m * p));
    std::vector<float> cs(cells.size()), miss(static_cast<std::size_t>(m));
    plaid_probe(path, St.data(), m, K, sm, p, cells.data(), cs.data(), miss.data());
    pool.clear();
    for (std::size_t s = 0; s < segs.size(); ++s) {
      PlaidStageA a = plaid_stage_a(cells.data(), cs.data(), miss.data(), m, p, segs[s].ivf, segs[s].ivf_offsets,
                                    segs[s].n, allowed == nullptr ? nullptr : allowed + base[s]);
      for (std::size_t j = 0; j < a.docs.size(); ++j) pool.emplace_back(a.est[j], base[s] + a.docs[j]);
      if (!fill) continue;
      // The fill: every other allowed document too, at the sum of the miss scores (float64, token order).
      double miss_sum = 0.0;
      for (int64_t i = 0; i < m; ++i) miss_sum += miss[i];
      std::vector<uint8_t> listed(static_cast<std::size_t>(segs[s].n), 0);
      for (int64_t d : a.docs) listed[d] = 1;
      for (int64_t d = 0; d < segs[s].n; ++d)
        if (!listed[d] && (allowed == nullptr || allowed[base[s] + d]))
          pool.emplace_back(static_cast<float>(miss_sum), base[s] + d);
    }
    const int64_t count = static_cast<int64_t>(pool.size());
    if (count < target && probe < K) {
      probe = std::min(probe * 4, K);
      continue;
    }
    break;
  }
  sort_keep(pool, static_cast<std::size_t>(prm.ndocs), selects_before);
  // Stage B (the scalar reference, on S row-major) for each candidate in its segment.
  if (static_cast<int64_t>(pool.size()) > prm.rerank) {
    std::vector<float> S(static_cast<std::size_t>(m * K));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = 0; c < K; ++c) S[i * K + c] = St[c * sm + i];
    for (auto& e : pool) {
      const int64_t s = std::upper_bound(base.begin(), base.end(), e.second) - base.begin() - 1;
      const int64_t local = e.second - base[s];
      EC_CHECK(plaid_centroid_interaction_scalar(S.data(), m, K, prm.threshold, segs[s].codes, segs[s].offsets, &local,
                                                 1, &e.first), "stage B");
    }
    sort_keep(pool, static_cast<std::size_t>(prm.rerank), selects_before);
  }
  // Exact: maxsim_compressed (decoding kernel) of each survivor in its segment.
  const CodecView cv = w.cv();
  QueryBatch qb{rows, DType::f32, 1, m, w.dim, nullptr};
  top.clear();
  for (auto& e : pool) {
    const int64_t s = std::upper_bound(base.begin(), base.end(), e.second) - base.begin() - 1;
    const int64_t local = e.second - base[s];
    const std::vector<int32_t> c32 = widened(segs[s]);
    CompressedDocs docs{c32.data(), segs[s].residuals, segs[s].offsets, segs[s].n};
    float v = NAN;
    maxsim_compressed(path, qb, cv, docs, &local, 1, &v, threads, nullptr, CompressedKernel::decode);
    top.emplace_back(v, e.second);
  }
  sort_keep(top, static_cast<std::size_t>(prm.k), ranks_before);
}

Ref reference(const KernelPath& path, const World& w, const std::vector<PlaidSegment>& segs, const uint8_t* allowed,
              bool subset, bool fill, const PlaidSearchParams& prm, PlaidMode mode, bool int8, int threads) {
  Ref r{std::vector<float>(static_cast<std::size_t>(w.nq * prm.k), kNegInf),
        std::vector<int64_t>(static_cast<std::size_t>(w.nq * prm.k), -1),
        std::vector<std::vector<int64_t>>(static_cast<std::size_t>(w.nq))};
  std::vector<int64_t> base(1, 0);
  for (const auto& s : segs) base.push_back(base.back() + s.n);
  int64_t n_allowed = 0;
  for (int64_t p = 0; p < base.back(); ++p) n_allowed += allowed == nullptr || allowed[p];
  if (n_allowed == 0) return r;
  std::vector<float> rows(static_cast<std::size_t>(w.lq * w.dim));
  std::vector<std::pair<float, int64_t>> top;
  for (int64_t qi = 0; qi < w.nq; ++qi) {
    int64_t m = 0;
    for (int64_t j = 0; j < w.lq; ++j)
      if (w.mask[qi * w.lq + j]) std::copy_n(w.queries.data() + (qi * w.lq + j) * w.dim, w.dim, rows.data() + m++ * w.dim);
    top.clear();
    if (mode == PlaidMode::plaid) {
      if (m == 0) continue;
      reference_query(path, w, segs, allowed, subset, fill, prm, int8, rows.data(), m, threads, top, r.widths[qi]);
    } else {  // every allowed document scored: from the codes (selective) or decoded tokens (exhaustive)
      const uint8_t dropped = 0;  // no kept row: one masked row (a query of 0 rows would hand memcpy a null)
      QueryBatch qb{rows.data(), DType::f32, 1, std::max<int64_t>(m, 1), w.dim, m == 0 ? &dropped : nullptr};
      for (std::size_t s = 0; s < segs.size(); ++s) {
        const PlaidSegment& sg = segs[s];
        std::vector<float> out(static_cast<std::size_t>(sg.n));
        if (mode == PlaidMode::exhaustive) {
          maxsim(path, qb, DocSet{sg.decoded, DType::f32, w.dim, sg.n, sg.offsets, sg.offsets + 1, nullptr}, out.data(),
                 threads);
        } else {
          const std::vector<int32_t> c32 = widened(sg);
          maxsim_compressed(path, qb, w.cv(), CompressedDocs{c32.data(), sg.residuals, sg.offsets, sg.n}, nullptr, 0,
                            out.data(), threads, nullptr, CompressedKernel::decode);
        }
        for (int64_t d = 0; d < sg.n; ++d)
          if (allowed == nullptr || allowed[base[s] + d]) top.emplace_back(out[d], base[s] + d);
      }
      sort_keep(top, static_cast<std::size_t>(prm.k), ranks_before);
    }
    for (std::size_t j = 0; j < top.size(); ++j) {
      r.scores[qi * prm.k + j] = top[j].first;
      r.pos[qi * prm.k + j] = top[j].second;
    }
  }
  return r;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// A source that records the probe widths the driver asks for.
class RecordingSource final : public PlaidSource {
 public:
  explicit RecordingSource(PlaidSource& inner) : inner_(inner) {}
  std::vector<int64_t> widths;
  PlaidStatus candidates(const std::vector<int64_t>& q, const std::vector<int64_t>& probes, int64_t ndocs,
                         PlaidPools& out) override {
    widths.insert(widths.end(), probes.begin(), probes.end());
    return inner_.candidates(q, probes, ndocs, out);
  }
  PlaidStatus approximate(const std::vector<int64_t>& q, const std::vector<int64_t>& o, const std::vector<int64_t>& d,
                          std::vector<float>& out) override {
    return inner_.approximate(q, o, d, out);
  }
  PlaidStatus exact(const std::vector<int64_t>& q, const std::vector<int64_t>& o, const std::vector<int64_t>& d,
                    std::vector<float>& out) override {
    return inner_.exact(q, o, d, out);
  }

 private:
  PlaidSource& inner_;
};

}  // namespace

EC_TEST(plaid_search_equals_the_stage_by_stage_reference) {
  std::mt19937_64 rng(21);
  int64_t checked = 0;
  for (int nbits : {1, 2, 4}) {
    const World w = make_world(nbits, rng);
    const int64_t n = w.n;
    // Masks: tombstones (15%), a subset (half), both, a selective subset (12 documents), nothing allowed,
    // tombstones (80%); filled: the subset, both, the 80% tombstones and no mask; a subset of 20%.
    std::vector<uint8_t> tomb(static_cast<std::size_t>(n), 1), sub(static_cast<std::size_t>(n), 0), both, few(n, 0),
        none(static_cast<std::size_t>(n), 0);
    std::uniform_int_distribution<int64_t> pick(0, n - 1);
    for (int i = 0; i < 36; ++i) tomb[pick(rng)] = 0;
    for (int64_t d = 0; d < n; ++d) sub[d] = pick(rng) % 2 == 0;
    both = sub;
    for (int64_t d = 0; d < n; ++d) both[d] &= tomb[d];
    for (int i = 0; i < 12; ++i) few[pick(rng)] = 1;
    // 80% deleted (tombstones never widen the probe), or a subset of 20% (it widens more than once)
    std::vector<uint8_t> heavy(static_cast<std::size_t>(n), 0);
    for (int64_t d = 0; d < n; d += 5) heavy[d] = 1;
    struct Mask {
      const uint8_t* a;
      bool subset, fill;  // fill: every allowed document a candidate (plaid mode only)
    };
    const Mask masks[] = {{nullptr, false, false}, {tomb.data(), false, false}, {sub.data(), true, false},
                          {both.data(), true, false}, {few.data(), true, false}, {none.data(), true, false},
                          {heavy.data(), false, false}, {sub.data(), true, true}, {both.data(), true, true},
                          {heavy.data(), false, true}, {nullptr, false, true}, {heavy.data(), true, false}};
    // (ndocs 200 at nprobe 1: the lists of a query's probe hold fewer, so a filter makes the probe widen)
    const PlaidSearchParams params[] = {{1, 16, 6, 5, kNegInf}, {2, 40, 10, 10, 0.2f}, {3, 7, 64, 300, kNegInf},
                                        {1, 200, 30, 10, kNegInf}};
    const QueryBatch qb{w.queries.data(), DType::f32, w.nq, w.lq, w.dim, w.mask.data()};
    for (const KernelPath* path : available_paths())
      for (bool split : {false, true})
        for (bool u16 : {false, true}) {
          // int32 codes and several paths on the first nbits only (keeps the ASan and qemu runs short)
          if ((!u16 || path != &default_path()) && nbits != 2) continue;
          std::vector<PlaidSegment> segs;
          for (const auto& s : split ? w.three : w.one) segs.push_back(s.view(u16));
          for (const Mask& mk : masks)
            for (const PlaidSearchParams& prm : params)
              for (PlaidMode mode : {PlaidMode::plaid, PlaidMode::selective, PlaidMode::exhaustive})
                for (bool int8 : {false, true})
                  for (int threads : {1, 3}) {
                    if (mode != PlaidMode::plaid && (int8 || &prm != &params[0] || mk.fill)) continue;
                    if (path != &default_path() && (threads != 1 || !split)) continue;  // ISAs: the kernels differ
                    const PlaidIndex ix{segs.data(), static_cast<int64_t>(segs.size()), mk.a, mk.subset, mk.fill};
                    const PlaidCentroidsI8 c8 = w.ci8();
                    std::vector<float> got_s(static_cast<std::size_t>(w.nq * prm.k), NAN);
                    std::vector<int64_t> got_p(got_s.size(), -7);
                    const PlaidStatus st = plaid_search(*path, qb, w.cv(), ix, prm, mode, int8 ? &c8 : nullptr,
                                                        got_s.data(), got_p.data(), threads);
                    EC_CHECK(st.ok(), "status %d", static_cast<int>(st.fault));
                    const Ref want = reference(*path, w, segs, mk.a, mk.subset, mk.fill, prm, mode, int8, threads);
                    bool same = true;
                    for (std::size_t j = 0; j < got_s.size(); ++j)
                      same &= same_bits(got_s[j], want.scores[j]) && got_p[j] == want.pos[j];
                    EC_CHECK(same, "%s nbits %d split %d u16 %d mask %d nprobe %lld ndocs %lld mode %d int8 %d threads %d",
                             path->name, nbits, split, u16, static_cast<int>(&mk - masks), (long long)prm.nprobe,
                             (long long)prm.ndocs, static_cast<int>(mode), int8, threads);
                    if (mode == PlaidMode::plaid && threads == 1 && ix.num_allowed() > 0) {
                      // The probe widths the driver asked for, query by query: the reference's.
                      PlaidIndexSource src(*path, qb, w.cv(), ix, int8 ? &c8 : nullptr, prm.threshold, 1);
                      PlaidDriveParams dp;
                      dp.nprobe = prm.nprobe, dp.ndocs = prm.ndocs, dp.rerank = prm.rerank, dp.k = prm.k;
                      dp.num_centroids = w.K, dp.num_allowed = ix.num_allowed(), dp.subset = mk.subset;
                      PlaidHits hits;
                      for (int64_t qi = 0; qi < w.nq; ++qi) {
                        if (src.kept(qi) == 0) continue;
                        RecordingSource rec(src);
                        EC_CHECK(plaid_drive(rec, {qi}, dp, hits).ok(), "drive");
                        EC_CHECK(rec.widths == want.widths[qi], "query %lld: %zu rounds, the reference %zu",
                                 (long long)qi, rec.widths.size(), want.widths[qi].size());
                      }
                    }
                    ++checked;
                  }
        }
  }
  EC_CHECK(checked > 100, "only %lld cases", (long long)checked);
}

namespace {

// The index's segments split between two native sources, as a sharded index splits its documents between
// shards; the driver sees one source whose answers are merged by position.
class SplitSource final : public PlaidSource {
 public:
  SplitSource(PlaidIndexSource& a, PlaidIndexSource& b, int64_t b_base) : a_(a), b_(b), base_(b_base) {}
  PlaidStatus candidates(const std::vector<int64_t>& queries, const std::vector<int64_t>& probes, int64_t ndocs,
                         PlaidPools& out) override {
    PlaidPools pa, pb;
    PlaidStatus st = a_.candidates(queries, probes, ndocs, pa);
    if (st.ok()) st = b_.candidates(queries, probes, ndocs, pb);
    out = PlaidPools{};
    out.offsets.push_back(0);
    for (std::size_t j = 0; j < queries.size(); ++j) {  // b's first, to show the driver does not rely on order
      for (int64_t e = pb.offsets[j]; e < pb.offsets[j + 1]; ++e)
        out.docs.push_back(pb.docs[e] + base_), out.values.push_back(pb.values[e]);
      for (int64_t e = pa.offsets[j]; e < pa.offsets[j + 1]; ++e)
        out.docs.push_back(pa.docs[e]), out.values.push_back(pa.values[e]);
      out.offsets.push_back(static_cast<int64_t>(out.docs.size()));
      out.count.push_back(pa.count[j] + pb.count[j]);
    }
    return st;
  }
  PlaidStatus approximate(const std::vector<int64_t>& q, const std::vector<int64_t>& o, const std::vector<int64_t>& d,
                          std::vector<float>& out) override {
    return split(q, o, d, out, false);
  }
  PlaidStatus exact(const std::vector<int64_t>& q, const std::vector<int64_t>& o, const std::vector<int64_t>& d,
                    std::vector<float>& out) override {
    return split(q, o, d, out, true);
  }

 private:
  PlaidStatus split(const std::vector<int64_t>& q, const std::vector<int64_t>& o, const std::vector<int64_t>& d,
                    std::vector<float>& out, bool exact_scores) {
    std::vector<int64_t> oa(1, 0), ob(1, 0), da, db;
    for (std::size_t j = 0; j < q.size(); ++j) {
      for (int64_t e = o[j]; e < o[j + 1]; ++e) (d[e] < base_ ? da : db).push_back(d[e] < base_ ? d[e] : d[e] - base_);
      oa.push_back(static_cast<int64_t>(da.size()));
      ob.push_back(static_cast<int64_t>(db.size()));
    }
    std::vector<float> va, vb;
    PlaidStatus st = exact_scores ? a_.exact(q, oa, da, va) : a_.approximate(q, oa, da, va);
    if (st.ok()) st = exact_scores ? b_.exact(q, ob, db, vb) : b_.approximate(q, ob, db, vb);
    out.clear();
    std::size_t ia = 0, ib = 0;
    for (std::size_t j = 0; j < q.size(); ++j)
      for (int64_t e = o[j]; e < o[j + 1]; ++e) out.push_back(d[e] < base_ ? va[ia++] : vb[ib++]);
    return st;
  }
  PlaidIndexSource &a_, &b_;
  int64_t base_;
};

}  // namespace

// A query number outside the batch is refused by each stage of the native source (its rows are read with
// no other check), never read: the Python bindings check theirs, but a C++ driver could pass any.
EC_TEST(plaid_index_source_refuses_a_query_outside_its_batch) {
  std::mt19937_64 rng(11);
  const World w = make_world(2, rng);
  const QueryBatch qb{w.queries.data(), DType::f32, w.nq, w.lq, w.dim, w.mask.data()};
  std::vector<PlaidSegment> segs;
  for (const auto& s : w.three) segs.push_back(s.view(false));
  const PlaidIndex ix{segs.data(), static_cast<int64_t>(segs.size()), nullptr, false};
  const PlaidCentroidsI8 c8 = w.ci8();
  PlaidIndexSource src(default_path(), qb, w.cv(), ix, &c8, kNegInf, 1);
  PlaidPools pools;
  std::vector<float> out;
  EC_CHECK(src.candidates({0}, {2}, 16, pools).ok(), "query 0");
  EC_CHECK(src.exact({0}, {0, 1}, {3}, out).ok() && src.approximate({0}, {0, 1}, {3}, out).ok(), "query 0's stages");
  for (int64_t bad : {w.nq, w.nq + 5, int64_t{-1}}) {
    EC_CHECK(src.candidates({0, bad}, {2, 2}, 16, pools).fault == PlaidFault::bad_query, "candidates of %lld", (long long)bad);
    EC_CHECK(src.approximate({bad}, {0, 1}, {3}, out).fault == PlaidFault::bad_query, "approximate of %lld", (long long)bad);
    EC_CHECK(src.exact({0, bad}, {0, 1, 2}, {3, 4}, out).fault == PlaidFault::bad_query, "exact of %lld", (long long)bad);
  }
  PlaidDriveParams dp;
  dp.num_centroids = w.K, dp.num_allowed = ix.num_allowed();
  PlaidHits hits;
  EC_CHECK(plaid_drive(src, {0, w.nq}, dp, hits).fault == PlaidFault::bad_query, "drive past the batch");
}

EC_TEST(plaid_drive_over_a_split_source_equals_one_source) {
  std::mt19937_64 rng(5);
  const World w = make_world(2, rng);
  std::vector<uint8_t> tomb(static_cast<std::size_t>(w.n), 1), sub(static_cast<std::size_t>(w.n), 0);
  for (int64_t d = 0; d < w.n; d += 5) tomb[d] = 0;
  for (int64_t d = 0; d < w.n; d += 3) sub[d] = 1;
  const QueryBatch qb{w.queries.data(), DType::f32, w.nq, w.lq, w.dim, w.mask.data()};
  std::vector<PlaidSegment> segs;
  for (const auto& s : w.three) segs.push_back(s.view(true));
  const int64_t b_base = segs[0].n + segs[1].n;
  const PlaidCentroidsI8 c8 = w.ci8();
  for (const uint8_t* allowed : {static_cast<const uint8_t*>(nullptr), static_cast<const uint8_t*>(tomb.data()),
                                 static_cast<const uint8_t*>(sub.data())})
    for (const PlaidSearchParams& prm : {PlaidSearchParams{1, 16, 6, 5, kNegInf}, PlaidSearchParams{2, 40, 10, 300, 0.2f},
                                         PlaidSearchParams{1, 200, 30, 10, kNegInf}}) {
      const bool subset = allowed == sub.data();
      const PlaidIndex whole{segs.data(), 3, allowed, subset};
      std::vector<float> want_s(static_cast<std::size_t>(w.nq * prm.k));
      std::vector<int64_t> want_p(want_s.size());
      EC_CHECK(plaid_search(default_path(), qb, w.cv(), whole, prm, PlaidMode::plaid, &c8, want_s.data(),
                            want_p.data(), 2).ok(), "search");
      const PlaidIndex ia{segs.data(), 2, allowed, subset}, ib{segs.data() + 2, 1, allowed ? allowed + b_base : nullptr, subset};
      PlaidIndexSource a(default_path(), qb, w.cv(), ia, &c8, prm.threshold, 2), b(default_path(), qb, w.cv(), ib, &c8,
                                                                                    prm.threshold, 1);
      SplitSource split(a, b, b_base);
      PlaidDriveParams dp;
      dp.nprobe = prm.nprobe, dp.ndocs = prm.ndocs, dp.rerank = prm.rerank, dp.k = prm.k;
      dp.num_centroids = w.K, dp.num_allowed = whole.num_allowed(), dp.subset = subset;
      std::vector<int64_t> queries;
      for (int64_t qi = 0; qi < w.nq; ++qi)
        if (qi != 2) queries.push_back(qi);  // query 2 keeps no row
      PlaidHits hits;
      EC_CHECK(plaid_drive(split, queries, dp, hits).ok(), "drive");
      for (std::size_t j = 0; j < queries.size(); ++j) {
        const int64_t qi = queries[j];
        for (int64_t h = 0; h < prm.k; ++h) {
          const bool hit = h < hits.offsets[j + 1] - hits.offsets[j];
          const float s = hit ? hits.scores[hits.offsets[j] + h] : kNegInf;
          const int64_t p = hit ? hits.pos[hits.offsets[j] + h] : -1;
          EC_CHECK(same_bits(s, want_s[qi * prm.k + h]) && p == want_p[qi * prm.k + h],
                   "query %lld hit %lld: %g@%lld vs %g@%lld", (long long)qi, (long long)h, s, (long long)p,
                   want_s[qi * prm.k + h], (long long)want_p[qi * prm.k + h]);
        }
      }
    }
}

EC_TEST(plaid_search_reports_a_corrupt_segment) {
  std::mt19937_64 rng(9);
  const World w = make_world(2, rng);
  const QueryBatch qb{w.queries.data(), DType::f32, w.nq, w.lq, w.dim, w.mask.data()};
  const PlaidSearchParams prm{48, 64, 16, 10, kNegInf};  // every centroid probed: every list is read
  auto run = [&](const std::vector<Segment>& segments, PlaidMode mode) {
    std::vector<PlaidSegment> segs;
    for (const auto& s : segments) segs.push_back(s.view(false));
    const PlaidIndex ix{segs.data(), static_cast<int64_t>(segs.size()), nullptr, false};
    std::vector<float> s(static_cast<std::size_t>(w.nq * prm.k));
    std::vector<int64_t> p(s.size());
    return plaid_search(default_path(), qb, w.cv(), ix, prm, mode, nullptr, s.data(), p.data(), 2);
  };
  EC_CHECK(run(w.three, PlaidMode::plaid).ok(), "good index");
  std::vector<Segment> bad = w.three;
  bad[1].ivf[3] = static_cast<int32_t>(bad[1].n());  // a document number past the segment
  PlaidStatus st = run(bad, PlaidMode::plaid);
  EC_CHECK(st.fault == PlaidFault::bad_ivf_doc && st.segment == 1, "ivf doc: %d in %lld", (int)st.fault, (long long)st.segment);
  bad = w.three;
  bad[2].ivf_offsets[5] = static_cast<int64_t>(bad[2].ivf.size()) + 4;  // a list past the IVF
  st = run(bad, PlaidMode::plaid);
  EC_CHECK(st.fault == PlaidFault::bad_ivf_range && st.segment == 2, "ivf range: %d", (int)st.fault);
  bad = w.three;
  for (auto& c : bad[1].codes) c = static_cast<int32_t>(w.K + 3);  // codes past K
  st = run(bad, PlaidMode::plaid);
  EC_CHECK(st.fault == PlaidFault::bad_code && st.segment == 1, "code: %d", (int)st.fault);
  st = run(bad, PlaidMode::selective);
  EC_CHECK(st.fault == PlaidFault::bad_code && st.segment == 1, "code (selective): %d", (int)st.fault);
  bad = w.three;
  bad[0].offsets[2] = static_cast<int64_t>(bad[0].codes.size()) + 9;  // documents 1 and 2 past the codes
  for (PlaidMode mode : {PlaidMode::plaid, PlaidMode::selective, PlaidMode::exhaustive}) {
    st = run(bad, mode);
    EC_CHECK(st.fault == PlaidFault::bad_doc_range && st.segment == 0, "doc range (mode %d): %d", (int)mode, (int)st.fault);
  }
}
