// Launch helpers for the .cu files: error checks that throw, a device guard, stream-ordered workspace,
// and the persistent grid size. Nothing here computes; see kernels.hpp for the contract.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "kernels.hpp"

namespace edgecolbert::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what) {
  // Clear the thread's last-error slot: a non-sticky error left there would be reported again by the
  // next launch check of an unrelated call (sticky errors, e.g. an illegal address, cannot be cleared
  // and keep failing every call, as they must).
  cudaGetLastError();
  throw std::runtime_error(std::string("edgecolbert CUDA: ") + what + ": " + cudaGetErrorName(e) + " (" +
                           cudaGetErrorString(e) + ")");
}

#define EC_CUDA(call)                                 \
  do {                                                \
    const cudaError_t ec_err_ = (call);               \
    if (ec_err_ != cudaSuccess) throw_cuda(ec_err_, #call); \
  } while (0)

// Launch errors (bad configuration) surface at once; execution errors surface at the next sync.
// cudaGetLastError, not cudaPeekAtLastError: peeking leaves the error in the thread's slot, so after one
// failed launch every later check on this thread failed with that old error. The message names the
// kernel.
#define EC_CHECK_LAUNCH(name)                                                                    \
  do {                                                                                           \
    const cudaError_t ec_launch_err_ = cudaGetLastError();                                       \
    if (ec_launch_err_ != cudaSuccess) throw_cuda(ec_launch_err_, "launch of " name);           \
  } while (0)

inline cudaStream_t stream_of(const Launch& l) { return static_cast<cudaStream_t>(l.stream); }

// Makes `device` current for the scope of a call; restores the caller's device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    EC_CUDA(cudaGetDevice(&previous_));
    if (previous_ != device) EC_CUDA(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// Stream-ordered scratch (cudaMallocAsync's pool): freed on the same stream, so later work on the stream
// may reuse it without a synchronisation.
class Workspace {
 public:
  Workspace(const Launch& l, size_t bytes) : stream_(stream_of(l)) {
    if (bytes > 0) EC_CUDA(cudaMallocAsync(&ptr_, bytes, stream_));
  }
  ~Workspace() {
    if (ptr_ != nullptr) cudaFreeAsync(ptr_, stream_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  template <typename T>
  T* as(size_t byte_offset = 0) const {
    return reinterpret_cast<T*>(static_cast<char*>(ptr_) + byte_offset);
  }

 private:
  cudaStream_t stream_;
  void* ptr_ = nullptr;
};

// Throws std::invalid_argument when a launch would need more shared memory per block than the current
// device allows (the Python layer routes such shapes to the torch path before calling).
inline void require_smem(size_t bytes, const char* fn) {
  int device = 0;
  EC_CUDA(cudaGetDevice(&device));
  const size_t limit = static_cast<size_t>(max_smem_per_block(device));
  if (bytes > limit)
    throw std::invalid_argument(std::string(fn) + " (CUDA): needs " + std::to_string(bytes) +
                                " bytes of shared memory per block, the device allows " + std::to_string(limit));
}

inline size_t align_up(size_t x, size_t a = 256) { return (x + a - 1) / a * a; }

// Blocks that fill every SM at the kernel's occupancy: the grid of a persistent (grid-stride) kernel.
template <typename Kernel>
int persistent_blocks(Kernel kernel, int threads, size_t dyn_smem) {
  int device = 0, sms = 0, per_sm = 0;
  EC_CUDA(cudaGetDevice(&device));
  EC_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  EC_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, dyn_smem));
  return sms * (per_sm > 0 ? per_sm : 1);
}

inline int grid_for(int64_t n, int threads, int64_t cap = 65535LL * 16) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<int>(b < cap ? b : cap);
}

}  // namespace edgecolbert::cuda
