// Hierarchical token pooling, scalar: the specification and the only path (pool.hpp has the contract).
// The clustering is scipy 1.17's code path for linkage(method="ward") + fcluster(criterion="maxclust")
// step by step (scipy/cluster/_hierarchy.pyx: nn_chain, label, get_max_dist_for_each_cluster,
// cluster_maxclust_monocrit, cluster_monocrit): same loop orders, same strict/non-strict comparisons,
// same Lance-Williams expression term by term, so ties and equal heights resolve the same way. Built
// with -ffp-contract=off (every *_scalar.cpp is): no fused multiply-add, as in scipy's x86-64 wheels.
//
// Distances: the Gram matrix of the m pooled rows in double (float products are exact in double; each
// dot product summed in order k = 0..dim-1, then rounded to float32 as PyLate's float32 torch.mm
// result is), d = float32(1 - dot). O(m^2 dim) time, O(m^2) memory (the condensed matrix, as scipy
// holds it).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "edgecolbert/pool.hpp"

namespace edgecolbert {
namespace {

// Position of (i, j), i != j, in the condensed (upper-triangle, row-major) matrix of n points.
inline int64_t condensed_index(int64_t n, int64_t i, int64_t j) {
  if (i > j) std::swap(i, j);
  return n * i - (i * (i + 1)) / 2 + (j - i - 1);
}

// scipy's _ward: the Lance-Williams update, evaluated in scipy's order (left to right, one rounding
// per operation).
inline double ward_update(double d_xi, double d_yi, double d_xy, int64_t size_x, int64_t size_y, int64_t size_i) {
  const double t = 1.0 / static_cast<double>(size_x + size_y + size_i);
  return std::sqrt(static_cast<double>(size_i + size_x) * t * d_xi * d_xi +
                   static_cast<double>(size_i + size_y) * t * d_yi * d_yi -
                   static_cast<double>(size_i) * t * d_xy * d_xy);
}

// One step down scipy's depth-first walks of the linkage tree: the first not yet visited inner child of
// a node (left, then right) goes on the stack; false when both are done (or leaves).
inline bool descend(int64_t lc, int64_t rc, int64_t n, int64_t* stack, int64_t& k, uint8_t* visited) {
  for (const int64_t c : {lc, rc})
    if (c >= n && !visited[c]) {
      visited[c] = 1;
      stack[++k] = c;
      return true;
    }
  return false;
}

// numpy's sort order for float64: NaN after every number (argsort(kind="mergesort") is stable).
inline bool height_less(double a, double b) { return a < b || (b != b && a == a); }

int64_t find_root(int64_t* parent, int64_t x) {
  int64_t root = x;
  while (parent[root] != root) root = parent[root];
  while (parent[x] != root) {  // path compression (does not change any result)
    const int64_t next = parent[x];
    parent[x] = root;
    x = next;
  }
  return root;
}

// scipy's get_max_dist_for_each_cluster: the largest height inside each cluster's subtree, by an
// iterative depth-first walk from the root (left child first).
void max_dist_per_cluster(const LinkageRow* z, int64_t n, double* max_dist, int64_t* stack, uint8_t* visited) {
  std::memset(visited, 0, static_cast<std::size_t>(2 * n - 1));
  int64_t k = 0;
  stack[0] = 2 * n - 2;
  while (k >= 0) {
    const int64_t root = stack[k] - n;
    const int64_t lc = z[root].a, rc = z[root].b;
    if (descend(lc, rc, n, stack, k, visited)) continue;
    double m = z[root].height;
    if (lc >= n && max_dist[lc - n] > m) m = max_dist[lc - n];
    if (rc >= n && max_dist[rc - n] > m) m = max_dist[rc - n];
    max_dist[root] = m;
    --k;
  }
}

// scipy's cluster_monocrit: walks the tree depth-first; the first node on a path whose criterion is
// <= cutoff leads a cluster, and points are numbered by cluster in the order the walk reaches them.
int64_t clusters_at(const LinkageRow* z, int64_t n, const double* crit, double cutoff, int32_t* labels,
                    int64_t* stack, uint8_t* visited) {
  std::memset(visited, 0, static_cast<std::size_t>(2 * n - 1));
  int64_t n_cluster = 0, leader = -1, k = 0;
  stack[0] = 2 * n - 2;
  while (k >= 0) {
    const int64_t root = stack[k] - n;
    const int64_t lc = z[root].a, rc = z[root].b;
    if (leader == -1 && crit[root] <= cutoff) {
      leader = root;
      ++n_cluster;
    }
    if (descend(lc, rc, n, stack, k, visited)) continue;
    if (lc < n) {
      if (leader == -1) ++n_cluster;
      labels[lc] = static_cast<int32_t>(n_cluster);
    }
    if (rc < n) {
      if (leader == -1) ++n_cluster;
      labels[rc] = static_cast<int32_t>(n_cluster);
    }
    if (leader == root) leader = -1;
    --k;
  }
  return n_cluster;
}

// The number of clusters cluster_monocrit would form at threshold `thresh`, stopping once it exceeds
// max_nc (scipy's inner loop of cluster_maxclust_monocrit).
bool exceeds_at(const LinkageRow* z, int64_t n, const double* crit, double thresh, int64_t max_nc, int64_t* stack,
                uint8_t* visited) {
  std::memset(visited, 0, static_cast<std::size_t>(2 * n - 1));
  int64_t nc = 0, k = 0;
  stack[0] = 2 * n - 2;
  while (k >= 0) {
    const int64_t root = stack[k] - n;
    const int64_t lc = z[root].a, rc = z[root].b;
    if (crit[root] <= thresh) {  // this subtree is one cluster
      if (++nc > max_nc) return true;
      --k;
      visited[lc] = 1;
      visited[rc] = 1;
      continue;
    }
    if (!visited[lc]) {
      visited[lc] = 1;
      if (lc >= n) {
        stack[++k] = lc;
        continue;
      }
      if (++nc > max_nc) return true;  // a singleton
    }
    if (!visited[rc]) {
      visited[rc] = 1;
      if (rc >= n) {
        stack[++k] = rc;
        continue;
      }
      if (++nc > max_nc) return true;
    }
    --k;
  }
  return false;
}

// Condensed float32-rounded distances 1 - <x_i, x_j> of the m rows x [m, dim]; false if one is not finite.
// Tiles of 4 rows x 4 columns accumulate in registers over k; each (i, j) is still one sum in order k.
bool cosine_distances(const float* x, int64_t m, int64_t dim, PoolScratch& s) {
  constexpr int64_t kTile = 4;
  const int64_t mp = (m + kTile - 1) / kTile * kTile;  // columns padded with zeros to whole tiles
  s.columns.assign(static_cast<std::size_t>(dim * mp), 0.0);
  double* cols = s.columns.data();
  for (int64_t j = 0; j < m; ++j)
    for (int64_t k = 0; k < dim; ++k) cols[k * mp + j] = static_cast<double>(x[j * dim + k]);
  double* dist = s.dist.data();
  bool finite = true;
  for (int64_t i0 = 0; i0 + 1 < m; i0 += kTile) {
    const double* r0 = cols + i0;  // rows i0..i0+3 are columns i0..i0+3 of the transposed copy
    for (int64_t j0 = i0; j0 < m; j0 += kTile) {  // the tile on the diagonal, then those right of it
      double acc[kTile][kTile] = {};
      for (int64_t k = 0; k < dim; ++k) {
        const double* c = cols + k * mp + j0;
        const double* r = r0 + k * mp;
        for (int64_t a = 0; a < kTile; ++a)
          for (int64_t b = 0; b < kTile; ++b) acc[a][b] += r[a] * c[b];
      }
      for (int64_t a = 0; a < kTile && i0 + a < m; ++a) {
        const int64_t i = i0 + a;
        for (int64_t b = 0; b < kTile; ++b) {
          const int64_t j = j0 + b;
          if (j <= i || j >= m) continue;
          const float d = 1.0f - static_cast<float>(acc[a][b]);
          finite = finite && std::isfinite(d);
          // scipy refuses a linkage with a negative height, which a negative distance always leads to
          // (the most negative pair are mutual nearest neighbours and merge at that height); with every
          // distance >= 0, as in all cases scipy accepts, this changes nothing.
          dist[condensed_index(m, i, j)] = d < 0.0f ? 0.0 : static_cast<double>(d);
        }
      }
    }
  }
  return finite;
}

}  // namespace

void ward_linkage_scalar(double* dist, int64_t n, LinkageRow* z, PoolScratch& s) {
  s.ints.assign(static_cast<std::size_t>(2 * n), 0);
  int64_t* size = s.ints.data();
  int64_t* chain = size + n;
  std::fill(size, size + n, int64_t{1});
  int64_t chain_length = 0;
  int64_t y = 0;  // kept across merges, like scipy's (only read after being set)
  for (int64_t k = 0; k < n - 1; ++k) {
    if (chain_length == 0) {
      chain_length = 1;
      for (int64_t i = 0; i < n; ++i)
        if (size[i] > 0) {
          chain[0] = i;
          break;
        }
    }
    // Follow nearest neighbours until two are each other's nearest; the previous element of the
    // chain wins ties (it is the starting minimum), which keeps the chain from cycling.
    int64_t x;
    double current_min;
    while (true) {
      x = chain[chain_length - 1];
      if (chain_length > 1) {
        y = chain[chain_length - 2];
        current_min = dist[condensed_index(n, x, y)];
      } else {
        current_min = std::numeric_limits<double>::infinity();
      }
      for (int64_t i = 0; i < n; ++i) {
        if (size[i] == 0 || x == i) continue;
        const double d = dist[condensed_index(n, x, i)];
        if (d < current_min) {
          current_min = d;
          y = i;
        }
      }
      if (chain_length > 1 && y == chain[chain_length - 2]) break;
      chain[chain_length++] = y;
    }
    chain_length -= 2;
    if (x > y) std::swap(x, y);  // the merged cluster lives in slot y (fastcluster's convention)
    const int64_t nx = size[x], ny = size[y];
    z[k] = LinkageRow{x, y, current_min, nx + ny};
    size[x] = 0;
    size[y] = nx + ny;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t ni = size[i];
      if (ni == 0 || i == y) continue;
      double& d_iy = dist[condensed_index(n, i, y)];
      d_iy = ward_update(dist[condensed_index(n, i, x)], d_iy, current_min, nx, ny, ni);
    }
  }
  // Rows by height, stably (numpy's argsort(kind="mergesort")), then slots renamed to cluster ids
  // with a union-find in that order (scipy's label()): cluster n + r is the one row r forms.
  std::stable_sort(z, z + (n - 1), [](const LinkageRow& p, const LinkageRow& q) { return height_less(p.height, q.height); });
  s.ints.assign(static_cast<std::size_t>(2 * (2 * n - 1)), 0);
  int64_t* parent = s.ints.data();
  int64_t* csize = parent + (2 * n - 1);
  std::iota(parent, parent + (2 * n - 1), int64_t{0});
  std::fill(csize, csize + (2 * n - 1), int64_t{1});
  int64_t next_label = n;
  for (int64_t r = 0; r < n - 1; ++r) {
    const int64_t xr = find_root(parent, z[r].a), yr = find_root(parent, z[r].b);
    z[r].a = std::min(xr, yr);
    z[r].b = std::max(xr, yr);
    parent[xr] = parent[yr] = next_label;
    csize[next_label] = csize[xr] + csize[yr];
    z[r].size = csize[next_label];
    ++next_label;
  }
}

int64_t fcluster_maxclust_scalar(const LinkageRow* z, int64_t n, int64_t max_clusters, int32_t* labels,
                                 PoolScratch& s) {
  if (max_clusters >= n) {
    for (int64_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(i + 1);
    return n;
  }
  s.max_dist.resize(static_cast<std::size_t>(n - 1));
  s.ints.resize(static_cast<std::size_t>(n));
  s.visited.resize(static_cast<std::size_t>(2 * n - 1));
  double* md = s.max_dist.data();
  int64_t* stack = s.ints.data();
  uint8_t* visited = s.visited.data();
  max_dist_per_cluster(z, n, md, stack, visited);
  // The lowest threshold among the clusters' max heights that gives at most max_clusters clusters, by
  // bisection over the row index (index -1 stands for -inf and is never read).
  int64_t lower = -1, upper = n - 1;
  while (upper - lower > 1) {
    const int64_t i = (lower + upper) >> 1;
    if (exceeds_at(z, n, md, md[i], max_clusters, stack, visited)) lower = i;
    else upper = i;
  }
  // upper == n - 1 would need the root's height to fail `<=` against itself (NaN), which finite
  // distances >= 0 cannot give (scipy would read past the array there).
  const double cutoff = upper < n - 1 ? md[upper] : std::numeric_limits<double>::infinity();
  return clusters_at(z, n, md, cutoff, labels, stack, visited);
}

int64_t pooled_rows_bound(int64_t rows, int64_t pool_factor, int64_t protected_tokens) {
  const int64_t keep = std::min(std::max<int64_t>(protected_tokens, 0), rows);
  const int64_t m = rows - keep;
  const int64_t k = std::max<int64_t>(m / pool_factor, 1);
  return k >= m ? rows : keep + k;
}

int64_t pool_document_scalar(const float* rows, int64_t nrows, int64_t dim, int64_t pool_factor,
                             int64_t protected_tokens, float* out, int64_t* row_of, PoolScratch& s) {
  const int64_t keep = std::min(std::max<int64_t>(protected_tokens, 0), nrows);
  const int64_t m = nrows - keep;
  const int64_t k = std::max<int64_t>(m / pool_factor, 1);
  if (k >= m) {  // nothing to reduce: PyLate returns the document as it is
    if (nrows > 0) std::memcpy(out, rows, static_cast<std::size_t>(nrows * dim) * sizeof(float));
    if (row_of != nullptr)
      for (int64_t i = 0; i < nrows; ++i) row_of[i] = i;
    return nrows;
  }
  const float* x = rows + keep * dim;
  s.dist.resize(static_cast<std::size_t>(m * (m - 1) / 2));
  if (!cosine_distances(x, m, dim, s)) return -1;
  s.z.resize(static_cast<std::size_t>(m - 1));
  ward_linkage_scalar(s.dist.data(), m, s.z.data(), s);
  s.labels.resize(static_cast<std::size_t>(m));
  const int64_t c = fcluster_maxclust_scalar(s.z.data(), m, k, s.labels.data(), s);

  if (keep > 0) std::memcpy(out, rows, static_cast<std::size_t>(keep * dim) * sizeof(float));
  s.sums.assign(static_cast<std::size_t>(c * dim), 0.0);
  s.counts.assign(static_cast<std::size_t>(c), 0);
  for (int64_t t = 0; t < m; ++t) {  // in token order, like PyLate's scatter_add_
    const int64_t l = s.labels[t] - 1;
    double* sum = s.sums.data() + l * dim;
    for (int64_t j = 0; j < dim; ++j) sum[j] += static_cast<double>(x[t * dim + j]);
    ++s.counts[l];
  }
  for (int64_t l = 0; l < c; ++l) {
    const double count = static_cast<double>(s.counts[l]);
    float* o = out + (keep + l) * dim;
    for (int64_t j = 0; j < dim; ++j) o[j] = static_cast<float>(s.sums[l * dim + j] / count);
  }
  if (row_of != nullptr) {
    for (int64_t i = 0; i < keep; ++i) row_of[i] = i;
    for (int64_t t = 0; t < m; ++t) row_of[keep + t] = keep + s.labels[t] - 1;
  }
  return keep + c;
}

}  // namespace edgecolbert
