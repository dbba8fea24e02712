// MaxSim, AVX2 + FMA + F16C, float32 arithmetic for every document dtype (maxsim_kernels.hpp): 8-lane
// ymm registers, 16 of them, so a tile is 2 row blocks of 8 query rows x 6 tokens: 12 accumulators +
// 2 query vectors + 1 broadcast.
#include "maxsim_kernels.hpp"
#include "vec_avx2.hpp"

namespace edgecolbert {

using MaxSimAvx2 = MaxSimF32<VecAvx2, VecAvx2, 6>;
const MaxSimOps maxsim_ops_avx2{MaxSimAvx2::packed_bytes, MaxSimAvx2::pack, MaxSimAvx2::score,
                                MaxSimAvx2::scratch_floats};

}  // namespace edgecolbert
