// Runtime queries: versions, devices, pointer checks. cudart is static, so these work (and report the
// reason) on a machine without a driver, which is how the module imports there.
#include <string>

#include "launch.cuh"

namespace edgecolbert::cuda {

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  cudaRuntimeGetVersion(&info.runtime_version);
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess) info.driver_version = 0;
  const cudaError_t e = cudaGetDeviceCount(&info.device_count);
  if (e != cudaSuccess) {
    info.device_count = 0;
    info.error = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky-free error so later calls report their own
    return info;
  }
  for (int i = 0; i < info.device_count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) == cudaSuccess)
      info.devices.push_back(std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ")");
    int smem = 0;
    if (cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, i) != cudaSuccess) {
      smem = 0;
      cudaGetLastError();
    }
    info.max_smem_per_block.push_back(smem);
  }
  return info;
}

std::vector<std::string> compiled_architectures() {
  std::vector<std::string> out;
#if defined(__CUDA_ARCH_LIST__)
  // nvcc defines __CUDA_ARCH_LIST__ (e.g. 800,900) with every virtual architecture compiled for.
  const int archs[] = {__CUDA_ARCH_LIST__};
  for (int a : archs) out.push_back("compute_" + std::to_string(a / 10));
#endif
  return out;
}

void check_device_pointer(const void* ptr, int device, const char* fn, const char* arg) {
  cudaPointerAttributes a{};
  const cudaError_t e = cudaPointerGetAttributes(&a, ptr);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw std::invalid_argument(std::string(fn) + ": " + arg + " is not CUDA memory (" + cudaGetErrorName(e) + ")");
  }
  if (a.type == cudaMemoryTypeManaged) return;
  if (a.type != cudaMemoryTypeDevice)
    throw std::invalid_argument(std::string(fn) + ": " + arg + " is host memory; every argument must be on cuda:" +
                                std::to_string(device));
  if (a.device != device)
    throw std::invalid_argument(std::string(fn) + ": " + arg + " is on cuda:" + std::to_string(a.device) +
                                " but the call runs on cuda:" + std::to_string(device));
}

int max_smem_per_block(int device) {
  int smem = 0;
  EC_CUDA(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return smem;
}

void synchronize(const Launch& l) {
  DeviceGuard g(l.device);
  EC_CUDA(cudaStreamSynchronize(stream_of(l)));
}

}  // namespace edgecolbert::cuda
