// Centroid scores and top-k on every variant this CPU runs: dense scores against the scalar
// reference and float64 (tolerance per arithmetic), top-k against the path's own dense scores (exact:
// same kernel arithmetic), ties to the lower id, thread-count independence, split merges.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "edgecolbert/centroids.hpp"
#include "test_util.hpp"

using namespace edgecolbert;

namespace {

struct Mat {
  std::vector<float> f;      // values as float32 (rounded to the dtype)
  std::vector<uint16_t> h;   // half storage
  DType t;
  int64_t n, dim;
  Matrix view() const { return {t == DType::f32 ? static_cast<const void*>(f.data()) : h.data(), t, n, dim}; }
};

Mat make(std::mt19937_64& rng, int64_t n, int64_t dim, DType t) {
  Mat m{ectest::awkward_values(rng, static_cast<std::size_t>(n * dim)), {}, t, n, dim};
  if (t != DType::f32) {
    m.h = ectest::to_half(m.f, t);
    for (std::size_t i = 0; i < m.f.size(); ++i) m.f[i] = load_as_f32(m.h.data(), t, i);
  }
  return m;
}

bool better(float a, int32_t ia, float b, int32_t ib) {
  const bool an = std::isnan(a), bn = std::isnan(b);
  if (an != bn) return bn;
  if (!an && a != b) return a > b;
  return ia < ib;
}

}  // namespace

EC_TEST(centroid_scores_and_topk_every_variant) {
  std::mt19937_64 rng(2024);
  const KernelPath& scalar = path_by_name("scalar");
  const int64_t dims[] = {1, 7, 8, 9, 31, 33, 48, 64, 127, 128, 129};
  const int64_t ms[] = {1, 5, 33, 70};
  const int64_t ks[] = {1, 13, 600, 1100};
  const DType types[] = {DType::f32, DType::f16, DType::bf16};
  for (const KernelPath* p : available_paths()) {
    int cases = 0;
    for (int64_t dim : dims)
      for (DType ct : types) {
        const int64_t m = ms[(dim + static_cast<int>(ct)) % 4], K = ks[(dim / 2 + static_cast<int>(ct)) % 4];
        Mat rows = make(rng, m, dim, DType::f32), cents = make(rng, K, dim, ct);
        if (K > 3) {  // exact ties: centroid 2 duplicates centroid 0 (and scores identically on every path)
          std::copy_n(cents.f.begin(), dim, cents.f.begin() + 2 * dim);
          if (ct != DType::f32) std::copy_n(cents.h.begin(), dim, cents.h.begin() + 2 * dim);
        }
        std::vector<float> dense(static_cast<std::size_t>(m * K), NAN), want(dense.size(), NAN);
        centroid_scores(*p, rows.view(), cents.view(), dense.data(), 2);
        centroid_scores(scalar, rows.view(), cents.view(), want.data(), 1);
        const double tol = 2e-6 * std::sqrt(double(dim)) + 1e-6;
        for (int64_t r = 0; r < m; ++r)
          for (int64_t j = 0; j < K; ++j) {
            double ref = 0, mag = 0;
            for (int64_t k = 0; k < dim; ++k) {
              const double pr = double(rows.f[r * dim + k]) * cents.f[j * dim + k];
              ref += pr;
              mag += std::fabs(pr);
            }
            const float g = dense[r * K + j];
            EC_CHECK(std::fabs(g - ref) <= tol * (mag + 1e-30), "%s dim=%lld %s: %.9g vs %.9g", p->name, (long long)dim,
                     dtype_name(ct), g, ref);
            EC_CHECK(std::fabs(g - want[r * K + j]) <= tol * (mag + 1e-30), "%s vs scalar", p->name);
          }
        {  // centroid-major: the same bits as the dense scores, zeros in the padding rows
          const int64_t stride = (m + 31) / 32 * 32;
          std::vector<float> t1(static_cast<std::size_t>(K * stride), NAN), t3(t1.size(), NAN);
          centroid_scores_t(*p, rows.view(), cents.view(), stride, t1.data(), 1);
          centroid_scores_t(*p, rows.view(), cents.view(), stride, t3.data(), 3);
          for (int64_t j = 0; j < K; ++j)
            for (int64_t r = 0; r < stride; ++r) {
              const float g = t1[j * stride + r];
              EC_CHECK(r < m ? g == dense[r * K + j] : g == 0.0f, "%s centroid_scores_t m=%lld K=%lld (%lld, %lld): %g",
                       p->name, (long long)m, (long long)K, (long long)j, (long long)r, g);
              EC_CHECK(std::memcmp(&g, &t3[j * stride + r], sizeof(float)) == 0, "%s: threads changed scores_t", p->name);
            }
        }
        for (int64_t k : {int64_t(1), std::min<int64_t>(K, 3), std::min<int64_t>(K, 8)}) {
          std::vector<float> s1(static_cast<std::size_t>(m * k), NAN), s3(s1.size(), NAN);
          std::vector<int32_t> i1(s1.size(), -1), i3(s1.size(), -1);
          centroid_topk(*p, rows.view(), cents.view(), k, s1.data(), i1.data(), 1);
          centroid_topk(*p, rows.view(), cents.view(), k, s3.data(), i3.data(), 3);
          for (int64_t r = 0; r < m; ++r) {
            std::vector<int32_t> order(static_cast<std::size_t>(K));
            for (int64_t j = 0; j < K; ++j) order[j] = static_cast<int32_t>(j);
            std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
              return better(dense[r * K + a], a, dense[r * K + b], b);
            });
            for (int64_t j = 0; j < k; ++j) {
              EC_CHECK(i1[r * k + j] == order[j], "%s topk id dim=%lld K=%lld k=%lld: %d vs %d", p->name, (long long)dim,
                       (long long)K, (long long)k, i1[r * k + j], order[j]);
              EC_CHECK(s1[r * k + j] == dense[r * K + order[j]], "%s topk score", p->name);
              EC_CHECK(i3[r * k + j] == i1[r * k + j] && s3[r * k + j] == s1[r * k + j], "%s: threads changed top-k",
                       p->name);
            }
          }
        }
        ++cases;
      }
    std::printf("  tested %s: %d shape/dtype cases\n", p->name, cases);
  }
}

EC_TEST(centroid_topk_split_merge_and_streaming_assign) {
  std::mt19937_64 rng(5);
  for (const KernelPath* p : available_paths()) {
    // Few rows, many centroids: the centroid range is split over threads and merged.
    Mat rows = make(rng, 3, 48, DType::f32), cents = make(rng, 5000, 48, DType::f32);
    std::vector<float> dense(3 * 5000);
    centroid_scores(*p, rows.view(), cents.view(), dense.data(), 1);
    std::vector<float> s(3 * 8);
    std::vector<int32_t> ids(3 * 8);
    centroid_topk(*p, rows.view(), cents.view(), 8, s.data(), ids.data(), 4);
    for (int64_t r = 0; r < 3; ++r) {
      std::vector<int32_t> order(5000);
      for (int j = 0; j < 5000; ++j) order[j] = j;
      std::partial_sort(order.begin(), order.begin() + 8, order.end(),
                        [&](int32_t a, int32_t b) { return better(dense[r * 5000 + a], a, dense[r * 5000 + b], b); });
      for (int j = 0; j < 8; ++j) EC_CHECK(ids[r * 8 + j] == order[j], "%s split merge", p->name);
    }
    // Many rows (several row groups), k = 1: assignment.
    Mat toks = make(rng, 2100, 33, DType::bf16), c2 = make(rng, 70, 33, DType::f16);
    std::vector<float> d2(2100 * 70);
    centroid_scores(*p, toks.view(), c2.view(), d2.data(), 2);
    std::vector<int32_t> a(2100, -1);
    centroid_topk(*p, toks.view(), c2.view(), 1, nullptr, a.data(), 2);
    for (int64_t r = 0; r < 2100; ++r) {
      int32_t best = 0;
      for (int32_t j = 1; j < 70; ++j)
        if (better(d2[r * 70 + j], j, d2[r * 70 + best], best)) best = j;
      EC_CHECK(a[r] == best, "%s assign row %lld: %d vs %d", p->name, (long long)r, a[r], best);
    }
  }
}

// int8 centroid scores: the quantisation against its definition, and every path's kernel (through the
// centroid-major driver, awkward m / K / dim, 1 and 3 threads) bit-identical to a direct evaluation of
// float(exact int dot) * (qscale * cscale), which is also checked against float64 of the float scores.
EC_TEST(centroid_scores_int8_every_variant) {
  std::mt19937_64 rng(77);
  std::normal_distribution<float> nd;
  for (int64_t dim : {1, 3, 4, 7, 48, 64, 129}) {
    const int64_t dim4 = i8_width(dim);
    for (int64_t m : {1, 5, 32, 33, 70}) {
      const int64_t K = 1 + (dim * 37 + m * 11) % 1300;
      std::vector<float> q(static_cast<std::size_t>(m * dim)), c(static_cast<std::size_t>(K * dim));
      for (auto& v : q) v = nd(rng);
      for (auto& v : c) v = nd(rng);
      std::fill_n(q.begin(), dim, 0.0f);  // a zero row: scale 0, scores 0
      std::vector<int8_t> q8(static_cast<std::size_t>(m * dim4)), c8(static_cast<std::size_t>(K * dim4));
      std::vector<float> qs(static_cast<std::size_t>(m)), cs(static_cast<std::size_t>(K));
      EC_CHECK(quantize_rows_i8(q.data(), m, dim, q8.data(), qs.data()), "finite rows refused");
      EC_CHECK(quantize_rows_i8(c.data(), K, dim, c8.data(), cs.data()), "finite rows refused");
      std::vector<int32_t> csum(static_cast<std::size_t>(K));
      for (int64_t j = 0; j < K; ++j) {
        int32_t s = 0;
        float mx = 0.0f;
        for (int64_t k = 0; k < dim; ++k) mx = std::max(mx, std::fabs(c[j * dim + k]));
        for (int64_t k = 0; k < dim4; ++k) {
          const int8_t v = c8[j * dim4 + k];
          EC_CHECK(v >= -127 && v <= 127, "out of range");
          if (k >= dim) EC_CHECK(v == 0, "padding not zero");
          else EC_CHECK(std::fabs(v * cs[j] - c[j * dim + k]) <= 0.5001 * cs[j] + 1e-7, "quantisation error");
          s += v;
        }
        EC_CHECK(cs[j] == mx / 127.0f, "scale");
        csum[j] = 128 * s;
      }
      EC_CHECK(qs[0] == 0.0f, "zero row scale");
      std::vector<float> want(static_cast<std::size_t>(K * m));
      for (int64_t j = 0; j < K; ++j)
        for (int64_t r = 0; r < m; ++r) {
          int32_t dot = 0;
          double exact = 0.0;
          for (int64_t k = 0; k < dim4; ++k) dot += int32_t{q8[r * dim4 + k]} * int32_t{c8[j * dim4 + k]};
          for (int64_t k = 0; k < dim; ++k) exact += double(q[r * dim + k]) * double(c[j * dim + k]);
          want[j * m + r] = static_cast<float>(dot) * (qs[r] * cs[j]);
          // quantisation error bound: |dq|·|c| + |q|·|dc| + |dq|·|dc| per dimension
          EC_CHECK(std::fabs(want[j * m + r] - exact) <= 1.01 * dim * (0.5 * qs[r] * 127 * cs[j] * 1.5 + 1e-6) + 1e-5,
                   "int8 score %g far from %g", want[j * m + r], exact);
        }
      const int64_t stride = (m + 31) / 32 * 32;
      // Thresholds for the probe's flags: a want value itself (equal must not flag), values around the
      // scores, and +inf past m, as PlaidProbe::thresholds gives them.
      std::vector<float> thr(static_cast<std::size_t>(stride), INFINITY);
      std::uniform_int_distribution<int64_t> pick(0, K - 1);
      for (int64_t r = 0; r < m; ++r) thr[r] = r % 3 == 0 ? want[pick(rng) * m + r] : 0.3f * nd(rng) * std::sqrt(float(dim)) * 2;
      std::vector<uint8_t> want_flags(static_cast<std::size_t>(K), 0);
      for (int64_t j = 0; j < K; ++j)
        for (int64_t r = 0; r < m; ++r) want_flags[j] |= want[j * m + r] > thr[r];
      for (const KernelPath* p : available_paths())
        for (int threads : {1, 3})
          for (bool with_flags : {false, true}) {
            std::vector<float> out(static_cast<std::size_t>(K * stride), NAN);
            std::vector<uint8_t> flags(static_cast<std::size_t>(K), 7);
            centroid_scores_t_i8(*p, q8.data(), qs.data(), m, dim4, c8.data(), cs.data(), csum.data(), K, stride,
                                 out.data(), threads, with_flags ? thr.data() : nullptr, flags.data());
            for (int64_t j = 0; j < K; ++j) {
              for (int64_t r = 0; r < stride; ++r) {
                const float w = r < m ? want[j * m + r] : 0.0f;
                EC_CHECK(std::memcmp(&out[j * stride + r], &w, sizeof w) == 0,
                         "%s dim %lld m %lld: [%lld, %lld] %g vs %g", p->name, (long long)dim, (long long)m,
                         (long long)j, (long long)r, out[j * stride + r], w);
              }
              const uint8_t wf = with_flags ? want_flags[j] : 7;
              EC_CHECK(flags[j] == wf, "%s dim %lld m %lld: flag %lld is %d, want %d", p->name, (long long)dim,
                       (long long)m, (long long)j, flags[j], wf);
            }
          }
    }
  }
  std::vector<float> bad = {1.0f, NAN};
  std::vector<int8_t> b8(4);
  float bs;
  EC_CHECK(!quantize_rows_i8(bad.data(), 1, 2, b8.data(), &bs), "NaN accepted");
}

// The top-k driver's shortcut (a score that does not beat a row's threshold is not looked at) around
// NaN and -inf: NaN ranks last, so a heap of NaNs is beaten even by -inf; checked against a stable sort
// of the scalar path's dense scores, over chunks that open with NaN-only and -inf-only columns.
EC_TEST(centroid_topk_nan_and_inf_scores) {
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  const int64_t m = 5, dim = 12, K = 2300;
  std::vector<float> rows(static_cast<std::size_t>(m * dim)), cents(static_cast<std::size_t>(K * dim));
  for (auto& v : rows) v = u(rng);  // positive: -inf centroids score -inf, never NaN
  for (int64_t c = 0; c < K; ++c)
    for (int64_t d = 0; d < dim; ++d) {
      // chunks of 512: NaN only; -inf only (beats the heaps of NaN); NaN with 3 finite; -inf and finite
      // mixed; finite with NaN among them
      float v = u(rng) - 1.0f;
      if (c < 512) v = NAN;
      else if (c < 1024) v = -INFINITY;
      else if (c < 1536) v = c % 200 == 0 ? v : NAN;
      else if (c < 2048) v = c % 2 == 0 ? -INFINITY : v;
      else if (c % 3 == 0) v = NAN;
      cents[static_cast<std::size_t>(c * dim + d)] = v;
    }
  const Matrix R{rows.data(), DType::f32, m, dim}, C{cents.data(), DType::f32, K, dim};
  std::vector<float> dense(static_cast<std::size_t>(m * K));
  centroid_scores(path_by_name("scalar"), R, C, dense.data(), 1);
  for (int64_t k : {1, 5, 64})
    for (int64_t kk : {int64_t{1536}, K})  // (the first 1,536 centroids: fewer finite scores than k)
    for (const KernelPath* p : available_paths())
      for (int threads : {1, 2}) {
        std::vector<float> s(static_cast<std::size_t>(m * k));
        std::vector<int32_t> ids(static_cast<std::size_t>(m * k));
        centroid_topk(*p, R, Matrix{cents.data(), DType::f32, kk, dim}, k, s.data(), ids.data(), threads);
        for (int64_t r = 0; r < m; ++r) {
          std::vector<int32_t> order(static_cast<std::size_t>(kk));
          for (int64_t c = 0; c < kk; ++c) order[c] = static_cast<int32_t>(c);
          std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
            return better(dense[r * K + a], a, dense[r * K + b], b);
          });
          for (int64_t j = 0; j < k; ++j)
            EC_CHECK(ids[r * k + j] == order[j], "%s K=%lld k=%lld threads=%d row %lld rank %lld: id %d, want %d",
                     p->name, (long long)kk, (long long)k, threads, (long long)r, (long long)j, ids[r * k + j], order[j]);
        }
      }
}
