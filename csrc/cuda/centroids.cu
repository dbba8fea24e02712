// Centroid search on the GPU: rows [m, dim] x centroids [K, dim] -> the best k centroids per row (k <=
// kMaxProbe), fused: no [m, K] score matrix. The selection arithmetic (sorted bounded lists, their merge,
// the total order) is edgecolbert/device/topk.hpp, shared with the host harness.
//
// Block = kRows rows x one split of the centroids, walked in tiles of CT centroids:
//  - scores of the tile: WMMA (fp16/bf16, dim <= 128: 4 warps x 16 rows x CT=64 centroids, fp32
//    accumulation, row fragments kept in registers) or SIMT float32 (CT = 32, dim <= 256);
//  - thread r < kRows folds its row's CT scores into a sorted list of k in shared memory (in centroid
//    order, so equal scores keep the lower id).
// Splits give the grid enough blocks when m is small (1,024 query tokens x 2^18 centroids); merge_splits
// combines the per-split lists per row.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <algorithm>

#include "edgecolbert/device/topk.hpp"
#include "edgecolbert/device/maxsim_tile.hpp"
#include "launch.cuh"

namespace edgecolbert::cuda {
namespace dv = edgecolbert::device;
namespace wmma = nvcuda::wmma;

namespace {

constexpr int kRows = 64;
constexpr int kThreads = 128;
constexpr int64_t kSimtMaxDim = 256;

__host__ __device__ constexpr size_t align_up_dev(size_t x) { return (x + 127) / 128 * 128; }

struct Geometry {
  int ct;          // centroids per tile
  int kp;          // staged row stride (elements)
  size_t a_bytes, b_bytes, s_bytes, l_bytes;
  size_t total() const { return a_bytes + b_bytes + s_bytes + l_bytes; }
};

Geometry geometry(bool tensor, int64_t dim, int kc) {
  Geometry g;
  g.ct = tensor ? 64 : 32;
  g.kp = tensor ? kc * 16 + 8 : static_cast<int>(dim);
  const size_t es = tensor ? 2 : 4;
  g.a_bytes = align_up_dev(size_t(kRows) * g.kp * es);
  g.b_bytes = align_up_dev(size_t(g.ct) * g.kp * es);
  g.s_bytes = size_t(kRows) * (g.ct + 4) * 4;
  g.l_bytes = size_t(kRows) * kMaxProbe * 8;
  return g;
}

// Folds the tile's scores (rows x ct, stride ct + 4) into each row's list; centroid ids from c0.
__device__ void select_tile(const float* sc, int ct, int nvalid, int64_t c0, int k, float* ls, int32_t* li, int* counts) {
  const int r = threadIdx.x;
  if (r < kRows) {
    int cnt = counts[r];
    for (int j = 0; j < nvalid; ++j)
      cnt = dv::topk_insert<int32_t>(ls + r * kMaxProbe, li + r * kMaxProbe, cnt, k, sc[r * (ct + 4) + j],
                                     static_cast<int32_t>(c0 + j));
    counts[r] = cnt;
  }
}

__device__ void write_lists(int64_t m, int64_t row0, int k, const float* ls, const int32_t* li, const int* counts,
                            float* out_s, int32_t* out_i) {
  const int r = threadIdx.x;
  if (r < kRows && row0 + r < m)
    for (int j = 0; j < k; ++j) {
      const bool real = j < counts[r];
      out_s[(blockIdx.y * m + row0 + r) * k + j] = real ? ls[r * kMaxProbe + j] : dv::pad_score();
      out_i[(blockIdx.y * m + row0 + r) * k + j] = real ? li[r * kMaxProbe + j] : INT32_MAX;
    }
}

template <typename T, int KC>
__global__ void __launch_bounds__(kThreads) search_wmma(const T* rows, int64_t m, const T* cents, int64_t K,
                                                         int64_t dim, int k, int64_t per_split, float* out_s,
                                                         int32_t* out_i) {
  constexpr int CT = 64, KP = KC * 16 + 8, SLD = CT + 4;
  extern __shared__ __align__(128) unsigned char smem[];
  uint16_t* a = reinterpret_cast<uint16_t*>(smem);
  uint16_t* b = reinterpret_cast<uint16_t*>(smem + align_up_dev(size_t(kRows) * KP * 2));
  float* sc = reinterpret_cast<float*>(smem + align_up_dev(size_t(kRows) * KP * 2) + align_up_dev(size_t(CT) * KP * 2));
  float* ls = sc + kRows * SLD;
  int32_t* li = reinterpret_cast<int32_t*>(ls + kRows * kMaxProbe);
  __shared__ int counts[kRows];
  const int64_t row0 = int64_t(blockIdx.x) * kRows;
  const int nrows = static_cast<int>(dv::min64(kRows, m - row0));
  const uint16_t* rsrc = reinterpret_cast<const uint16_t*>(rows) + row0 * dim;
  for (int e = threadIdx.x; e < kRows * KP; e += kThreads) a[e] = dv::stage_elem<uint16_t>(rsrc, dim, nrows, e / KP, e % KP);
  if (threadIdx.x < kRows) counts[threadIdx.x] = 0;
  __syncthreads();
  const int warp = threadIdx.x >> 5;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[KC];
  wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  for (int kc = 0; kc < KC; ++kc)
    wmma::load_matrix_sync(fa[kc], reinterpret_cast<const T*>(a) + warp * 16 * KP + kc * 16, KP);
  const int64_t c_begin = blockIdx.y * per_split, c_end = dv::min64(K, c_begin + per_split);
  const uint16_t* csrc = reinterpret_cast<const uint16_t*>(cents);
  for (int64_t c0 = c_begin; c0 < c_end; c0 += CT) {
    const int nvalid = static_cast<int>(dv::min64(CT, c_end - c0));
    for (int e = threadIdx.x; e < CT * KP; e += kThreads)
      b[e] = dv::stage_elem<uint16_t>(csrc + c0 * dim, dim, nvalid, e / KP, e % KP);
    __syncthreads();
    for (int nt = 0; nt < CT / 16; ++nt) {
      wmma::fill_fragment(acc, 0.0f);
      for (int kc = 0; kc < KC; ++kc) {
        wmma::load_matrix_sync(fb, reinterpret_cast<const T*>(b) + nt * 16 * KP + kc * 16, KP);
        wmma::mma_sync(acc, fa[kc], fb, acc);
      }
      wmma::store_matrix_sync(sc + warp * 16 * SLD + nt * 16, acc, SLD, wmma::mem_row_major);
    }
    __syncthreads();
    select_tile(sc, CT, nvalid, c0, k, ls, li, counts);
    __syncthreads();
  }
  write_lists(m, row0, k, ls, li, counts, out_s, out_i);
}

__global__ void __launch_bounds__(kThreads) search_simt(const void* rows, int64_t m, const void* cents, int dt,
                                                         int64_t K, int64_t dim, int k, int64_t per_split, float* out_s,
                                                         int32_t* out_i) {
  constexpr int CT = 32, SLD = CT + 4;
  extern __shared__ __align__(128) unsigned char smem[];
  float* a = reinterpret_cast<float*>(smem);
  float* b = reinterpret_cast<float*>(smem + align_up_dev(size_t(kRows) * dim * 4));
  float* sc = reinterpret_cast<float*>(smem + align_up_dev(size_t(kRows) * dim * 4) + align_up_dev(size_t(CT) * dim * 4));
  float* ls = sc + kRows * SLD;
  int32_t* li = reinterpret_cast<int32_t*>(ls + kRows * kMaxProbe);
  __shared__ int counts[kRows];
  const int64_t row0 = int64_t(blockIdx.x) * kRows;
  const int nrows = static_cast<int>(dv::min64(kRows, m - row0));
  for (int64_t e = threadIdx.x; e < kRows * dim; e += kThreads)
    a[e] = e < nrows * dim ? dv::load_f32(rows, dt, row0 * dim + e) : 0.0f;
  if (threadIdx.x < kRows) counts[threadIdx.x] = 0;
  __syncthreads();
  const int64_t c_begin = blockIdx.y * per_split, c_end = dv::min64(K, c_begin + per_split);
  for (int64_t c0 = c_begin; c0 < c_end; c0 += CT) {
    const int nvalid = static_cast<int>(dv::min64(CT, c_end - c0));
    for (int64_t e = threadIdx.x; e < CT * dim; e += kThreads)
      b[e] = e < nvalid * dim ? dv::load_f32(cents, dt, c0 * dim + e) : 0.0f;
    __syncthreads();
    // Thread t: centroid t % CT against rows t / CT, t / CT + 4, ...: k in order, as the scalar reference.
    const int c = threadIdx.x % CT;
    for (int r = threadIdx.x / CT; r < kRows; r += kThreads / CT) {
      float dot = 0.0f;
      for (int64_t kk = 0; kk < dim; ++kk) dot += a[r * dim + kk] * b[c * dim + kk];
      sc[r * SLD + c] = dot;
    }
    __syncthreads();
    select_tile(sc, CT, nvalid, c0, k, ls, li, counts);
    __syncthreads();
  }
  write_lists(m, row0, k, ls, li, counts, out_s, out_i);
}

// Row i: merge the splits' sorted lists [splits][m][k] into the final k. Grid-stride over rows: the
// launch's grid_for caps the grid at 65535 * 16 blocks, so one row per thread left rows past
// 134,215,680 unwritten.
__global__ void merge_splits(const float* in_s, const int32_t* in_i, int64_t m, int splits, int k, float* out_s,
                             int32_t* out_i) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < m; i += int64_t(gridDim.x) * blockDim.x) {
    float s0[kMaxProbe], s1[kMaxProbe];
    int32_t i0[kMaxProbe], i1[kMaxProbe];
    int n = 0;
    for (int sp = 0; sp < splits; ++sp) {
      const float* bs = in_s + (sp * m + i) * k;
      const int32_t* bi = in_i + (sp * m + i) * k;
      n = dv::topk_merge<int32_t>(s0, i0, n, bs, bi, k, s1, i1, k);
      for (int j = 0; j < n; ++j) {
        s0[j] = s1[j];
        i0[j] = i1[j];
      }
    }
    for (int j = 0; j < k; ++j) {
      if (out_s != nullptr) out_s[i * k + j] = s0[j];
      out_i[i * k + j] = i0[j];
    }
  }
}

bool search_tensor(int dtype, int64_t dim) { return dtype != dv::kF32 && dim <= 128; }
int search_kc(int64_t dim) { return dim <= 32 ? 2 : dim <= 48 ? 3 : dim <= 64 ? 4 : 8; }

}  // namespace

size_t centroid_smem_bytes(int dtype, int64_t dim) {
  // dynamic (the geometry) + the static per-row list counts
  return geometry(search_tensor(dtype, dim), dim, search_kc(dim)).total() + kRows * sizeof(int);
}

void centroid_topk(const Launch& l, const void* rows, int64_t m, const void* centroids, int64_t K, int64_t dim,
                   int dtype, int64_t k, float* scores, int32_t* ids) {
  if (k < 1 || k > K || k > kMaxProbe) throw std::invalid_argument("centroid_search (CUDA): k out of range");
  if (K > INT32_MAX) throw std::invalid_argument("centroid_search (CUDA): more than 2^31 - 1 centroids");
  const bool tensor = search_tensor(dtype, dim);
  if (!tensor && dim > kSimtMaxDim)
    throw std::invalid_argument("centroid_search (CUDA): dim > 256 needs fp16/bf16 centroids");
  if (m == 0) return;
  DeviceGuard g(l.device);
  cudaStream_t s = stream_of(l);
  const int kc = search_kc(dim);
  const Geometry geo = geometry(tensor, dim, kc);
  const size_t smem = geo.total();
  require_smem(centroid_smem_bytes(dtype, dim), "centroid_search");
  const int64_t row_blocks = (m + kRows - 1) / kRows;
  int device = 0, sms = 0;
  EC_CUDA(cudaGetDevice(&device));
  EC_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t tiles = (K + geo.ct - 1) / geo.ct;
  const int64_t splits = std::max<int64_t>(1, std::min<int64_t>({tiles, (4LL * sms + row_blocks - 1) / row_blocks, 65535}));
  const int64_t per_split = (tiles + splits - 1) / splits * geo.ct;
  const int64_t used_splits = (K + per_split - 1) / per_split;
  Workspace ws(l, align_up(size_t(used_splits * m * k) * 4) * 2);
  float* part_s = ws.as<float>();
  int32_t* part_i = ws.as<int32_t>(align_up(size_t(used_splits * m * k) * 4));
  const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(used_splits));
  auto launch = [&](auto kernel, auto... args) {
    if (smem > 48 * 1024) EC_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    kernel<<<grid, kThreads, smem, s>>>(args...);
    EC_CHECK_LAUNCH("centroid search");
  };
  const int ki = static_cast<int>(k);
  if (tensor) {
    if (dtype == dv::kF16) {
      const auto* r = static_cast<const __half*>(rows);
      const auto* c = static_cast<const __half*>(centroids);
      switch (kc) {
        case 2: launch(search_wmma<__half, 2>, r, m, c, K, dim, ki, per_split, part_s, part_i); break;
        case 3: launch(search_wmma<__half, 3>, r, m, c, K, dim, ki, per_split, part_s, part_i); break;
        case 4: launch(search_wmma<__half, 4>, r, m, c, K, dim, ki, per_split, part_s, part_i); break;
        default: launch(search_wmma<__half, 8>, r, m, c, K, dim, ki, per_split, part_s, part_i); break;
      }
    } else {
      const auto* r = static_cast<const __nv_bfloat16*>(rows);
      const auto* c = static_cast<const __nv_bfloat16*>(centroids);
      switch (kc) {
        case 2: launch(search_wmma<__nv_bfloat16, 2>, r, m, c, K, dim, ki, per_split, part_s, part_i); break;
        case 3: launch(search_wmma<__nv_bfloat16, 3>, r, m, c, K, dim, ki, per_split, part_s, part_i); break;
        case 4: launch(search_wmma<__nv_bfloat16, 4>, r, m, c, K, dim, ki, per_split, part_s, part_i); break;
        default: launch(search_wmma<__nv_bfloat16, 8>, r, m, c, K, dim, ki, per_split, part_s, part_i); break;
      }
    }
  } else {
    launch(search_simt, rows, m, centroids, dtype, K, dim, ki, per_split, part_s, part_i);
  }
  merge_splits<<<grid_for(m, 128), 128, 0, s>>>(part_s, part_i, m, static_cast<int>(used_splits), ki, scores, ids);
  EC_CHECK_LAUNCH("merge_splits");
}

}  // namespace edgecolbert::cuda
