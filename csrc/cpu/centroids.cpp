// Centroid search drivers (ISA-independent). Work is cut into tasks of (row group, centroid split):
// a row group is up to kGroupBlocks blocks of 32 rows, widened and packed once per task; the task
// walks its centroid range in chunks of kChunk centroids (an L2-sized slice reused by every block of
// the group) and keeps a bounded heap per row. When there are fewer row groups than threads (a query
// against many centroids) the centroid range is split too and the per-split heaps are merged; the
// merged top-k is the same for every split because the order is total (score, then id).
#include "edgecolbert/centroids.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "edgecolbert/threadpool.hpp"
#include "rank_order.hpp"

namespace edgecolbert {
namespace {

constexpr int64_t kRows = kCentroidBlockRows;
constexpr int64_t kGroupBlocks = 8;
constexpr int64_t kChunk = 512;

using Entry = Ranked<int32_t>;  // rank_order.hpp: the order of every native top-k
constexpr bool (*better)(const Entry&, const Entry&) = ranks_before<int32_t>;

void widen_rows(const Matrix& m, int64_t r0, int64_t nr, float* dst) {
  const std::size_t base = static_cast<std::size_t>(r0 * m.dim);
  const std::size_t cnt = static_cast<std::size_t>(nr * m.dim);
  if (m.dtype == DType::f32) {
    std::copy_n(static_cast<const float*>(m.data) + base, cnt, dst);
  } else {
    for (std::size_t i = 0; i < cnt; ++i) dst[i] = load_as_f32(m.data, m.dtype, base + i);
  }
}

const void* centroid_ptr(const Matrix& c, int64_t j) {
  return static_cast<const uint8_t*>(c.data) + static_cast<std::size_t>(j * c.dim) * dtype_size(c.dtype);
}

// Per-task state: the group's packed blocks and a scores/flags buffer for one chunk.
struct TaskBuffers {
  AlignedFloats packed, scores, scratch, rowsf;
  std::vector<uint8_t> flags;
  std::size_t block_floats;
  TaskBuffers(const KernelPath& path, int64_t dim)
      : packed(kGroupBlocks * (path.centroids.packed_bytes(dim) / sizeof(float) + 16)),
        scores(static_cast<std::size_t>(kChunk * kRows)),
        scratch(path.centroids.scratch_floats(dim) + 16),
        rowsf(static_cast<std::size_t>(kGroupBlocks * kRows * dim)),
        flags(static_cast<std::size_t>(kChunk)),
        block_floats((path.centroids.packed_bytes(dim) / sizeof(float) + 15) / 16 * 16) {}
  float* block(int64_t b) { return packed.p + b * block_floats; }
};

int64_t pack_group(const KernelPath& path, const Matrix& rows, int64_t g, TaskBuffers& tb) {
  const int64_t r0 = g * kGroupBlocks * kRows;
  const int64_t nr = std::min(rows.n - r0, kGroupBlocks * kRows);
  widen_rows(rows, r0, nr, tb.rowsf.p);
  const int64_t nb = (nr + kRows - 1) / kRows;
  for (int64_t b = 0; b < nb; ++b)
    path.centroids.pack(tb.rowsf.p + b * kRows * rows.dim, std::min(kRows, nr - b * kRows), rows.dim, tb.block(b));
  return nr;
}

// nb blocks of 32 rows of rows_f32 [nrows, dim] (rows past nrows zero) packed for block_scores, each
// block_floats (returned) apart.
AlignedFloats pack_blocks(const KernelPath& path, const float* rows_f32, int64_t nrows, int64_t nb, int64_t dim,
                          std::size_t& block_floats) {
  block_floats = (path.centroids.packed_bytes(dim) / sizeof(float) + 15) / 16 * 16;
  AlignedFloats packed(static_cast<std::size_t>(nb) * block_floats);
  for (int64_t b = 0; b < nb; ++b)
    path.centroids.pack(rows_f32 + b * kRows * dim, std::max<int64_t>(0, std::min(kRows, nrows - b * kRows)), dim,
                        packed.p + b * block_floats);
  return packed;
}

}  // namespace

void centroid_scores(const KernelPath& path, const Matrix& rows, const Matrix& cents, float* out, int num_threads) {
  if (rows.n == 0 || cents.n == 0) return;
  const int64_t ngroups = (rows.n + kGroupBlocks * kRows - 1) / (kGroupBlocks * kRows);
  const int64_t nchunks = (cents.n + kChunk - 1) / kChunk;
  std::vector<std::unique_ptr<TaskBuffers>> bufs(static_cast<std::size_t>(num_threads));
  // Tasks: (group, chunk); consecutive tasks share a group so its packing is reused by one worker.
  std::vector<int64_t> packed_group(static_cast<std::size_t>(num_threads), -1);
  parallel_for(ngroups * nchunks, num_threads, [&](int64_t t, int w) {
    auto& tb = bufs[static_cast<std::size_t>(w)];
    if (!tb) tb.reset(new TaskBuffers(path, rows.dim));
    const int64_t g = t / nchunks, ch = t % nchunks;
    int64_t nr;
    if (packed_group[w] != g) {
      nr = pack_group(path, rows, g, *tb);
      packed_group[w] = g;
    } else {
      nr = std::min(rows.n - g * kGroupBlocks * kRows, kGroupBlocks * kRows);
    }
    const int64_t c0 = ch * kChunk, nc = std::min(kChunk, cents.n - c0);
    const int64_t nb = (nr + kRows - 1) / kRows;
    for (int64_t b = 0; b < nb; ++b) {
      path.centroids.block_scores(tb->block(b), rows.dim, centroid_ptr(cents, c0), cents.dtype, nc, nullptr,
                                  tb->scores.p, nullptr, tb->scratch.p);
      const int64_t rb = g * kGroupBlocks * kRows + b * kRows;
      const int64_t vr = std::min(kRows, rows.n - rb);
      for (int64_t r = 0; r < vr; ++r) {
        float* o = out + (rb + r) * cents.n + c0;
        const float* s = tb->scores.p + r;
        for (int64_t j = 0; j < nc; ++j) o[j] = s[j * kRows];
      }
    }
  });
}

void centroid_scores_t(const KernelPath& path, const Matrix& rows, const Matrix& cents, int64_t stride, float* out,
                       int num_threads) {
  if (cents.n == 0) return;
  const int64_t nb = stride / kRows;
  AlignedFloats rowsf(static_cast<std::size_t>(std::max<int64_t>(1, rows.n * rows.dim)));
  widen_rows(rows, 0, rows.n, rowsf.p);
  std::size_t bf;
  const AlignedFloats packed = pack_blocks(path, rowsf.p, rows.n, nb, cents.dim, bf);
  const int64_t nchunks = (cents.n + kChunk - 1) / kChunk;
  parallel_for(nchunks, num_threads, [&](int64_t t, int) {
    const int64_t c0 = t * kChunk, nc = std::min(kChunk, cents.n - c0);
    AlignedFloats scratch(path.centroids.scratch_floats(cents.dim) + 16);
    if (nb == 1) {  // one block of rows: the tiles land in place
      path.centroids.block_scores(packed.p, cents.dim, centroid_ptr(cents, c0), cents.dtype, nc, nullptr,
                                  out + c0 * stride, nullptr, scratch.p);
      return;
    }
    AlignedFloats sc(static_cast<std::size_t>(nc * kRows));
    for (int64_t b = 0; b < nb; ++b) {
      path.centroids.block_scores(packed.p + b * bf, cents.dim, centroid_ptr(cents, c0), cents.dtype, nc, nullptr,
                                  sc.p, nullptr, scratch.p);
      for (int64_t j = 0; j < nc; ++j) std::copy_n(sc.p + j * kRows, kRows, out + (c0 + j) * stride + b * kRows);
    }
  });
}

bool quantize_rows_i8(const float* x, int64_t n, int64_t dim, int8_t* out, float* scale) {
  const int64_t dim4 = i8_width(dim);
  for (int64_t i = 0; i < n; ++i) {
    const float* r = x + i * dim;
    float mx = 0.0f;
    for (int64_t k = 0; k < dim; ++k) {
      if (!std::isfinite(r[k])) return false;
      mx = std::max(mx, std::fabs(r[k]));
    }
    int8_t* o = out + i * dim4;
    std::fill(o, o + dim4, int8_t{0});
    scale[i] = mx / 127.0f;
    if (mx == 0.0f) continue;
    const float inv = 127.0f / mx;
    for (int64_t k = 0; k < dim; ++k)
      o[k] = static_cast<int8_t>(std::clamp(std::nearbyint(r[k] * inv), -127.0f, 127.0f));
  }
  return true;
}

bool quantize_centroids_i8(const float* x, int64_t n, int64_t dim, int8_t* out, float* scale, int32_t* csum) {
  if (!quantize_rows_i8(x, n, dim, out, scale)) return false;
  const int64_t dim4 = i8_width(dim);
  for (int64_t i = 0; i < n; ++i) {
    int32_t sum = 0;
    for (int64_t k = 0; k < dim4; ++k) sum += out[i * dim4 + k];
    csum[i] = 128 * sum;
  }
  return true;
}

PackedRowsI8::PackedRowsI8(const int8_t* q8, const float* qscale, int64_t m, int64_t dim4_, int64_t stride)
    : dim4(dim4_), nb(stride / kRows), blocks(static_cast<std::size_t>(nb * kRows * dim4_), 0),
      scales(static_cast<std::size_t>(nb * kRows), 0.0f) {
  const int64_t block_bytes = kRows * dim4;
  for (int64_t r = 0; r < m; ++r) {
    const int64_t b = r / kRows, rr = r % kRows;
    int8_t* blk = blocks.data() + b * block_bytes;
    for (int64_t k = 0; k < dim4; ++k) blk[(k / 4) * kRows * 4 + rr * 4 + k % 4] = q8[r * dim4 + k];
    scales[b * kRows + rr] = qscale[r];
  }
}

void centroid_scores_t_i8(const KernelPath& path, const PackedRowsI8& rows, const int8_t* c8, const float* cscale,
                          const int32_t* csum, int64_t K, float* out, int num_threads, const float* thr,
                          uint8_t* flags) {
  if (K == 0) return;
  const int64_t nb = rows.nb, dim4 = rows.dim4, stride = nb * kRows, block_bytes = kRows * dim4;
  const int64_t nchunks = (K + kChunk - 1) / kChunk;
  parallel_for(nchunks, num_threads, [&](int64_t t, int) {
    const int64_t c0 = t * kChunk, nc = std::min(kChunk, K - c0);
    uint8_t* f = thr != nullptr ? flags + c0 : nullptr;
    if (nb == 1) {
      path.centroids_i8.block_scores(rows.blocks.data(), rows.scales.data(), dim4, c8 + c0 * dim4, cscale + c0,
                                     csum + c0, nc, out + c0 * stride, thr, f);
      return;
    }
    std::vector<float> sc(static_cast<std::size_t>(nc * kRows));
    std::vector<uint8_t> bf(thr != nullptr ? static_cast<std::size_t>(nc) : 0);
    if (f != nullptr) std::fill_n(f, nc, uint8_t{0});
    for (int64_t b = 0; b < nb; ++b) {
      path.centroids_i8.block_scores(rows.blocks.data() + b * block_bytes, rows.scales.data() + b * kRows, dim4,
                                     c8 + c0 * dim4, cscale + c0, csum + c0, nc, sc.data(),
                                     thr != nullptr ? thr + b * kRows : nullptr, bf.data());
      for (int64_t j = 0; j < nc; ++j) std::copy_n(sc.data() + j * kRows, kRows, out + (c0 + j) * stride + b * kRows);
      if (f != nullptr)
        for (int64_t j = 0; j < nc; ++j) f[j] |= bf[j];
    }
  });
}

void centroid_scores_t_i8(const KernelPath& path, const int8_t* q8, const float* qscale, int64_t m, int64_t dim4,
                          const int8_t* c8, const float* cscale, const int32_t* csum, int64_t K, int64_t stride,
                          float* out, int num_threads, const float* thr, uint8_t* flags) {
  if (K == 0) return;
  centroid_scores_t_i8(path, PackedRowsI8(q8, qscale, m, dim4, stride), c8, cscale, csum, K, out, num_threads, thr,
                       flags);
}

bool centroid_scores_t_i8_from_f32(const KernelPath& path, const float* rows, int64_t m, int64_t dim, const int8_t* c8,
                                   const float* cscale, const int32_t* csum, int64_t K, int64_t stride, float* out,
                                   int num_threads) {
  const int64_t dim4 = i8_width(dim);
  std::vector<int8_t> q8(static_cast<std::size_t>(m * dim4));
  std::vector<float> qscale(static_cast<std::size_t>(m));
  if (!quantize_rows_i8(rows, m, dim, q8.data(), qscale.data())) return false;
  centroid_scores_t_i8(path, q8.data(), qscale.data(), m, dim4, c8, cscale, csum, K, stride, out, num_threads);
  return true;
}

void centroid_topk(const KernelPath& path, const Matrix& rows, const Matrix& cents, int64_t k, float* scores,
                   int32_t* ids, int num_threads) {
  if (rows.n == 0) return;
  const int64_t ngroups = (rows.n + kGroupBlocks * kRows - 1) / (kGroupBlocks * kRows);
  // Split the centroids when row groups alone cannot keep the threads busy; never below ~2 chunks a split.
  int64_t nsplit = 1;
  if (ngroups < 2 * static_cast<int64_t>(num_threads))
    nsplit = std::max<int64_t>(1, std::min<int64_t>((4 * num_threads + ngroups - 1) / ngroups, cents.n / (2 * kChunk)));
  const int64_t per_split = (cents.n + nsplit - 1) / nsplit;
  // With one split (many rows: assignment) each task sorts its own heaps into the output, so memory
  // stays O(threads); with several splits (few rows) heaps [nsplit][rows.n][k] are merged at the end.
  const bool merged = nsplit > 1;
  std::vector<Entry> heaps(merged ? static_cast<std::size_t>(nsplit * rows.n * k) : 0);
  std::vector<int64_t> sizes(merged ? static_cast<std::size_t>(nsplit * rows.n) : 0, 0);
  std::vector<std::unique_ptr<TaskBuffers>> bufs(static_cast<std::size_t>(num_threads));
  std::vector<std::vector<Entry>> local_heaps(static_cast<std::size_t>(num_threads));
  std::vector<std::vector<int64_t>> local_sizes(static_cast<std::size_t>(num_threads));
  parallel_for(ngroups * nsplit, num_threads, [&](int64_t t, int w) {
    auto& tb = bufs[static_cast<std::size_t>(w)];
    if (!tb) tb.reset(new TaskBuffers(path, rows.dim));
    const int64_t g = t / nsplit, sp = t % nsplit;
    const int64_t nr = pack_group(path, rows, g, *tb);
    const int64_t nb = (nr + kRows - 1) / kRows;
    const int64_t rg0 = g * kGroupBlocks * kRows;
    auto& lh = local_heaps[static_cast<std::size_t>(w)];
    auto& ls = local_sizes[static_cast<std::size_t>(w)];
    if (!merged) {
      lh.resize(static_cast<std::size_t>(kGroupBlocks * kRows * k));
      ls.assign(static_cast<std::size_t>(kGroupBlocks * kRows), 0);
    }
    const int64_t lo = sp * per_split, hi = std::min(cents.n, lo + per_split);
    float thr[kRows];
    for (int64_t c0 = lo; c0 < hi; c0 += kChunk) {
      const int64_t nc = std::min(kChunk, hi - c0);
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t rb = rg0 + b * kRows;
        const int64_t vr = std::min(kRows, rows.n - rb);
        Entry* hp = merged ? heaps.data() + (sp * rows.n + rb) * k : lh.data() + (rb - rg0) * k;
        int64_t* sz = merged ? sizes.data() + sp * rows.n + rb : ls.data() + (rb - rg0);
        // A row's threshold is its worst kept score once its heap is full (-inf before, and when
        // that worst is NaN, so every number is looked at); padded rows never flag. While some row is
        // open every column is stored and visited; afterwards only the flagged ones (rare: a column
        // must beat some row's k-th best).
        bool open = false;
        for (int64_t r = 0; r < kRows; ++r) {
          if (r >= vr) {
            thr[r] = std::numeric_limits<float>::infinity();
          } else if (sz[r] < k || std::isnan(hp[r * k].score)) {
            thr[r] = -std::numeric_limits<float>::infinity();
            open = true;
          } else {
            thr[r] = hp[r * k].score;
          }
        }
        path.centroids.block_scores(tb->block(b), rows.dim, centroid_ptr(cents, c0), cents.dtype, nc,
                                    open ? nullptr : thr, tb->scores.p, tb->flags.data(), tb->scratch.p);
        for (int64_t j = 0; j < nc; ++j) {
          if (!open && tb->flags[j] == 0) continue;
          for (int64_t r = 0; r < vr; ++r) {
            // thr[r] (set at the chunk's start from a full heap's worst, which only rises) bounds what
            // can enter: later ids lose ties and NaN ranks last. Not for -inf (a row still open, or a
            // NaN worst, which even -inf beats).
            const float sc = tb->scores.p[j * kRows + r];
            if (sz[r] == k && thr[r] > -std::numeric_limits<float>::infinity() && !(sc > thr[r])) continue;
            const Entry e{sc, static_cast<int32_t>(c0 + j)};
            Entry* h = hp + r * k;
            if (sz[r] < k) {
              h[sz[r]++] = e;
              std::push_heap(h, h + sz[r], better);
            } else if (better(e, h[0])) {
              std::pop_heap(h, h + k, better);
              h[k - 1] = e;
              std::push_heap(h, h + k, better);
            }
          }
        }
      }
    }
    if (!merged) {
      for (int64_t r = 0; r < nr; ++r) {
        Entry* h = lh.data() + r * k;
        std::sort_heap(h, h + k, better);  // a full heap (k <= cents.n) sorts best first
        for (int64_t j = 0; j < k; ++j) {
          if (scores != nullptr) scores[(rg0 + r) * k + j] = h[j].score;
          ids[(rg0 + r) * k + j] = h[j].id;
        }
      }
    }
  });
  if (!merged) return;
  // Merge the splits per row.
  parallel_for((rows.n + 255) / 256, num_threads, [&](int64_t t, int) {
    std::vector<Entry> all;
    const int64_t r1 = std::min(rows.n, (t + 1) * 256);
    for (int64_t r = t * 256; r < r1; ++r) {
      all.clear();
      for (int64_t sp = 0; sp < nsplit; ++sp) {
        const Entry* h = heaps.data() + (sp * rows.n + r) * k;
        all.insert(all.end(), h, h + sizes[sp * rows.n + r]);
      }
      std::partial_sort(all.begin(), all.begin() + k, all.end(), better);
      for (int64_t j = 0; j < k; ++j) {
        if (scores != nullptr) scores[r * k + j] = all[j].score;
        ids[r * k + j] = all[j].id;
      }
    }
  });
}

void centroid_scores_gathered(const KernelPath& path, const float* rows_f32, int64_t rows, int64_t stride,
                              const Matrix& cents, const int32_t* ids, int64_t nids, float* out, int num_threads) {
  if (rows == 0 || nids == 0) return;
  const int64_t nb = stride / kRows;
  std::size_t bf;
  const AlignedFloats packed = pack_blocks(path, rows_f32, rows, nb, cents.dim, bf);
  const int64_t nchunks = (nids + kChunk - 1) / kChunk;
  const std::size_t esz = dtype_size(cents.dtype);
  parallel_for(nchunks, num_threads, [&](int64_t t, int) {
    const int64_t i0 = t * kChunk, n = std::min(kChunk, nids - i0);
    std::vector<uint8_t> gathered(static_cast<std::size_t>(n * cents.dim) * esz);
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(static_cast<const uint8_t*>(centroid_ptr(cents, ids[i0 + i])), cents.dim * esz,
                  gathered.data() + static_cast<std::size_t>(i * cents.dim) * esz);
    AlignedFloats sc(static_cast<std::size_t>(n * kRows)), scratch(path.centroids.scratch_floats(cents.dim) + 16);
    for (int64_t b = 0; b < nb; ++b) {
      path.centroids.block_scores(packed.p + b * bf, cents.dim, gathered.data(), cents.dtype, n, nullptr, sc.p,
                                  nullptr, scratch.p);
      for (int64_t i = 0; i < n; ++i)
        std::copy_n(sc.p + i * kRows, kRows, out + static_cast<int64_t>(ids[i0 + i]) * stride + b * kRows);
    }
  });
}

}  // namespace edgecolbert
