// Run-time dispatch: CPU features are read once; each compiled ISA variant exports a table of kernel
// entry points; the best variant the CPU can run is chosen once (EDGECOLBERT_ISA caps the choice).
#pragma once
#include <string>
#include <vector>

#include "edgecolbert/common.hpp"

namespace edgecolbert {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512bf16 = false;
  bool os_avx = false, os_avx512 = false;  // XGETBV: the OS saves ymm / zmm state
  bool neon = false, neon_fp16 = false, neon_bf16 = false;
  std::vector<std::string> names() const;  // the flags that are set, for info()
};

const CpuFeatures& cpu_features();

// MaxSim for one ISA. A query is packed once into the variant's layout (rows are query tokens in
// float32, masked rows already removed); score_doc then returns
//   sum_r max(floor, max_j <q_r, doc_j>)  over a document of ntok >= 1 tokens of type doc_dtype.
// scratch must hold scratch_floats(dim) floats (per thread; used to widen half-precision blocks).
struct MaxSimOps {
  std::size_t (*packed_query_bytes)(int64_t rows, int64_t dim, DType doc_dtype);
  void (*pack_query)(const float* q, int64_t rows, int64_t dim, DType doc_dtype, void* out);
  float (*score_doc)(const void* packed, int64_t rows, int64_t dim, const void* doc, DType doc_dtype,
                     int64_t ntok, float floor, float* scratch);
  std::size_t (*scratch_floats)(int64_t dim);
};

struct KernelPath {
  const char* name;    // variant: scalar, avx2, avx512, avx512_bf16, neon, neon_bf16
  const char* family;  // what EDGECOLBERT_ISA names: scalar, avx2, avx512, neon
  bool (*supported)(const CpuFeatures&);
  MaxSimOps maxsim;
};

// Every variant compiled into this build, in increasing preference.
const std::vector<const KernelPath*>& compiled_paths();
// The variants this CPU can run, in increasing preference.
std::vector<const KernelPath*> available_paths();
// The chosen variant: the best available one, capped by EDGECOLBERT_ISA (read once). Throws
// std::invalid_argument naming what the CPU can run when the variable asks for something else.
const KernelPath& default_path();
// A variant or family by name ("" = default_path()); throws std::invalid_argument when unknown,
// not compiled, or not supported by this CPU.
const KernelPath& path_by_name(const std::string& name);

// Per-ISA tables, defined in csrc/cpu/maxsim_<isa>.cpp.
extern const MaxSimOps maxsim_ops_scalar;
extern const MaxSimOps maxsim_ops_avx2;
extern const MaxSimOps maxsim_ops_avx512;
extern const MaxSimOps maxsim_ops_avx512_bf16;
extern const MaxSimOps maxsim_ops_neon;
extern const MaxSimOps maxsim_ops_neon_bf16;

}  // namespace edgecolbert
