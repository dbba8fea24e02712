// MaxSim, scalar reference: the specification every SIMD path is tested against.
// Layout: the packed query is the kept query rows as float32 [rows, dim]; document tokens are read in
// their own dtype and widened exactly. Each dot product accumulates in float32 in order k = 0..dim-1;
// the per-row maxima are summed in double, in row order (every path sums the same way). A NaN
// similarity is ignored by the max (like numpy.fmax); a row whose similarities are all NaN keeps the
// floor (-inf, or 0 for PyLate-style masked documents).
#include <algorithm>
#include <cstring>

#include "edgecolbert/dispatch.hpp"

namespace edgecolbert {
namespace {

std::size_t packed_bytes(int64_t rows, int64_t dim, DType) { return static_cast<std::size_t>(rows * dim) * 4; }

void pack(const float* q, int64_t rows, int64_t dim, DType, void* out) {
  std::memcpy(out, q, static_cast<std::size_t>(rows * dim) * 4);
}

float score(const void* packed, int64_t rows, int64_t dim, const void* doc, DType dtype, int64_t ntok,
            float floor, float*, NextDoc) {
  const float* q = static_cast<const float*>(packed);
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    float best = floor;
    for (int64_t j = 0; j < ntok; ++j) {
      float dot = 0.0f;
      for (int64_t k = 0; k < dim; ++k)
        dot += q[r * dim + k] * load_as_f32(doc, dtype, static_cast<std::size_t>(j * dim + k));
      if (dot > best) best = dot;  // a NaN similarity never wins: NaNs are ignored by the max
    }
    total += best;
  }
  return static_cast<float>(total);
}

std::size_t scratch_floats(int64_t, int64_t) { return 0; }

}  // namespace

const MaxSimOps maxsim_ops_scalar{packed_bytes, pack, score, scratch_floats};

}  // namespace edgecolbert
