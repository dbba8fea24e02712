// Hierarchical pooling: the Ward linkage and fcluster(maxclust) against scipy 1.17.1's outputs on small
// condensed matrices (heights bit for bit, labels exactly, ties and "fewer clusters than asked"
// included), against a naive greedy Ward on tie-free data of many sizes, and the document driver:
// protected rows, short documents, pool factor 1 and larger than the document, means, the row map,
// packing after a document that formed fewer clusters, thread-count independence, non-finite input.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "edgecolbert/pool.hpp"
#include "test_util.hpp"

using namespace edgecolbert;

namespace {

struct Golden {
  const char* name;
  int64_t n;
  std::vector<double> dist;
  std::vector<LinkageRow> z;
  std::vector<std::vector<int32_t>> labels;  // fcluster(z, t, "maxclust") for t = 1..n
};

// scipy 1.17.1: z = hierarchy.linkage(dist, method="ward"); hierarchy.fcluster(z, t, criterion="maxclust").
// dist: numpy.random.default_rng(7) integers in [1, 4) (many ties), all ones, then uniform [0, 1).
const std::vector<Golden>& goldens() {
  static const std::vector<Golden> g = {
      {"ties_small_ints", 7,
       {3.0, 2.0, 3.0, 3.0, 2.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 1.0, 2.0, 3.0, 1.0, 3.0, 1.0, 2.0, 3.0},
       {{2, 5, 1.0, 2}, {1, 3, 1.0, 2}, {4, 6, 2.0, 2}, {0, 7, 2.23606797749979, 3}, {8, 9, 2.738612787525831, 4},
        {10, 11, 3.7129118338191502, 7}},
       {{1, 1, 1, 1, 1, 1, 1}, {1, 2, 1, 2, 2, 1, 2}, {1, 2, 1, 2, 3, 1, 3}, {2, 3, 1, 3, 4, 1, 4},
        {2, 3, 1, 3, 4, 1, 5}, {2, 3, 1, 3, 4, 1, 5}, {1, 2, 3, 4, 5, 6, 7}}},
      {"all_equal", 5,
       {1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0},
       {{0, 1, 1.0, 2}, {2, 5, 1.0, 3}, {3, 6, 1.0, 4}, {4, 7, 1.0, 5}},
       {{1, 1, 1, 1, 1}, {1, 1, 1, 1, 1}, {1, 1, 1, 1, 1}, {1, 1, 1, 1, 1}, {1, 2, 3, 4, 5}}},
      {"generic", 7,
       {0.2784256121007733, 0.2548695876541246, 0.4450763058826466, 0.5045482589579533, 0.5534973520744925,
        0.9955002834343927, 0.7926619192137531, 0.6221792294411627, 0.9889601476818849, 0.21530869823559895,
        0.16021203385784455, 0.6125396042730308, 0.04394200796138337, 0.03568027877359614, 0.5148888202713703,
        0.4662060253252891, 0.9171677731928523, 0.6292262544910104, 0.5141176465995139, 0.49687343539350426,
        0.24751492202733083},
       {{2, 5, 0.03568027877359614, 2}, {1, 6, 0.16021203385784455, 2}, {4, 7, 0.42080186427186855, 3},
        {0, 3, 0.4450763058826466, 2}, {9, 10, 0.796027550217404, 5}, {8, 11, 0.9263252701236602, 7}},
       {{1, 1, 1, 1, 1, 1, 1}, {2, 1, 2, 2, 2, 2, 1}, {3, 1, 2, 3, 2, 2, 1}, {3, 1, 2, 4, 2, 2, 1},
        {4, 1, 2, 5, 3, 2, 1}, {5, 1, 3, 6, 4, 3, 2}, {1, 2, 3, 4, 5, 6, 7}}},
  };
  return g;
}

// Each point mapped to the smallest point of its cluster: equal for equal partitions, whatever the labels.
std::vector<int64_t> canonical(const std::vector<int32_t>& labels) {
  std::vector<int64_t> first(labels.size() + 2, -1), out(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (first[labels[i]] < 0) first[labels[i]] = static_cast<int64_t>(i);
    out[i] = first[labels[i]];
  }
  return out;
}

// Naive Ward: merge the globally closest pair of live clusters (Lance-Williams on squared distances),
// record the partition after every merge. On data without ties this is the same hierarchy as the
// nearest-neighbour chain (Ward's method is reducible).
std::vector<std::vector<int32_t>> naive_partitions(const std::vector<double>& condensed, int64_t n) {
  std::vector<double> d2(static_cast<std::size_t>(n * n));
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j, ++c) d2[i * n + j] = d2[j * n + i] = condensed[c] * condensed[c];
  std::vector<int64_t> size(n, 1);
  std::vector<int32_t> owner(n);
  for (int64_t i = 0; i < n; ++i) owner[i] = static_cast<int32_t>(i);
  std::vector<std::vector<int32_t>> parts(static_cast<std::size_t>(n + 1));  // parts[k]: k clusters
  parts[n] = owner;
  for (int64_t k = n; k > 1; --k) {
    int64_t bx = -1, by = -1;
    double best = std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i + 1; j < n; ++j)
        if (size[i] && size[j] && d2[i * n + j] < best) best = d2[i * n + j], bx = i, by = j;
    for (int64_t i = 0; i < n; ++i) {
      if (!size[i] || i == bx || i == by) continue;
      const double t = static_cast<double>(size[i] + size[bx] + size[by]);
      const double v = ((size[i] + size[bx]) * d2[i * n + bx] + (size[i] + size[by]) * d2[i * n + by] -
                        size[i] * best) / t;
      d2[i * n + by] = d2[by * n + i] = v;
    }
    size[by] += size[bx];
    size[bx] = 0;
    for (auto& o : owner)
      if (o == bx) o = static_cast<int32_t>(by);
    parts[k - 1] = owner;
  }
  return parts;
}

std::vector<float> random_rows(std::mt19937_64& rng, int64_t rows, int64_t dim, bool normalise) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(rows * dim));
  for (auto& v : x) v = g(rng);
  if (normalise)
    for (int64_t i = 0; i < rows; ++i) {
      double s = 0;
      for (int64_t k = 0; k < dim; ++k) s += double(x[i * dim + k]) * x[i * dim + k];
      for (int64_t k = 0; k < dim; ++k) x[i * dim + k] = static_cast<float>(x[i * dim + k] / std::sqrt(s));
    }
  return x;
}

}  // namespace

EC_TEST(pool_ward_and_fcluster_match_scipy_goldens) {
  PoolScratch s;
  for (const auto& g : goldens()) {
    std::vector<double> dist = g.dist;
    std::vector<LinkageRow> z(static_cast<std::size_t>(g.n - 1));
    ward_linkage_scalar(dist.data(), g.n, z.data(), s);
    for (int64_t r = 0; r < g.n - 1; ++r) {
      const auto& w = g.z[r];
      EC_CHECK(z[r].a == w.a && z[r].b == w.b && z[r].size == w.size, "%s row %lld: (%lld, %lld, size %lld) vs scipy (%lld, %lld, %lld)",
               g.name, (long long)r, (long long)z[r].a, (long long)z[r].b, (long long)z[r].size, (long long)w.a,
               (long long)w.b, (long long)w.size);
      EC_CHECK(z[r].height == w.height, "%s row %lld: height %.17g vs scipy %.17g (bit for bit)", g.name, (long long)r,
               z[r].height, w.height);
    }
    for (int64_t t = 1; t <= g.n; ++t) {
      std::vector<int32_t> labels(static_cast<std::size_t>(g.n), -7);
      const int64_t c = fcluster_maxclust_scalar(z.data(), g.n, t, labels.data(), s);
      const auto& want = g.labels[t - 1];
      EC_CHECK(labels == want, "%s t=%lld: labels differ from scipy's", g.name, (long long)t);
      EC_CHECK(c == *std::max_element(want.begin(), want.end()), "%s t=%lld: %lld clusters", g.name, (long long)t,
               (long long)c);
    }
  }
}

EC_TEST(pool_ward_matches_naive_greedy_on_tie_free_data) {
  std::mt19937_64 rng(11);
  PoolScratch s;
  for (int64_t n : {2, 3, 4, 5, 8, 17, 33, 64}) {
    for (int rep = 0; rep < 3; ++rep) {
      // Distances of random points (Euclidean: Ward's heights are then monotone and ties have measure 0).
      const int64_t dim = 5;
      auto x = random_rows(rng, n, dim, false);
      std::vector<double> dist;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i + 1; j < n; ++j) {
          double e = 0;
          for (int64_t k = 0; k < dim; ++k) e += (double(x[i * dim + k]) - x[j * dim + k]) * (double(x[i * dim + k]) - x[j * dim + k]);
          dist.push_back(std::sqrt(e));
        }
      const auto parts = naive_partitions(dist, n);
      std::vector<LinkageRow> z(static_cast<std::size_t>(n - 1));
      std::vector<double> work = dist;
      ward_linkage_scalar(work.data(), n, z.data(), s);
      for (int64_t r = 1; r < n - 1; ++r)
        EC_CHECK(z[r - 1].height <= z[r].height, "n=%lld: heights not sorted at row %lld", (long long)n, (long long)r);
      for (int64_t k = 1; k <= n; ++k) {
        std::vector<int32_t> labels(static_cast<std::size_t>(n));
        const int64_t c = fcluster_maxclust_scalar(z.data(), n, k, labels.data(), s);
        EC_CHECK(c == k, "n=%lld k=%lld: %lld clusters", (long long)n, (long long)k, (long long)c);
        EC_CHECK(canonical(labels) == canonical(parts[k]), "n=%lld k=%lld: partition differs from naive Ward",
                 (long long)n, (long long)k);
      }
    }
  }
}

EC_TEST(pool_document_short_and_protected) {
  std::mt19937_64 rng(3);
  PoolScratch s;
  const int64_t dim = 7;
  for (int64_t rows = 0; rows <= 9; ++rows)
    for (int64_t prot : {0, 1, 2, 12})
      for (int64_t pf : {1, 2, 3, 4, 100}) {
        auto x = random_rows(rng, rows, dim, true);
        const int64_t keep = std::min(prot, rows), m = rows - keep;
        const int64_t k = std::max<int64_t>(m / pf, 1);
        const int64_t bound = pooled_rows_bound(rows, pf, prot);
        EC_CHECK(bound == (k >= m ? rows : keep + k), "bound rows=%lld prot=%lld pf=%lld", (long long)rows,
                 (long long)prot, (long long)pf);
        std::vector<float> out(static_cast<std::size_t>((bound + 1) * dim), std::nanf(""));
        std::vector<int64_t> row_of(static_cast<std::size_t>(rows), -9);
        const int64_t got = pool_document_scalar(x.data(), rows, dim, pf, prot, out.data(), row_of.data(), s);
        // Random unit vectors: no ties, so fcluster forms exactly k clusters.
        EC_CHECK(got == bound, "rows=%lld prot=%lld pf=%lld: %lld rows out, bound %lld", (long long)rows,
                 (long long)prot, (long long)pf, (long long)got, (long long)bound);
        for (int64_t j = 0; j < dim; ++j)
          EC_CHECK(std::isnan(out[bound * dim + j]), "wrote past the bound (rows=%lld)", (long long)rows);
        for (int64_t i = 0; i < keep; ++i)
          EC_CHECK(row_of[i] == i && std::memcmp(&out[i * dim], &x[i * dim], dim * 4) == 0, "protected row %lld moved",
                   (long long)i);
        // Every output row is the mean (double) of the input rows mapped to it; each output row used.
        std::vector<double> sum(static_cast<std::size_t>(got * dim), 0.0);
        std::vector<int64_t> count(static_cast<std::size_t>(got), 0);
        for (int64_t i = 0; i < rows; ++i) {
          EC_CHECK(row_of[i] >= 0 && row_of[i] < got, "row_of[%lld] = %lld", (long long)i, (long long)row_of[i]);
          if (row_of[i] < 0 || row_of[i] >= got) continue;
          ++count[row_of[i]];
          for (int64_t j = 0; j < dim; ++j) sum[row_of[i] * dim + j] += x[i * dim + j];
        }
        for (int64_t r = 0; r < got; ++r) {
          EC_CHECK(count[r] > 0, "output row %lld has no input rows", (long long)r);
          for (int64_t j = 0; j < dim && count[r] > 0; ++j)
            EC_CHECK(std::fabs(out[r * dim + j] - sum[r * dim + j] / count[r]) <= 1e-6, "mean of row %lld", (long long)r);
        }
        if (k >= m)  // nothing pooled: the document as it is
          EC_CHECK(rows == 0 || std::memcmp(out.data(), x.data(), rows * dim * 4) == 0, "unchanged document changed");
      }
}

EC_TEST(pool_tokens_packs_and_does_not_depend_on_threads) {
  std::mt19937_64 rng(5);
  const int64_t dim = 9;
  // Lengths with empties, singletons and one document of identical-distance rows (one-hot vectors: all
  // distances 1, so fcluster forms one cluster where 3 were asked and the rows after it move down).
  const std::vector<int64_t> lens = {0, 1, 2, 3, 40, 0, 8, 17, 5, 64, 1, 30};
  std::vector<int64_t> offsets = {0};
  for (auto l : lens) offsets.push_back(offsets.back() + l);
  const int64_t n = static_cast<int64_t>(lens.size()), T = offsets.back();
  auto tokens = random_rows(rng, T, dim, true);
  const int64_t onehot = 6;  // document 6 has 8 rows: one-hot vectors e_0 .. e_7
  for (int64_t r = 0; r < lens[onehot]; ++r)
    for (int64_t j = 0; j < dim; ++j) tokens[(offsets[onehot] + r) * dim + j] = j == r ? 1.0f : 0.0f;
  for (int64_t pf : {1, 2, 3}) {
    int64_t capacity = 0;
    for (auto l : lens) capacity += pooled_rows_bound(l, pf, 1);
    std::vector<float> ref;
    std::vector<int64_t> ref_off, ref_rows;
    for (int threads : {1, 2, 3, 4}) {
      std::vector<float> out(static_cast<std::size_t>(capacity * dim), std::nanf(""));
      std::vector<int64_t> off(static_cast<std::size_t>(n + 1), -1), rows(static_cast<std::size_t>(T), -1);
      pool_tokens(tokens.data(), dim, offsets.data(), n, pf, 1, out.data(), off.data(), rows.data(), threads);
      out.resize(static_cast<std::size_t>(off[n] * dim));
      if (threads == 1) {
        ref = out, ref_off = off, ref_rows = rows;
        // The one-hot document: 7 rows to pool into 7 / pf clusters, all at height 1: one cluster.
        const int64_t want = pf == 1 ? 8 : 2;
        EC_CHECK(off[onehot + 1] - off[onehot] == want, "pf=%lld: one-hot document has %lld rows, want %lld",
                 (long long)pf, (long long)(off[onehot + 1] - off[onehot]), (long long)want);
        for (int64_t i = 0; i < n; ++i) {  // every document's rows equal pool_document_scalar's
          PoolScratch s;
          std::vector<float> one(static_cast<std::size_t>((lens[i] + 1) * dim));
          const int64_t got = pool_document_scalar(tokens.data() + offsets[i] * dim, lens[i], dim, pf, 1, one.data(),
                                                   nullptr, s);
          EC_CHECK(got == off[i + 1] - off[i] &&
                       std::memcmp(one.data(), out.data() + off[i] * dim, static_cast<std::size_t>(got * dim) * 4) == 0,
                   "pf=%lld document %lld differs from pool_document_scalar", (long long)pf, (long long)i);
        }
        continue;
      }
      EC_CHECK(off == ref_off && rows == ref_rows && out.size() == ref.size() &&
                   std::memcmp(out.data(), ref.data(), out.size() * 4) == 0,
               "pf=%lld threads=%d: result differs from 1 thread", (long long)pf, threads);
    }
  }
}

EC_TEST(pool_non_finite_and_near_duplicates) {
  const int64_t dim = 4;
  // Document 1 has a NaN in a row that is pooled: refused, naming it. Document 0's NaN is in its only
  // row, which is never compared (PyLate returns it untouched as well).
  std::vector<float> tokens = {std::nanf(""), 0, 0, 0,  1, 0, 0, 0,  0, 1, 0, 0,  0, 0, std::nanf(""), 0,  0, 0, 0, 1};
  std::vector<int64_t> offsets = {0, 1, 5};
  std::vector<float> out(5 * dim);
  std::vector<int64_t> off(3);
  bool thrown = false;
  try {
    pool_tokens(tokens.data(), dim, offsets.data(), 2, 2, 1, out.data(), off.data(), nullptr, 2);
  } catch (const std::invalid_argument& e) {
    thrown = std::strstr(e.what(), "document 1") != nullptr;
  }
  EC_CHECK(thrown, "a NaN token in a pooled document must be refused, naming the document");
  tokens[3 * dim + 2] = 0.0f;
  pool_tokens(tokens.data(), dim, offsets.data(), 2, 2, 1, out.data(), off.data(), nullptr, 2);
  EC_CHECK(off[1] == 1 && std::isnan(out[0]), "an unpooled document passes through as it is");

  // Near-duplicates whose float32 similarity rounds above 1: 2 * b * b = 1.0000001 (a distance of
  // -1.19e-7, which scipy refuses) and 2 * a * b = 1.0 (distance 0). Unclamped, Ward's update for the
  // third row, sqrt(0 + 0 - (1/3) * (1.19e-7)^2), is NaN; clamped at 0, rows 1..3 form one cluster.
  const float a = 0.70710677f, b = 0.70710683f;
  std::vector<float> dup = {1, 0, 0, 0,  b, b, 0, 0,  b, b, 0, 0,  a, a, 0, 0};
  PoolScratch s;
  std::vector<float> pooled(4 * dim);
  std::vector<int64_t> row_of(4);
  const int64_t got = pool_document_scalar(dup.data(), 4, dim, 2, 0, pooled.data(), row_of.data(), s);
  EC_CHECK(got == 2 && row_of[1] == row_of[2] && row_of[2] == row_of[3] && row_of[0] != row_of[1],
           "near-duplicates: %lld rows, row_of = %lld %lld %lld %lld", (long long)got, (long long)row_of[0],
           (long long)row_of[1], (long long)row_of[2], (long long)row_of[3]);
  for (float v : pooled) EC_CHECK(std::isfinite(v), "pooled values stay finite");
}
