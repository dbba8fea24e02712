// Centroid scores and top-k on every variant this CPU runs: dense scores against the scalar
// reference and float64 (tolerance per arithmetic), top-k against the path's own dense scores (exact:
// same kernel arithmetic), ties to the lower id, thread-count independence, split merges.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

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
  // Each case's data, float64 reference and scalar scores are made once and every path is held to them
  // (under qemu the references dominated when each path had its own).
  int cases = 0;
  for (int64_t dim : dims)
    for (DType ct : types) {
      const int64_t m = ms[(dim + static_cast<int>(ct)) % 4], K = ks[(dim / 2 + static_cast<int>(ct)) % 4];
      Mat rows = make(rng, m, dim, DType::f32), cents = make(rng, K, dim, ct);
      if (K > 3) {  // exact ties: centroid 2 duplicates centroid 0 (and scores identically on every path)
        std::copy_n(cents.f.begin(), dim, cents.f.begin() + 2 * dim);
        if (ct != DType::f32) std::copy_n(cents.h.begin(), dim, cents.h.begin() + 2 * dim);
      }
      std::vector<float> want(static_cast<std::size_t>(m * K), NAN);
      centroid_scores(scalar, rows.view(), cents.view(), want.data(), 1);
      std::vector<double> refs(want.size()), mags(want.size());
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < K; ++j) {
          double ref = 0, mag = 0;
          for (int64_t k = 0; k < dim; ++k) {
            const double pr = double(rows.f[r * dim + k]) * cents.f[j * dim + k];
            ref += pr;
            mag += std::fabs(pr);
          }
          refs[r * K + j] = ref;
          mags[r * K + j] = mag;
        }
      const double tol = 2e-6 * std::sqrt(double(dim)) + 1e-6;
      for (const KernelPath* p : available_paths()) {
        std::vector<float> dense(want.size(), NAN);
        centroid_scores(*p, rows.view(), cents.view(), dense.data(), 2);
        for (int64_t r = 0; r < m; ++r)
          for (int64_t j = 0; j < K; ++j) {
            const double ref = refs[r * K + j], mag = mags[r * K + j];
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
        // Each row's 8 best centroids under the top-k order, from the path's dense scores (what every k reads).
        const int64_t kmax = std::min<int64_t>(K, 8);
        std::vector<int32_t> best(static_cast<std::size_t>(m * kmax)), order(static_cast<std::size_t>(K));
        for (int64_t r = 0; r < m; ++r) {
          for (int64_t j = 0; j < K; ++j) order[j] = static_cast<int32_t>(j);
          std::partial_sort(order.begin(), order.begin() + kmax, order.end(), [&](int32_t a, int32_t b) {
            return better(dense[r * K + a], a, dense[r * K + b], b);
          });
          std::copy_n(order.begin(), kmax, best.begin() + r * kmax);
        }
        for (int64_t k : {int64_t(1), std::min<int64_t>(K, 3), kmax}) {
          std::vector<float> s1(static_cast<std::size_t>(m * k), NAN), s3(s1.size(), NAN);
          std::vector<int32_t> i1(s1.size(), -1), i3(s1.size(), -1);
          centroid_topk(*p, rows.view(), cents.view(), k, s1.data(), i1.data(), 1);
          centroid_topk(*p, rows.view(), cents.view(), k, s3.data(), i3.data(), 3);
          for (int64_t r = 0; r < m; ++r) {
            const int32_t* want_ids = best.data() + r * kmax;
            for (int64_t j = 0; j < k; ++j) {
              EC_CHECK(i1[r * k + j] == want_ids[j], "%s topk id dim=%lld K=%lld k=%lld: %d vs %d", p->name, (long long)dim,
                       (long long)K, (long long)k, i1[r * k + j], want_ids[j]);
              EC_CHECK(s1[r * k + j] == dense[r * K + want_ids[j]], "%s topk score", p->name);
              EC_CHECK(i3[r * k + j] == i1[r * k + j] && s3[r * k + j] == s1[r * k + j], "%s: threads changed top-k",
                       p->name);
            }
          }
        }
      }
      ++cases;
    }
  for (const KernelPath* p : available_paths()) std::printf("  tested %s: %d shape/dtype cases\n", p->name, cases);
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

// A copy of bytes that ends where an inaccessible page begins (mmap + mprotect; qemu-user honours it).
struct GuardedBytes {
  explicit GuardedBytes(const std::vector<int8_t>& v) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    span = (v.size() + page - 1) / page * page + page;
    base = static_cast<char*>(mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base == MAP_FAILED) std::abort();
    if (mprotect(base + span - page, page, PROT_NONE) != 0) std::abort();
    data = reinterpret_cast<int8_t*>(base + span - page - v.size());
    std::memcpy(data, v.data(), v.size());
  }
  ~GuardedBytes() { munmap(base, span); }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  char* base;
  std::size_t span;
  int8_t* data;
};

// The int8 block kernel of every path against the scalar reference, called directly: every centroid
// count of a tile remainder (1..17) and longer runs, dim4 at every residue of the SDOT (16 bytes) and
// SMMLA (16, 8 bytes) steps and past the SMMLA kernel's on-stack row buffer (dim4 > 256), extreme bytes
// (+-127 everywhere: the largest sums; -128 too, which the kernels need not see but handle), scales
// that make scores 0, subnormal, inf and NaN, and thresholds equal to a score, NaN, -inf and +inf.
// Scores are compared bit for bit (NaN as NaN: a payload may depend on operand order), flags exactly,
// and with thr == nullptr the flags must stay untouched.
EC_TEST(centroid_int8_block_kernel_every_variant) {
  std::mt19937_64 rng(4242);
  std::uniform_int_distribution<int> byte(-127, 127), pick(0, 99);
  std::normal_distribution<float> nd;
  const KernelPath& scalar = path_by_name("scalar");
  const int64_t dim4s[] = {4, 8, 12, 16, 20, 24, 28, 32, 44, 48, 64, 100, 128, 132, 260, 516};
  const int64_t ncs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 37, 300};
  // Every available path's kernel, and the avx2_vnni source in its EVEX twin where this CPU has
  // AVX512_VNNI but no AVX-VNNI to run the real build (centroids_i8_vnni.hpp).
  struct Kernel {
    std::string name;
    const CentroidI8Ops* ops;
  };
  std::vector<Kernel> kernels;
  for (const KernelPath* p : available_paths()) kernels.push_back({p->name, &p->centroids_i8});
#ifdef EDGECOLBERT_HAVE_AVX512VNNI
  if (variant_supported("avx512_vnni")) kernels.push_back({"avx2_vnni source as EVEX", &centroid_i8_ops_ymm_evex_for_tests});
#endif
  for (const Kernel& kern : kernels) {
    const CentroidI8Ops& ops = *kern.ops;
    const char* name = kern.name.c_str();
    int cases = 0;
    for (int64_t dim4 : dim4s)
      for (int64_t nc : ncs)
        for (int mode = 0; mode < 3; ++mode) {  // 0: random, 1: extreme bytes, 2: odd scales
          if (mode != 0 && nc != 13 && nc != 300) continue;
          std::vector<int8_t> q(static_cast<std::size_t>(kCentroidBlockRows * dim4)), c(static_cast<std::size_t>(nc * dim4));
          const int64_t live = 1 + (dim4 + nc) % kCentroidBlockRows;  // rows past `live` are padding
          for (int64_t g = 0; g < dim4 / 4; ++g)
            for (int64_t r = 0; r < kCentroidBlockRows; ++r)
              for (int b = 0; b < 4; ++b) {
                int v = byte(rng);
                if (mode == 1) v = (r + g + b) % 3 == 0 ? -127 : (r % 5 == 0 ? -128 : 127);
                q[static_cast<std::size_t>((g * kCentroidBlockRows + r) * 4 + b)] = static_cast<int8_t>(r < live ? v : 0);
              }
          for (auto& v : c) v = static_cast<int8_t>(mode == 1 ? (pick(rng) < 50 ? 127 : -127) : byte(rng));
          std::vector<float> qs(kCentroidBlockRows, 0.0f), cs(static_cast<std::size_t>(nc));
          for (int64_t r = 0; r < live; ++r) qs[r] = std::fabs(nd(rng)) / 127.0f;
          for (auto& v : cs) v = std::fabs(nd(rng)) / 127.0f;
          if (mode == 2) {
            const float odd[] = {0.0f, 1e-40f, INFINITY, NAN, 3e38f, -0.0f, 1e-30f};
            for (int64_t r = 0; r < live; r += 3) qs[r] = odd[(r / 3) % 7];
            for (int64_t j = 0; j < nc; j += 4) cs[j] = odd[(j / 4 + 3) % 7];
          }
          std::vector<int32_t> csum(static_cast<std::size_t>(nc));
          for (int64_t j = 0; j < nc; ++j) {
            int32_t s = 0;
            for (int64_t k = 0; k < dim4; ++k) s += c[j * dim4 + k];
            csum[j] = 128 * s;
          }
          std::vector<float> want(static_cast<std::size_t>(nc * kCentroidBlockRows));
          scalar.centroids_i8.block_scores(q.data(), qs.data(), dim4, c.data(), cs.data(), csum.data(), nc, want.data(),
                                           nullptr, nullptr);
          std::vector<float> thr(kCentroidBlockRows, INFINITY);
          std::uniform_int_distribution<int64_t> col(0, nc - 1);
          for (int64_t r = 0; r < live; ++r) {
            const int k = pick(rng);
            thr[r] = k < 30 ? want[col(rng) * kCentroidBlockRows + r] : k < 35 ? NAN : k < 40 ? -INFINITY
                     : k < 45 ? INFINITY : 0.5f * nd(rng) * qs[r];
          }
          std::vector<uint8_t> want_flags(static_cast<std::size_t>(nc));
          scalar.centroids_i8.block_scores(q.data(), qs.data(), dim4, c.data(), cs.data(), csum.data(), nc, want.data(),
                                           thr.data(), want_flags.data());
          // The centroids end at an unreadable page: a kernel that reads past the last row faults.
          GuardedBytes guarded(c);
          for (bool with_thr : {false, true}) {
            std::vector<float> out(want.size(), -12345.0f);
            std::vector<uint8_t> flags(static_cast<std::size_t>(nc), 7);
            ops.block_scores(q.data(), qs.data(), dim4, guarded.data, cs.data(), csum.data(), nc, out.data(),
                                         with_thr ? thr.data() : nullptr, flags.data());
            int bad = 0;
            for (std::size_t i = 0; i < out.size() && bad < 5; ++i) {
              const bool same = std::isnan(want[i]) ? std::isnan(out[i]) : std::memcmp(&out[i], &want[i], sizeof(float)) == 0;
              if (!same) ++bad;
              EC_CHECK(same, "%s dim4 %lld nc %lld mode %d: [%lld, %lld] %g vs %g", name, (long long)dim4,
                       (long long)nc, mode, (long long)(i / kCentroidBlockRows), (long long)(i % kCentroidBlockRows),
                       out[i], want[i]);
            }
            for (int64_t j = 0; j < nc; ++j)
              EC_CHECK(flags[j] == (with_thr ? want_flags[j] : 7), "%s dim4 %lld nc %lld mode %d: flag %lld is %d, want %d",
                       name, (long long)dim4, (long long)nc, mode, (long long)j, flags[j], with_thr ? want_flags[j] : 7);
          }
          ++cases;
        }
    std::printf("  tested int8 block kernel %s (%s): %d cases\n", name, ops.fast ? "dot-product instructions" : "scalar",
                cases);
  }
}

// PLAID's query sizes through the centroid-major driver: every m in 1..33 (one and two row blocks),
// with and without thresholds, bit-identical to the scalar path.
EC_TEST(centroid_int8_every_query_length) {
  std::mt19937_64 rng(31);
  std::normal_distribution<float> nd;
  const KernelPath& scalar = path_by_name("scalar");
  const int64_t dim = 48, dim4 = i8_width(dim), K = 75;
  std::vector<float> c(static_cast<std::size_t>(K * dim));
  for (auto& v : c) v = nd(rng);
  std::vector<int8_t> c8(static_cast<std::size_t>(K * dim4));
  std::vector<float> cs(static_cast<std::size_t>(K));
  EC_CHECK(quantize_rows_i8(c.data(), K, dim, c8.data(), cs.data()), "finite rows refused");
  std::vector<int32_t> csum(static_cast<std::size_t>(K));
  for (int64_t j = 0; j < K; ++j) {
    int32_t s = 0;
    for (int64_t k = 0; k < dim4; ++k) s += c8[j * dim4 + k];
    csum[j] = 128 * s;
  }
  for (int64_t m = 1; m <= 33; ++m) {
    std::vector<float> q(static_cast<std::size_t>(m * dim));
    for (auto& v : q) v = nd(rng);
    std::vector<int8_t> q8(static_cast<std::size_t>(m * dim4));
    std::vector<float> qs(static_cast<std::size_t>(m));
    EC_CHECK(quantize_rows_i8(q.data(), m, dim, q8.data(), qs.data()), "finite rows refused");
    const int64_t stride = (m + 31) / 32 * 32;
    std::vector<float> thr(static_cast<std::size_t>(stride), INFINITY);
    for (int64_t r = 0; r < m; ++r) thr[r] = 4.0f * nd(rng);
    std::vector<float> want(static_cast<std::size_t>(K * stride));
    std::vector<uint8_t> want_flags(static_cast<std::size_t>(K));
    centroid_scores_t_i8(scalar, q8.data(), qs.data(), m, dim4, c8.data(), cs.data(), csum.data(), K, stride,
                         want.data(), 1, thr.data(), want_flags.data());
    for (const KernelPath* p : available_paths()) {
      std::vector<float> out(want.size(), NAN);
      std::vector<uint8_t> flags(static_cast<std::size_t>(K), 9);
      centroid_scores_t_i8(*p, q8.data(), qs.data(), m, dim4, c8.data(), cs.data(), csum.data(), K, stride, out.data(),
                           2, thr.data(), flags.data());
      EC_CHECK(std::memcmp(out.data(), want.data(), out.size() * sizeof(float)) == 0, "%s m %lld: scores differ",
               p->name, (long long)m);
      EC_CHECK(flags == want_flags, "%s m %lld: flags differ", p->name, (long long)m);
    }
  }
}
