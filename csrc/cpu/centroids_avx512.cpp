// Centroid scores, AVX-512 (F/BW/VL/DQ), float32 arithmetic for every centroid dtype
// (centroid_kernels.hpp): two zmm hold one dimension of all 32 rows of a block; a tile is 2 row
// vectors x 12 centroids = 24 accumulators, per dimension 2 loads + 24 FMAs whose broadcast is folded
// into their memory operand (vec_avx512.hpp: on Zen 4 this ran centroid_search 12-25% faster than a
// vbroadcastss per centroid), widened half-precision centroids included.
#include "centroid_kernels.hpp"
#include "vec_avx512.hpp"

namespace edgecolbert {

using CentroidsAvx512 = CentroidScoresF32<VecAvx512Folded, VecAvx512Folded, 12>;
const CentroidOps centroid_ops_avx512{CentroidsAvx512::packed_bytes, CentroidsAvx512::pack,
                                      CentroidsAvx512::block_scores, CentroidsAvx512::scratch_floats};

}  // namespace edgecolbert
