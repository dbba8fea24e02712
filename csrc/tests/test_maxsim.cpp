// Every compiled variant this CPU runs, against the scalar reference (tight) and a float64 reference of
// the same rounded inputs (tolerance per arithmetic), on awkward sizes; outputs poisoned with NaN.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "edgecolbert/dispatch.hpp"
#include "edgecolbert/maxsim.hpp"
#include "test_util.hpp"

using namespace edgecolbert;

namespace {

struct Data {
  std::vector<float> qf, df;           // float32 values (already rounded to their dtype)
  std::vector<uint16_t> qh, dh;        // half storage when dtype is f16/bf16
  std::vector<int64_t> offsets;
  std::vector<uint8_t> qmask;
  int64_t nq, lq, dim, n;
  DType qt, dt;
  const void* qptr() const { return qt == DType::f32 ? static_cast<const void*>(qf.data()) : qh.data(); }
  const void* dptr() const { return dt == DType::f32 ? static_cast<const void*>(df.data()) : dh.data(); }
};

Data make(std::mt19937_64& rng, int64_t nq, int64_t lq, int64_t dim, const std::vector<int64_t>& lens, DType qt,
          DType dt, bool masked) {
  Data d;
  d.nq = nq, d.lq = lq, d.dim = dim, d.n = static_cast<int64_t>(lens.size()), d.qt = qt, d.dt = dt;
  d.offsets.push_back(0);
  for (auto l : lens) d.offsets.push_back(d.offsets.back() + l);
  d.qf = ectest::awkward_values(rng, static_cast<std::size_t>(nq * lq * dim));
  d.df = ectest::awkward_values(rng, static_cast<std::size_t>(d.offsets.back() * dim));
  if (qt != DType::f32) {
    d.qh = ectest::to_half(d.qf, qt);
    for (std::size_t i = 0; i < d.qf.size(); ++i) d.qf[i] = load_as_f32(d.qh.data(), qt, i);
  }
  if (dt != DType::f32) {
    d.dh = ectest::to_half(d.df, dt);
    for (std::size_t i = 0; i < d.df.size(); ++i) d.df[i] = load_as_f32(d.dh.data(), dt, i);
  }
  if (masked) {
    std::uniform_int_distribution<int> coin(0, 3);
    d.qmask.resize(static_cast<std::size_t>(nq * lq));
    for (auto& m : d.qmask) m = coin(rng) != 0;
  }
  return d;
}

// float64 reference and a bound on the magnitude of the terms (for a relative tolerance).
void reference(const Data& d, std::vector<double>& ref, std::vector<double>& bound) {
  ref.assign(static_cast<std::size_t>(d.nq * d.n), 0.0);
  bound.assign(ref.size(), 0.0);
  for (int64_t i = 0; i < d.nq; ++i)
    for (int64_t doc = 0; doc < d.n; ++doc) {
      double total = 0, mag = 0;
      const int64_t b = d.offsets[doc], e = d.offsets[doc + 1];
      if (e == b) continue;
      for (int64_t r = 0; r < d.lq; ++r) {
        if (!d.qmask.empty() && !d.qmask[i * d.lq + r]) continue;
        double best = -INFINITY, bestabs = 0;
        for (int64_t j = b; j < e; ++j) {
          double dot = 0, absdot = 0;
          for (int64_t k = 0; k < d.dim; ++k) {
            const double p = static_cast<double>(d.qf[(i * d.lq + r) * d.dim + k]) * d.df[j * d.dim + k];
            dot += p;
            absdot += std::fabs(p);
          }
          best = std::max(best, dot);
          bestabs = std::max(bestabs, absdot);
        }
        total += best;
        mag += bestabs;
      }
      ref[i * d.n + doc] = total;
      bound[i * d.n + doc] = mag;
    }
}

std::vector<float> run(const KernelPath& p, const Data& d, int threads) {
  QueryBatch q{d.qptr(), d.qt, d.nq, d.lq, d.dim, d.qmask.empty() ? nullptr : d.qmask.data()};
  DocSet ds{d.dptr(), d.dt, d.dim, d.n, d.offsets.data(), d.offsets.data() + 1, nullptr};
  std::vector<float> out(static_cast<std::size_t>(d.nq * d.n), NAN);
  maxsim(p, q, ds, out.data(), threads);
  return out;
}

bool uses_bf16_dot(const KernelPath& p) { return std::string(p.name).find("bf16") != std::string::npos; }

}  // namespace

EC_TEST(maxsim_every_variant_matches_references) {
  std::mt19937_64 rng(12345);
  const KernelPath& scalar = path_by_name("scalar");
  const int64_t dims[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 47, 48, 63, 64, 96, 127, 128, 129, 130};
  const int64_t lqs[] = {1, 3, 8, 16, 17, 32, 33, 48, 64};
  const DType types[] = {DType::f32, DType::f16, DType::bf16};
  // Each case's data, float64 reference and scalar scores are made once and every path is held to them
  // (under qemu the references dominated when each path had its own).
  int cases = 0;
  for (DType qt : types)
    for (DType dt : types)
      for (int64_t dim : dims) {
        const int64_t lq = lqs[(dim + static_cast<int>(qt) * 3 + static_cast<int>(dt)) % 9];
        std::uniform_int_distribution<int64_t> len(0, 40);
        std::vector<int64_t> lens = {0, 1, 12, 13, len(rng), len(rng), 0, 25, 61};
        const bool masked = (dim % 3) == 0;
        Data d = make(rng, 3, lq, dim, lens, qt, dt, masked);
        std::vector<double> ref, bound;
        reference(d, ref, bound);
        const auto want = run(scalar, d, 1);
        for (const KernelPath* p : available_paths()) {
          const auto got = run(*p, d, 1);
          const auto got3 = run(*p, d, 3);
          // float32 FMA paths: rounding of dim-long sums. bf16 dot paths: the float32 query is split
          // into two bf16 halves (2^-17 relative) and BFDOT/VDPBF16PS round their pair sums.
          const double tol = uses_bf16_dot(*p) && dt == DType::bf16 ? 4e-5 : 2e-6 * std::sqrt(double(dim)) + 1e-6;
          for (std::size_t i = 0; i < got.size(); ++i) {
            const double scale = bound[i] + 1e-30;
            EC_CHECK(!std::isnan(got[i]), "%s: NaN at %zu", p->name, i);
            EC_CHECK(std::fabs(got[i] - ref[i]) <= tol * scale, "%s q=%s d=%s dim=%lld lq=%lld: got %.9g ref %.9g",
                     p->name, dtype_name(qt), dtype_name(dt), (long long)dim, (long long)lq, got[i], ref[i]);
            EC_CHECK(std::fabs(got[i] - want[i]) <= tol * scale, "%s vs scalar: %.9g %.9g", p->name, got[i], want[i]);
            EC_CHECK(got[i] == got3[i] || (std::isnan(got[i]) && std::isnan(got3[i])),
                     "%s: thread count changed a score", p->name);
          }
        }
        ++cases;
      }
  for (const KernelPath* p : available_paths())
    std::printf("  tested %s (family %s): %d shape/dtype cases\n", p->name, p->family, cases);
}

EC_TEST(maxsim_long_documents_and_many_queries) {
  std::mt19937_64 rng(7);
  for (const KernelPath* p : available_paths()) {
    Data d = make(rng, 17, 32, 48, {600, 0, 599, 1, 300}, DType::f32, DType::f32, false);
    std::vector<double> ref, bound;
    reference(d, ref, bound);
    const auto got = run(*p, d, 2);
    for (std::size_t i = 0; i < got.size(); ++i)
      EC_CHECK(std::fabs(got[i] - ref[i]) <= 2e-5 * (bound[i] + 1e-30), "%s: %g vs %g", p->name, got[i], ref[i]);
  }
}

EC_TEST(topk_and_candidates_agree_with_full_scores) {
  std::mt19937_64 rng(99);
  for (const KernelPath* p : available_paths()) {
    std::vector<int64_t> lens(301);
    std::uniform_int_distribution<int64_t> len(0, 30);
    for (auto& l : lens) l = len(rng);
    Data d = make(rng, 4, 9, 33, lens, DType::f32, DType::bf16, false);
    // Duplicate a document to force exact ties.
    const auto full = run(*p, d, 1);
    QueryBatch q{d.qptr(), d.qt, d.nq, d.lq, d.dim, nullptr};
    DocSet ds{d.dptr(), d.dt, d.dim, d.n, d.offsets.data(), d.offsets.data() + 1, nullptr};
    const int64_t k = 37;
    std::vector<float> s(static_cast<std::size_t>(d.nq * k), NAN);
    std::vector<int64_t> idx(s.size(), -1);
    maxsim_topk(*p, q, ds, k, s.data(), idx.data(), 3);
    for (int64_t i = 0; i < d.nq; ++i) {
      std::vector<int64_t> order(static_cast<std::size_t>(d.n));
      for (int64_t j = 0; j < d.n; ++j) order[j] = j;
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return full[i * d.n + a] > full[i * d.n + b]; });
      for (int64_t j = 0; j < k; ++j) {
        EC_CHECK(idx[i * k + j] == order[j], "%s: top-k index %lld: %lld vs %lld", p->name, (long long)j,
                 (long long)idx[i * k + j], (long long)order[j]);
        EC_CHECK(s[i * k + j] == full[i * d.n + order[j]], "%s: top-k score", p->name);
      }
    }
    std::vector<int64_t> cand = {5, 0, 300, 5, 17, 1, 2, 3, 299, 150, 151, 152};
    const int64_t nc = 3;
    std::vector<float> cs(cand.size(), NAN);
    maxsim_candidates(*p, q, ds, cand.data(), nc, cs.data(), 2);
    for (int64_t i = 0; i < d.nq; ++i)
      for (int64_t c = 0; c < nc; ++c)
        EC_CHECK(cs[i * nc + c] == full[i * d.n + cand[i * nc + c]], "%s: candidate score", p->name);
  }
}

EC_TEST(floor_zero_clamps_row_maxima) {
  // One query row, one token with a negative dot product: -1 without the floor, 0 with it.
  const float q[2] = {1.0f, 0.0f};
  const float t[2] = {-1.0f, 0.0f};
  const int64_t begin[1] = {0}, end[1] = {1};
  const uint8_t floor[1] = {1};
  for (const KernelPath* p : available_paths()) {
    QueryBatch qb{q, DType::f32, 1, 1, 2, nullptr};
    DocSet plain{t, DType::f32, 2, 1, begin, end, nullptr};
    DocSet floored{t, DType::f32, 2, 1, begin, end, floor};
    float a = NAN, b = NAN;
    maxsim(*p, qb, plain, &a, 1);
    maxsim(*p, qb, floored, &b, 1);
    EC_CHECK(a == -1.0f && b == 0.0f, "%s: %g %g", p->name, a, b);
  }
}

EC_TEST(half_conversions_are_exact) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EC_CHECK(f32_to_f16(f) == h, "f16 round trip %u", h);
    EC_CHECK(f32_to_bf16(bf16_to_f32(static_cast<uint16_t>(h))) == h || std::isnan(bf16_to_f32(static_cast<uint16_t>(h))),
             "bf16 round trip %u", h);
  }
}

EC_TEST(dispatch_names) {
  EC_CHECK(std::string(path_by_name("scalar").name) == "scalar", "scalar by name");
  bool threw = false;
  try {
    path_by_name("no-such-isa");
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  EC_CHECK(threw, "unknown ISA must throw");
  std::printf("  available:");
  for (auto* p : available_paths()) std::printf(" %s", p->name);
  std::printf("\n");
}

EC_TEST(nan_similarities_are_ignored_by_every_variant) {
  std::mt19937_64 rng(5);
  const KernelPath& scalar = path_by_name("scalar");
  for (const KernelPath* p : available_paths()) {
    for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
      Data d = make(rng, 2, 19, 21, {7, 30, 1, 14}, DType::f32, dt, false);
      // NaN in some document values; document 2 (one token) entirely NaN.
      const uint16_t nan_half = dt == DType::f16 ? 0x7e00 : 0x7fc0;
      for (int64_t i = 0; i < static_cast<int64_t>(d.df.size()); i += 37) {
        d.df[i] = NAN;
        if (dt != DType::f32) d.dh[i] = nan_half;
      }
      for (int64_t k = 0; k < 21; ++k) {
        const int64_t at = d.offsets[2] * 21 + k;
        d.df[at] = NAN;
        if (dt != DType::f32) d.dh[at] = nan_half;
      }
      const auto got = run(*p, d, 2);
      const auto want = run(scalar, d, 1);
      for (std::size_t i = 0; i < got.size(); ++i) {
        EC_CHECK(!std::isnan(got[i]), "%s: NaN leaked into a score", p->name);
        const bool both_inf = std::isinf(got[i]) && got[i] == want[i];
        EC_CHECK(both_inf || std::fabs(got[i] - want[i]) <= 1e-4 * (std::fabs(want[i]) + 1), "%s %s: %g vs %g",
                 p->name, dtype_name(dt), got[i], want[i]);
      }
      EC_CHECK(std::isinf(got[2]) && got[2] < 0, "%s: an all-NaN document scores -inf, got %g", p->name, got[2]);
    }
  }
}
