// Centroid scores, scalar reference: the specification every SIMD path is tested against.
// Layout: a packed block is 32 rows of float32 [32, dim] (padded rows zero); centroids are read in
// their own dtype and widened exactly; each dot product accumulates in float32 in order k = 0..dim-1.
#include <cstring>

#include "edgecolbert/dispatch.hpp"

namespace edgecolbert {
namespace {

constexpr int64_t kRows = kCentroidBlockRows;

std::size_t packed_bytes(int64_t dim) { return static_cast<std::size_t>(kRows * dim) * sizeof(float); }

void pack(const float* rows, int64_t nrows, int64_t dim, void* out) {
  float* p = static_cast<float*>(out);
  std::memset(p, 0, packed_bytes(dim));
  std::memcpy(p, rows, static_cast<std::size_t>(nrows * dim) * sizeof(float));
}

void block_scores(const void* packed, int64_t dim, const void* cents, DType ct, int64_t nc, const float* thr,
                  float* out, uint8_t* flags, float*) {
  const float* q = static_cast<const float*>(packed);
  for (int64_t j = 0; j < nc; ++j) {
    uint8_t hit = 0;
    for (int64_t r = 0; r < kRows; ++r) {
      float dot = 0.0f;
      for (int64_t k = 0; k < dim; ++k)
        dot += q[r * dim + k] * load_as_f32(cents, ct, static_cast<std::size_t>(j * dim + k));
      out[j * kRows + r] = dot;
      hit |= thr != nullptr && dot > thr[r];
    }
    if (flags != nullptr) flags[j] = hit;
  }
}

std::size_t scratch_floats(int64_t) { return 0; }

// int8 scores, the specification (dispatch.hpp, CentroidI8Ops): an exact int32 dot product, then
// float(dot) * (qscale[r] * cscale[j]).
void block_scores_i8(const int8_t* q, const float* qscale, int64_t dim4, const int8_t* c8, const float* cscale,
                     const int32_t*, int64_t nc, float* out, const float* thr, uint8_t* flags) {
  for (int64_t j = 0; j < nc; ++j) {
    const int8_t* c = c8 + j * dim4;
    uint8_t hit = 0;
    for (int64_t r = 0; r < kRows; ++r) {
      int32_t dot = 0;
      for (int64_t k = 0; k < dim4; ++k) dot += int32_t{q[(k / 4) * kRows * 4 + r * 4 + k % 4]} * int32_t{c[k]};
      const float v = static_cast<float>(dot) * (qscale[r] * cscale[j]);
      out[j * kRows + r] = v;
      hit |= thr != nullptr && v > thr[r];
    }
    if (thr != nullptr) flags[j] = hit;
  }
}

}  // namespace

const CentroidOps centroid_ops_scalar{packed_bytes, pack, block_scores, scratch_floats};
const CentroidI8Ops centroid_i8_ops_scalar{false, block_scores_i8};

}  // namespace edgecolbert
