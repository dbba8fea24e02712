// MaxSim, AArch64 Advanced SIMD (NEON), float32 arithmetic for every document dtype
// (maxsim_kernels.hpp): 4-lane q registers, a tile of 2 row blocks of 4 query rows x 8 tokens = 16
// accumulators of the 32 vector registers, FMLA by element (the token value is never duplicated).
#include "maxsim_kernels.hpp"
#include "vec_neon.hpp"

namespace edgecolbert {

using MaxSimNeon = MaxSimF32<VecNeon, VecNeon, 8>;
const MaxSimOps maxsim_ops_neon{MaxSimNeon::packed_bytes, MaxSimNeon::pack, MaxSimNeon::score,
                                MaxSimNeon::scratch_floats};

}  // namespace edgecolbert
