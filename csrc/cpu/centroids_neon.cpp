// Centroid scores, AArch64 Advanced SIMD (NEON), float32 arithmetic for every centroid dtype
// (centroid_kernels.hpp): a tile is 8 rows (2 vectors) x 8 centroids = 16 accumulators of the 32
// vector registers; the four row quarters of a 32-row block run one after the other over the same
// L1-resident centroid tile. FMLA takes the centroid value by element.
#include "centroid_kernels.hpp"
#include "vec_neon.hpp"

namespace edgecolbert {

using CentroidsNeon = CentroidScoresF32<VecNeon, VecNeon, 8>;
const CentroidOps centroid_ops_neon{CentroidsNeon::packed_bytes, CentroidsNeon::pack, CentroidsNeon::block_scores,
                                    CentroidsNeon::scratch_floats};

}  // namespace edgecolbert
