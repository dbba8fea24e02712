// Host-side API of the CUDA kernels: plain C++ (no CUDA headers), so the pybind11 bindings compile with
// the host compiler. Every pointer is device memory on `device`; every call is asynchronous on `stream`
// (a cudaStream_t passed as void*; null is the legacy default stream). Shapes are validated by the
// bindings before these calls; launchers throw std::invalid_argument for an argument the kernels cannot
// take (the Python layer routes such calls to the torch path) and std::runtime_error for CUDA errors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace edgecolbert::cuda {

struct Launch {
  int device = 0;
  void* stream = nullptr;
};

struct RuntimeInfo {
  int runtime_version = 0;  // the cudart linked in (static)
  int driver_version = 0;   // 0 when no driver is installed
  int device_count = 0;
  std::string error;        // why no device is usable, empty otherwise
  std::vector<std::string> devices;  // "NVIDIA H100 80GB HBM3 (sm_90)"
  std::vector<int> max_smem_per_block;  // per device: cudaDevAttrMaxSharedMemoryPerBlockOptin (bytes)
};
RuntimeInfo runtime_info();
// The architectures this module carries code for ("sm_80", "sm_90", "compute_80" ...).
std::vector<std::string> compiled_architectures();
// Throws std::runtime_error unless ptr is device (or managed) memory usable on `device`.
void check_device_pointer(const void* ptr, int device, const char* fn, const char* arg);
// Shared memory per block (static + dynamic, bytes) a kernel opts into for a shape: the one formula the
// launchers check against the device's opt-in limit (they throw std::invalid_argument beyond it) and
// edgecolbert_native.gpu routes on (to the torch path), via the bindings' shared_memory_bytes. The
// opt-in limit is 227 KB on sm_80/90 but 99 KB on sm_86/89/120, where e.g. rowmax_simt (256 * dim B)
// stops fitting at dim 397. Dtypes as Queries::dtype.
size_t maxsim_smem_bytes(int doc_dtype, int64_t dim);      // rowmax_wmma / rowmax_simt
size_t decompress_smem_bytes(int64_t dim, int nbits);      // decompress_kernel
size_t maxsim_compressed_smem_bytes(int64_t dim, int nbits);  // rowmax_codec
size_t centroid_smem_bytes(int dtype, int64_t dim);        // search_wmma / search_simt
// cudaDevAttrMaxSharedMemoryPerBlockOptin of `device` (throws std::runtime_error on a CUDA error).
int max_smem_per_block(int device);

// Blocks until `stream` is idle (tests; the entry points never synchronise).
void synchronize(const Launch& l);

// Element types as edgecolbert::DType: 0 f32, 1 f16, 2 bf16.
struct Queries {
  const void* data = nullptr;  // [nq, lq, dim]
  int dtype = 0;
  int64_t nq = 0, lq = 0, dim = 0;
  const uint8_t* mask = nullptr;  // [nq, lq] or null
};

struct CsrDocs {
  const void* tokens = nullptr;  // [T, dim]
  int dtype = 0;
  int64_t T = 0;
  const int64_t* offsets = nullptr;  // [n + 1]
  int64_t n = 0;
};

// Which MaxSim kernel family a call used, for info() and tests: "wmma" (tensor cores, fp16/bf16
// documents, dim <= 128) or "simt" (float32 FMA, any dtype, dim <= 512).
const char* maxsim_kernel_for(int doc_dtype, int64_t dim);

// out [nq, n] float32.
void maxsim(const Launch& l, const Queries& q, const CsrDocs& d, float* out);
// out [nq, ncand] float32 for candidates [nq, ncand] (entries outside [0, n) score NaN).
void maxsim_candidates(const Launch& l, const Queries& q, const CsrDocs& d, const int64_t* candidates, int64_t ncand,
                       float* out);
// Fused top-k (1 <= k <= min(n, kMaxTopK)): scores [nq, k] float32, ids [nq, k] int64.
constexpr int64_t kMaxTopK = 1024;
void maxsim_topk(const Launch& l, const Queries& q, const CsrDocs& d, int64_t k, float* scores, int64_t* ids);

struct Codec {
  const float* centroids = nullptr;  // [K, dim] float32
  int64_t K = 0, dim = 0;
  const float* weights = nullptr;    // [2^nbits] float32
  int nbits = 0;
};

// out [n, dim] in out_dtype (0 f32, 1 f16, 2 bf16) for codes int32 [n], residuals uint8 [n, dim*nbits/8].
void decompress(const Launch& l, const Codec& c, const int32_t* codes, const uint8_t* residuals, int64_t n, void* out,
                int out_dtype);

// MaxSim straight from codes (CSR offsets over codes/residuals); candidates optional (null: all).
void maxsim_compressed(const Launch& l, const Queries& q, const Codec& c, const int32_t* codes,
                       const uint8_t* residuals, int64_t T, const int64_t* offsets, int64_t n,
                       const int64_t* candidates, int64_t ncand, float* out);

// Top-k centroids per row (1 <= k <= min(K, kMaxProbe)): scores [m, k] float32 (may be null), ids [m, k]
// int32. rows [m, dim] and centroids [K, dim] of the same dtype (the bindings convert queries).
constexpr int64_t kMaxProbe = 32;
void centroid_topk(const Launch& l, const void* rows, int64_t m, const void* centroids, int64_t K, int64_t dim,
                   int dtype, int64_t k, float* scores, int32_t* ids);

}  // namespace edgecolbert::cuda
