// Centroid scores, AVX2 + FMA + F16C, float32 arithmetic for every centroid dtype (centroid_kernels.hpp):
// with 16 ymm registers a tile is 16 rows (2 vectors) x 6 centroids = 12 accumulators; the two halves
// of a 32-row block run one after the other over the same L1-resident centroid tile.
#include "centroid_kernels.hpp"
#include "vec_avx2.hpp"

namespace edgecolbert {

using CentroidsAvx2 = CentroidScoresF32<VecAvx2, VecAvx2, 6>;
const CentroidOps centroid_ops_avx2{CentroidsAvx2::packed_bytes, CentroidsAvx2::pack, CentroidsAvx2::block_scores,
                                    CentroidsAvx2::scratch_floats};

}  // namespace edgecolbert
