// Hierarchical token pooling: PyLate's `pool_factor` (ColBERT.pool_embeddings_hierarchical), which
// clusters each document's token vectors with scipy's Ward linkage and keeps one mean per cluster.
//
// For one document of rows [protected..., pooled...] (the first `protected_tokens` rows are kept as
// they are), with m pooled rows and k = max(m / pool_factor, 1) wanted clusters:
//   - k >= m, i.e. pool_factor 1 or m <= 1: the rows are kept as they are (m = 2 with pool_factor 2
//     or more gives one cluster: the document's poolable rows become their mean);
//   - else the distances d(i, j) = float32(1 - float32(<x_i, x_j>)) (PyLate computes the Gram matrix in
//     float32 with torch.mm; here each dot product is summed in double in order k = 0..dim-1 and
//     rounded once), Ward linkage by the nearest-neighbour chain, fcluster(criterion="maxclust", t=k),
//     and the output is the protected rows followed by the cluster means in label order 1, 2, ...
//     (scipy numbers the clusters in the tree's depth-first order). Ties between equal distances and
//     equal heights resolve as in scipy 1.17 (same loops, same comparisons, a stable sort).
// Where scipy would refuse the linkage (a negative distance, i.e. a float32 similarity above 1 between
// near-duplicate vectors, with at least 3 rows: fcluster's check "Linkage contains negative distances")
// the distances are clamped at 0; in every case scipy accepts, the clamp changes nothing.
#pragma once
#include <cstdint>
#include <vector>

namespace edgecolbert {

// One row of scipy's linkage matrix Z: clusters a < b (points 0..n-1, the cluster formed by row r is
// n + r), the merge height and the merged cluster's size.
struct LinkageRow {
  int64_t a = 0, b = 0;
  double height = 0.0;
  int64_t size = 0;
};

// Work arrays of one document, reused from document to document by one worker.
struct PoolScratch {
  std::vector<double> dist;       // condensed distances, n(n-1)/2
  std::vector<double> columns;    // the pooled rows transposed, [dim, n rounded up to 4], widened to double
  std::vector<double> sums;       // cluster sums, [k, dim]
  std::vector<LinkageRow> z;      // n - 1
  std::vector<int64_t> ints;      // sizes, chain, union-find, traversal stacks
  std::vector<double> max_dist;   // n - 1
  std::vector<uint8_t> visited;   // 2n - 1
  std::vector<int32_t> labels;    // n
  std::vector<int64_t> counts;    // k
};

// scipy.cluster.hierarchy.linkage(dist, method="ward") for n >= 2 points: the nearest-neighbour chain,
// then the rows sorted stably by height and relabelled. dist (condensed, n(n-1)/2, finite) is overwritten.
void ward_linkage_scalar(double* dist, int64_t n, LinkageRow* z, PoolScratch& s);

// scipy.cluster.hierarchy.fcluster(z, max_clusters, criterion="maxclust") for n >= 2 points: labels [n]
// in 1..c, numbered in depth-first order from the root (left child first). Returns c (<= max_clusters;
// fewer when equal heights cannot be split).
int64_t fcluster_maxclust_scalar(const LinkageRow* z, int64_t n, int64_t max_clusters, int32_t* labels,
                                 PoolScratch& s);

// Rows one document of `rows` rows has after pooling, at most (fcluster may give fewer clusters).
int64_t pooled_rows_bound(int64_t rows, int64_t pool_factor, int64_t protected_tokens);

// Pools one document: rows [nrows, dim] float32 -> out [<= pooled_rows_bound, dim]; returns the rows
// written, or -1 when a distance is not finite (NaN/inf tokens, or overflow), where scipy raises.
// row_of (optional, [nrows]): the output row each input row went into.
int64_t pool_document_scalar(const float* rows, int64_t nrows, int64_t dim, int64_t pool_factor,
                             int64_t protected_tokens, float* out, int64_t* row_of, PoolScratch& s);

// The sum over the documents of a CSR set (offsets [n+1]) of pooled_rows_bound: the rows pool_tokens
// may write.
int64_t pooled_rows_capacity(const int64_t* offsets, int64_t n, int64_t pool_factor, int64_t protected_tokens);

// Every document of a CSR set (tokens [T, dim] float32, offsets [n+1]) pooled: out must hold
// pooled_rows_capacity rows; out_offsets [n+1] receives the pooled CSR offsets (the
// rows are packed to the front of out). row_of (optional, [T]): for each input token, its row inside its
// document's pooled rows. Documents are split over the pool; results do not depend on num_threads.
// Throws std::invalid_argument naming the first document whose distances are not finite.
void pool_tokens(const float* tokens, int64_t dim, const int64_t* offsets, int64_t n, int64_t pool_factor,
                 int64_t protected_tokens, float* out, int64_t* out_offsets, int64_t* row_of, int num_threads);

}  // namespace edgecolbert
