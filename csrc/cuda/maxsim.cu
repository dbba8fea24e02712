// MaxSim on the GPU. The arithmetic (work items, staging, running max, row reduction) lives in
// edgecolbert/device/maxsim_tile.hpp, shared with the host harness; this file keeps launch geometry,
// shared-memory staging and the tensor-core calls.
//
// Pipeline per call (all asynchronous on the caller's stream, no host round trip):
//  1. count_items + prefix_sum: work items (kItemTokens-token pieces of documents) per entry;
//  2. rowmax_wmma / rowmax_simt: persistent warps, one (query-row slice, item) at a time, fold the
//     per-row max into rowmax keys with atomicMax;
//  3. reduce_scores: kept rows summed in double in row order -> scores;
//  4. (top-k) topk_round: block-wide bitonic selection of the best k of each 2048-score chunk, repeated
//     until one chunk is left.
// Tensor-core path: fp16/bf16 documents, dim <= 128 (padded to KC * 16), query rounded to the document
// dtype, WMMA m16n16k16 with float32 accumulation: per 16-token tile, A = 32 query rows (two m-tiles,
// fragments kept in registers), B = the staged tile read column-major. Everything else: SIMT float32.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <algorithm>

#include "edgecolbert/device/maxsim_tile.hpp"
#include "edgecolbert/device/topk.hpp"
#include "pairs.cuh"

namespace edgecolbert::cuda {
namespace dv = edgecolbert::device;
namespace wmma = nvcuda::wmma;

namespace {

constexpr int kWarps = kPairWarps;
constexpr int kAccLd = 20; // accumulator tile stride (floats): a multiple of 4 as WMMA requires, != 16 against conflicts

// ---- 1. items per entry and their prefix ------------------------------------------------------------
__global__ void count_items(dv::MaxSimWork w, int64_t* item_off) {
  const int64_t entries = dv::num_entries(w);
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < entries; p += int64_t(gridDim.x) * blockDim.x)
    item_off[p + 1] = dv::entry_items(w, p);
  if (blockIdx.x == 0 && threadIdx.x == 0) item_off[0] = 0;
}

// Inclusive prefix sum of a[0, len) in one block: each thread scans a contiguous segment, the segment
// totals are scanned in shared memory (Hillis-Steele), then each segment adds its base.
constexpr int kScanThreads = 1024;
__global__ void __launch_bounds__(kScanThreads) prefix_sum(int64_t* a, int64_t len) {
  __shared__ int64_t totals[kScanThreads];
  const int64_t seg = (len + kScanThreads - 1) / kScanThreads;
  const int64_t lo = threadIdx.x * seg, hi = dv::min64(len, lo + seg);
  int64_t s = 0;
  for (int64_t i = lo; i < hi; ++i) s += a[i];
  totals[threadIdx.x] = s;
  __syncthreads();
  for (int off = 1; off < kScanThreads; off <<= 1) {
    const int64_t v = threadIdx.x >= off ? totals[threadIdx.x - off] : 0;
    __syncthreads();
    totals[threadIdx.x] += v;
    __syncthreads();
  }
  int64_t run = threadIdx.x > 0 ? totals[threadIdx.x - 1] : 0;
  for (int64_t i = lo; i < hi; ++i) {
    run += a[i];
    a[i] = run;
  }
}

// ---- 2a. tensor-core row maxima ---------------------------------------------------------------------
template <typename T> struct WmmaType;
template <> struct WmmaType<__half> { static constexpr int dtype = dv::kF16; };
template <> struct WmmaType<__nv_bfloat16> { static constexpr int dtype = dv::kBF16; };

template <typename T, int KC>
struct WmmaLayout {
  static constexpr int KP = KC * 16 + 8;  // staged row stride in elements: +16 bytes against bank conflicts
  static constexpr int kQueryBytes = dv::kSliceRows * KP * 2;
  static constexpr int kTileBytes = dv::kTileTokens * KP * 2;
  static constexpr int kAccBytes = dv::kSliceRows * kAccLd * 4;
  // One region per warp: the query staging, later reused for the token tile + accumulator tile.
  static constexpr int kRegionBytes = kQueryBytes > kTileBytes + kAccBytes ? kQueryBytes : kTileBytes + kAccBytes;
};

template <typename T, int KC>
__global__ void __launch_bounds__(kWarps * 32) rowmax_wmma(dv::MaxSimWork w, const void* q, int qt, int64_t dim,
                                                           const T* tokens, uint32_t* rowmax) {
  using L = WmmaLayout<T, KC>;
  __shared__ __align__(128) unsigned char smem[kWarps][L::kRegionBytes];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  uint16_t* qtile = reinterpret_cast<uint16_t*>(smem[warp]);
  uint16_t* dtile = reinterpret_cast<uint16_t*>(smem[warp]);
  float* acc = reinterpret_cast<float*>(smem[warp] + L::kTileBytes);
  const int slice = blockIdx.y;
  const int row0 = slice * dv::kSliceRows;
  const int rows = static_cast<int>(dv::min64(dv::kSliceRows, w.lq - row0));
  const bool vec = dim % 8 == 0 && reinterpret_cast<uintptr_t>(tokens) % 16 == 0;
  const int64_t total = dv::total_items(w);

  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[2][KC];
  wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> c[2];
  int64_t cur_q = -1;

  for (int64_t item = int64_t(blockIdx.x) * kWarps + warp; item < total; item += int64_t(gridDim.x) * kWarps) {
    const dv::ItemPos pos = dv::locate_item(w, item);
    if (pos.q != cur_q) {  // stage this query's row slice, rounded to T, into registers
      const void* qbase = static_cast<const char*>(q) + (pos.q * w.lq + row0) * dim * (qt == dv::kF32 ? 4 : 2);
      for (int e = lane; e < dv::kSliceRows * L::KP; e += 32)
        qtile[e] = dv::stage_query_bits(qbase, qt, dim, rows, e / L::KP, e % L::KP, WmmaType<T>::dtype);
      __syncwarp();
      for (int m = 0; m < 2; ++m)
        for (int kc = 0; kc < KC; ++kc)
          wmma::load_matrix_sync(a[m][kc], reinterpret_cast<const T*>(qtile) + m * 16 * L::KP + kc * 16, L::KP);
      __syncwarp();
      for (int e = lane; e < dv::kTileTokens * L::KP; e += 32) dtile[e] = 0;  // padding columns stay zero
      __syncwarp();
      cur_q = pos.q;
    }
    float best = dv::neg_inf();
    for (int64_t t0 = pos.begin; t0 < pos.end; t0 += dv::kTileTokens) {
      const int nvalid = static_cast<int>(dv::min64(dv::kTileTokens, pos.end - t0));
      const uint16_t* src = reinterpret_cast<const uint16_t*>(tokens) + t0 * dim;
      if (vec) {  // 16-byte copies, coalesced along the contiguous token rows
        const int per_row = static_cast<int>(dim / 8);
        for (int e = lane; e < dv::kTileTokens * per_row; e += 32) {
          const int n = e / per_row, k = (e % per_row) * 8;
          uint4 v = make_uint4(0, 0, 0, 0);
          if (n < nvalid) v = *reinterpret_cast<const uint4*>(src + int64_t(n) * dim + k);
          *reinterpret_cast<uint4*>(dtile + n * L::KP + k) = v;
        }
      } else {
        for (int e = lane; e < dv::kTileTokens * L::KP; e += 32)
          dtile[e] = dv::stage_elem<uint16_t>(src, dim, nvalid, e / L::KP, e % L::KP);
      }
      __syncwarp();
      wmma::fill_fragment(c[0], 0.0f);
      wmma::fill_fragment(c[1], 0.0f);
      for (int kc = 0; kc < KC; ++kc) {
        wmma::load_matrix_sync(b, reinterpret_cast<const T*>(dtile) + kc * 16, L::KP);
        wmma::mma_sync(c[0], a[0][kc], b, c[0]);
        wmma::mma_sync(c[1], a[1][kc], b, c[1]);
      }
      wmma::store_matrix_sync(acc, c[0], kAccLd, wmma::mem_row_major);
      wmma::store_matrix_sync(acc + 16 * kAccLd, c[1], kAccLd, wmma::mem_row_major);
      __syncwarp();
      best = dv::tile_row_max(best, acc + lane * kAccLd, nvalid);
      __syncwarp();
    }
    if (lane < rows && pos.end > pos.begin) atomicMax(&rowmax[pos.pair * w.lq + row0 + lane], dv::max_key(best));
  }
}

// ---- 2b. SIMT row maxima (float32 tokens, or any dtype / dim the tensor-core path does not take) ------
constexpr int64_t kSimtMaxDim = 512;

__global__ void __launch_bounds__(kWarps * 32) rowmax_simt(dv::MaxSimWork w, const void* q, int qt, int64_t dim,
                                                           const void* tokens, int dt, uint32_t* rowmax) {
  extern __shared__ float simt_smem[];  // [kWarps][kTileTokens][dim]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* tile = simt_smem + warp * dv::kTileTokens * dim;
  const int row = blockIdx.y * dv::kSliceRows + lane;
  const int64_t total = dv::total_items(w);
  float acc[dv::kTileTokens];
  for (int64_t item = int64_t(blockIdx.x) * kWarps + warp; item < total; item += int64_t(gridDim.x) * kWarps) {
    const dv::ItemPos pos = dv::locate_item(w, item);
    const int64_t qoff = (pos.q * w.lq + row) * dim;
    float best = dv::neg_inf();
    for (int64_t t0 = pos.begin; t0 < pos.end; t0 += dv::kTileTokens) {
      const int nvalid = static_cast<int>(dv::min64(dv::kTileTokens, pos.end - t0));
      for (int64_t e = lane; e < dv::kTileTokens * dim; e += 32)  // contiguous rows: coalesced
        tile[e] = e < nvalid * dim ? dv::load_f32(tokens, dt, t0 * dim + e) : 0.0f;
      __syncwarp();
      if (row < w.lq) {
        dv::simt_tile_dots(q, qt, qoff, tile, dim, acc);
        best = dv::tile_row_max(best, acc, nvalid);
      }
      __syncwarp();
    }
    if (row < w.lq && pos.end > pos.begin) atomicMax(&rowmax[pos.pair * w.lq + row], dv::max_key(best));
  }
}

// ---- 3. scores ---------------------------------------------------------------------------------------
__global__ void reduce_scores(dv::MaxSimWork w, const uint8_t* mask, const uint32_t* rowmax, float* out) {
  const int64_t per = dv::pairs_per_query(w), pairs = w.nq * per;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < pairs; p += int64_t(gridDim.x) * blockDim.x)
    out[p] = dv::reduce_pair(w, mask, rowmax, p / per, p % per);
}

// ---- 4. top-k ------------------------------------------------------------------------------------------
constexpr int kChunk = dv::kTopkChunk;    // scores per block and round (kChunk * 12 bytes of shared memory; topk.hpp)
constexpr int kTopkThreads = kChunk / 2;

// Block (chunk, query): bitonic sort of kChunk (score, id) pairs of list `in` (len per query), best
// first; the best k go to out[query][chunk * k ...]. ids null: an entry's id is its position.
__global__ void __launch_bounds__(kTopkThreads) topk_round(const float* in_s, const int64_t* in_i, int64_t len, int64_t k,
                                                           float* out_s, int64_t* out_i, int64_t out_len) {
  __shared__ float s[kChunk];
  __shared__ int64_t id[kChunk];
  const int64_t qi = blockIdx.y, base = int64_t(blockIdx.x) * kChunk;
  for (int t = threadIdx.x; t < kChunk; t += blockDim.x) {
    const int64_t pos = base + t;
    const bool real = pos < len;
    s[t] = real ? in_s[qi * len + pos] : dv::pad_score();
    id[t] = real ? (in_i != nullptr ? in_i[qi * len + pos] : pos) : dv::kPadIndex;
  }
  __syncthreads();
  for (int size = 2; size <= kChunk; size <<= 1)
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      const int i = 2 * threadIdx.x - (threadIdx.x & (stride - 1));  // the lower element of this thread's pair
      const int j = i + stride;
      if (dv::bitonic_swap(s[i], id[i], s[j], id[j], i, size)) {
        const float ts = s[i];
        s[i] = s[j];
        s[j] = ts;
        const int64_t ti = id[i];
        id[i] = id[j];
        id[j] = ti;
      }
      __syncthreads();
    }
  for (int t = threadIdx.x; t < k; t += blockDim.x) {
    out_s[qi * out_len + blockIdx.x * k + t] = s[t];
    out_i[qi * out_len + blockIdx.x * k + t] = id[t];
  }
}

// ---- drivers -------------------------------------------------------------------------------------------
int kc_for(int64_t dim) { return dim <= 32 ? 2 : dim <= 48 ? 3 : dim <= 64 ? 4 : 8; }

template <typename T, int KC>
void launch_wmma(const Launch& l, const dv::MaxSimWork& w, const Queries& q, const void* tokens, uint32_t* rowmax) {
  auto kernel = rowmax_wmma<T, KC>;
  const int blocks = persistent_blocks(kernel, kWarps * 32, 0);
  const dim3 grid(blocks, static_cast<unsigned>((q.lq + dv::kSliceRows - 1) / dv::kSliceRows));
  kernel<<<grid, kWarps * 32, 0, stream_of(l)>>>(w, q.data, q.dtype, q.dim, static_cast<const T*>(tokens), rowmax);
  EC_CHECK_LAUNCH("rowmax_wmma");
}

template <typename T>
void dispatch_wmma(const Launch& l, const dv::MaxSimWork& w, const Queries& q, const void* tokens, uint32_t* rowmax) {
  switch (kc_for(q.dim)) {
    case 2: launch_wmma<T, 2>(l, w, q, tokens, rowmax); break;
    case 3: launch_wmma<T, 3>(l, w, q, tokens, rowmax); break;
    case 4: launch_wmma<T, 4>(l, w, q, tokens, rowmax); break;
    default: launch_wmma<T, 8>(l, w, q, tokens, rowmax); break;
  }
}

size_t simt_smem_bytes(int64_t dim) { return size_t(kWarps) * dv::kTileTokens * dim * sizeof(float); }

void launch_simt(const Launch& l, const dv::MaxSimWork& w, const Queries& q, const void* tokens, int dt,
                 uint32_t* rowmax) {
  const size_t smem = simt_smem_bytes(q.dim);
  require_smem(smem, "maxsim");
  if (smem > 48 * 1024) EC_CUDA(cudaFuncSetAttribute(rowmax_simt, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int blocks = persistent_blocks(rowmax_simt, kWarps * 32, smem);
  const dim3 grid(blocks, static_cast<unsigned>((q.lq + dv::kSliceRows - 1) / dv::kSliceRows));
  rowmax_simt<<<grid, kWarps * 32, smem, stream_of(l)>>>(w, q.data, q.dtype, q.dim, tokens, dt, rowmax);
  EC_CHECK_LAUNCH("rowmax_simt");
}

bool use_wmma(int dt, int64_t dim) { return dt != dv::kF32 && dim <= 128; }

void run_maxsim(const Launch& l, const dv::MaxSimWork& all, const Queries& q, const CsrDocs& d, float* out) {
  if (!use_wmma(d.dtype, q.dim) && q.dim > kSimtMaxDim)
    throw std::invalid_argument("maxsim (CUDA): dim " + std::to_string(q.dim) + " > 512 needs fp16/bf16 documents");
  run_pairs(l, all, q, out, [&](const dv::MaxSimWork& w, const Queries& qg, uint32_t* rowmax) {
    if (use_wmma(d.dtype, q.dim)) {
      if (d.dtype == dv::kF16) dispatch_wmma<__half>(l, w, qg, d.tokens, rowmax);
      else dispatch_wmma<__nv_bfloat16>(l, w, qg, d.tokens, rowmax);
    } else {
      launch_simt(l, w, qg, d.tokens, d.dtype, rowmax);
    }
  });
}

dv::MaxSimWork work_of(const Queries& q, const CsrDocs& d) {
  dv::MaxSimWork w;
  w.offsets = d.offsets;
  w.n = d.n;
  w.T = d.T;
  w.nq = q.nq;
  w.lq = q.lq;
  return w;
}

}  // namespace

// Queries go in groups whose row-maxima keys fit in kRowmaxBudget bytes (10^6 documents x 32 rows:
// 128 MB per query).
constexpr size_t kRowmaxBudget = size_t(1) << 30;

void run_pairs(const Launch& l, const dv::MaxSimWork& all, const Queries& q, float* out, const RowmaxLaunch& launch) {
  const int64_t per = dv::pairs_per_query(all);
  const int64_t row_bytes = std::max<int64_t>(1, per * all.lq * int64_t(sizeof(uint32_t)));
  const int64_t group = std::min<int64_t>(all.nq, std::max<int64_t>(1, int64_t(kRowmaxBudget) / row_bytes));
  dv::MaxSimWork w = all;
  w.nq = group;
  const size_t off_bytes = align_up(size_t(dv::num_entries(w) + 1) * sizeof(int64_t));
  Workspace ws(l, off_bytes + align_up(size_t(group * row_bytes)));
  cudaStream_t s = stream_of(l);
  const size_t qsize = q.dtype == dv::kF32 ? 4 : 2;
  for (int64_t q0 = 0; q0 < all.nq; q0 += group) {
    w.nq = std::min(group, all.nq - q0);
    w.cand = all.cand != nullptr ? all.cand + q0 * all.ncand : nullptr;
    w.item_off = ws.as<int64_t>();
    Queries qg = q;
    qg.nq = w.nq;
    qg.data = static_cast<const char*>(q.data) + size_t(q0 * q.lq * q.dim) * qsize;
    qg.mask = q.mask != nullptr ? q.mask + q0 * q.lq : nullptr;
    uint32_t* rowmax = ws.as<uint32_t>(off_bytes);
    const int64_t entries = dv::num_entries(w);
    EC_CUDA(cudaMemsetAsync(rowmax, 0, size_t(w.nq * row_bytes), s));
    count_items<<<grid_for(entries, 256, 4096), 256, 0, s>>>(w, ws.as<int64_t>());
    EC_CHECK_LAUNCH("count_items");
    prefix_sum<<<1, kScanThreads, 0, s>>>(ws.as<int64_t>(), entries + 1);
    EC_CHECK_LAUNCH("prefix_sum");
    // Lq = 0: no row-max work, and the row-max kernels' grid would have gridDim.y = 0 (an invalid
    // configuration). reduce_pair then gives what the torch path and the CPU kernels give: an empty sum,
    // 0, per document (NaN for a candidate outside [0, n)).
    if (w.lq > 0) launch(w, qg, rowmax);
    reduce_scores<<<grid_for(w.nq * per, 256), 256, 0, s>>>(w, qg.mask, rowmax, out + q0 * per);
    EC_CHECK_LAUNCH("reduce_scores");
  }
}

size_t maxsim_smem_bytes(int doc_dtype, int64_t dim) {
  if (use_wmma(doc_dtype, dim)) {  // static: one region per warp (the layout does not depend on T's type)
    switch (kc_for(dim)) {
      case 2: return size_t(kWarps) * WmmaLayout<__half, 2>::kRegionBytes;
      case 3: return size_t(kWarps) * WmmaLayout<__half, 3>::kRegionBytes;
      case 4: return size_t(kWarps) * WmmaLayout<__half, 4>::kRegionBytes;
      default: return size_t(kWarps) * WmmaLayout<__half, 8>::kRegionBytes;
    }
  }
  return simt_smem_bytes(dim);
}

const char* maxsim_kernel_for(int doc_dtype, int64_t dim) {
  if (use_wmma(doc_dtype, dim)) return "wmma";
  return dim <= kSimtMaxDim ? "simt" : "none";
}

void maxsim(const Launch& l, const Queries& q, const CsrDocs& d, float* out) {
  if (q.nq == 0 || d.n == 0) return;
  DeviceGuard g(l.device);
  run_maxsim(l, work_of(q, d), q, d, out);
}

void maxsim_candidates(const Launch& l, const Queries& q, const CsrDocs& d, const int64_t* candidates, int64_t ncand,
                       float* out) {
  if (q.nq == 0 || ncand == 0) return;
  DeviceGuard g(l.device);
  dv::MaxSimWork w = work_of(q, d);
  w.cand = candidates;
  w.ncand = ncand;
  run_maxsim(l, w, q, d, out);
}

void maxsim_topk(const Launch& l, const Queries& q, const CsrDocs& d, int64_t k, float* scores, int64_t* ids) {
  if (k < 1 || k > d.n || k > kMaxTopK) throw std::invalid_argument("maxsim_topk (CUDA): k out of range");
  if (q.nq == 0) return;
  DeviceGuard g(l.device);
  cudaStream_t s = stream_of(l);
  // Score matrix (4 bytes per document and query: ~1% of the bytes the tokens cost), then selection
  // rounds: a list of len entries per query becomes ceil(len / kChunk) * k entries, until one chunk.
  Workspace all(l, align_up(size_t(q.nq * d.n) * sizeof(float)));
  run_maxsim(l, work_of(q, d), q, d, all.as<float>());
  const float* in_s = all.as<float>();
  const int64_t* in_i = nullptr;
  int64_t len = d.n;
  // Two ping-pong buffers big enough for the first round's output (later rounds are shorter). The
  // layout is dv::topk_ping_pong's (shared with the host harness): the old one sized a half as
  // align(N * 12) but put the ids at align(N * 4), so flip 0's ids could overrun flip 1's scores.
  const int64_t first_out = (len + kChunk - 1) / kChunk * k;
  const dv::TopkPingPong pp = dv::topk_ping_pong(size_t(q.nq * first_out));
  Workspace buf(l, pp.bytes);
  int flip = 0;
  while (true) {
    const int64_t chunks = (len + kChunk - 1) / kChunk;
    const bool last = chunks == 1;
    float* os = last ? scores : buf.as<float>(pp.scores_at(flip));
    int64_t* oi = last ? ids : buf.as<int64_t>(pp.ids_at(flip));
    const int64_t out_len = chunks * k;
    topk_round<<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(q.nq)), kTopkThreads, 0, s>>>(
        in_s, in_i, len, k, os, oi, out_len);
    EC_CHECK_LAUNCH("topk_round");
    if (last) break;
    in_s = os;
    in_i = oi;
    len = out_len;
    flip ^= 1;
  }
}

}  // namespace edgecolbert::cuda
