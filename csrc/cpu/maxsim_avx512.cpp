// MaxSim, AVX-512 (F/BW/VL/DQ), float32 arithmetic for every document dtype (maxsim_kernels.hpp):
// 16-lane zmm registers, a tile of 2 row blocks of 16 query rows x 12 tokens = 24 accumulators. For
// float32 documents each FMA takes its token value as a {1to16} broadcast memory operand (no separate
// broadcast instruction; vec_avx512.hpp); widened half-precision tiles broadcast into a register.
#include "maxsim_kernels.hpp"
#include "vec_avx512.hpp"

namespace edgecolbert {

using MaxSimAvx512 = MaxSimF32<VecAvx512Folded, VecAvx512, 12>;
const MaxSimOps maxsim_ops_avx512{MaxSimAvx512::packed_bytes, MaxSimAvx512::pack, MaxSimAvx512::score,
                                  MaxSimAvx512::scratch_floats};

}  // namespace edgecolbert
