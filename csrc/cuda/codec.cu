// Residual codec on the GPU: decompression and MaxSim straight from codes. The arithmetic (bucket
// decode, byte table, normalisation divisor, code clamping) is edgecolbert/device/codec_tile.hpp, shared
// with the host harness; the pair pipeline (items, row maxima, scores) is maxsim.cu's (pairs.cuh).
// Each block builds the byte table (256 * 8/nbits floats, 8 KiB at nbits 1) in shared memory once; a warp
// decodes one token at a time with lanes over dimensions, the squared norm reduced by butterfly shuffles
// (so the float32 sum order differs from the scalar reference's dimension order: within rounding).
#include "edgecolbert/device/codec_tile.hpp"
#include "pairs.cuh"

namespace edgecolbert::cuda {
namespace dv = edgecolbert::device;

namespace {

constexpr int kWarps = kPairWarps;
constexpr int64_t kCodecMaxDim = 512;

__device__ void build_table(const float* weights, int nbits, float* table) {
  const int entries = 256 * dv::dims_per_byte(nbits);
  for (int i = threadIdx.x; i < entries; i += blockDim.x) table[i] = dv::byte_table_entry(weights, nbits, i);
  __syncthreads();
}

__device__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Decodes token t into out[0, dim) (float32, normalised); every lane of the warp takes part.
__device__ void decode_token(const float* cents, int64_t K, int64_t dim, int nbits,
                             const float* table, int32_t code, const uint8_t* res_row, float* out, int lane) {
  const float* c = cents + dv::clamp_code(code, K) * dim;
  float ss = 0.0f;
  for (int64_t d = lane; d < dim; d += 32) {
    const float v = dv::decode_dim(c, table, res_row, d, nbits);
    out[d] = v;
    ss += v * v;
  }
  const float den = dv::l2_divisor(warp_sum(ss));
  for (int64_t d = lane; d < dim; d += 32) out[d] /= den;
}

__global__ void decompress_kernel(const float* cents, int64_t K, int64_t dim, const float* weights, int nbits,
                                  const int32_t* codes, const uint8_t* residuals, int64_t n, void* out, int ot) {
  extern __shared__ float smem[];
  float* table = smem;
  float* scratch = smem + 256 * dv::dims_per_byte(nbits) + (threadIdx.x >> 5) * dim;
  build_table(weights, nbits, table);
  const int lane = threadIdx.x & 31;
  const int64_t W = dv::residual_bytes(dim, nbits);
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t t = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5); t < n; t += warps) {
    decode_token(cents, K, dim, nbits, table, codes[t], residuals + t * W, scratch, lane);
    __syncwarp();
    for (int64_t d = lane; d < dim; d += 32) dv::store_from_f32(out, ot, t * dim + d, scratch[d]);
    __syncwarp();
  }
}

__global__ void __launch_bounds__(kWarps * 32) rowmax_codec(dv::MaxSimWork w, const void* q, int qt, int64_t dim,
                                                            const float* cents, int64_t K, const float* weights, int nbits,
                                                            const int32_t* codes, const uint8_t* residuals,
                                                            uint32_t* rowmax) {
  extern __shared__ float smem[];
  float* table = smem;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* tile = smem + 256 * dv::dims_per_byte(nbits) + warp * dv::kTileTokens * dim;
  build_table(weights, nbits, table);
  const int64_t W = dv::residual_bytes(dim, nbits);
  const int row = blockIdx.y * dv::kSliceRows + lane;
  const int64_t total = dv::total_items(w);
  float acc[dv::kTileTokens];
  for (int64_t item = int64_t(blockIdx.x) * kWarps + warp; item < total; item += int64_t(gridDim.x) * kWarps) {
    const dv::ItemPos pos = dv::locate_item(w, item);
    const int64_t qoff = (pos.q * w.lq + row) * dim;
    float best = dv::neg_inf();
    for (int64_t t0 = pos.begin; t0 < pos.end; t0 += dv::kTileTokens) {
      const int nvalid = static_cast<int>(dv::min64(dv::kTileTokens, pos.end - t0));
      for (int n = 0; n < nvalid; ++n)
        decode_token(cents, K, dim, nbits, table, codes[t0 + n], residuals + (t0 + n) * W, tile + n * dim, lane);
      for (int64_t e = nvalid * dim + lane; e < dv::kTileTokens * dim; e += 32) tile[e] = 0.0f;
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

void check_codec(const Codec& c, const char* fn) {
  if (!dv::nbits_supported(c.nbits) || (c.dim * c.nbits) % 8 != 0)
    throw std::invalid_argument(std::string(fn) + " (CUDA): nbits must be 1, 2, 4 or 8 with dim * nbits % 8 == 0");
  if (c.dim > kCodecMaxDim || c.dim < 1) throw std::invalid_argument(std::string(fn) + " (CUDA): dim must be in [1, 512]");
  if (c.K < 1) throw std::invalid_argument(std::string(fn) + " (CUDA): no centroids");
}

size_t smem_bytes(const Codec& c, int warps, int64_t tokens_per_warp) {
  return (size_t(256) * dv::dims_per_byte(c.nbits) + size_t(warps) * tokens_per_warp * c.dim) * sizeof(float);
}

constexpr int kDecompressThreads = 256;

template <typename Kernel>
void allow_smem(Kernel k, size_t bytes) {
  if (bytes > 48 * 1024) EC_CUDA(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

}  // namespace

size_t decompress_smem_bytes(int64_t dim, int nbits) {
  Codec c;
  c.dim = dim;
  c.nbits = nbits;
  return smem_bytes(c, kDecompressThreads / 32, 1);
}

size_t maxsim_compressed_smem_bytes(int64_t dim, int nbits) {
  Codec c;
  c.dim = dim;
  c.nbits = nbits;
  return smem_bytes(c, kWarps, dv::kTileTokens);
}

void decompress(const Launch& l, const Codec& c, const int32_t* codes, const uint8_t* residuals, int64_t n, void* out,
                int out_dtype) {
  // Empty input first: nothing is launched, so nothing about the codec needs to hold (as on the CPU,
  // and the torch path, which return an empty result for any codec).
  if (n == 0) return;
  check_codec(c, "decompress");
  DeviceGuard g(l.device);
  const size_t smem = smem_bytes(c, kDecompressThreads / 32, 1);
  require_smem(smem, "decompress");
  constexpr int kThreads = kDecompressThreads;
  allow_smem(decompress_kernel, smem);
  const int blocks = static_cast<int>(std::min<int64_t>(persistent_blocks(decompress_kernel, kThreads, smem),
                                                        (n + kThreads / 32 - 1) / (kThreads / 32)));
  decompress_kernel<<<blocks, kThreads, smem, stream_of(l)>>>(c.centroids, c.K, c.dim, c.weights, c.nbits, codes,
                                                               residuals, n, out, out_dtype);
  EC_CHECK_LAUNCH("decompress_kernel");
}

void maxsim_compressed(const Launch& l, const Queries& q, const Codec& c, const int32_t* codes,
                       const uint8_t* residuals, int64_t T, const int64_t* offsets, int64_t n,
                       const int64_t* candidates, int64_t ncand, float* out) {
  if (q.nq == 0 || (candidates == nullptr ? n : ncand) == 0) return;  // empty output: before the codec checks
  check_codec(c, "maxsim_compressed");
  DeviceGuard g(l.device);
  dv::MaxSimWork w;
  w.offsets = offsets;
  w.n = n;
  w.T = T;
  w.nq = q.nq;
  w.lq = q.lq;
  w.cand = candidates;
  w.ncand = candidates != nullptr ? ncand : 0;
  const size_t smem = smem_bytes(c, kWarps, dv::kTileTokens);
  require_smem(smem, "maxsim_compressed");
  allow_smem(rowmax_codec, smem);
  run_pairs(l, w, q, out, [&](const dv::MaxSimWork& wg, const Queries& qg, uint32_t* rowmax) {
    const int blocks = persistent_blocks(rowmax_codec, kWarps * 32, smem);
    const dim3 grid(blocks, static_cast<unsigned>((q.lq + dv::kSliceRows - 1) / dv::kSliceRows));
    rowmax_codec<<<grid, kWarps * 32, smem, stream_of(l)>>>(wg, qg.data, qg.dtype, q.dim, c.centroids, c.K, c.weights,
                                                            c.nbits, codes, residuals, rowmax);
    EC_CHECK_LAUNCH("rowmax_codec");
  });
}

}  // namespace edgecolbert::cuda
